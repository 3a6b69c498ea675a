# The module's call into the host, against a stand-in host that speaks the command-line contract
# (test/fixtures/psmodule/fake-host.mjs, chosen through $env:AZSBACKUP_CLI): the command line it
# builds, secrets on standard input only, objects typed by PowerShell's own deserializer, progress
# while the host runs, and error records mapped to PowerShell errors.

Describe 'the module''s call into the host' {
BeforeAll {
    Import-Module $env:AZSBACKUP_TEST_MODULE -Force -ErrorAction Stop
    $script:compiled = Get-Content -LiteralPath $env:AZSBACKUP_TEST_MANIFESTS -Raw | ConvertFrom-Json -AsHashtable
    $script:logFile = Join-Path $env:AZSBACKUP_TEST_WORK 'fake-host.log'
    $env:AZSBACKUP_CLI = Join-Path $env:AZSBACKUP_TEST_FIXTURES 'fake-host.mjs'
    $env:FAKE_HOST_LOG = $logFile

    function Get-HostCall {
        if (-not (Test-Path -LiteralPath $logFile)) { return @() }
        @(Get-Content -LiteralPath $logFile | ForEach-Object { $_ | ConvertFrom-Json })
    }
    function ConvertTo-Secure([string] $text) {
        $s = [System.Security.SecureString]::new()
        foreach ($ch in $text.ToCharArray()) { $s.AppendChar($ch) }
        $s.MakeReadOnly()
        $s
    }
}

BeforeEach {
    Remove-Item -LiteralPath $logFile -ErrorAction Ignore
    $env:FAKE_HOST_MODE = 'ok'
}

AfterAll {
    Remove-Item Env:AZSBACKUP_CLI, Env:FAKE_HOST_LOG, Env:FAKE_HOST_MODE -ErrorAction Ignore
    Remove-Module AzsBackup -Force -ErrorAction Ignore
}

Describe 'the command line the module builds' {
    It 'passes secrets as - with their values on standard input in command-line order, never on argv' {
        $cred = [System.Management.Automation.PSCredential]::new('CONTOSO\backup', (ConvertTo-Secure 'Sh@re-P4ss word'))
        $result = Set-BackupShare -Path '\\fs01\backups' -Credential $cred -EncryptionKey (ConvertTo-Secure 'k3y/base64==') -BackupFrequencyInHours 6 -IsBackupSchedulerEnabled $false -SkipValidation -PassThru -Confirm:$false
        $result | Should -Not -BeNullOrEmpty
        $calls = Get-HostCall
        $calls.Count | Should -Be 1
        $argv = @($calls[0].argv)
        $argv[0] | Should -Be 'Set-BackupShare'
        ($argv -join ' ') | Should -Not -Match 'Sh@re|k3y'
        $argv | Should -Contain '-Credential'
        $argv[[array]::IndexOf($argv, '-Credential') + 1] | Should -Be '-'
        $argv[[array]::IndexOf($argv, '-EncryptionKey') + 1] | Should -Be '-'
        $calls[0].stdin | Should -Be "CONTOSO\backup`nSh@re-P4ss word`nk3y/base64==`n"
        $argv[[array]::IndexOf($argv, '-Path') + 1] | Should -Be '\\fs01\backups'
        $argv[[array]::IndexOf($argv, '-BackupFrequencyInHours') + 1] | Should -Be '6'
        $argv | Should -Contain '-IsBackupSchedulerEnabled:$false'
        $argv | Should -Contain '-SkipValidation'
        # Confirmation happened in PowerShell; the host is told not to ask again.
        $argv | Should -Contain '-Confirm:$false'
        $argv[-4..-1] | Should -Be @('--output', 'clixml', '--dialect', 'powershell')
        $argv | Should -Not -Contain '-WhatIf'
    }

    It 'runs nothing under -WhatIf, and nothing when -Confirm is declined' {
        Set-BackupShare -Path '\\fs01\backups' -WhatIf
        Clear-BackupConfiguration -WhatIf
        Remove-InfrastructureBackup -Name ([guid]::NewGuid()) -WhatIf
        Get-HostCall | Should -BeNullOrEmpty
    }

    It 'validates in PowerShell before the host starts' {
        { Set-BackupShare -Path '\\fs01\backups' -BackupFrequencyInHours 99 -SkipValidation -Confirm:$false } | Should -Throw -ErrorId 'ParameterArgumentValidationError,Set-BackupShare'
        { Get-InfrastructureBackup -Name 'not-a-guid' } | Should -Throw -ErrorId 'ParameterArgumentTransformationError,Get-InfrastructureBackup'
        Get-HostCall | Should -BeNullOrEmpty
    }

    It 'asks for --progress json only where the manifest reports progress' {
        $null = Start-InfrastructureBackup -Confirm:$false
        $null = Get-BackupConfiguration
        $calls = Get-HostCall
        @($calls[0].argv) | Should -Contain '--progress'
        @($calls[1].argv) | Should -Not -Contain '--progress'
    }

    It 'binds piped objects by property name and runs the host once per object' {
        Get-InfrastructureBackup | Test-InfrastructureBackup | Out-Null
        $calls = Get-HostCall
        $calls.Count | Should -Be 2
        $test = @($calls[1].argv)
        $test[0] | Should -Be 'Test-InfrastructureBackup'
        $test[[array]::IndexOf($test, '-Name') + 1] | Should -Be '6f1c2e34-0d4b-4d7e-9a8e-0b9d2b1e7c55'
    }
}

Describe 'objects' {
    It 'come back typed by PowerShell''s deserializer, with real DateTime and TimeSpan values' {
        $location = Get-BackupConfiguration
        $location.PSObject.TypeNames[0] | Should -Be 'AzsBackup.BackupLocation'
        $location.PSObject.TypeNames | Should -Contain 'Deserialized.AzsBackup.BackupLocation'
        $location.LastBackupTime | Should -BeOfType [System.DateTime]
        $location.LastBackupTime.ToUniversalTime() | Should -Be ([datetime]::new(2024, 5, 6, 7, 8, 9, [System.DateTimeKind]::Utc))
        $location.AvailableCapacity | Should -BeOfType [System.Int64]
        $backup = Start-InfrastructureBackup -Confirm:$false
        $backup.TimeTakenToCreate | Should -BeOfType [System.TimeSpan]
        $backup.TimeTakenToCreate | Should -Be ([timespan]::FromSeconds(1248.5))
    }

    It 'format as a table with the manifest''s default columns' {
        $columns = $compiled.types['AzsBackup.BackupLocation'].tableColumns
        $lines = @(Get-BackupConfiguration | Format-Table | Out-String -Width 400 -Stream | Where-Object { $_.Trim() })
        ($lines[0].Trim() -split '\s+') | Should -Be $columns
        $backupColumns = $compiled.types['AzsBackup.Backup'].tableColumns
        $lines = @(Start-InfrastructureBackup -Confirm:$false | Out-String -Width 400 -Stream | Where-Object { $_.Trim() })
        ($lines[0].Trim() -split '\s+') | Should -Be $backupColumns
    }
}

Describe 'errors' {
    It 'turns a terminating host error into a terminating ErrorRecord with its id, category, target and action' {
        $env:FAKE_HOST_MODE = 'usage'
        $caught = $null
        try { Get-BackupConfiguration -ErrorAction Stop } catch { $caught = $_ }
        $caught | Should -Not -BeNullOrEmpty
        $caught.FullyQualifiedErrorId | Should -Be 'ParameterNotFound,Get-BackupConfiguration'
        $caught.CategoryInfo.Category | Should -Be 'InvalidArgument'
        $caught.TargetObject | Should -Be 'Bogus'
        $caught.ErrorDetails.RecommendedAction | Should -Be 'Run with -? to see the parameters.'
        $caught.Exception | Should -BeOfType [System.ArgumentException]
        $caught.Exception.Message | Should -Be 'Cannot bind parameter -Bogus.'
        # Terminating even without -ErrorAction Stop: the statement stops, try/catch sees it.
        $caught = $null
        try { Get-BackupConfiguration; $after = 'ran on' } catch { $caught = $_ }
        $caught.FullyQualifiedErrorId | Should -Be 'ParameterNotFound,Get-BackupConfiguration'
        $after | Should -BeNullOrEmpty
    }

    It 'reports a failed role of a partial backup as a non-terminating error beside the returned object' {
        $env:FAKE_HOST_MODE = 'partial'
        $backup = Start-InfrastructureBackup -Confirm:$false -ErrorVariable roleErrors -ErrorAction SilentlyContinue
        $backup.Status | Should -Be 'PartialSucceeded'
        $roleErrors.Count | Should -Be 1
        $roleErrors[0].FullyQualifiedErrorId | Should -Be 'RoleBackupFailed,Start-InfrastructureBackup'
        $roleErrors[0].TargetObject | Should -Be 'CA'
        $roleErrors[0].ErrorDetails.RecommendedAction | Should -Be 'Check the CA provider.'
        # -ErrorAction Stop turns it into an exception a catch block sees.
        $caught = $null
        try { Start-InfrastructureBackup -Confirm:$false -ErrorAction Stop | Out-Null } catch { $caught = $_ }
        $caught.FullyQualifiedErrorId | Should -Be 'RoleBackupFailed,Start-InfrastructureBackup'
    }

    It 'reports something not found as a non-terminating error, as Get-Item does: -ErrorAction decides' {
        $env:FAKE_HOST_MODE = 'notfound'
        $found = Get-InfrastructureBackup -Name '6f1c2e34-0d4b-4d7e-9a8e-0b9d2b1e7c55' -ErrorAction SilentlyContinue -ErrorVariable notFound
        $found | Should -BeNullOrEmpty
        @($notFound | ForEach-Object FullyQualifiedErrorId) | Should -Be @('BackupNotFound,Get-InfrastructureBackup')
        $caught = $null
        try { Get-InfrastructureBackup -Name '6f1c2e34-0d4b-4d7e-9a8e-0b9d2b1e7c55' -ErrorAction Stop } catch { $caught = $_ }
        $caught.FullyQualifiedErrorId | Should -Be 'BackupNotFound,Get-InfrastructureBackup'
        $caught.Exception | Should -BeOfType [System.Management.Automation.ItemNotFoundException]
    }

    It 'reports a backup whose every role failed by its role errors and the Failed object, with no HostFailed after them' {
        $env:FAKE_HOST_MODE = 'failed'
        $backup = Start-InfrastructureBackup -Confirm:$false -ErrorVariable roleErrors -ErrorAction SilentlyContinue
        $backup.Status | Should -Be 'Failed'
        @($roleErrors | ForEach-Object FullyQualifiedErrorId) | Should -Be @('RoleBackupFailed,Start-InfrastructureBackup')
    }

    It 'reports a host that fails without an error record as HostFailed, with its stderr' {
        $env:FAKE_HOST_MODE = 'crash'
        $caught = $null
        try { Get-BackupConfiguration } catch { $caught = $_ }
        $caught.FullyQualifiedErrorId | Should -Be 'HostFailed,Get-BackupConfiguration'
        $caught.Exception.Message | Should -Match 'exit code 1.*TypeError: something unexpected'
    }

    It 'says how to fix a missing host, and falls back to azsbackup on PATH' {
        $module = Get-Module AzsBackup
        $recorded = & $module { $script:AzsBackupHostPath }
        $savedPath = $env:PATH
        $bin = Join-Path $env:AZSBACKUP_TEST_WORK 'pathbin'
        try {
            Remove-Item Env:AZSBACKUP_CLI
            & $module { $script:AzsBackupHostPath = '/nonexistent/azsbackup.js' }
            $env:PATH = (Split-Path -Parent (Get-Command node).Source)
            $caught = $null
            try { Get-BackupConfiguration } catch { $caught = $_ }
            $caught.FullyQualifiedErrorId | Should -Be 'HostNotFound,Get-BackupConfiguration'
            $caught.ErrorDetails.RecommendedAction | Should -Match 'AZSBACKUP_CLI'
            New-Item -ItemType Directory -Path $bin -Force | Out-Null
            $shim = Join-Path $bin 'azsbackup'
            Set-Content -LiteralPath $shim -Value "#!/bin/sh`nexec node '$(Join-Path $env:AZSBACKUP_TEST_FIXTURES 'fake-host.mjs')' `"`$@`""
            chmod +x $shim
            $env:PATH = $bin + [System.IO.Path]::PathSeparator + $env:PATH
            (Get-BackupConfiguration).Path | Should -Be '\\fs01\backups'
        }
        finally {
            $env:PATH = $savedPath
            $env:AZSBACKUP_CLI = Join-Path $env:AZSBACKUP_TEST_FIXTURES 'fake-host.mjs'
            & $module { param($p) $script:AzsBackupHostPath = $p } $recorded
        }
    }
}

Describe 'progress' {
    It 'shows Write-Progress while the host runs, not at the end' {
        $env:FAKE_HOST_MODE = 'slow'
        $ps = [powershell]::Create()
        try {
            $null = $ps.AddScript("Import-Module '$env:AZSBACKUP_TEST_MODULE'; Start-InfrastructureBackup -Confirm:`$false")
            $handle = $ps.BeginInvoke()
            $seenWhileRunning = 0
            while (-not $handle.IsCompleted) {
                if ($ps.Streams.Progress.Count -gt 0 -and $seenWhileRunning -eq 0) { $seenWhileRunning = $ps.Streams.Progress.Count }
                Start-Sleep -Milliseconds 50
            }
            $output = $ps.EndInvoke($handle)
            $seenWhileRunning | Should -BeGreaterThan 0
            $output[0].Status | Should -Be 'Succeeded'
            $records = @($ps.Streams.Progress)
            $records.Count | Should -BeGreaterOrEqual 5
            ($records | Where-Object { $_.StatusDescription -eq 'step 2' }).PercentComplete | Should -Be 50
            $records[-1].RecordType | Should -Be 'Completed'
        }
        finally {
            $ps.Dispose()
        }
    }
}
}
