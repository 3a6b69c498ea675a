import { existsSync, promises as fs } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CliResult, type Drill, expectOk, makeDrill, runCli, shareFingerprint } from '../support/cli.js';

/**
 * The operator's bad input, cmdlet by cmdlet: wrong types and ranges, misspelt, ambiguous and
 * duplicated parameters, parameters of two sets, missing mandatory ones, names that do not exist,
 * paths that do not exist or are files, secrets that are empty, absent or malformed, -WhatIf and
 * -Confirm forms. Each case runs on its own copy of one prepared machine (a configured home with
 * roles and a backup, its share, the roles' data, a certificate) and must end with the error
 * record the SPEC describes (ErrorId, exit code, a RecommendedAction, the parameter or value as
 * TargetObject) and with every byte of that copy as it was: config.json, seal.key, jobs, alerts,
 * the share and the roles' data. Cases that pass today pin promises of SPEC section 8; the
 * others were defects:
 * - New-EncryptionKey -Certificate wrote the .cer before the .pfx: a .pfx that could not be
 *   written left a new .cer behind, or with -Force replaced the operator's .cer with one whose
 *   private key was lost; -CertificatePath and -PfxPath naming one file wrote the .pfx over it.
 * - Set-BackupShare on a machine never configured made AZSBACKUP_HOME and its seal.key even when
 *   it was refused (a share that does not exist) or only asked -WhatIf.
 * - An empty path (-KeyPath '', -DecryptionCertPath '', -EncryptionCertPath '') was taken for the
 *   current folder, silently ignored, or refused without saying what to do.
 * - Start-InfrastructureBackup -RoleName '' (an unset shell variable) backed up every role.
 * - Usage errors a mistaken operator reaches (two credentials, a key and a certificate, a .pfx
 *   password without its .pfx, an unknown -RoleName) came without a RecommendedAction.
 * - A restore or re-wrap without decryption material blamed -DecryptionCertPath alone, though an
 *   operator whose backups use a key needs -EncryptionKey.
 * - Register-InfrastructureRole with the name of a registered role (in any case) replaced and
 *   renamed it without a word, losing its path, command or sealed database password; the same
 *   definition typed again rewrote the catalog.
 * - Get-InfrastructureRole -Name <a role that does not exist> returned nothing with exit 0, where
 *   Unregister-InfrastructureRole and Get-InfrastructureBackup -Name say it is not found.
 * - Remove-InfrastructureBackup -Confirm:$false removed the last restorable backup, which prune
 *   always keeps, without -Force and without a word.
 * - A local share path holding a newline, or 100 KB long, was saved under -SkipValidation; a
 *   New-EncryptionKey -Subject with a newline made a certificate; errors quoted a 100 KB
 *   parameter name or value in full; InvalidEncryptionKey had no TargetObject.
 * - -UserName of 100 KB (any cmdlet) and -AlertWebhookUri of 100 KB were accepted, and
 *   Set-BackupShare saved them into config.json.
 */

interface Dirs {
  root: string;
  home: string;
  share: string;
  files: string;
  cer: string;
  pfx: string;
  text: string;
  /** A home that does not exist yet: a machine never configured. */
  fresh: string;
}

interface Refusal {
  errorId: string;
  exit: number;
  /** TargetObject (or one of its elements): the parameter or value at fault. */
  target?: string | ((c: Dirs) => string);
  /** The message or the recommended action must say this. */
  says?: RegExp;
}

/** Operator input far longer than any name, path or value: errors quote a bounded part of it. */
const HUGE = 'a'.repeat(100_000);

interface Case {
  name: string;
  args: (c: Dirs) => string[];
  stdin?: string | ((c: Dirs) => string);
  /** Runs with AZSBACKUP_HOME a folder that does not exist, which must still not exist after. */
  freshHome?: boolean;
  /** undefined: a -WhatIf or other call that succeeds and changes nothing. */
  refused?: Refusal;
  /** Files the refused call must not have left behind. */
  absent?: (c: Dirs) => string[];
}

const GUID_UNKNOWN = '00000000-0000-4000-8000-000000000000';
let backup = '';
let key = '';
let otherKey = '';
const PFX_PASSWORD = 'pfx-password-for-the-table';

