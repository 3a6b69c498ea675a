# The preference variables, as an operator's script sets them: a compiled cmdlet reads
# $WhatIfPreference, $ErrorActionPreference, $ConfirmPreference and the others from the scope it is
# called in (a function of the script, a child script, a Pester It block), and so must the module's
# cmdlets; a preference set for the whole session must not change what importing the module makes.

Describe 'preference variables' {
    BeforeAll {
        . (Join-Path $PSScriptRoot 'RealHost.ps1')
        $script:work = New-TestFolder 'preferences'
        $script:data = Join-Path $work 'data'
        $null = New-Item -ItemType Directory -Path $data
        Set-Content -LiteralPath (Join-Path $data 'settings.json') -Value '{"nodes":4}'
        $env:AZSBACKUP_HOME = Join-Path $work 'home'
        $script:key = (New-EncryptionKey -Confirm:$false).Key
        Set-BackupShare -Path (New-TestFolder 'preferences-share') -EncryptionKey $key -Confirm:$false
        Register-InfrastructureRole -Name Config -Provider directory -Path $data -Confirm:$false
        # A child pwsh, as an operator's script runs: its standard output and error as text.
        function Invoke-Pwsh([string] $script) {
            $out = & $env:AZSBACKUP_TEST_PWSH -NoProfile -NonInteractive -Command ("`$PSStyle.OutputRendering = 'PlainText'`n" + $script) 2>&1
            ($out | ForEach-Object { [string]$_ }) -join "`n"
        }
    }

    AfterAll {
        Remove-Module AzsBackup -Force -ErrorAction Ignore
        Remove-Item Env:AZSBACKUP_HOME -ErrorAction Ignore
    }

    Context 'set in the scope that calls the cmdlet' {
        It '$WhatIfPreference = $true changes nothing, as with Remove-Item; -WhatIf:$false still acts' {
            $file = Join-Path $work 'kept.txt'
            Set-Content -LiteralPath $file -Value 'x'
            & {
                $WhatIfPreference = $true
                Remove-Item -LiteralPath $file
                Unregister-InfrastructureRole -Name Config
                Register-InfrastructureRole -Name Other -Provider directory -Path $data
                $null = Start-InfrastructureBackup
            } 6>$null
            Test-Path -LiteralPath $file | Should -BeTrue -Because 'the compiled cmdlet honours the preference'
            @(Get-InfrastructureRole).Name | Should -Be @('Config')
            @(Get-InfrastructureBackup) | Should -BeNullOrEmpty
            & {
                $WhatIfPreference = $true
                Register-InfrastructureRole -Name Other -Provider directory -Path $data -WhatIf:$false
            }
            @(Get-InfrastructureRole).Name | Should -Be @('Config', 'Other')
            Unregister-InfrastructureRole -Name Other -Confirm:$false
        }

        It '$ErrorActionPreference = ''Stop'' makes a not-found error stop the script, with its ErrorId and TargetObject' {
            $caught = $null
            try {
                & {
                    $ErrorActionPreference = 'Stop'
                    Get-InfrastructureRole -Name Nope
                    throw 'the script went on past the error'
                }
            }
            catch { $caught = $_ }
            $caught.FullyQualifiedErrorId | Should -Be 'RoleNotFound,Get-InfrastructureRole'
            $caught.TargetObject | Should -Be 'Nope'
            # -ErrorAction given to the cmdlet still wins over the preference.
            & {
                $ErrorActionPreference = 'Stop'
                Get-InfrastructureRole -Name Nope -ErrorAction SilentlyContinue
            } | Should -BeNullOrEmpty
        }

        It '$ConfirmPreference = ''Low'' asks before a Low-impact change (so a non-interactive run refuses it)' {
            {
                & {
                    $ConfirmPreference = 'Low'
                    Register-InfrastructureRole -Name Asked -Provider directory -Path $data -ErrorAction Stop
                }
            } | Should -Throw '*NonInteractive*'
            Get-InfrastructureRole -Name Asked -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        }

        It '$WarningPreference, $VerbosePreference and $DebugPreference decide the streams' {
            { & { $WarningPreference = 'Stop'; $null = Invoke-BackupScheduler -Confirm:$false } } | Should -Throw
            $records = & {
                $VerbosePreference = 'Continue'
                $DebugPreference = 'Continue'
                Start-InfrastructureBackup -Confirm:$false
            } 4>&1 5>&1
            @($records | Where-Object { $_ -is [System.Management.Automation.VerboseRecord] }).Count | Should -BeGreaterThan 0
            @($records | Where-Object { $_ -is [System.Management.Automation.DebugRecord] }).Count | Should -BeGreaterThan 0
            $quiet = & { $WarningPreference = 'SilentlyContinue'; Invoke-BackupScheduler -Confirm:$false } 3>&1
            @($quiet | Where-Object { $_ -is [System.Management.Automation.WarningRecord] }).Count | Should -Be 0
        }
    }

    Context 'set for the whole session' {
        It 'importing the module under $<Name> asks nothing and makes every alias' -ForEach @(
            @{ Name = 'ConfirmPreference'; Value = '''Low''' }
            @{ Name = 'WhatIfPreference'; Value = '$true' }
        ) {
            $text = Invoke-Pwsh "`$$Name = $Value; Import-Module '$env:AZSBACKUP_TEST_MODULE'; 'aliases: ' + @(Get-Alias Get-AzsBackup, Start-AzsBackup -ErrorAction SilentlyContinue).Count"
            $text | Should -Not -Match 'NonInteractive|What if'
            $text | Should -Match 'aliases: 2'
        }
    }

    Context 'a piped list under -Force' {
        It 'Restore-AzsBackup -WhatIf says what it would do with each piped backup, and restores none' {
            $backups = @((Start-InfrastructureBackup -Confirm:$false), (Start-InfrastructureBackup -Confirm:$false))
            Set-Content -LiteralPath (Join-Path $data 'settings.json') -Value 'changed'
            $names = ($backups.Name | ForEach-Object { "'$_'" }) -join ','
            # The key reaches the child in a file only this user reads, never on its command line.
            $keyFile = Join-Path $work 'key.txt'
            Set-Content -LiteralPath $keyFile -Value ([System.Net.NetworkCredential]::new('', $key).Password)
            & chmod 600 $keyFile
            $text = Invoke-Pwsh "`$env:AZSBACKUP_HOME = '$env:AZSBACKUP_HOME'; Import-Module '$env:AZSBACKUP_TEST_MODULE'; `$key = ConvertTo-SecureString -AsPlainText -Force (Get-Content -LiteralPath '$keyFile' -Raw).Trim(); $names | ForEach-Object { Get-InfrastructureBackup -Name `$_ } | Restore-AzsBackup -EncryptionKey `$key -Force -WhatIf"
            foreach ($backup in $backups) { $text | Should -Match ('What if: .*' + $backup.Name) }
            Get-Content -LiteralPath (Join-Path $data 'settings.json') | Should -Be 'changed'
        }
    }
}
