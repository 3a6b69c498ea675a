/**
 * PowerShell's ShouldProcess for the host. -WhatIf describes and declines. -Confirm asks on the
 * terminal; a ConfirmImpact="High" cmdlet asks on a terminal even without -Confirm (PowerShell's
 * default $ConfirmPreference is High); -Confirm:$false never asks. Without a terminal nothing can
 * be asked: an explicit -Confirm is refused before the cmdlet runs (main.ts), and a High-impact
 * cmdlet proceeds, as the caller is a script (the PowerShell module asks in its own session and
 * passes -Confirm:$false).
 */
import type { InputReader } from './input.js';

export interface ShouldProcessOptions {
  whatIf: boolean;
  confirm: boolean | undefined;
  confirmImpact: 'None' | 'Low' | 'Medium' | 'High';
  /** Both stdin and stderr are terminals. */
  interactive: boolean;
  reader: InputReader;
  /** Where "What if:" goes: stdout for table/list output, stderr for JSON/CLIXML so that stays parseable. */
  whatIfOut: NodeJS.WritableStream;
  promptOut: NodeJS.WritableStream;
}

export function createShouldProcess(o: ShouldProcessOptions): (target: string, action: string) => Promise<boolean> {
  let all: boolean | undefined;
  const asks = o.confirm === true || (o.confirm === undefined && o.confirmImpact === 'High' && o.interactive);
  return async (target, action) => {
    const operation = `Performing the operation "${action}" on target "${target}".`;
    if (o.whatIf) {
      o.whatIfOut.write(`What if: ${operation}\n`);
      return false;
    }
    if (!asks || !o.interactive) return true;
    if (all !== undefined) return all;
    for (;;) {
      o.promptOut.write(
        `\nConfirm\nAre you sure you want to perform this action?\n${operation}\n[Y] Yes  [A] Yes to All  [N] No  [L] No to All  [?] Help (default is "Y"): `,
      );
      const answer = await o.reader.line();
      if (answer === undefined) return false;
      switch (answer.trim().toLowerCase()) {
        case '':
        case 'y':
          return true;
        case 'a':
          all = true;
          return true;
        case 'n':
          return false;
        case 'l':
          all = false;
          return false;
        case '?':
          o.promptOut.write(
            'Y - Continue with only the next step of the operation.\nA - Continue with all the steps of the operation.\nN - Skip this ' +
              'operation and proceed with the next operation.\nL - Skip this operation and all subsequent operations.\n',
          );
      }
    }
  };
}