const cases: Case[] = [
  // ---- values: types and ranges (SPEC 2: retention 2-14 days, frequency 4-12 h)
  ...['0', '-1', '15', '1e9', 'NaN', '7days', '7.5', '', '99999999999'].map(
    (v): Case => ({
      name: `Set-BackupShare -BackupRetentionPeriodInDays '${v}'`,
      args: () => ['Set-BackupShare', '-BackupRetentionPeriodInDays', v, '-SkipValidation'],
      refused: {
        errorId: /^-?\d+$/.test(v) && v.length < 5 ? 'ParameterArgumentValidationError' : 'ParameterArgumentTransformationError',
        exit: 2,
        target: 'BackupRetentionPeriodInDays',
      },
    }),
  ),
  {
    name: 'Set-BackupShare -BackupFrequencyInHours 3',
    args: () => ['Set-BackupShare', '-BackupFrequencyInHours', '3', '-SkipValidation'],
    refused: { errorId: 'ParameterArgumentValidationError', exit: 2, target: 'BackupFrequencyInHours', says: /greater than or equal to 4/ },
  },
  {
    name: 'Set-BackupShare -IsBackupSchedulerEnabled yes',
    args: () => ['Set-BackupShare', '-IsBackupSchedulerEnabled', 'yes', '-SkipValidation'],
    refused: { errorId: 'ParameterArgumentTransformationError', exit: 2, target: 'IsBackupSchedulerEnabled' },
  },
  {
    name: 'Set-BackupShare -AlertWebhookUri ftp://x',
    args: () => ['Set-BackupShare', '-AlertWebhookUri', 'ftp://x', '-SkipValidation'],
    refused: { errorId: 'ParameterArgumentValidationError', exit: 2, target: 'AlertWebhookUri' },
  },
  {
    name: 'Get-InfrastructureBackup -Top 0',
    args: () => ['Get-InfrastructureBackup', '-Top', '0'],
    refused: { errorId: 'ParameterArgumentValidationError', exit: 2, target: 'Top' },
  },
  {
    name: 'Get-BackupAlert -Status Open',
    args: () => ['Get-BackupAlert', '-Status', 'Open'],
    refused: { errorId: 'ParameterArgumentValidationError', exit: 2, target: 'Status', says: /Active, Closed/ },
  },
  {
    name: 'Register-InfrastructureRole -RestoreOrder 1001',
    args: (c) => ['Register-InfrastructureRole', '-Name', 'Extra', '-Provider', 'directory', '-Path', c.files, '-RestoreOrder', '1001'],
    refused: { errorId: 'ParameterArgumentValidationError', exit: 2, target: 'RestoreOrder' },
  },
  {
    name: 'Register-InfrastructureRole -Name 1bad',
    args: (c) => ['Register-InfrastructureRole', '-Name', '1bad', '-Provider', 'directory', '-Path', c.files],
    refused: { errorId: 'ParameterArgumentValidationError', exit: 2, target: 'Name' },
  },
  {
    name: 'Register-InfrastructureRole -Provider Fancy',
    args: (c) => ['Register-InfrastructureRole', '-Name', 'Extra', '-Provider', 'Fancy', '-Path', c.files],
    refused: { errorId: 'ParameterArgumentValidationError', exit: 2, target: 'Provider', says: /directory, sqlite, command, postgres/ },
  },
  {
    name: 'New-EncryptionKey -Certificate -KeySize 2048',
    args: (c) => [
      'New-EncryptionKey',
      '-Certificate',
      '-CertificatePath',
      path.join(c.root, 'n.cer'),
      '-PfxPath',
      path.join(c.root, 'n.pfx'),
      '-PfxPassword',
      '-',
      '-KeySize',
      '2048',
    ],
    stdin: 'pw\n',
    refused: { errorId: 'ParameterArgumentValidationError', exit: 2, target: 'KeySize' },
  },
  {
    name: 'Remove-InfrastructureBackup -Name not-a-guid',
    args: () => ['Remove-InfrastructureBackup', '-Name', 'not-a-guid', '-Confirm:$false'],
    refused: { errorId: 'ParameterArgumentTransformationError', exit: 2, target: 'Name', says: /Guid/ },
  },

  // ---- names: unknown, misspelt, ambiguous, twice, positional surplus, two sets
  {
    name: 'Set-BackupShare -Retention 5 (not a prefix)',
    args: () => ['Set-BackupShare', '-Retention', '5', '-SkipValidation'],
    refused: { errorId: 'ParameterNotFound', exit: 2, target: 'Retention', says: /Did you mean -BackupRetentionPeriodInDays/ },
  },
  {
    name: 'Set-BackupShare -BackupRetentionPeriodInDayz 5 (misspelt)',
    args: () => ['Set-BackupShare', '-BackupRetentionPeriodInDayz', '5', '-SkipValidation'],
    refused: { errorId: 'ParameterNotFound', exit: 2, says: /Did you mean -BackupRetentionPeriodInDays/ },
  },
  {
    name: 'Set-BackupShare -Backup 5 (ambiguous prefix)',
    args: () => ['Set-BackupShare', '-Backup', '5', '-SkipValidation'],
    refused: { errorId: 'AmbiguousParameter', exit: 2, target: 'Backup', says: /-BackupFrequencyInHours -BackupRetentionPeriodInDays/ },
  },
  {
    name: 'Set-BackupShare -Path and its alias -SharePath',
    args: (c) => ['Set-BackupShare', '-Path', c.share, '-SharePath', c.share, '-SkipValidation'],
    refused: { errorId: 'ParameterAlreadyBound', exit: 2, target: 'Path' },
  },
  {
    name: 'Set-BackupShare -Credential with -UserName (two parameter sets)',
    args: () => ['Set-BackupShare', '-Credential', 'CONTOSO\\a', '-UserName', 'CONTOSO\\b', '-SkipValidation'],
    refused: { errorId: 'AmbiguousParameterSet', exit: 2, says: /-Credential \(Credential\), -UserName \(UserName\)/ },
  },
  {
    name: 'Get-InfrastructureBackup -Name with -Top (two parameter sets)',
    args: () => ['Get-InfrastructureBackup', '-Name', backup, '-Top', '1'],
    refused: { errorId: 'AmbiguousParameterSet', exit: 2 },
  },
  {
    name: 'Restore-AzsBackup -EncryptionKey with -DecryptionCertPath (two parameter sets)',
    args: (c) => ['Restore-AzsBackup', '-Name', backup, '-EncryptionKey', '-', '-DecryptionCertPath', c.pfx, '-Confirm:$false'],
    stdin: () => `${key}\n`,
    refused: { errorId: 'AmbiguousParameterSet', exit: 2 },
  },
  {
    name: 'New-EncryptionKey -KeyPath with -PfxPassword (two parameter sets)',
    args: (c) => ['New-EncryptionKey', '-KeyPath', path.join(c.root, 'k.key'), '-PfxPassword', '-'],
    stdin: 'pw\n',
    refused: { errorId: 'AmbiguousParameterSet', exit: 2 },
    absent: (c) => [path.join(c.root, 'k.key')],
  },
  {
    name: 'Remove-InfrastructureBackup <name> -Force true (a value for a switch)',
    args: () => ['Remove-InfrastructureBackup', backup, '-Force', 'true'],
    refused: { errorId: 'PositionalParameterNotFound', exit: 2, target: 'true' },
  },
  {
    name: 'Unregister-InfrastructureRole Files Db (one name too many)',
    args: () => ['Unregister-InfrastructureRole', 'Files', 'Db', '-Force'],
    refused: { errorId: 'PositionalParameterNotFound', exit: 2, target: 'Db' },
  },
  {
    name: 'Clear-BackupConfiguration -Confirm:maybe',
    args: () => ['Clear-BackupConfiguration', '-Confirm:maybe'],
    refused: { errorId: 'ParameterArgumentTransformationError', exit: 2, target: 'Confirm' },
  },
  {
    name: 'Set-BackupShar (an unknown cmdlet)',
    args: () => ['Set-BackupShar', '-BackupRetentionPeriodInDays', '3'],
    refused: { errorId: 'CommandNotFoundException', exit: 2, says: /Did you mean Set-BackupShare/ },
  },
  {
    name: 'Get-BackupConfiguration --output yaml',
    args: () => ['Get-BackupConfiguration', '--output', 'yaml'],
    refused: { errorId: 'ParameterArgumentValidationError', exit: 2, target: 'Output', says: /json\|clixml\|table\|list/ },
  },

  // ---- mandatory parameters missing
  {
    name: 'Remove-InfrastructureBackup without -Name',
    args: () => ['Remove-InfrastructureBackup', '-Confirm:$false'],
    refused: { errorId: 'MissingMandatoryParameter', exit: 2, target: 'Name' },
  },
  {
    name: 'Register-InfrastructureRole without -Provider',
    args: (c) => ['Register-InfrastructureRole', '-Name', 'Extra', '-Path', c.files],
    refused: { errorId: 'MissingMandatoryParameter', exit: 2, target: 'Provider' },
  },
  {
    name: 'New-EncryptionKey -Certificate without its paths',
    args: () => ['New-EncryptionKey', '-Certificate'],
    refused: { errorId: 'MissingMandatoryParameter', exit: 2, target: 'CertificatePath' },
  },
  {
    name: 'Restore-AzsBackup -Name without decryption material names both ways',
    args: () => ['Restore-AzsBackup', '-Name', backup, '-Confirm:$false'],
    refused: { errorId: 'MissingMandatoryParameter', exit: 2, target: 'DecryptionCertPath', says: /-EncryptionKey/ },
  },
  {
    name: 'Update-BackupEncryption without decryption material names both ways',
    args: () => ['Update-BackupEncryption', '-Name', backup],
    refused: { errorId: 'MissingMandatoryParameter', exit: 2, target: 'DecryptionCertPath', says: /-EncryptionKey/ },
  },
  {
    name: 'Unregister-InfrastructureRole -Name ""',
    args: () => ['Unregister-InfrastructureRole', '-Name', '', '-Force'],
    refused: { errorId: 'ParameterArgumentValidationErrorEmptyStringNotAllowed', exit: 2, target: 'Name' },
  },

  // ---- secrets (SPEC 8: never from the command line; - reads stdin)
  {
    name: 'Set-BackupShare -EncryptionKey <the key itself>',
    args: () => ['Set-BackupShare', '-EncryptionKey', key, '-SkipValidation'],
    refused: { errorId: 'SecretOnCommandLine', exit: 2, target: 'EncryptionKey', says: /AZSBACKUP_ENCRYPTIONKEY/ },
  },
  {
    name: 'Set-BackupShare -Password hunter2',
    args: () => ['Set-BackupShare', '-UserName', 'CONTOSO\\backup', '-Password', 'hunter2', '-SkipValidation'],
    refused: { errorId: 'SecretOnCommandLine', exit: 2, target: 'Password' },
  },
  {
    name: 'Set-BackupShare -EncryptionKey - with stdin closed at once',
    args: () => ['Set-BackupShare', '-EncryptionKey', '-', '-SkipValidation'],
    stdin: '',
    refused: { errorId: 'SecretNotOnStdin', exit: 2, target: 'EncryptionKey' },
  },
  {
    name: 'Set-BackupShare -EncryptionKey - with an empty line',
    args: () => ['Set-BackupShare', '-EncryptionKey', '-', '-SkipValidation'],
    stdin: '\n',
    refused: { errorId: 'ParameterArgumentValidationError', exit: 2, target: 'EncryptionKey', says: /empty/ },
  },
  {
    name: 'Set-BackupShare -EncryptionKey - not Base64',
    args: () => ['Set-BackupShare', '-EncryptionKey', '-', '-SkipValidation'],
    stdin: 'not base64 at all!!\n',
    refused: { errorId: 'InvalidEncryptionKey', exit: 2, target: 'EncryptionKey', says: /New-EncryptionKey/ },
  },
  {
    name: 'Set-BackupShare -EncryptionKey - of the wrong length',
    args: () => ['Set-BackupShare', '-EncryptionKey', '-', '-SkipValidation'],
    stdin: `${Buffer.alloc(48, 7).toString('base64')}\n`,
    refused: { errorId: 'InvalidEncryptionKey', exit: 2, target: 'EncryptionKey', says: /88 characters/ },
  },
  {
    name: 'Set-BackupShare -Credential - with only the user name on stdin',
    args: () => ['Set-BackupShare', '-Credential', '-', '-SkipValidation'],
    stdin: 'CONTOSO\\backup\n',
    refused: { errorId: 'SecretNotOnStdin', exit: 2, target: 'Credential', says: /after the user name/ },
  },
  {
    name: 'Set-BackupShare -EncryptionKey - and -EncryptionCertPath',
    args: (c) => ['Set-BackupShare', '-EncryptionKey', '-', '-EncryptionCertPath', c.cer, '-SkipValidation'],
    stdin: () => `${key}\n`,
    refused: { errorId: 'EncryptionConflict', exit: 2 },
  },
  {
    name: 'Set-BackupShare -DecryptionCertPassword - without -DecryptionCertPath',
    args: () => ['Set-BackupShare', '-DecryptionCertPassword', '-', '-SkipValidation'],
    stdin: 'pw\n',
    refused: { errorId: 'PfxPathMissing', exit: 2, target: 'DecryptionCertPassword' },
  },
  {
    name: 'Set-BackupShare -StorageAccountKey - and -SasToken -',
    args: () => ['Set-BackupShare', '-Path', 'https://acct.blob.core.windows.net/backups', '-StorageAccountKey', '-', '-SasToken', '-'],
    stdin: 'a2V5\nsv=2024&sig=x\n',
    refused: { errorId: 'CredentialConflict', exit: 2 },
  },
  {
    name: 'Restore-AzsBackup -EncryptionKey - with stdin closed at once',
    args: () => ['Restore-AzsBackup', '-Name', backup, '-EncryptionKey', '-', '-Confirm:$false'],
    stdin: '',
    refused: { errorId: 'SecretNotOnStdin', exit: 2, target: 'EncryptionKey' },
  },
  {
    name: 'Restore-AzsBackup -EncryptionKey - not Base64',
    args: () => ['Restore-AzsBackup', '-Name', backup, '-EncryptionKey', '-', '-Confirm:$false'],
    stdin: 'AAAA\n',
    refused: { errorId: 'InvalidEncryptionKey', exit: 2, target: 'EncryptionKey' },
  },
  {
    name: 'Restore-AzsBackup -EncryptionKey - another valid key',
    args: () => ['Restore-AzsBackup', '-Name', backup, '-EncryptionKey', '-', '-Confirm:$false'],
    stdin: () => `${otherKey}\n`,
    refused: { errorId: 'WrongDecryptionMaterial', exit: 12 },
  },
  {
    name: 'Restore-AzsBackup -DecryptionCertPath <a text file>',
    args: (c) => ['Restore-AzsBackup', '-Name', backup, '-DecryptionCertPath', c.text, '-DecryptionCertPassword', '-', '-Confirm:$false'],
    stdin: 'pw\n',
    refused: { errorId: 'NotAPfxFile', exit: 2, target: (c) => c.text },
  },
  {
    name: 'Restore-AzsBackup -DecryptionCertPassword - the wrong one',
    args: (c) => ['Restore-AzsBackup', '-Name', backup, '-DecryptionCertPath', c.pfx, '-DecryptionCertPassword', '-', '-Confirm:$false'],
    stdin: 'not the password\n',
    refused: { errorId: 'WrongDecryptionCertPassword', exit: 12, target: (c) => c.pfx },
  },
  {
    name: 'Update-BackupEncryption -EncryptionKey - not Base64',
    args: () => ['Update-BackupEncryption', '-EncryptionKey', '-'],
    stdin: 'AAAA\n',
    refused: { errorId: 'InvalidEncryptionKey', exit: 2, target: 'EncryptionKey' },
  },
  {
    name: 'Test-InfrastructureBackup -EncryptionKey - not Base64',
    args: () => ['Test-InfrastructureBackup', '-Name', backup, '-EncryptionKey', '-'],
    stdin: 'AAAA\n',
    refused: { errorId: 'InvalidEncryptionKey', exit: 2, target: 'EncryptionKey' },
  },

  // ---- what does not exist, or is the wrong kind of thing
  {
    name: 'Set-BackupShare -Path <a folder that does not exist>',
    args: (c) => ['Set-BackupShare', '-Path', path.join(c.root, 'no-such-share')],
    refused: { errorId: 'SharePathNotFound', exit: 10, target: (c) => path.join(c.root, 'no-such-share') },
  },
  {
    name: 'Set-BackupShare -Path <a file>',
    args: (c) => ['Set-BackupShare', '-Path', c.text],
    refused: { errorId: 'SharePathNotFound', exit: 10, target: (c) => c.text },
  },
  {
    name: 'Set-BackupShare -Path \\\\server (no share name)',
    args: () => ['Set-BackupShare', '-Path', '\\\\server', '-SkipValidation'],
    refused: { errorId: 'ParameterArgumentValidationError', exit: 2, target: 'Path' },
  },
  {
    name: 'Set-BackupShare -EncryptionCertPath <a text file>',
    args: (c) => ['Set-BackupShare', '-EncryptionCertPath', c.text, '-SkipValidation'],
    refused: { errorId: 'NotACertificate', exit: 2, target: (c) => c.text },
  },
  {
    name: 'Set-BackupShare -EncryptionCertPath <the .pfx>',
    args: (c) => ['Set-BackupShare', '-EncryptionCertPath', c.pfx, '-SkipValidation'],
    refused: { errorId: 'NotACertificate', exit: 2, target: (c) => c.pfx, says: /-DecryptionCertPath/ },
  },
  {
    name: 'Set-BackupShare -EncryptionCertPath <a file that does not exist>',
    args: (c) => ['Set-BackupShare', '-EncryptionCertPath', path.join(c.root, 'none.cer'), '-SkipValidation'],
    refused: { errorId: 'CertificateFileNotFound', exit: 2 },
  },
  {
    name: 'Set-BackupShare -EncryptionCertPath <the .cer> -DecryptionCertPath <the .cer>',
    args: (c) => [
      'Set-BackupShare',
      '-EncryptionCertPath',
      c.cer,
      '-DecryptionCertPath',
      c.cer,
      '-DecryptionCertPassword',
      '-',
      '-SkipValidation',
    ],
    stdin: `${PFX_PASSWORD}\n`,
    refused: { errorId: 'NotAPfxFile', exit: 2, target: (c) => c.cer },
  },
  {
    name: 'Register-InfrastructureRole -Provider sqlite -Path (the directory provider parameter)',
    args: (c) => ['Register-InfrastructureRole', '-Name', 'Extra', '-Provider', 'sqlite', '-Path', c.files],
    refused: { errorId: 'ProviderParameterMismatch', exit: 2, target: 'sqlite', says: /sqlite -DatabasePath/ },
  },
  {
    name: 'Register-InfrastructureRole -ConnectionString with a password in it',
    args: () => ['Register-InfrastructureRole', '-Name', 'Pg', '-Provider', 'postgres', '-ConnectionString', 'postgres://u:hunter2@db/app'],
    refused: { errorId: 'PostgresPasswordInConnectionString', exit: 2, says: /-DatabasePassword/ },
  },
  {
    name: 'Unregister-InfrastructureRole -Name Nope',
    args: () => ['Unregister-InfrastructureRole', '-Name', 'Nope', '-Force'],
    refused: { errorId: 'RoleNotFound', exit: 10, target: 'Nope' },
  },
  {
    name: 'Remove-InfrastructureBackup -Name <unknown>',
    args: () => ['Remove-InfrastructureBackup', '-Name', GUID_UNKNOWN, '-Confirm:$false'],
    refused: { errorId: 'BackupNotFound', exit: 10, target: GUID_UNKNOWN },
  },
  {
    name: 'Remove-InfrastructureBackup -Path <a folder that does not exist>',
    args: (c) => ['Remove-InfrastructureBackup', '-Name', backup, '-Path', path.join(c.root, 'nowhere'), '-Force'],
    refused: { errorId: 'SharePathNotFound', exit: 10 },
  },
  {
    name: 'Restore-AzsBackup -Name <unknown>',
    args: () => ['Restore-AzsBackup', '-Name', GUID_UNKNOWN, '-EncryptionKey', '-', '-Confirm:$false'],
    stdin: () => `${key}\n`,
    refused: { errorId: 'BackupNotFound', exit: 10, target: GUID_UNKNOWN },
  },
  {
    name: 'Restore-AzsBackup -RoleName Nope',
    args: () => ['Restore-AzsBackup', '-Name', backup, '-RoleName', 'Nope', '-EncryptionKey', '-', '-Confirm:$false'],
    stdin: () => `${key}\n`,
    refused: { errorId: 'RoleNotInBackup', exit: 10, target: 'Nope', says: /Files/ },
  },
  {
    name: 'Test-InfrastructureBackup -Name <unknown>',
    args: () => ['Test-InfrastructureBackup', '-Name', GUID_UNKNOWN],
    refused: { errorId: 'BackupNotFound', exit: 10 },
  },
  {
    name: 'Get-InfrastructureBackup -Path <a file>',
    args: (c) => ['Get-InfrastructureBackup', '-Path', c.text],
    refused: { errorId: 'SharePathNotFound', exit: 10 },
  },
  {
    name: 'Start-InfrastructureBackup -RoleName Nope',
    args: () => ['Start-InfrastructureBackup', '-RoleName', 'Nope'],
    refused: { errorId: 'RoleNotFound', exit: 2, target: 'Nope', says: /Get-InfrastructureRole/ },
  },
  {
    name: "Start-InfrastructureBackup -RoleName '' (an unset variable) backs up nothing",
    args: () => ['Start-InfrastructureBackup', '-RoleName', ''],
    refused: { errorId: 'ParameterArgumentValidationErrorEmptyStringNotAllowed', exit: 2, target: 'RoleName' },
  },
  {
    name: 'New-EncryptionKey -KeyPath <a file that exists>',
    args: (c) => ['New-EncryptionKey', '-KeyPath', c.text],
    refused: { errorId: 'FileExists', exit: 2, target: (c) => c.text, says: /-Force/ },
  },

  // ---- empty paths: never the current folder, never silently nothing
  {
    name: "New-EncryptionKey -KeyPath ''",
    args: () => ['New-EncryptionKey', '-KeyPath', ''],
    refused: { errorId: 'ParameterArgumentValidationErrorEmptyStringNotAllowed', exit: 2, target: 'KeyPath' },
  },
  {
    name: "Set-BackupShare -EncryptionCertPath ''",
    args: () => ['Set-BackupShare', '-EncryptionCertPath', '', '-SkipValidation'],
    refused: { errorId: 'ParameterArgumentValidationErrorEmptyStringNotAllowed', exit: 2, target: 'EncryptionCertPath' },
  },
  {
    name: "Set-BackupShare -DecryptionCertPath ''",
    args: () => ['Set-BackupShare', '-DecryptionCertPath', '', '-SkipValidation'],
    refused: { errorId: 'ParameterArgumentValidationErrorEmptyStringNotAllowed', exit: 2, target: 'DecryptionCertPath' },
  },

  // ---- New-EncryptionKey -Certificate writes both files or neither
  {
    name: 'New-EncryptionKey -Certificate with the .pfx in a folder that does not exist',
    args: (c) => [
      'New-EncryptionKey',
      '-Certificate',
      '-CertificatePath',
      path.join(c.root, 'new.cer'),
      '-PfxPath',
      path.join(c.root, 'no-such-folder', 'new.pfx'),
      '-PfxPassword',
      '-',
    ],
    stdin: 'pw\n',
    refused: { errorId: 'FileNotFound', exit: 2, target: (c) => path.join(c.root, 'no-such-folder', 'new.pfx') },
    absent: (c) => [path.join(c.root, 'new.cer')],
  },
  {
    name: 'New-EncryptionKey -Certificate with a .pfx that exists',
    args: (c) => [
      'New-EncryptionKey',
      '-Certificate',
      '-CertificatePath',
      path.join(c.root, 'new.cer'),
      '-PfxPath',
      c.pfx,
      '-PfxPassword',
      '-',
    ],
    stdin: 'pw\n',
    refused: { errorId: 'FileExists', exit: 2, target: (c) => c.pfx },
    absent: (c) => [path.join(c.root, 'new.cer')],
  },
  {
    name: "New-EncryptionKey -Certificate -Force keeps the operator's .cer when the .pfx cannot be written",
    args: (c) => [
      'New-EncryptionKey',
      '-Certificate',
      '-CertificatePath',
      c.cer,
      '-PfxPath',
      path.join(c.root, 'no-such-folder', 'new.pfx'),
      '-PfxPassword',
      '-',
      '-Force',
    ],
    stdin: 'pw\n',
    refused: { errorId: 'FileNotFound', exit: 2 },
  },
  {
    name: 'New-EncryptionKey -Certificate with -CertificatePath and -PfxPath one file',
    args: (c) => [
      'New-EncryptionKey',
      '-Certificate',
      '-CertificatePath',
      path.join(c.root, 'same'),
      '-PfxPath',
      path.join(c.root, 'same'),
      '-PfxPassword',
      '-',
      '-Force',
    ],
    stdin: 'pw\n',
    refused: { errorId: 'CertificatePathIsPfxPath', exit: 2, target: 'PfxPath' },
    absent: (c) => [path.join(c.root, 'same')],
  },

  // ---- a machine never configured: a refusal, or -WhatIf, leaves no home behind
  {
    name: 'Set-BackupShare on a fresh machine, the share does not exist',
    freshHome: true,
    args: (c) => ['Set-BackupShare', '-Path', path.join(c.root, 'no-such-share'), '-EncryptionKey', '-'],
    stdin: () => `${key}\n`,
    refused: { errorId: 'SharePathNotFound', exit: 10 },
  },
  {
    name: 'Set-BackupShare -WhatIf on a fresh machine',
    freshHome: true,
    args: (c) => ['Set-BackupShare', '-Path', c.share, '-EncryptionKey', '-', '-WhatIf'],
    stdin: () => `${key}\n`,
  },
  {
    name: 'Set-BackupShare -UserName -Password - -WhatIf on a fresh machine',
    freshHome: true,
    args: (c) => ['Set-BackupShare', '-Path', c.share, '-UserName', 'CONTOSO\\backup', '-Password', '-', '-EncryptionKey', '-', '-WhatIf'],
    stdin: () => `pw\n${key}\n`,
  },

  // ---- -WhatIf and -Confirm (SPEC 9: SupportsShouldProcess)
  ...(
    [
      ['Set-BackupShare', '-BackupRetentionPeriodInDays', '3'],
      ['Clear-BackupConfiguration'],
      ['Unregister-InfrastructureRole', '-Name', 'Files'],
      ['Invoke-BackupPrune'],
      ['Start-InfrastructureBackup'],
      ['Invoke-BackupScheduler'],
      ['Register-InfrastructureRole', '-Name', 'Extra', '-Provider', 'directory', '-Path', '/srv/extra'],
    ] as const
  ).map((a): Case => ({ name: `${a.join(' ')} -WhatIf`, args: () => [...a, '-WhatIf'] })),
  {
    name: 'Remove-InfrastructureBackup <the last restorable> -Force -WhatIf',
    args: () => ['Remove-InfrastructureBackup', '-Name', backup, '-Force', '-WhatIf'],
  },
  {
    name: 'Restore-AzsBackup -WhatIf',
    args: () => ['Restore-AzsBackup', '-Name', backup, '-EncryptionKey', '-', '-WhatIf'],
    stdin: () => `${key}\n`,
  },
  {
    name: 'Update-BackupEncryption -WhatIf',
    args: () => ['Update-BackupEncryption', '-EncryptionKey', '-', '-WhatIf'],
    stdin: () => `${key}\n`,
  },
  {
    name: 'New-EncryptionKey -KeyPath -WhatIf',
    args: (c) => ['New-EncryptionKey', '-KeyPath', path.join(c.root, 'w.key'), '-WhatIf'],
    absent: (c) => [path.join(c.root, 'w.key')],
  },
  {
    name: 'Clear-BackupConfiguration -Confirm without a terminal',
    args: () => ['Clear-BackupConfiguration', '-Confirm'],
    refused: { errorId: 'ConfirmationNotPossible', exit: 2, says: /-Confirm:\$false/ },
  },
  {
    name: 'Remove-InfrastructureBackup -Confirm without a terminal',
    args: () => ['Remove-InfrastructureBackup', '-Name', backup, '-Force', '-Confirm'],
    refused: { errorId: 'ConfirmationNotPossible', exit: 2 },
  },

  // ---- a role's name taken again (PowerShell: an existing item needs -Force)
  {
    name: 'Register-InfrastructureRole files (a role Files exists)',
    args: (c) => ['Register-InfrastructureRole', '-Name', 'files', '-Provider', 'directory', '-Path', c.files, '-RestoreOrder', '10'],
    refused: { errorId: 'RoleExists', exit: 2, target: 'Files', says: /-Force/ },
  },
  {
    name: 'Register-InfrastructureRole Files with another path',
    args: (c) => ['Register-InfrastructureRole', '-Name', 'Files', '-Provider', 'directory', '-Path', c.root],
    refused: { errorId: 'RoleExists', exit: 2, target: 'Files', says: /Get-InfrastructureRole -Name Files/ },
  },
  {
    name: 'Register-InfrastructureRole Db as a directory role (Db is sqlite)',
    args: (c) => ['Register-InfrastructureRole', '-Name', 'Db', '-Provider', 'directory', '-Path', c.files],
    refused: { errorId: 'RoleExists', exit: 2, target: 'Db', says: /sqlite/ },
  },
  {
    name: 'Register-InfrastructureRole Files as it is registered (changes nothing)',
    args: (c) => ['Register-InfrastructureRole', '-Name', 'Files', '-Provider', 'directory', '-Path', c.files, '-RestoreOrder', '10'],
  },
  {
    name: 'Get-InfrastructureRole -Name Nope',
    args: () => ['Get-InfrastructureRole', '-Name', 'Nope'],
    refused: { errorId: 'RoleNotFound', exit: 10, target: 'Nope', says: /Get-InfrastructureRole/ },
  },

  // ---- the last restorable backup (prune always keeps it)
  {
    name: 'Remove-InfrastructureBackup <the last restorable> -Confirm:$false',
    args: () => ['Remove-InfrastructureBackup', '-Name', backup, '-Confirm:$false'],
    refused: { errorId: 'LastRestorableBackup', exit: 2, target: () => backup, says: /-Force/ },
  },
  {
    name: 'Remove-InfrastructureBackup <the last restorable> -WhatIf',
    args: () => ['Remove-InfrastructureBackup', '-Name', backup, '-WhatIf'],
    refused: { errorId: 'LastRestorableBackup', exit: 2, target: () => backup },
  },

  // ---- what no operator means: control characters, 100 KB of text
  {
    name: 'Set-BackupShare -Path <a local folder with a newline> -SkipValidation',
    args: (c) => ['Set-BackupShare', '-Path', `${c.share}\nother`, '-SkipValidation'],
    refused: { errorId: 'InvalidSharePath', exit: 2, says: /control character/ },
  },
  {
    name: 'Set-BackupShare -Path /<100 KB> -SkipValidation',
    args: () => ['Set-BackupShare', '-Path', `/${HUGE}`, '-SkipValidation'],
    refused: { errorId: 'InvalidSharePath', exit: 2, says: /too long/ },
  },
  {
    name: 'Set-BackupShare -UserName <100 KB> -SkipValidation',
    args: () => ['Set-BackupShare', '-UserName', HUGE, '-Password', '-', '-SkipValidation'],
    stdin: 'pw\n',
    refused: { errorId: 'ParameterArgumentValidationError', exit: 2, target: 'UserName', says: /at most 256 characters/ },
  },
  {
    name: 'Test-BackupShare -UserName <300 characters>',
    args: (c) => ['Test-BackupShare', '-Path', c.share, '-UserName', 'u'.repeat(300), '-Password', '-'],
    stdin: 'pw\n',
    refused: { errorId: 'ParameterArgumentValidationError', exit: 2, target: 'UserName' },
  },
  {
    name: 'Set-BackupShare -AlertWebhookUri https://<100 KB> -SkipValidation',
    args: () => ['Set-BackupShare', '-AlertWebhookUri', `https://example.com/${HUGE}`, '-SkipValidation'],
    refused: { errorId: 'ParameterArgumentValidationError', exit: 2, target: 'AlertWebhookUri', says: /at most 2048 characters/ },
  },
  {
    name: 'Get-BackupConfiguration -<100 KB> (an unknown parameter)',
    args: () => ['Get-BackupConfiguration', `-${HUGE}`],
    refused: { errorId: 'ParameterNotFound', exit: 2, says: /…/ },
  },
  {
    name: 'Get-InfrastructureBackup -Top <100 KB>',
    args: () => ['Get-InfrastructureBackup', '-Top', HUGE],
    refused: { errorId: 'ParameterArgumentTransformationError', exit: 2, target: 'Top', says: /…/ },
  },
  {
    name: 'Unregister-InfrastructureRole -Name <100 KB>',
    args: () => ['Unregister-InfrastructureRole', '-Name', HUGE, '-Force'],
    refused: { errorId: 'RoleNotFound', exit: 10, says: /…/ },
  },
  {
    name: "New-EncryptionKey -Certificate -Subject 'CN=a<newline>b'",
    args: (c) => [
      'New-EncryptionKey',
      '-Certificate',
      '-Subject',
      'CN=a\nb',
      '-CertificatePath',
      path.join(c.root, 'nl.cer'),
      '-PfxPath',
      path.join(c.root, 'nl.pfx'),
      '-PfxPassword',
      '-',
    ],
    stdin: 'pw\n',
    refused: { errorId: 'ParameterArgumentValidationError', exit: 2, target: 'Subject' },
    absent: (c) => [path.join(c.root, 'nl.cer'), path.join(c.root, 'nl.pfx')],
  },
];

