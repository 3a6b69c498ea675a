# A script in the style of Azure Stack Hub's documentation ("Enable backup for Azure Stack Hub with
# PowerShell", "Back up Azure Stack Hub"), written for Azs.Backup.Admin and run here unchanged
# against the AzsBackup module. The documentation reads the share, the account and its password
# with Read-Host; the test passes them in. Returns what an operator would look at afterwards.
param(
    [string] $SharePath,
    [string] $UserName,
    [securestring] $Password
)
$ErrorActionPreference = 'Stop'

$sharepath = $SharePath
$username = $UserName
$password = $Password
$Encryptionkey = New-AzsEncryptionKeyBase64
Set-AzsBackupConfiguration -BackupShare $sharepath -Username $username -Password $password -EncryptionKey $Encryptionkey
Get-AzsBackupConfiguration | Select-Object -Property Path, UserName | Out-Host

Set-AzsBackupConfiguration -BackupFrequencyInHours 10 -BackupRetentionPeriodInDays 5
$configuration = Get-AzsBackupConfiguration | Select-Object -Property Path, UserName, AvailableCapacity, BackupFrequencyInHours, BackupRetentionPeriodInDays
$configuration | Out-Host

$backup = Start-AzsBackup -Force -AsJob
"Start time: " + $backup.PSBeginTime; ($backup | Wait-Job).PSEndTime | Out-Host
$latest = Get-AzsBackup | Select-Object -First 1
$latest | Select-Object -Property Name, Status, CreatedDateTime | Out-Host

$restored = Restore-AzsBackup -Name $latest.Name -EncryptionKey $Encryptionkey -Force

[pscustomobject]@{ Configuration = $configuration; Job = $backup; Backup = $latest; Restored = $restored }
