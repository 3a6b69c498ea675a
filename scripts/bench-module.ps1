#!/usr/bin/env pwsh
# What one module call adds over calling the host directly: Get-BackupConfiguration through the
# AzsBackup module against `azsbackup Get-BackupConfiguration --output clixml` (which PowerShell
# deserializes itself), N calls each, measured with Measure-Command in the same pwsh session.
#
#   pwsh -NoProfile -File scripts/bench-module.ps1 [-Count 20] [-ModulePath dist/powershell/AzsBackup/AzsBackup.psd1]
[CmdletBinding()]
param(
    [ValidateRange(1, 10000)]
    [System.Int32] $Count = 20,
    [System.String] $ModulePath = (Join-Path $PSScriptRoot '../dist/powershell/AzsBackup/AzsBackup.psd1'),
    [System.String] $HostPath = (Join-Path $PSScriptRoot '../bin/azsbackup.js')
)
$ErrorActionPreference = 'Stop'
if (-not (Test-Path -LiteralPath $ModulePath)) { throw ("No module at " + $ModulePath + ": run npm run build first.") }
$node = (Get-Command -Name node -CommandType Application | Select-Object -First 1).Source
$HostPath = (Resolve-Path -LiteralPath $HostPath).Path

# A throwaway home, so the bench reads a configuration of its own and touches nobody's.
$benchHome = Join-Path ([System.IO.Path]::GetTempPath()) ('azs-bench-' + [guid]::NewGuid().ToString('n'))
New-Item -ItemType Directory -Path $benchHome | Out-Null
$savedHome = $env:AZSBACKUP_HOME
$savedCli = $env:AZSBACKUP_CLI
$env:AZSBACKUP_HOME = $benchHome
$env:AZSBACKUP_CLI = $HostPath
try {
    Import-Module $ModulePath -Force
    # One warm-up call each, so neither side pays first-load costs inside the measurement.
    $null = Get-BackupConfiguration
    $null = & $node $HostPath Get-BackupConfiguration --output clixml

    # Interleaved, so a change in the machine's load during the run falls on both sides alike.
    $direct = [System.TimeSpan]::Zero
    $module = [System.TimeSpan]::Zero
    for ($i = 0; $i -lt $Count; $i++) {
        $direct += Measure-Command { $null = & $node $HostPath Get-BackupConfiguration --output clixml }
        $module += Measure-Command { $null = Get-BackupConfiguration }
    }
    $check = Get-BackupConfiguration
    if ($check.PSObject.TypeNames -notcontains 'AzsBackup.BackupLocation') { throw 'The module did not return a typed BackupLocation.' }

    [pscustomobject]@{
        Calls = $Count
        DirectMsPerCall = [System.Math]::Round($direct.TotalMilliseconds / $Count, 1)
        ModuleMsPerCall = [System.Math]::Round($module.TotalMilliseconds / $Count, 1)
        OverheadMsPerCall = [System.Math]::Round(($module.TotalMilliseconds - $direct.TotalMilliseconds) / $Count, 1)
    }
}
finally {
    $env:AZSBACKUP_HOME = $savedHome
    $env:AZSBACKUP_CLI = $savedCli
    Remove-Item -LiteralPath $benchHome -Recurse -Force -ErrorAction Ignore
}