let d: Drill;
let tables: string;
let count = 0;

/** A copy of the prepared machine under its own folder, the paths in its configuration moved with it. */
async function copyOfMachine(): Promise<Dirs> {
  const root = path.join(tables, `case-${++count}`);
  await fs.cp(d.root, root, { recursive: true, verbatimSymlinks: true });
  const home = path.join(root, 'home');
  const move = async (file: string) => fs.writeFile(file, (await fs.readFile(file, 'utf8')).replaceAll(d.root, root));
  await move(path.join(home, 'config.json'));
  for (const job of await fs.readdir(path.join(home, 'jobs'))) await move(path.join(home, 'jobs', job));
  return {
    root,
    home,
    share: path.join(root, 'share'),
    files: path.join(root, 'infra', 'files'),
    cer: path.join(root, 'backup.cer'),
    pfx: path.join(root, 'backup.pfx'),
    text: path.join(root, 'notes.txt'),
    fresh: path.join(root, 'fresh-home'),
  };
}

/** A few CLIs at a time: the machine has two cores and other suites run beside this one. */
let running = 0;
const waiting: (() => void)[] = [];
async function limited<T>(work: () => Promise<T>): Promise<T> {
  if (running >= 3) await new Promise<void>((go) => waiting.push(go));
  running++;
  try {
    return await work();
  } finally {
    running--;
    waiting.shift()?.();
  }
}

