/**
 * SecureString and PSCredential parameters (docs/MANIFESTS.md, "the command line contract"): never
 * from argv; `-` reads standard input (one line, or user name and password for a credential), in
 * command-line order; else AZSBACKUP_<NAME>; else a prompt without echo on a terminal. A secret's
 * value never appears in any message.
 */
import { usageError, type AzsError } from '../errors.js';
import type { CmdletManifest, ParameterDef } from '../manifest/model.js';
import type { CommandLine, SecretRequest } from './argv.js';
import type { BoundParameters, Credential } from './cmdlet.js';
import { validateText } from './convert.js';
import { InputReader, type InputStream } from './input.js';

export interface SecretIO {
  stdin: InputStream;
  stdinIsTTY: boolean;
  /** Prompts are written here (PowerShell prompts on the host, not on the output stream). */
  stderr: NodeJS.WritableStream;
  env: Record<string, string | undefined>;
  /** The host's one reader of stdin, shared with -Confirm prompts; made here when not given. */
  reader?: InputReader;
}

export function secretEnvName(p: ParameterDef): string {
  return `AZSBACKUP_${p.name.toUpperCase()}`;
}

function ways(p: ParameterDef): string {
  return p.type === 'PSCredential'
    ? `Give it as '-${p.name} -' with the user name and the password on two lines of standard input, or as -${p.name} 'DOMAIN\\user' with the password in the environment variable ${secretEnvName(p)}, or run on a terminal to be prompted.`
    : `Give it as '-${p.name} -' with the value on one line of standard input, or in the environment variable ${secretEnvName(p)}, or run on a terminal to be prompted without echo.`;
}

function notProvided(p: ParameterDef, mandatory: boolean): AzsError {
  return usageError(
    mandatory
      ? `Cannot process command because of one or more missing mandatory parameters: ${p.name}. It is a secret, and there is no terminal to prompt on.`
      : `-${p.name} was named without a value, and there is no terminal to prompt on.`,
    mandatory ? 'MissingMandatoryParameter' : 'SecretNotProvided',
    p.name,
    ways(p),
  );
}

function checked(p: ParameterDef, value: string, what = 'value'): string {
  if (value === '') {
    throw usageError(`The ${what} given for -${p.name} is empty.`, 'ParameterArgumentValidationError', p.name, ways(p));
  }
  return what === 'value' ? validateText(p, value) : value;
}

/** Prompts and reads, in order, through one reader so no input is lost between secrets. */
class Source {
  private readonly reader: InputReader;
  private prompted = false;

  constructor(private readonly io: SecretIO) {
    this.reader = io.reader ?? new InputReader(io.stdin);
  }

  get canPrompt(): boolean {
    return this.io.stdinIsTTY && typeof this.io.stdin.setRawMode === 'function';
  }

  private header(): void {
    if (!this.prompted) this.io.stderr.write('Supply values for the following parameters:\n');
    this.prompted = true;
  }

  async hidden(label: string): Promise<string> {
    this.header();
    this.io.stderr.write(`${label}: `);
    try {
      return await this.reader.hidden();
    } finally {
      this.io.stderr.write('\n');
    }
  }

  async visible(label: string): Promise<string> {
    this.header();
    this.io.stderr.write(`${label}: `);
    return (await this.reader.line()) ?? '';
  }

  async stdinLine(p: ParameterDef, index: number, of: number): Promise<string> {
    const line = await this.reader.line();
    if (line === undefined) {
      throw usageError(
        `-${p.name} - expects ${of === 2 ? 'two lines (the user name, then the password)' : 'one line'} on standard input, but it ended${index ? ' after the user name' : ''}.`,
        'SecretNotOnStdin',
        p.name,
        'Write one line per secret given as -, in the order they appear on the command line (a credential takes two: user name, then ' +
          'password).',
      );
    }
    return line;
  }
}

async function readCredential(
  p: ParameterDef,
  req: SecretRequest | undefined,
  mandatory: boolean,
  src: Source,
  io: SecretIO,
): Promise<Credential | undefined> {
  if (req?.source === 'stdin' && !src.canPrompt) {
    const user = checked(p, await src.stdinLine(p, 0, 2), 'user name');
    const password = checked(p, await src.stdinLine(p, 1, 2), 'password');
    return { UserName: user, Password: password };
  }
  if (!req && !mandatory) return undefined;
  let user = req?.userName;
  if (user === undefined) {
    if (!src.canPrompt) throw notProvided(p, mandatory);
    user = checked(p, await src.visible(`User name for -${p.name}`), 'user name');
  }
  let password = io.env[secretEnvName(p)];
  if (password === undefined || req?.source === 'stdin') {
    if (!src.canPrompt) throw notProvided(p, mandatory);
    password = await src.hidden(`Password for user ${user}`);
  }
  return { UserName: user, Password: checked(p, password, 'password') };
}

async function readSecureString(
  p: ParameterDef,
  req: SecretRequest | undefined,
  mandatory: boolean,
  src: Source,
  io: SecretIO,
): Promise<string | undefined> {
  // On a terminal, `-` would echo what is typed; a hidden prompt reads the same line without echo.
  if (req?.source === 'stdin' && !src.canPrompt) return checked(p, await src.stdinLine(p, 0, 1));
  const fromEnv = req?.source === 'stdin' ? undefined : io.env[secretEnvName(p)];
  if (fromEnv !== undefined) return checked(p, fromEnv);
  if (!req && !mandatory) return undefined;
  if (!src.canPrompt) throw notProvided(p, mandatory);
  return checked(p, await src.hidden(p.name));
}

/**
 * Reads every secret of the resolved parameter set: those named on the command line in their
 * order (so `-` lines are consumed in that order), then the others (environment, or a prompt when
 * mandatory). Returns them as bound parameters.
 */
export async function readSecrets(m: CmdletManifest, cl: CommandLine, io: SecretIO): Promise<BoundParameters> {
  const inSet = m.parameters.filter((p) => p.secret && p.sets.some((s) => s.set === cl.parameterSetName));
  const named = new Map(cl.secrets.map((r) => [r.parameter.name, r]));
  const order = [...cl.secrets.map((r) => r.parameter), ...inSet.filter((p) => !named.has(p.name))];
  const result: BoundParameters = {};
  if (order.length === 0) return result;
  const src = new Source(io);
  for (const p of order) {
    const req = named.get(p.name);
    const mandatory = p.sets.find((s) => s.set === cl.parameterSetName)?.mandatory ?? false;
    const value =
      p.type === 'PSCredential' ? await readCredential(p, req, mandatory, src, io) : await readSecureString(p, req, mandatory, src, io);
    if (value !== undefined) result[p.name] = value;
  }
  return result;
}
