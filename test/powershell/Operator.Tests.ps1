# The module over the real host (bin/azsbackup.js, built by npm run build): typed objects, -WhatIf
# that changes nothing, the host's error records as PowerShell errors, and, on the real Samba
# share, the operator's drill with a sampler that watches every process for the passwords.

Describe 'the module over the real host' {
    BeforeAll {
        . (Join-Path $PSScriptRoot 'RealHost.ps1')
        # Every file under the folders, with its bytes' hash: "byte-identical" as one comparable string.
        function Get-TreeHash([string[]] $path) {
            @(foreach ($p in $path) {
                    Get-ChildItem -LiteralPath $p -Recurse -File -Force | Sort-Object FullName | ForEach-Object {
                        $_.FullName.Substring($p.Length) + ' ' + (Get-FileHash -LiteralPath $_.FullName -Algorithm SHA256).Hash
                    }
                }) -join "`n"
        }
        function New-RoleData([string] $dir) {
            New-Item -ItemType Directory -Path (Join-Path $dir 'sub') -Force | Out-Null
            Set-Content -LiteralPath (Join-Path $dir 'settings.json') -Value '{"region":"local","nodes":4}'
            $bytes = [byte[]]::new(300000)
            [System.Random]::new(7).NextBytes($bytes)
            [System.IO.File]::WriteAllBytes((Join-Path $dir 'sub/blob.bin'), $bytes)
        }
    }

    AfterAll {
        Remove-Module AzsBackup -Force -ErrorAction Ignore
        Remove-Item Env:AZSBACKUP_HOME -ErrorAction Ignore
    }

    Context 'on a local folder share' {
        BeforeAll {
            $script:home1 = New-TestFolder 'home'
            $script:share = New-TestFolder 'share'
            $script:data = New-TestFolder 'data'
            New-RoleData $data
            $env:AZSBACKUP_HOME = $home1
            $script:key = New-EncryptionKey -Confirm:$false
            $script:location = Set-BackupShare -Path $share -EncryptionKey $key.Key -PassThru -Confirm:$false
            $null = Register-InfrastructureRole -Name Config -Provider directory -Path $data -Confirm:$false
            $script:backup = Start-InfrastructureBackup -Confirm:$false
        }

        It 'returns typed objects with real DateTime and TimeSpan values' {
            $config = Get-BackupConfiguration
            $config.PSObject.TypeNames | Should -Contain 'AzsBackup.BackupLocation'
            $config.PSObject.TypeNames | Should -Contain 'Deserialized.AzsBackup.BackupLocation'
            $config.Path | Should -Be $share
            $config.Password | Should -BeNullOrEmpty
            $config.LastBackupTime | Should -BeOfType [System.DateTime]
            $backup.PSObject.TypeNames[0] | Should -Be 'AzsBackup.Backup'
            $backup.Status | Should -Be 'Succeeded'
            $backup.CreatedDateTime | Should -BeOfType [System.DateTime]
            $backup.TimeTakenToCreate | Should -BeOfType [System.TimeSpan]
            $backup.RoleStatus[0].Duration | Should -BeOfType [System.TimeSpan]
        }

        It 'formats tables with the manifest''s columns' {
            foreach ($case in @(@{ Type = 'AzsBackup.BackupLocation'; Object = (Get-BackupConfiguration) }, @{ Type = 'AzsBackup.Backup'; Object = $backup })) {
                $header = @($case.Object | Format-Table | Out-String -Width 500 -Stream | Where-Object { $_.Trim() })[0]
                ($header.Trim() -split '\s+') | Should -Be $compiled.types[$case.Type].tableColumns
            }
        }

        It '-WhatIf changes nothing: <Name>' -ForEach @(
            @{ Name = 'Set-BackupShare'; Call = { Set-BackupShare -Path $share -BackupFrequencyInHours 4 -SkipValidation -WhatIf } }
            @{ Name = 'Clear-BackupConfiguration'; Call = { Clear-BackupConfiguration -WhatIf } }
            @{ Name = 'Remove-InfrastructureBackup'; Call = { Get-InfrastructureBackup | Remove-InfrastructureBackup -Force -WhatIf } }
            @{ Name = 'Unregister-InfrastructureRole'; Call = { Get-InfrastructureRole | Unregister-InfrastructureRole -WhatIf } }
        ) {
            $before = Get-TreeHash $home1, $share
            $said = & $Call 6>&1 | Out-String
            (Get-TreeHash $home1, $share) | Should -BeExactly $before
            (Get-InfrastructureBackup).Name | Should -Contain $backup.Name
            @(Get-InfrastructureRole).Count | Should -Be 1
        }

        It 'maps a usage error to a terminating ErrorRecord that try/catch sees' {
            $caught = $null
            try { Set-BackupShare -Path $share -EncryptionKey (ConvertTo-Secure 'not-a-key') -SkipValidation -Confirm:$false -ErrorAction Stop } catch { $caught = $_ }
            $caught.FullyQualifiedErrorId | Should -Be 'InvalidEncryptionKey,Set-BackupShare'
            $caught.CategoryInfo.Category | Should -Be 'InvalidArgument'
            $caught.ErrorDetails.RecommendedAction | Should -Not -BeNullOrEmpty
        }

        It 'maps an unreachable share to ConnectionError' {
            $caught = $null
            try { Test-BackupShare -Path 'smb://127.0.0.1:9/backups' -UserName 'u' -Password (ConvertTo-Secure 'p') -ErrorAction Stop } catch { $caught = $_ }
            $caught.FullyQualifiedErrorId | Should -Be 'ShareUnreachable,Test-BackupShare'
            $caught.CategoryInfo.Category | Should -Be 'ConnectionError'
            $caught.TargetObject | Should -Be 'smb://127.0.0.1:9/backups'
        }

        It 'maps a held lock to ResourceBusy, and -AsJob returns at once' {
            $null = Register-InfrastructureRole -Name Slow -Provider command -ExportCommand 'sh', '-c', 'sleep 4; echo slow' -ImportCommand 'sh', '-c', 'cat >/dev/null' -Confirm:$false
            try {
                $watch = [System.Diagnostics.Stopwatch]::StartNew()
                $job = Start-InfrastructureBackup -AsJob -Confirm:$false
                $watch.Elapsed.TotalSeconds | Should -BeLessThan 3.5
                $job | Should -BeOfType [System.Management.Automation.Job]
                $deadline = [datetime]::UtcNow.AddSeconds(20)
                while (-not (Get-ChildItem -LiteralPath (Join-Path $share 'MASBackup') -Recurse -Directory -Filter '*.partial' -ErrorAction Ignore) -and [datetime]::UtcNow -lt $deadline) { Start-Sleep -Milliseconds 100 }
                $caught = $null
                try { Start-InfrastructureBackup -Confirm:$false -ErrorAction Stop } catch { $caught = $_ }
                $caught.FullyQualifiedErrorId | Should -Be 'JobLockHeld,Start-InfrastructureBackup'
                $caught.CategoryInfo.Category | Should -Be 'ResourceBusy'
                $state = $job | Receive-Job -Wait -AutoRemoveJob
                $state.Status | Should -Be 'Succeeded'
            }
            finally {
                Unregister-InfrastructureRole -Name Slow -Confirm:$false | Out-Null
            }
        }

        It 'maps a wrong decryption password to SecurityError' {
            $dir = New-TestFolder 'cert'
            $pfxPassword = ConvertTo-Secure 'right pfx password'
            $null = New-EncryptionKey -Certificate -CertificatePath "$dir/b.cer" -PfxPath "$dir/b.pfx" -PfxPassword $pfxPassword -Confirm:$false
            $null = Set-BackupShare -Path $share -EncryptionCertPath "$dir/b.cer" -Confirm:$false
            $certBackup = Start-InfrastructureBackup -Confirm:$false
            $caught = $null
            try { $certBackup | Restore-AzsBackup -DecryptionCertPath "$dir/b.pfx" -DecryptionCertPassword (ConvertTo-Secure 'wrong') -Confirm:$false -ErrorAction Stop } catch { $caught = $_ }
            $caught.FullyQualifiedErrorId | Should -Be 'WrongDecryptionCertPassword,Restore-AzsBackup'
            $caught.CategoryInfo.Category | Should -Be 'SecurityError'
            $caught.TargetObject | Should -Be "$dir/b.pfx"
        }

        It 'encrypts for an operations and a break-glass certificate, lists both with their expiry, and either .pfx alone opens a backup' {
            $dir = New-TestFolder 'two-certs'
            $opsPassword = ConvertTo-Secure 'operations pfx password'
            $glassPassword = ConvertTo-Secure 'break-glass pfx password'
            $ops = New-EncryptionKey -Certificate -CertificatePath "$dir/ops.cer" -PfxPath "$dir/ops.pfx" -PfxPassword $opsPassword -Confirm:$false
            $glass = New-EncryptionKey -Certificate -CertificatePath "$dir/glass.cer" -PfxPath "$dir/glass.pfx" -PfxPassword $glassPassword -Confirm:$false
            # Two passwords, so two calls: the second proves the break-glass certificate configured by the first.
            $null = Set-BackupShare -Path $share -EncryptionCertPath "$dir/ops.cer", "$dir/glass.cer" -DecryptionCertPath "$dir/ops.pfx" -DecryptionCertPassword $opsPassword -Confirm:$false -WarningAction SilentlyContinue
            Set-BackupShare -DecryptionCertPath "$dir/glass.pfx" -DecryptionCertPassword $glassPassword -Confirm:$false -WarningAction SilentlyContinue
            $certificates = @((Get-BackupConfiguration).EncryptionCertificates)
            $certificates.Thumbprint | Should -Be @($ops.Thumbprint, $glass.Thumbprint)
            $certificates.NotAfter | Should -Be @($ops.NotAfter, $glass.NotAfter)
            $certificates.Authenticated | Should -Be @($true, $true)
            $made = Start-InfrastructureBackup -Confirm:$false
            foreach ($pfx in @(@("$dir/ops.pfx", $opsPassword), @("$dir/glass.pfx", $glassPassword))) {
                $checked = Test-InfrastructureBackup -Name $made.Name -DecryptionCertPath $pfx[0] -DecryptionCertPassword $pfx[1]
                $checked.IsValid | Should -BeTrue
                $checked.Mode | Should -Be 'Authenticated'
            }
        }
    }

    Context 'on the real Samba share' {
        BeforeAll {
            if ($env:AZSBACKUP_TEST_SMB_ERROR) { throw "No Samba share for the drill: $env:AZSBACKUP_TEST_SMB_ERROR" }
            $script:smbPath = $env:AZSBACKUP_TEST_SMB_URL
            $script:shareCredential = [System.Management.Automation.PSCredential]::new($env:AZSBACKUP_TEST_SMB_USER, (ConvertTo-Secure $secrets.SmbPassword))
            $script:pfxPlain = 'pfx-' + [guid]::NewGuid().ToString('n')
            $script:pfxPassword = ConvertTo-Secure $pfxPlain
            $script:drill = New-TestFolder 'drill'
            $script:roles = @{ Config = (Join-Path $drill 'config'); Certs = (Join-Path $drill 'certs') }
            foreach ($dir in $roles.Values) { New-RoleData $dir }
            $script:original = Get-TreeHash $roles.Config, $roles.Certs
            $env:AZSBACKUP_HOME = Join-Path $drill 'home-before'
        }

        It 'never shows the share or pfx password on any command line or environment, and the drill restores byte-identical data' {
            $key = New-EncryptionKey -Certificate -CertificatePath "$drill/backup.cer" -PfxPath "$drill/backup.pfx" -PfxPassword $pfxPassword -Confirm:$false
            $key.Kind | Should -Be 'Certificate'
            $location = Set-BackupShare -PassThru -Path $smbPath -Credential (New-Object System.Management.Automation.PSCredential -ArgumentList $shareCredential.UserName, $shareCredential.Password) -EncryptionCertPath "$drill/backup.cer" -DecryptionCertPath "$drill/backup.pfx" -DecryptionCertPassword $pfxPassword -Confirm:$false
            $location.EncryptionMode | Should -Be 'Certificate'
            foreach ($name in $roles.Keys | Sort-Object) {
                $null = Register-InfrastructureRole -Name $name -Provider directory -Path $roles[$name] -Confirm:$false
            }

            # The sampler gets the secrets on its stdin, so it carries them in neither argv nor environ.
            $start = [System.Diagnostics.ProcessStartInfo]::new('node', (Join-Path $PSScriptRoot 'secret-sampler.mjs'))
            $start.RedirectStandardInput = $true
            $start.RedirectStandardOutput = $true
            $start.UseShellExecute = $false
            $sampler = [System.Diagnostics.Process]::Start($start)
            $sampler.StandardInput.WriteLine((ConvertTo-Json -Compress -InputObject @($secrets.SmbPassword, $pfxPlain)))
            $sampler.StandardInput.Flush()
            try {
                Start-Sleep -Milliseconds 300
                $backup = Start-InfrastructureBackup -Confirm:$false
                $tests = @(Get-InfrastructureBackup | Test-InfrastructureBackup)
                $verified = @(Get-InfrastructureBackup -Top 1 | Test-InfrastructureBackup -DecryptionCertPath "$drill/backup.pfx" -DecryptionCertPassword $pfxPassword)
            }
            finally {
                $sampler.StandardInput.Close()
                $report = $sampler.StandardOutput.ReadToEnd() | ConvertFrom-Json
                $sampler.WaitForExit()
            }
            $report.samples | Should -BeGreaterThan 10
            $report.hostProcessesSeen | Should -BeGreaterThan 0 -Because 'the sampler must have seen the host running'
            $report.hits | Should -BeNullOrEmpty -Because (($report.hits | ForEach-Object { "pid $($_.pid) $($_.file): $($_.excerpt)" }) -join '; ')

            $backup.Status | Should -Be 'Succeeded'
            $tests.Count | Should -BeGreaterThan 0
            $tests | ForEach-Object { $_.IsValid | Should -BeTrue }
            $verified[0].IsValid | Should -BeTrue

            # Disaster: the roles' data is gone, and so is the machine's configuration.
            foreach ($dir in $roles.Values) { Remove-Item -LiteralPath $dir -Recurse -Force }
            $env:AZSBACKUP_HOME = Join-Path $drill 'home-after'
            $restored = @(Get-InfrastructureBackup -Top 1 -Path $smbPath -Credential $shareCredential |
                    Restore-AzsBackup -DecryptionCertPath "$drill/backup.pfx" -DecryptionCertPassword $pfxPassword -Credential $shareCredential -Confirm:$false)
            $restored.Count | Should -Be 2
            $restored | ForEach-Object { $_.Status | Should -Be 'Succeeded' }
            (Get-TreeHash $roles.Config, $roles.Certs) | Should -BeExactly $original
        }
    }
}
