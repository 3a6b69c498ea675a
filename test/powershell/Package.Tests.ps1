# The packaged module as an operator gets it: npm run package:module's nupkg, installed with
# Install-PSResource from a local folder repository into a throwaway home, then imported by name.

Describe 'the packaged module' {
    BeforeAll {
        $script:root = Join-Path $env:AZSBACKUP_TEST_WORK 'package'
        $script:feed = Join-Path $root 'feed'
        $script:fakeHome = Join-Path $root 'home'
        New-Item -ItemType Directory -Path $feed, $fakeHome -Force | Out-Null
        $moduleDir = Split-Path -Parent $env:AZSBACKUP_TEST_MODULE
        $script:packOutput = & node (Join-Path $env:AZSBACKUP_TEST_REPO 'scripts/package-module.mjs') --module $moduleDir --out $feed 2>&1
        $script:packExit = $LASTEXITCODE
        $script:version = (Import-PowerShellDataFile -LiteralPath $env:AZSBACKUP_TEST_MODULE).ModuleVersion
    }

    It 'is AzsBackup.<version>.nupkg, made by Publish-PSResource, holding the module files' {
        $packExit | Should -Be 0 -Because ($packOutput -join "`n")
        $nupkg = Join-Path $feed "AzsBackup.$version.nupkg"
        Test-Path -LiteralPath $nupkg | Should -BeTrue
        Add-Type -AssemblyName System.IO.Compression.FileSystem
        $zip = [System.IO.Compression.ZipFile]::OpenRead($nupkg)
        try {
            $entries = @($zip.Entries.FullName)
            $entries | Should -Contain 'AzsBackup.psd1'
            $entries | Should -Contain 'AzsBackup.psm1'
            $entries | Should -Contain 'AzsBackup.format.ps1xml'
            $entries | Should -Contain 'en-US/AzsBackup-help.xml'
            $entries | Should -Contain 'AzsBackup.nuspec'
        }
        finally { $zip.Dispose() }
    }

    It 'installs with Install-PSResource from a folder repository, imports by name and runs a cmdlet' {
        # A child pwsh with its own HOME and XDG folders: the install and the repository
        # registration land there, not in the user's module path.
        $script = @'
$ErrorActionPreference = 'Stop'
Register-PSResourceRepository -Name LocalAzs -Uri $env:AZS_FEED -Trusted
Install-PSResource -Name AzsBackup -Repository LocalAzs -Scope CurrentUser -TrustRepository
$store = Join-Path $env:XDG_DATA_HOME 'PSResourceGet/PSResourceRepository.xml'
if (-not (Test-Path -LiteralPath $store)) { throw "The repository list is not in the throwaway home ($store)." }
$installed = Get-InstalledPSResource -Name AzsBackup
Import-Module AzsBackup
$module = Get-Module AzsBackup
$config = Get-BackupConfiguration
[pscustomobject]@{
    Installed = $installed.Version.ToString()
    ModuleBase = $module.ModuleBase
    Commands = @($module.ExportedFunctions.Keys).Count
    ConfigType = $config.PSObject.TypeNames[0]
    Help = (Get-Help Set-BackupShare).Synopsis
} | ConvertTo-Json -Compress
'@
        $envBackup = @{}
        $vars = @{
            HOME = $fakeHome; XDG_DATA_HOME = (Join-Path $fakeHome '.local/share'); XDG_CONFIG_HOME = (Join-Path $fakeHome '.config')
            XDG_CACHE_HOME = (Join-Path $fakeHome '.cache'); AZS_FEED = $feed; PSModulePath = $null
            AZSBACKUP_HOME = (Join-Path $root 'azshome')
            AZSBACKUP_CLI = if ($env:AZSBACKUP_TEST_HOST_BUILT -eq '1') { $env:AZSBACKUP_TEST_HOST } else { Join-Path $env:AZSBACKUP_TEST_FIXTURES 'fake-host.mjs' }
        }
        # .NET treats a missing special folder as '' and PSResourceGet would write into the current directory.
        foreach ($k in 'XDG_DATA_HOME', 'XDG_CONFIG_HOME', 'XDG_CACHE_HOME') { New-Item -ItemType Directory -Path $vars[$k] -Force | Out-Null }
        foreach ($k in $vars.Keys) { $envBackup[$k] = [Environment]::GetEnvironmentVariable($k); [Environment]::SetEnvironmentVariable($k, $vars[$k]) }
        try {
            $out = & $env:AZSBACKUP_TEST_PWSH -NoProfile -NonInteractive -Command $script 2>&1
            $exit = $LASTEXITCODE
        }
        finally {
            foreach ($k in $envBackup.Keys) { [Environment]::SetEnvironmentVariable($k, $envBackup[$k]) }
        }
        $exit | Should -Be 0 -Because ($out -join "`n")
        $result = ($out | Select-Object -Last 1) | ConvertFrom-Json
        $result.Installed | Should -Be $version
        $result.ModuleBase | Should -BeLike "$fakeHome*"
        $result.Commands | Should -Be (@((Import-PowerShellDataFile $env:AZSBACKUP_TEST_MODULE).FunctionsToExport).Count)
        $result.ConfigType | Should -Be 'AzsBackup.BackupLocation'
        $result.Help | Should -Not -BeNullOrEmpty
    }
}
