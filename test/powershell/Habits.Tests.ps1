# PowerShell that behaves like PowerShell (issue 18): the module over the real host, typed the way an
# operator types it. Jobs, pipeline binding, local dates, confirmation, secrets as SecureString, the
# JSON shape of the command line, exit codes and nested types, PowerShell's syntax in errors and
# help, no silent no-ops, -Verbose/-Debug, paths against the current location, the Azure Stack names,
# -PassThru/-Force, argument completers and about_AzsBackup.

Describe 'PowerShell habits' {
    BeforeAll {
        . (Join-Path $PSScriptRoot 'RealHost.ps1')
        function ConvertFrom-Secure([System.Security.SecureString] $secure) {
            [System.Net.NetworkCredential]::new('', $secure).Password
        }
        # The command line, as a script in pwsh runs it: stdout text, stderr lines, exit code.
        function Invoke-Cli {
            param([string[]] $Arguments, [string] $InputText)
            $errFile = Join-Path $env:AZSBACKUP_TEST_WORK ('stderr-' + [guid]::NewGuid().ToString('n'))
            $out = if ($PSBoundParameters.ContainsKey('InputText')) { $InputText | & node $env:AZSBACKUP_TEST_HOST @Arguments 2>$errFile } else { & node $env:AZSBACKUP_TEST_HOST @Arguments 2>$errFile }
            [pscustomobject]@{
                Out = ($out -join "`n")
                Err = @(Get-Content -LiteralPath $errFile -ErrorAction Ignore)
                ExitCode = $LASTEXITCODE
            }
        }
        # A fresh service: its own home, share and one directory role, configured with a new key.
        function New-Service([string] $name) {
            $service = [pscustomobject]@{
                Home = New-TestFolder "$name-home"; Share = New-TestFolder "$name-share"; Data = New-TestFolder "$name-data"; Key = $null
            }
            Set-Content -LiteralPath (Join-Path $service.Data 'settings.json') -Value '{"nodes":4}'
            $env:AZSBACKUP_HOME = $service.Home
            $service.Key = (New-EncryptionKey -Confirm:$false).Key
            Set-BackupShare -Path $service.Share -EncryptionKey $service.Key -Confirm:$false
            Register-InfrastructureRole -Name Config -Provider directory -Path $service.Data -Confirm:$false
            $service
        }
        function Use-Service($service) { $env:AZSBACKUP_HOME = $service.Home }

        $script:svc = New-Service 'habits'
        $script:first = Start-InfrastructureBackup -Confirm:$false
        $script:second = Start-InfrastructureBackup -Confirm:$false
    }

    BeforeEach { Use-Service $svc }

    AfterAll {
        Get-Job | Remove-Job -Force -ErrorAction Ignore
        Remove-Module AzsBackup -Force -ErrorAction Ignore
        Remove-Item Env:AZSBACKUP_HOME -ErrorAction Ignore
    }

    Context '1. -AsJob returns a real PowerShell job' {
        AfterEach {
            Get-Job | Stop-Job -PassThru | Remove-Job -Force
            Get-InfrastructureRole -Name Slow -ErrorAction Ignore | Unregister-InfrastructureRole -Force
        }

        It 'is followed by Get-Job and Wait-Job; Receive-Job yields the typed backup and its progress feeds Write-Progress' {
            $job = Start-InfrastructureBackup -AsJob
            $job | Should -BeOfType [System.Management.Automation.Job]
            (Get-Job -Id $job.Id).Id | Should -Be $job.Id
            $null = Wait-Job -Job $job -Timeout 120
            $job.State | Should -Be 'Completed'
            $backup = Receive-Job -Job $job -Keep
            $backup.PSObject.TypeNames[0] | Should -Be 'AzsBackup.Backup'
            $backup.Status | Should -Be 'Succeeded'
            $backup.CreatedDateTime | Should -BeOfType [System.DateTime]
            (Get-InfrastructureBackup -Name $backup.Name).Status | Should -Be 'Succeeded'
            # Receive-Job hands these to Write-Progress in the caller's session.
            $progress = @($job.Progress)
            $progress.Count | Should -BeGreaterThan 0
            $progress.Activity | Should -Contain "Backup $($backup.Name)"
            Remove-Job -Job $job
        }

        It 'is Running while the backup runs, Failed when the service is busy, and Stop-Job cancels cleanly: nothing half-written, the lock released' {
            Register-InfrastructureRole -Name Slow -Provider command -ExportCommand 'sh', '-c', 'echo start; sleep 60' -ImportCommand 'sh', '-c', 'cat >/dev/null' -Confirm:$false
            $before = @(Get-InfrastructureBackup | Where-Object Status -EQ 'Succeeded').Count
            $job = Start-InfrastructureBackup -AsJob
            $deadline = [datetime]::UtcNow.AddSeconds(30)
            while (-not (Get-ChildItem -LiteralPath (Join-Path $svc.Share 'MASBackup') -Recurse -Directory -Filter '*.partial') -and [datetime]::UtcNow -lt $deadline) { Start-Sleep -Milliseconds 100 }
            $job.State | Should -Be 'Running'

            $busy = Start-InfrastructureBackup -AsJob
            $null = Wait-Job -Job $busy -Timeout 60
            $busy.State | Should -Be 'Failed'
            $busy.JobStateInfo.Reason.Message | Should -BeLike 'Another job holds the lock*'

            Stop-Job -Job $job
            $job.State | Should -Be 'Stopped'
            Get-ChildItem -LiteralPath (Join-Path $svc.Share 'MASBackup') -Recurse -Directory -Filter '*.partial' | Should -BeNullOrEmpty
            # The share holds no more backups than before; the stopped one is remembered as Failed.
            @(Get-InfrastructureBackup | Where-Object Status -EQ 'Succeeded').Count | Should -Be $before
            (Get-InfrastructureBackup -Top 1).Status | Should -Be 'Failed'
            Unregister-InfrastructureRole -Name Slow -Confirm:$false
            (Start-InfrastructureBackup -Confirm:$false).Status | Should -Be 'Succeeded' -Because 'the stopped backup let its lock go'
            Remove-Job -Job $job, $busy
        }
    }

    Context '2. piped objects bind by property name into the right parameter set' {
        It 'Get-InfrastructureBackup -Top 1 | Get-InfrastructureBackup gets that one backup' {
            $all = @(Get-InfrastructureBackup)
            $all.Count | Should -BeGreaterThan 1 -Because 'the set without -Name would list them all'
            $got = @(Get-InfrastructureBackup -Top 1 | Get-InfrastructureBackup)
            $got.Count | Should -Be 1
            $got[0].Name | Should -Be $all[0].Name
        }

        It 'pipes <Type> into <Command>' -ForEach @(
            @{ Type = 'AzsBackup.Backup'; Command = 'Get-InfrastructureBackup'; Run = { param($b) $b | Get-InfrastructureBackup }; Key = 'Name' }
            @{ Type = 'AzsBackup.Backup'; Command = 'Test-InfrastructureBackup'; Run = { param($b) $b | Test-InfrastructureBackup }; Key = 'Name' }
            @{ Type = 'AzsBackup.Backup'; Command = 'Update-BackupEncryption'; Run = { param($b) $b | Update-BackupEncryption -EncryptionKey $svc.Key -Confirm:$false }; Key = 'Name' }
            @{ Type = 'AzsBackup.Backup'; Command = 'Restore-AzsBackup'; Run = { param($b) $b | Restore-AzsBackup -EncryptionKey $svc.Key -Confirm:$false }; Key = 'BackupName' }
            @{ Type = 'AzsBackup.Backup'; Command = 'Remove-InfrastructureBackup'; Run = { param($b) $b | Remove-InfrastructureBackup -PassThru -Confirm:$false }; Key = 'Name' }
        ) {
            $backup = if ($Command -eq 'Remove-InfrastructureBackup') { Start-InfrastructureBackup -Confirm:$false } else { Get-InfrastructureBackup -Name $second.Name }
            $backup.PSObject.TypeNames | Should -Contain $Type
            $result = @(& $Run $backup)
            $result.Count | Should -BeGreaterThan 0
            $result | ForEach-Object { [string]$_.$Key | Should -Be ([string]$backup.Name) }
        }

        It 'pipes AzsBackup.InfrastructureRole into Get-InfrastructureRole and Unregister-InfrastructureRole' {
            Register-InfrastructureRole -Name Extra -Provider directory -Path $svc.Data -Confirm:$false
            $role = Get-InfrastructureRole -Name Extra
            $role.PSObject.TypeNames | Should -Contain 'AzsBackup.InfrastructureRole'
            @($role | Get-InfrastructureRole).Name | Should -Be @('Extra')
            ($role | Unregister-InfrastructureRole -PassThru -Confirm:$false).Name | Should -Be 'Extra'
            @(Get-InfrastructureRole).Name | Should -Be @('Config')
        }

        It 'refuses a registered role''s name without -Force, and says when Get-InfrastructureRole -Name finds none' {
            Register-InfrastructureRole -Name Extra -Provider directory -Path $svc.Data -Confirm:$false
            { Register-InfrastructureRole -Name extra -Provider directory -Path $TestDrive -Confirm:$false -ErrorAction Stop } | Should -Throw -ErrorId 'RoleExists,Register-InfrastructureRole'
            (Get-InfrastructureRole -Name Extra).Path | Should -Be $svc.Data
            (Register-InfrastructureRole -Name Extra -Provider directory -Path $TestDrive -Force -PassThru -WarningVariable said -WarningAction SilentlyContinue).Path | Should -Be $TestDrive
            "$said" | Should -BeLike "*Replaced the role Extra*"
            Unregister-InfrastructureRole -Name Extra -Force
            Get-InfrastructureRole -Name Extra -ErrorAction SilentlyContinue -ErrorVariable missing | Should -BeNullOrEmpty
            $missing[0].FullyQualifiedErrorId | Should -Be 'RoleNotFound,Get-InfrastructureRole'
        }

        It 'pipes AzsBackup.BackupLocation into Test-BackupShare' {
            $location = Get-BackupConfiguration
            ($location | Test-BackupShare).Path | Should -Be $svc.Share
        }
    }

    Context '3. dates arrive as local DateTime values, and the command line keeps the offset' {
        It 'gives local-kind DateTimes that Get-Date can subtract, in Asia/Kolkata' {
            $env:TZ = 'Asia/Kolkata'
            try {
                $text = & $env:AZSBACKUP_TEST_PWSH -NoProfile -NonInteractive -Command "Import-Module '$env:AZSBACKUP_TEST_MODULE'; `$b = Get-InfrastructureBackup -Name $($second.Name); @{ Kind = [string]`$b.CreatedDateTime.Kind; Minutes = ((Get-Date) - `$b.CreatedDateTime).TotalMinutes; Offset = [System.TimeZoneInfo]::Local.BaseUtcOffset.TotalMinutes } | ConvertTo-Json -Compress"
            }
            finally {
                Remove-Item Env:TZ
            }
            $r = $text | ConvertFrom-Json
            $r.Offset | Should -Be 330 -Because 'the child runs in India Standard Time'
            $r.Kind | Should -Be 'Local'
            $r.Minutes | Should -BeGreaterOrEqual 0
            $r.Minutes | Should -BeLessThan 30
        }

        It 'writes the offset in JSON and CLIXML' {
            $json = Invoke-Cli -Arguments 'Get-InfrastructureBackup', '-Name', $second.Name, '--output', 'json'
            ($json.Out | ConvertFrom-Json -DateKind String).CreatedDateTime | Should -Match '(Z|[+-]\d\d:\d\d)$'
            # Without its first line (#< CLIXML), which would make pwsh deserialize it.
            $clixml = & sh -c 'node "$0" Get-InfrastructureBackup -Name "$1" --output clixml | tail -n +2' $env:AZSBACKUP_TEST_HOST $second.Name
            $clixml | Should -Match '<DT N="CreatedDateTime">[^<]+\+00:00</DT>'
        }
    }

    Context '4. Restore-AzsBackup asks first' {
        It 'has ConfirmImpact High, so it asks without -Confirm, and -Force skips the question' {
            $binding = (Get-Command Restore-AzsBackup).ScriptBlock.Attributes | Where-Object { $_ -is [System.Management.Automation.CmdletBindingAttribute] }
            $binding.ConfirmImpact | Should -Be 'High'
            Set-Content -LiteralPath (Join-Path $svc.Data 'settings.json') -Value 'changed'
            # This pwsh is non-interactive: a cmdlet that asks fails instead of restoring.
            { $second | Restore-AzsBackup -EncryptionKey $svc.Key -ErrorAction Stop } | Should -Throw '*NonInteractive*'
            Get-Content -LiteralPath (Join-Path $svc.Data 'settings.json') | Should -Be 'changed'
            $restored = @($second | Restore-AzsBackup -EncryptionKey $svc.Key -Force)
            $restored.Status | Should -Be @('Succeeded')
            Get-Content -LiteralPath (Join-Path $svc.Data 'settings.json') | Should -Be '{"nodes":4}'
        }

        It 'refuses a piped list before restoring anything, unless -Force' {
            Set-Content -LiteralPath (Join-Path $svc.Data 'settings.json') -Value 'changed'
            $caught = $null
            try { Get-InfrastructureBackup | Where-Object Status -EQ 'Succeeded' | Restore-AzsBackup -EncryptionKey $svc.Key -Confirm:$false -ErrorAction Stop } catch { $caught = $_ }
            $caught.FullyQualifiedErrorId | Should -Be 'SeveralInputsRefused,Restore-AzsBackup'
            $caught.ErrorDetails.RecommendedAction | Should -BeLike '*-Force*'
            Get-Content -LiteralPath (Join-Path $svc.Data 'settings.json') | Should -Be 'changed'
            $count = @(Get-InfrastructureBackup | Where-Object Status -EQ 'Succeeded').Count
            $count | Should -BeGreaterThan 1
            @(Get-InfrastructureBackup | Where-Object Status -EQ 'Succeeded' | Restore-AzsBackup -EncryptionKey $svc.Key -Force).Count | Should -Be $count
            Get-Content -LiteralPath (Join-Path $svc.Data 'settings.json') | Should -Be '{"nodes":4}'
        }

        It 'keeps the command line working in scripts without a terminal' {
            $r = Invoke-Cli -Arguments 'Restore-AzsBackup', '-Name', $first.Name, '-EncryptionKey', '-', '--output', 'json' -InputText (ConvertFrom-Secure $svc.Key)
            $r.ExitCode | Should -Be 0
            ($r.Out | ConvertFrom-Json)[0].Status | Should -Be 'Succeeded'
        }
    }

    Context '5. keys are secrets' {
        It 'returns the key as a SecureString that Set-BackupShare takes as it is, and never prints it' {
            $key = New-EncryptionKey -Confirm:$false
            $key.Key | Should -BeOfType [System.Security.SecureString]
            $plain = ConvertFrom-Secure $key.Key
            $plain.Length | Should -Be 88
            ($key | Format-List * | Out-String) | Should -Not -BeLike "*$plain*"
            ($key | Out-String) | Should -Not -BeLike "*$plain*"
            $other = New-Service 'key-flow'
            $location = Set-BackupShare -EncryptionKey $key.Key -SkipValidation -PassThru -Confirm:$false
            $location.EncryptionMode | Should -Be 'Key'
            $location.EncryptionKeyId | Should -Be $key.KeyId
            $null = $other
        }

        It 'refuses a secret holding a line break (standard input would have cut it there) and makes nothing, never quoting it' {
            $dir = New-TestFolder 'line-break'
            $caught = $null
            try { New-EncryptionKey -Certificate -CertificatePath "$dir/b.cer" -PfxPath "$dir/b.pfx" -PfxPassword (ConvertTo-Secure "first`nsecond") -Confirm:$false -ErrorAction Stop } catch { $caught = $_ }
            $caught.FullyQualifiedErrorId | Should -Be 'SecretHasLineBreak,New-EncryptionKey'
            $caught.TargetObject | Should -Be 'PfxPassword'
            ($caught | Out-String) | Should -Not -BeLike '*second*'
            Test-Path -LiteralPath "$dir/b.pfx" | Should -BeFalse -Because 'a .pfx protected by "first" alone would not open with the password given'
            $credential = [System.Management.Automation.PSCredential]::new('CONTOSO\backup', (ConvertTo-Secure "pass`r`nword"))
            { Test-BackupShare -Path $svc.Share -Credential $credential -ErrorAction Stop } | Should -Throw -ErrorId 'SecretHasLineBreak,Test-BackupShare'
        }

        It 'gives the text with -AsPlainText, for scripts that need it' {
            $key = New-EncryptionKey -AsPlainText -Confirm:$false
            $key.Key | Should -BeOfType [System.String]
            $key.Key.Length | Should -Be 88
        }
    }

    Context '6. the shape of --output json' {
        It 'prints an array for a list cmdlet (<Name>), an object for a single-object one, and says so in the help' -ForEach @(
            @{ Name = 'Get-InfrastructureRole'; Arguments = @(); Expect = 'Array'; Count = 1 }
            @{ Name = 'Get-BackupAlert'; Arguments = @(); Expect = 'Array'; Count = 0; FreshHome = $true }
            @{ Name = 'Get-InfrastructureBackup'; Arguments = @('-Top', '1'); Expect = 'Array'; Count = 1 }
            @{ Name = 'Get-InfrastructureBackup'; Arguments = @('-Name', 'FIRST'); Expect = 'Object'; Count = 1 }
            @{ Name = 'Get-BackupConfiguration'; Arguments = @(); Expect = 'Object'; Count = 1 }
        ) {
            if ($FreshHome) { $env:AZSBACKUP_HOME = New-TestFolder 'fresh-home' }
            $arguments = @($Name) + @($Arguments | ForEach-Object { if ($_ -eq 'FIRST') { [string]$first.Name } else { $_ } }) + @('--output', 'json')
            $r = Invoke-Cli -Arguments $arguments
            $r.ExitCode | Should -Be 0
            $text = $r.Out.Trim()
            if ($Expect -eq 'Array') {
                $text | Should -Match '^\['
                ($text | ConvertFrom-Json -NoEnumerate).Count | Should -Be $Count
                if ($Count -eq 0) { $text | Should -Be '[]' }
            }
            else {
                $text | Should -Match '^\{'
            }
            $manifest = $compiled.cmdlets[$Name.ToLowerInvariant()]
            $help = (Invoke-Cli -Arguments $Name, '-?').Out -replace '\s+', ' '
            if ($manifest.output -eq 'List') { $help | Should -BeLike '*always prints an array*' } else { $help | Should -BeLike '*prints it as an object*' }
        }
    }

    Context '7. exit codes and records agree; nested objects are typed' {
        BeforeAll {
            Register-InfrastructureRole -Name Broken -Provider command -ExportCommand 'sh', '-c', 'echo broken >&2; exit 3' -ImportCommand 'sh', '-c', 'cat >/dev/null' -Confirm:$false
        }
        AfterAll {
            Use-Service $svc
            Unregister-InfrastructureRole -Name Broken -Confirm:$false
        }

        It 'exits 3 for a partial backup, and each error record says 3' {
            $r = Invoke-Cli -Arguments 'Start-InfrastructureBackup', '--output', 'json'
            $r.ExitCode | Should -Be 3
            ($r.Out | ConvertFrom-Json).Status | Should -Be 'PartialSucceeded'
            $records = @($r.Err | Where-Object { $_.StartsWith('{') } | ForEach-Object { ($_ | ConvertFrom-Json).ErrorRecord } | Where-Object { $_ })
            $records.Count | Should -BeGreaterThan 0
            $records | ForEach-Object { $_.ExitCode | Should -Be 3 }
        }

        It 'types each role status as AzsBackup.RoleStatus, which formats as a table' {
            $backup = Start-InfrastructureBackup -Confirm:$false -ErrorAction SilentlyContinue
            $backup.Status | Should -Be 'PartialSucceeded'
            $backup.RoleStatus | ForEach-Object { $_.PSObject.TypeNames[0] | Should -Be 'AzsBackup.RoleStatus' }
            $header = @($backup.RoleStatus | Out-String -Width 300 -Stream | Where-Object { $_.Trim() })[0]
            ($header.Trim() -split '\s+') | Should -Be $compiled.types['AzsBackup.RoleStatus'].tableColumns
        }
    }

    Context '8. errors, warnings and help speak PowerShell' {
        It 'Get-Help of <_> shows no command-line syntax' -ForEach @($compiled.cmdlets.Values.name | Sort-Object) {
            $help = Get-Help $_ -Full | Out-String -Width 10000
            $help | Should -Not -Match '--output|--progress|azsbackup [A-Z]|\$\(cat|printf|AZSBACKUP_[A-Z]+='
        }

        It 'Get-Help about_AzsBackup explains the concepts, setup, rotation and redeploy' {
            $about = Get-Help about_AzsBackup | Out-String
            foreach ($section in 'CONCEPTS', 'SETUP', 'ROTATION', 'REDEPLOY') { $about | Should -Match $section }
        }

        It 'recommends PowerShell''s way in the module, and the command line''s own way on the command line' {
            $dir = New-TestFolder 'pfx'
            $null = New-EncryptionKey -Certificate -CertificatePath "$dir/b.cer" -PfxPath "$dir/b.pfx" -PfxPassword (ConvertTo-Secure 'right') -Confirm:$false
            $caught = $null
            try { Test-InfrastructureBackup -Name $first.Name -DecryptionCertPath "$dir/b.pfx" -DecryptionCertPassword (ConvertTo-Secure 'wrong') -ErrorAction Stop } catch { $caught = $_ }
            $caught.FullyQualifiedErrorId | Should -BeLike 'WrongDecryptionCertPassword,*'
            $caught.ErrorDetails.RecommendedAction | Should -BeLike '*-DecryptionCertPassword*'
            $caught.ErrorDetails.RecommendedAction | Should -Not -Match 'AZSBACKUP_|standard input'
            $cli = Invoke-Cli -Arguments 'Test-InfrastructureBackup', '-Name', $first.Name, '-DecryptionCertPath', "$dir/b.pfx", '-DecryptionCertPassword', '-' -InputText 'wrong'
            ($cli.Err[0] | ConvertFrom-Json).ErrorRecord.RecommendedAction | Should -Match 'AZSBACKUP_DECRYPTIONCERTPASSWORD'
        }

        It 'shows text a writer of the share chose (C1 controls, which XML allows) without its control characters in warnings and errors' {
            # As the command line does on a terminal (test/host/cli.terminal-text.test.ts): CSI clear
            # the screen, OSC set the title, ST.
            $null = New-Service 'terminal'
            $good = Start-InfrastructureBackup -Confirm:$false
            $folder = Get-ChildItem -LiteralPath (Join-Path (Get-BackupConfiguration).Path 'MASBackup') -Recurse -Directory | Where-Object Name -EQ ([string]$good.Name) | Select-Object -First 1
            $planted = [guid]::NewGuid().ToString()
            Copy-Item -LiteralPath $folder.FullName -Destination (Join-Path $folder.Parent.FullName $planted) -Recurse
            $file = Join-Path $folder.Parent.FullName "$planted/BackupInfo.xml"
            $xml = [System.IO.File]::ReadAllText($file).Replace([string]$good.Name, $planted) -replace '<Name>[^<]*', "<Name>x$([char]0x9b)2J$([char]0x9d)0;pwned$([char]0x9c)"
            $seal = [regex]::Match($xml, '<Seal Digest="([0-9a-f]{64})"')
            $digest = [System.Convert]::ToHexString([System.Security.Cryptography.SHA256]::HashData([System.Text.Encoding]::UTF8.GetBytes($xml.Substring(0, $seal.Index)))).ToLowerInvariant()
            [System.IO.File]::WriteAllText($file, $xml.Replace($seal.Groups[1].Value, $digest))
            $drives = '[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]'

            $null = Get-InfrastructureBackup -WarningVariable warned -WarningAction SilentlyContinue
            $warned.Message | Should -BeLike "*Backup $planted is listed as unreadable*names backup x*"
            $warned.Message | Should -Not -Match $drives
            $caught = $null
            try { Test-InfrastructureBackup -Name $planted -ErrorAction Stop } catch { $caught = $_ }
            $caught.Exception.Message | Should -BeLike '*names backup x*'
            $caught.Exception.Message | Should -Not -Match $drives
            ($caught | Out-String) | Should -Not -Match $drives
        }

        It 'Test-BackupShare says which step failed: a missing folder is not an authentication failure' {
            $result = Test-BackupShare -Path (Join-Path $svc.Share 'no-such-folder') -ErrorVariable failures -ErrorAction SilentlyContinue
            $result.Authenticated | Should -BeTrue
            $result.Steps[-1].Name | Should -Be 'Open'
            $result.Steps[-1].Succeeded | Should -BeFalse
            $failures[0].FullyQualifiedErrorId | Should -BeLike 'SharePathNotFound,*'
            $failures[0].Exception.Message | Should -BeLike 'Step Open failed:*'
        }
    }

    Context '9. no silent no-ops' {
        It 'a scheduler tick says when the scheduler is off, and when no backup is due' {
            $null = Invoke-BackupScheduler -Confirm:$false -WarningVariable warned -WarningAction SilentlyContinue
            $warned[0].Message | Should -BeLike '*scheduler is off*-IsBackupSchedulerEnabled $true*'
            Set-BackupShare -IsBackupSchedulerEnabled $true -SkipValidation -Confirm:$false
            try {
                $verbose = Invoke-BackupScheduler -Confirm:$false -Verbose 4>&1 | Where-Object { $_ -is [System.Management.Automation.VerboseRecord] }
                ($verbose.Message -join "`n") | Should -BeLike '*No backup is due*Start-InfrastructureBackup*'
            }
            finally {
                Set-BackupShare -IsBackupSchedulerEnabled $false -SkipValidation -Confirm:$false
            }
        }

        It 'a certificate change warns of the backups left on the old key, and a rerun of Update-BackupEncryption warns that it did nothing' {
            $rot = New-Service 'rotation'
            $null = Start-InfrastructureBackup -Confirm:$false
            $dir = New-TestFolder 'rotation-cert'
            $null = New-EncryptionKey -Certificate -CertificatePath "$dir/new.cer" -PfxPath "$dir/new.pfx" -PfxPassword (ConvertTo-Secure 'pfx') -Confirm:$false
            Set-BackupShare -EncryptionCertPath "$dir/new.cer" -DecryptionCertPath "$dir/new.pfx" -DecryptionCertPassword (ConvertTo-Secure 'pfx') -Confirm:$false -WarningVariable rotated -WarningAction SilentlyContinue
            $rotated[0].Message | Should -BeLike '*1 backup*previous key*Update-BackupEncryption -EncryptionKey*'
            @(Update-BackupEncryption -EncryptionKey $rot.Key -Confirm:$false -WarningVariable first -WarningAction SilentlyContinue).Count | Should -Be 1
            $first | Should -BeNullOrEmpty
            @(Update-BackupEncryption -EncryptionKey $rot.Key -Confirm:$false -WarningVariable again -WarningAction SilentlyContinue).Count | Should -Be 0
            $again[0].Message | Should -BeLike '*nothing was re-wrapped*'
            { Update-BackupEncryption -EncryptionKey $rot.Key -Confirm:$false -WarningAction Stop } | Should -Throw
        }
    }

    Context '10. -Verbose, -Debug and the preference parameters' {
        It 'shows the steps of a backup with sizes and timings, and each share operation with -Debug' {
            $records = Start-InfrastructureBackup -Confirm:$false -Verbose -Debug 4>&1 5>&1
            $verbose = @($records | Where-Object { $_ -is [System.Management.Automation.VerboseRecord] }).Message -join "`n"
            $debug = @($records | Where-Object { $_ -is [System.Management.Automation.DebugRecord] }).Message -join "`n"
            $verbose | Should -Match 'Role Config \(directory\): \d+ bytes exported, \d+ bytes stored as .+ in \d+\.\d s'
            $verbose | Should -Match 'committed as MASBackup/'
            $debug | Should -Match 'Share: write\(MASBackup/.+\) done in \d+ ms'
            $debug | Should -Match 'Share: rename\('
            @($records | Where-Object { $_.PSObject.TypeNames -contains 'AzsBackup.Backup' }).Count | Should -Be 1
        }

        It 'writes nothing to the console when a pipeline stops early (Select-Object -First 1), however quickly the host ends' {
            # The host is told to stop when the pipeline no longer wants its objects; it often has
            # ended by then, and what the stopping says about that must not reach the console.
            $text = & $env:AZSBACKUP_TEST_PWSH -NoProfile -NonInteractive -Command "`$env:AZSBACKUP_HOME = '$($svc.Home)'; Import-Module '$env:AZSBACKUP_TEST_MODULE'; 1..30 | ForEach-Object { `$null = Get-InfrastructureRole | Select-Object -First 1 }; 'finished'" 2>&1
            @($text | ForEach-Object { [string]$_ }) | Should -Be @('finished')
        }

        It 'shows the steps of a restore' {
            $records = $second | Restore-AzsBackup -EncryptionKey $svc.Key -Force -Verbose 4>&1
            (@($records | Where-Object { $_ -is [System.Management.Automation.VerboseRecord] }).Message -join "`n") | Should -Match 'Role Config \(directory\) restored into .+: \d+ bytes in \d+\.\d s'
        }

        It 'stays quiet without -Verbose, and lets -ErrorAction, -WarningAction and -InformationAction decide' {
            $quiet = Start-InfrastructureBackup -Confirm:$false 4>&1 5>&1
            @($quiet | Where-Object { $_ -is [System.Management.Automation.VerboseRecord] -or $_ -is [System.Management.Automation.DebugRecord] }).Count | Should -Be 0
            { Test-BackupShare -Path (Join-Path $svc.Share 'missing') -ErrorAction Stop } | Should -Throw -ErrorId 'SharePathNotFound,Test-BackupShare'
            $result = Test-BackupShare -Path (Join-Path $svc.Share 'missing') -ErrorAction SilentlyContinue
            $result.Steps[-1].Name | Should -Be 'Open'
            { Invoke-BackupScheduler -Confirm:$false -WarningAction Stop } | Should -Throw
            $out = Invoke-BackupScheduler -Confirm:$false -WarningAction SilentlyContinue -InformationAction Ignore 3>&1
            @($out).Count | Should -Be 0
        }
    }

    Context '11. paths resolve against the PowerShell location, PSDrives included' {
        It 'resolves ./relative and drive:\ paths the same way in every cmdlet' {
            $work = New-TestFolder 'paths'
            $home2 = New-TestFolder 'paths-home'
            $env:AZSBACKUP_HOME = $home2
            New-Item -ItemType Directory -Path (Join-Path $work 'share'), (Join-Path $work 'data') | Out-Null
            # As an operator makes it at the prompt: in the global scope.
            $null = New-PSDrive -Name AzsPaths -PSProvider FileSystem -Root $work -Scope Global
            Push-Location AzsPaths:\
            try {
                $key = New-EncryptionKey -KeyPath ./backup.key -Confirm:$false
                $key.KeyPath | Should -Be (Join-Path $work 'backup.key')
                Test-Path -LiteralPath (Join-Path $work 'backup.key') | Should -BeTrue
                (Set-BackupShare -Path ./share -EncryptionKey (ConvertTo-Secure (Get-Content -LiteralPath (Join-Path $work 'backup.key') -Raw).Trim()) -PassThru -Confirm:$false).Path | Should -Be (Join-Path $work 'share')
                (Register-InfrastructureRole -Name Data -Provider directory -Path AzsPaths:\data -PassThru -Confirm:$false).Path | Should -Be (Join-Path $work 'data')
                (Test-BackupShare -Path ./share).Path | Should -Be (Join-Path $work 'share')
                (Get-InfrastructureBackup -Path ./share) | Should -BeNullOrEmpty
            }
            finally {
                Pop-Location
                Remove-PSDrive -Name AzsPaths -Scope Global
            }
        }
    }

    Context 'the Azure Stack names' {
        It 'exports Azs.Backup.Admin''s names, mapped onto ours' {
            (Get-Alias Set-AzsBackupConfiguration).ResolvedCommandName | Should -Be 'Set-BackupShare'
            (Get-Alias Get-AzsBackupConfiguration).ResolvedCommandName | Should -Be 'Get-BackupConfiguration'
            (Get-Alias Get-AzsBackupLocation).ResolvedCommandName | Should -Be 'Get-BackupConfiguration'
            (Get-Alias Get-AzsBackup).ResolvedCommandName | Should -Be 'Get-InfrastructureBackup'
            (Get-Alias Start-AzsBackup).ResolvedCommandName | Should -Be 'Start-InfrastructureBackup'
            (Get-Command New-AzsEncryptionKeyBase64).CommandType | Should -Be 'Function'
            (Get-Command Set-BackupShare).Parameters['Path'].Aliases | Should -Contain 'BackupShare'
        }

        It 'runs a script in the style of the Azure Stack documentation unchanged, on the SMB share' {
            if ($env:AZSBACKUP_TEST_SMB_ERROR) { throw "No Samba share: $env:AZSBACKUP_TEST_SMB_ERROR" }
            $azs = New-Service 'azurestack'
            $env:AZSBACKUP_HOME = New-TestFolder 'azurestack-home'
            Register-InfrastructureRole -Name Config -Provider directory -Path $azs.Data -Confirm:$false
            $script = Join-Path $PSScriptRoot 'AzureStack.Docs.ps1'
            $result = & $script -SharePath $env:AZSBACKUP_TEST_SMB_URL -UserName $env:AZSBACKUP_TEST_SMB_USER -Password (ConvertTo-Secure $secrets.SmbPassword) 6>$null | Select-Object -Last 1
            $result.Configuration.Path | Should -Be $env:AZSBACKUP_TEST_SMB_URL
            $result.Configuration.UserName | Should -Not -BeNullOrEmpty
            $result.Configuration.BackupFrequencyInHours | Should -Be 10
            $result.Configuration.BackupRetentionPeriodInDays | Should -Be 5
            $result.Job.State | Should -Be 'Completed'
            $result.Backup.Status | Should -Be 'Succeeded'
            $result.Restored.Status | Should -Be @('Succeeded')
        }
    }

    Context '-PassThru and -Force' {
        It 'returns nothing from <Name> unless -PassThru' -ForEach @(
            @{ Name = 'Set-BackupShare'; Call = { param($p) Set-BackupShare -BackupFrequencyInHours 8 -SkipValidation -Confirm:$false @p }; Type = 'AzsBackup.BackupLocation' }
            @{ Name = 'Register-InfrastructureRole'; Call = { param($p) Register-InfrastructureRole -Name Config -Provider directory -Path $svc.Data -Confirm:$false @p }; Type = 'AzsBackup.InfrastructureRole' }
        ) {
            & $Call @{} | Should -BeNullOrEmpty
            (& $Call @{ PassThru = $true }).PSObject.TypeNames | Should -Contain $Type
        }

        It 'Clear-BackupConfiguration asks (ConfirmImpact High) unless -Force, and returns the reset location with -PassThru' {
            $clear = New-Service 'clear'
            { Clear-BackupConfiguration -ErrorAction Stop } | Should -Throw '*NonInteractive*'
            (Get-BackupConfiguration).Path | Should -Be $clear.Share
            $reset = Clear-BackupConfiguration -Force -PassThru
            $reset.Path | Should -BeNullOrEmpty
        }

        It 'Remove-InfrastructureBackup -Force removes without asking' {
            $extra = Start-InfrastructureBackup -Confirm:$false
            { $extra | Remove-InfrastructureBackup -ErrorAction Stop } | Should -Throw '*NonInteractive*'
            $extra | Remove-InfrastructureBackup -Force
            (Get-InfrastructureBackup).Name | Should -Not -Contain $extra.Name
        }
    }

    Context 'argument completers' {
        It 'completes -Name with the backups on the share and -RoleName with the registered roles' {
            $line = 'Restore-AzsBackup -Name '
            $names = (TabExpansion2 -inputScript $line -cursorColumn $line.Length).CompletionMatches.CompletionText
            $names | Should -Contain ([string]$first.Name)
            $line = 'Get-AzsBackup -Name ' + ([string]$first.Name).Substring(0, 6)
            (TabExpansion2 -inputScript $line -cursorColumn $line.Length).CompletionMatches.CompletionText | Should -Contain ([string]$first.Name)
            $line = 'Start-InfrastructureBackup -RoleName Con'
            (TabExpansion2 -inputScript $line -cursorColumn $line.Length).CompletionMatches.CompletionText | Should -Be @('Config')
        }
    }
}
