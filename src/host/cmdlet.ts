import type { AzsError } from '../errors.js';
import type { ProgressReporter } from '../progress.js';

/**
 * The contract between the host and a cmdlet file. `cmdlets/<Verb-Noun>.ts` default-exports one
 * `Cmdlet`; the host loads only the file of the cmdlet asked for.
 */

/** A PSCredential as the host binds it. */
export interface Credential {
  UserName: string;
  Password: string;
}

/**
 * Bound parameters, keyed by the manifest's parameter names (PascalCase). Values are typed:
 * String → string, String[] → string[], Int32/Int64 → number, Boolean/Switch → boolean,
 * DateTime → Date, Guid → string, SecureString → string, PSCredential → Credential.
 * A parameter not given is absent (undefined).
 */
export type BoundParameters = Record<string, unknown>;

export interface CmdletContext<P = BoundParameters> {
  /** Typed for each cmdlet from its manifest: cmdlets/generated/parameters.d.ts. */
  params: P;
  /** The parameter set the host resolved. */
  parameterSetName: string;
  /**
   * The secrets that came from the environment (AZSBACKUP_<NAME>) without being named on the
   * command line, for a cmdlet to which that difference matters.
   */
  secretsFromEnvironment?: ReadonlySet<string>;
  /**
   * PowerShell's ShouldProcess: false under -WhatIf (the host prints "What if: Performing the
   * operation "<action>" on target "<target>"."), and asks on a terminal under -Confirm.
   */
  shouldProcess(target: string, action: string): Promise<boolean>;
  /**
   * Under -WhatIf (where shouldProcess declines): writes one more "What if: <line>" where the
   * host writes its own, for a cmdlet that can say more of what it would do. Undefined otherwise.
   */
  whatIf?: (line: string) => void;
  progress: ProgressReporter;
  /** Who is calling: the command line, or the PowerShell module (whose messages use PowerShell's syntax). */
  dialect: 'cli' | 'powershell';
  /** A non-terminating error (e.g. one failed role of a partial backup); the exit code becomes 3 unless set. Set the exit code first: the record says it. */
  writeError(error: AzsError): void;
  /**
   * A warning on stderr (PowerShell's Write-Warning): something the operator must know that does
   * not stop the command, e.g. that nothing was done and what to do next.
   */
  writeWarning(message: string, targetObject?: string): void;
  /** Override the exit code (e.g. 3 for a partial backup that returned its object). */
  setExitCode(code: number): void;
  /** AZSBACKUP_HOME, or the user's config folder: where configuration and state live. */
  home: string;
  /** Aborted on SIGINT, SIGTERM or SIGHUP. */
  signal: AbortSignal;
}

/** Returns the output objects (PascalCase properties, as declared in manifests/Types.xml), or nothing. */
export type Cmdlet<P = BoundParameters> = (ctx: CmdletContext<P>) => Promise<unknown>;
