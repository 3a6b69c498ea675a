import path from 'node:path';
import type { Readable } from 'node:stream';
import { exportFromProgram, importIntoProgram, type ProgramSpec } from './child.js';
import type { Provider, ProviderContext, ProviderDescription, RoleDefinition } from './provider.js';
import { DEFAULT_COMMAND_TIMEOUT_SECONDS } from './validate.js';

/**
 * Any program that writes the role's data to stdout and reads it back from stdin. It runs without
 * a shell, so arguments are never interpreted.
 *
 * The program learns which role it serves, and where a side-by-side restore should go, from the
 * environment: AZSBACKUP_ROLE, and AZSBACKUP_DESTINATION when the restore names a destination.
 */

type CommandRole = RoleDefinition & { exportCommand: string[]; importCommand: string[] };

export class CommandProvider implements Provider {
  /** The program applies bytes as they arrive; nothing can be staged on its behalf. */
  readonly streamsIntoDestination = true;

  constructor(private readonly role: CommandRole) {}

  describe(): ProviderDescription {
    // Only the program: its arguments may carry tokens that must not reach status lines.
    return { provider: 'command', source: this.role.exportCommand[0]! };
  }

  private spec(argv: string[], which: 'export' | 'import', ctx: ProviderContext): ProgramSpec {
    const env: Record<string, string> = { AZSBACKUP_ROLE: this.role.name };
    if (ctx.destination !== undefined) env.AZSBACKUP_DESTINATION = ctx.destination;
    return {
      argv,
      env,
      timeoutMs: (this.role.timeoutSeconds ?? DEFAULT_COMMAND_TIMEOUT_SECONDS) * 1000,
      signal: ctx.signal,
      errorPrefix: 'CommandProvider',
      label: `${which} command '${path.basename(argv[0]!)}' of role '${this.role.name}'`,
    };
  }

  async export(ctx: ProviderContext = {}): Promise<Readable> {
    return exportFromProgram(this.spec(this.role.exportCommand, 'export', ctx));
  }

  async import(data: Readable, ctx: ProviderContext = {}): Promise<void> {
    // A program that stops reading early (a shell pipeline without pipefail whose last step exits
    // 0) would otherwise report a role restored whole that was not.
    await importIntoProgram({ ...this.spec(this.role.importCommand, 'import', ctx), wholeInput: true }, data);
  }
}
