import { describe, expect, test } from 'vitest';
import { closeMatches } from '../../src/host/similar.js';

const cmdlets = [
  'Get-BackupAlert',
  'Get-BackupConfiguration',
  'Get-BackupShare',
  'Get-InfrastructureBackup',
  'Get-InfrastructureRole',
  'Invoke-BackupPrune',
  'New-EncryptionKey',
  'Register-InfrastructureRole',
  'Remove-InfrastructureBackup',
  'Restore-AzsBackup',
  'Set-BackupShare',
  'Start-InfrastructureBackup',
  'Test-InfrastructureBackup',
  'Unregister-InfrastructureRole',
];

describe('did-you-mean suggestions', () => {
  test('a one-letter typo puts the cmdlet meant first, ahead of names that only share a word', () => {
    expect(closeMatches('Start-InfrastructureBakup', cmdlets)[0]).toBe('Start-InfrastructureBackup');
    expect(closeMatches('Remove-InfrastructureBackp', cmdlets)[0]).toBe('Remove-InfrastructureBackup');
    expect(closeMatches('Get-BackupShar', cmdlets)[0]).toBe('Get-BackupShare');
  });

  test('the verb and the nouns typed count: the cmdlet sharing most of them comes first', () => {
    expect(closeMatches('Restore-Backup', cmdlets)[0]).toBe('Restore-AzsBackup');
    const getBackup = closeMatches('Get-Backup', cmdlets);
    expect(getBackup).toEqual(expect.arrayContaining(['Get-BackupShare', 'Get-InfrastructureBackup']));
    for (const name of getBackup) expect(name).toMatch(/Backup/);
  });

  test('case does not matter, and an exact name in other case is the only close one', () => {
    expect(closeMatches('start-infrastructurebackup', cmdlets)[0]).toBe('Start-InfrastructureBackup');
  });

  test('parameter names: a dropped letter finds the parameter; nothing far off is offered', () => {
    expect(closeMatches('Pth', ['Path', 'UserName', 'Password', 'SkipValidation'])).toEqual(['Path']);
    expect(closeMatches('EncryptionKy', ['EncryptionKey', 'EncryptionCertPath', 'Path'])[0]).toBe('EncryptionKey');
    expect(closeMatches('Frobnicate', cmdlets)).toEqual([]);
  });

  test('at most `limit` suggestions', () => {
    expect(closeMatches('Get-Infrastructure', cmdlets, 2)).toHaveLength(2);
  });
});
