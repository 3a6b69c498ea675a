import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { afterAll, describe, expect, it } from 'vitest';
import { loadManifestSet } from '../../src/manifest/load.js';
import { renderParameterTypes } from '../../src/manifest/parameter-types.js';

/**
 * The point of generating cmdlets/generated/parameters.d.ts: a manifest change that a cmdlet no
 * longer matches fails the typecheck in that cmdlet. The TypeScript compiler checks one cmdlet
 * against the declarations rendered from a changed copy of the manifests, the tree left as it is.
 */

const root = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const generated = join(root, 'cmdlets', 'generated', 'parameters.d.ts');
const work = mkdtempSync(join(tmpdir(), 'azsbackup-manifests-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** The manifests, with `change` applied to one cmdlet's XML, rendered as the build renders them. */
function declarationsFrom(cmdlet: string, change: (xml: string) => string): string {
  const dir = join(work, `${cmdlet}-${Math.random().toString(36).slice(2)}`);
  cpSync(join(root, 'manifests'), dir, { recursive: true });
  const file = join(dir, `${cmdlet}.xml`);
  writeFileSync(file, change(readFileSync(file, 'utf8')));
  return renderParameterTypes(loadManifestSet(dir).cmdlets);
}

const config = ts.getParsedCommandLineOfConfigFile(
  join(root, 'tsconfig.json'),
  {},
  { ...ts.sys, onUnRecoverableConfigFileDiagnostic: () => {} },
)!;
let previous: ts.Program | undefined;

/** The type errors in cmdlets/<cmdlet>.ts when the generated declarations read `declarations`. */
function errorsIn(cmdlet: string, declarations: string): string[] {
  const host = ts.createCompilerHost(config.options);
  const readFile = host.readFile.bind(host);
  const fileExists = host.fileExists.bind(host);
  host.readFile = (f) => (resolve(f) === generated ? declarations : readFile(f));
  host.fileExists = (f) => resolve(f) === generated || fileExists(f);
  const file = join(root, 'cmdlets', `${cmdlet}.ts`);
  previous = ts.createProgram([file], config.options, host, previous);
  return ts.getPreEmitDiagnostics(previous, previous.getSourceFile(file)).map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'));
}

describe('a manifest change that breaks a cmdlet breaks the typecheck', () => {
  it('the cmdlet typechecks against its manifest as it is', () => {
    expect(
      errorsIn(
        'Restore-AzsBackup',
        declarationsFrom('Restore-AzsBackup', (xml) => xml),
      ),
    ).toEqual([]);
  }, 60_000);

  it('a renamed parameter is an error in the cmdlet that reads it', () => {
    const renamed = declarationsFrom('Restore-AzsBackup', (xml) => xml.replaceAll('RoleName', 'RoleFilter'));
    expect(errorsIn('Restore-AzsBackup', renamed)).toEqual([
      expect.stringMatching(/Property 'RoleName' does not exist on type 'RestoreAzsBackupParameters'/),
    ]);
  }, 60_000);

  it('a retyped parameter is an error too', () => {
    const retyped = declarationsFrom('Unregister-InfrastructureRole', (xml) =>
      xml.replace(/(<Parameter Name="Name"[^>]*Type=")String(")/, '$1Int32$2'),
    );
    expect(errorsIn('Unregister-InfrastructureRole', retyped)).toEqual([
      expect.stringMatching(/'toLowerCase' does not exist on type 'number'/),
    ]);
  }, 60_000);
});