beforeAll(async () => {
  d = await makeDrill();
  backup = (await d.backup()).Name;
  key = d.key!;
  otherKey = expectOk(await d.cli(['New-EncryptionKey'])).json.Key;
  expectOk(
    await d.cli(
      [
        'New-EncryptionKey',
        '-Certificate',
        '-CertificatePath',
        path.join(d.root, 'backup.cer'),
        '-PfxPath',
        path.join(d.root, 'backup.pfx'),
        '-PfxPassword',
        '-',
      ],
      { stdin: `${PFX_PASSWORD}\n` },
    ),
  );
  await fs.writeFile(path.join(d.root, 'notes.txt'), 'not a certificate, not a share\n');
  tables = `${d.root}-cases`;
  await fs.mkdir(tables);
});
afterAll(async () => {
  await fs.rm(tables, { recursive: true, force: true });
  await d?.cleanup();
});

function expectRefused(r: CliResult, c: Dirs, refusal: Refusal): void {
  const records = r.errors.filter((e) => e.Terminating !== false);
  expect(
    records.map((e) => e.ErrorId),
    r.stderr,
  ).toEqual([refusal.errorId]);
  const record = records[0]!;
  expect(r.code, r.stderr).toBe(refusal.exit);
  expect(record.ExitCode).toBe(refusal.exit);
  expect(record.Category).not.toBe('NotSpecified');
  expect(record.RecommendedAction, `${refusal.errorId} says what to do`).toBeTruthy();
  if (refusal.target !== undefined) {
    const target = typeof refusal.target === 'function' ? refusal.target(c) : refusal.target;
    expect([record.TargetObject].flat(), r.stderr).toContain(target);
  }
  if (refusal.says) expect(`${record.Message} ${record.RecommendedAction}`).toMatch(refusal.says);
  // A refused command prints no object a script could take for a result.
  expect(r.stdout).toBe('');
  // What it quotes of the operator's input is bounded: one screen, not 100 KB of it.
  expect(r.stderr.length, 'stderr is bounded').toBeLessThan(4000);
}

describe('bad input from the operator is refused with a clear error and changes nothing', () => {
  it.concurrent.each(cases)('$name', async (t) => {
    const c = await copyOfMachine();
    const before = shareFingerprint(c.root);
    const home = t.freshHome ? c.fresh : c.home;
    const stdin = typeof t.stdin === 'function' ? t.stdin(c) : t.stdin;
    const r = await limited(() => runCli(home, t.args(c), { stdin: stdin ?? '', timeoutMs: 60_000 }));
    expect(r.errors.map((e) => e.ErrorId)).not.toContain('InternalError');
    if (t.refused) expectRefused(r, c, t.refused);
    else expect(r.code, r.stderr).toBe(0);
    expect(shareFingerprint(c.root), 'home, share, roles and files byte-identical').toBe(before);
    if (t.freshHome) expect(existsSync(c.fresh), 'no AZSBACKUP_HOME made').toBe(false);
    for (const file of t.absent?.(c) ?? []) expect(existsSync(file), `${file} left behind`).toBe(false);
    await fs.rm(c.root, { recursive: true, force: true });
  });
});
