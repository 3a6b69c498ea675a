# The generated module against its manifests: module manifest, exports, parameters and parameter
# sets, generated-code rules and help. Expectations come from the compiled manifests JSON
# ($env:AZSBACKUP_TEST_MANIFESTS), never from a second list written by hand.

BeforeDiscovery {
    $compiled = Get-Content -LiteralPath $env:AZSBACKUP_TEST_MANIFESTS -Raw | ConvertFrom-Json -AsHashtable
    $script:cmdletCases = foreach ($key in ($compiled.cmdlets.Keys | Sort-Object)) {
        @{ Manifest = $compiled.cmdlets[$key]; Name = $compiled.cmdlets[$key].name }
    }
}

BeforeAll {
    $script:modulePath = $env:AZSBACKUP_TEST_MODULE
    $script:moduleDir = Split-Path -Parent $modulePath
    $script:compiled = Get-Content -LiteralPath $env:AZSBACKUP_TEST_MANIFESTS -Raw | ConvertFrom-Json -AsHashtable
    $script:manifestNames = @($compiled.cmdlets.Values | ForEach-Object { $_.name } | Sort-Object)
    # The other names of a cmdlet (Azure Stack's): plain aliases, or functions when they expand a property.
    $script:aliasDefs = @($compiled.cmdlets.Values | ForEach-Object { $c = $_; $_.aliases | ForEach-Object { @{ Name = $_.name; Target = $c.name; Expand = $_['expandProperty'] } } })
    $script:aliasFunctionNames = @($aliasDefs | Where-Object Expand | ForEach-Object Name)
    $script:plainAliasNames = @($aliasDefs | Where-Object { -not $_.Expand } | ForEach-Object Name | Sort-Object)
    $script:functionNames = @(@($manifestNames) + @($aliasFunctionNames) | Sort-Object)
    $script:typeMap = @{
        'String' = 'System.String'; 'String[]' = 'System.String[]'; 'Int32' = 'System.Int32'; 'Int64' = 'System.Int64'
        'Boolean' = 'System.Boolean'; 'Switch' = 'System.Management.Automation.SwitchParameter'; 'DateTime' = 'System.DateTime'
        'Guid' = 'System.Guid'; 'SecureString' = 'System.Security.SecureString'; 'PSCredential' = 'System.Management.Automation.PSCredential'
    }
    $script:commonParameters = [System.Management.Automation.PSCmdlet]::CommonParameters + [System.Management.Automation.PSCmdlet]::OptionalCommonParameters
    Import-Module $modulePath -Force -WarningVariable script:importWarnings -ErrorAction Stop
}

AfterAll {
    Remove-Module AzsBackup -Force -ErrorAction SilentlyContinue
}

Describe 'Module manifest and exports' {
    It 'passes Test-ModuleManifest with the version, edition and explicit export list' {
        $info = Test-ModuleManifest -Path $modulePath -ErrorAction Stop
        $data = Import-PowerShellDataFile -LiteralPath $modulePath
        $info.Version.ToString() | Should -Be (Get-Content (Join-Path $env:AZSBACKUP_TEST_REPO 'package.json') -Raw | ConvertFrom-Json).version
        $data.PowerShellVersion | Should -Be '7.2'
        $data.CompatiblePSEditions | Should -Be @('Core')
        $data.FunctionsToExport | Should -Not -Contain '*'
        @($data.FunctionsToExport | Sort-Object) | Should -Be $functionNames
        @($data.AliasesToExport | Sort-Object) | Should -Be $plainAliasNames
        $data.FormatsToProcess | Should -Be @('AzsBackup.format.ps1xml')
        $data.Description | Should -Not -BeNullOrEmpty
        $data.Author | Should -Not -BeNullOrEmpty
        $data.PrivateData.PSData.LicenseUri | Should -Not -BeNullOrEmpty
        $data.PrivateData.PSData.Tags | Should -Not -BeNullOrEmpty
        $data.PrivateData.PSData.Tags | ForEach-Object { $_ | Should -Not -Match '\s' }
    }

    It 'imports without a warning' {
        $warnings = & $env:AZSBACKUP_TEST_PWSH -NoProfile -NonInteractive -Command "Import-Module '$modulePath' 3>&1 | ForEach-Object { 'WARN:' + `$_ }" 2>&1
        $warnings | Should -BeNullOrEmpty
        $importWarnings | Should -BeNullOrEmpty
    }

    It 'exports exactly the manifests'' cmdlets and their other names, with approved verbs and singular nouns' {
        @((Get-Command -Module AzsBackup -CommandType Function).Name | Sort-Object) | Should -Be $functionNames
        @((Get-Command -Module AzsBackup -CommandType Alias).Name | Sort-Object) | Should -Be $plainAliasNames
        foreach ($a in $aliasDefs | Where-Object { -not $_.Expand }) { (Get-Alias -Name $a.Name).ResolvedCommandName | Should -Be $a.Target }
        $exported = @((Get-Command -Module AzsBackup).Name | Sort-Object)
        $approved = (Get-Verb).Verb
        foreach ($name in $exported) {
            $verb, $noun = $name -split '-', 2
            $approved | Should -Contain $verb -Because "$name must use an approved verb"
            # Singular: no plural ending, except nouns whose last word is naturally singular in -s.
            $noun | Should -Not -Match '(?<!s)s$' -Because "$name must have a singular noun"
        }
    }
}

Describe 'Generated files' {
    It 'parse without errors: <_>' -ForEach @('AzsBackup.psm1', 'AzsBackup.psd1') {
        $tokens = $null; $errors = $null
        $null = [System.Management.Automation.Language.Parser]::ParseFile((Join-Path $moduleDir $_), [ref] $tokens, [ref] $errors)
        $errors | Should -BeNullOrEmpty
    }

    It 'are well-formed XML: <_>' -ForEach @('AzsBackup.format.ps1xml', 'en-US/AzsBackup-help.xml') {
        { [xml](Get-Content -LiteralPath (Join-Path $moduleDir $_) -Raw) } | Should -Not -Throw
    }

    Context 'analyzer rules' {
        BeforeAll {
            $tokens = $null; $errors = $null
            $script:ast = [System.Management.Automation.Language.Parser]::ParseFile((Join-Path $moduleDir 'AzsBackup.psm1'), [ref] $tokens, [ref] $errors)
            # Functions, not the methods of the module's one class (a path transformation attribute).
            $script:functions = @($ast.FindAll({ param($n) $n -is [System.Management.Automation.Language.FunctionDefinitionAst] -and $n.Parent -isnot [System.Management.Automation.Language.FunctionMemberAst] }, $true))
            $script:exportedFunctions = @($functions | Where-Object { $manifestNames -contains $_.Name })
        }

        It 'defines one function per manifest' {
            @($exportedFunctions.Name | Sort-Object) | Should -Be $manifestNames
        }

        It 'uses approved verbs for every function, private ones too' {
            $approved = (Get-Verb).Verb
            foreach ($f in $functions) {
                $approved | Should -Contain ($f.Name -split '-')[0] -Because "$($f.Name) must use an approved verb"
            }
        }

        It 'declares SupportsShouldProcess on state-changing verbs and calls ShouldProcess when it does' {
            $stateChanging = @('New', 'Set', 'Remove', 'Start', 'Stop', 'Restart', 'Reset', 'Update', 'Clear', 'Restore', 'Register', 'Unregister')
            foreach ($f in $exportedFunctions) {
                $binding = $f.Body.ParamBlock.Attributes | Where-Object { $_.TypeName.Name -eq 'CmdletBinding' }
                $supports = [bool]($binding.NamedArguments | Where-Object { $_.ArgumentName -eq 'SupportsShouldProcess' })
                $callsShouldProcess = $f.Body.Extent.Text -match '\$PSCmdlet\.ShouldProcess\('
                if ($stateChanging -contains ($f.Name -split '-')[0]) {
                    $supports | Should -BeTrue -Because "$($f.Name) changes state"
                }
                $callsShouldProcess | Should -Be $supports -Because "$($f.Name) must call ShouldProcess exactly when it supports it"
            }
        }

        It 'has no [string] password, secret or key parameters' {
            foreach ($f in $exportedFunctions) {
                foreach ($p in $f.Body.ParamBlock.Parameters) {
                    if ($p.Name.VariablePath.UserPath -match 'Password|Secret|EncryptionKey$') {
                        $p.StaticType.FullName | Should -BeIn @('System.Security.SecureString', 'System.Management.Automation.PSCredential') -Because "$($f.Name) -$($p.Name.VariablePath.UserPath) is a secret"
                    }
                }
            }
        }

        It 'declares OutputType on every function whose manifest returns objects' {
            foreach ($f in $exportedFunctions) {
                $manifest = $compiled.cmdlets[$f.Name.ToLowerInvariant()]
                $outputType = $f.Body.ParamBlock.Attributes | Where-Object { $_.TypeName.Name -eq 'OutputType' }
                if ($manifest.outputType) {
                    $outputType.PositionalArguments.Value | Should -Be $manifest.outputType
                }
            }
        }

        It 'calls no command by an alias' {
            $aliases = @((Get-Alias).Name)
            $commands = @($ast.FindAll({ param($n) $n -is [System.Management.Automation.Language.CommandAst] }, $true))
            $commands.Count | Should -BeGreaterThan 0
            foreach ($c in $commands) {
                $name = $c.GetCommandName()
                if ($name) { $aliases | Should -Not -Contain $name -Because "line $($c.Extent.StartLineNumber) calls '$name'" }
            }
        }
    }
}

Describe '<Name> matches its manifest' -ForEach $cmdletCases {
    BeforeAll {
        $script:command = Get-Command -Name $Name -Module AzsBackup
    }

    It 'has exactly the manifest''s parameters, typed, with their aliases and validation' {
        $own = @($command.Parameters.Keys | Where-Object { $commonParameters -notcontains $_ } | Sort-Object)
        $own | Should -Be @($Manifest.parameters | ForEach-Object { $_.name } | Sort-Object)
        foreach ($p in $Manifest.parameters) {
            $actual = $command.Parameters[$p.name]
            $actual.ParameterType.FullName | Should -Be $typeMap[$p.type] -Because "-$($p.name) is $($p.type)"
            @($actual.Aliases | Sort-Object) | Should -Be @($p.aliases | Sort-Object)
            $v = $p.validation
            $set = $actual.Attributes | Where-Object { $_ -is [System.Management.Automation.ValidateSetAttribute] }
            if ($v.set) { @($set.ValidValues) | Should -Be @($v.set) } else { $set | Should -BeNullOrEmpty }
            $range = $actual.Attributes | Where-Object { $_ -is [System.Management.Automation.ValidateRangeAttribute] }
            if ($v.range) { $range.MinRange | Should -Be $v.range.min; $range.MaxRange | Should -Be $v.range.max } else { $range | Should -BeNullOrEmpty }
            $pattern = $actual.Attributes | Where-Object { $_ -is [System.Management.Automation.ValidatePatternAttribute] }
            if ($null -ne $v.pattern) { $pattern.RegexPattern | Should -BeExactly $v.pattern } else { $pattern | Should -BeNullOrEmpty }
            $length = $actual.Attributes | Where-Object { $_ -is [System.Management.Automation.ValidateLengthAttribute] }
            if ($v.length) { $length.MinLength | Should -Be $v.length.min; $length.MaxLength | Should -Be $v.length.max } else { $length | Should -BeNullOrEmpty }
        }
    }

    It 'has the manifest''s parameter sets, with mandatory, position and pipeline binding per set' {
        $declared = @($Manifest.parameterSets | Where-Object { $_ -ne '__AllParameterSets' } | Sort-Object)
        if ($declared.Count -gt 0) {
            @($command.ParameterSets.Name | Sort-Object) | Should -Be $declared
            $command.DefaultParameterSet | Should -Be $Manifest.defaultParameterSet
        }
        foreach ($p in $Manifest.parameters) {
            foreach ($m in $p.sets) {
                $setInfo = if ($m.set -eq '__AllParameterSets') { $command.ParameterSets[0] } else { $command.ParameterSets | Where-Object Name -EQ $m.set }
                $setInfo | Should -Not -BeNullOrEmpty -Because "-$($p.name) belongs to set $($m.set)"
                $inSet = $setInfo.Parameters | Where-Object Name -EQ $p.name
                $inSet | Should -Not -BeNullOrEmpty
                $inSet.IsMandatory | Should -Be ([bool]$m.mandatory) -Because "-$($p.name) in set $($m.set)"
                $expectedPosition = if ($null -ne $m.position) { [int]$m.position } else { [int]::MinValue }
                $inSet.Position | Should -Be $expectedPosition -Because "-$($p.name) in set $($m.set)"
                # A set that no mandatory piped parameter chooses takes nothing from the pipeline when another set is chosen that way.
                $chosenByPipeline = @($Manifest.parameters | ForEach-Object { $_.sets } | Where-Object { $_.mandatory -and $_.valueFromPipelineByPropertyName } | ForEach-Object { $_['set'] })
                $expectPipeline = [bool]$m.valueFromPipelineByPropertyName -and ($chosenByPipeline.Count -eq 0 -or $chosenByPipeline -contains $m.set)
                $inSet.ValueFromPipelineByPropertyName | Should -Be $expectPipeline -Because "-$($p.name) in set $($m.set)"
                $inSet.ValueFromPipeline | Should -BeFalse
            }
            # Not in a set means not in it in PowerShell either.
            $memberOf = @($p.sets | ForEach-Object { $_['set'] })
            foreach ($setInfo in $command.ParameterSets) {
                if ($memberOf -notcontains $setInfo.Name -and $memberOf -notcontains '__AllParameterSets') {
                    $setInfo.Parameters.Name | Should -Not -Contain $p.name -Because "-$($p.name) is not in set $($setInfo.Name)"
                }
            }
        }
    }

    It 'supports ShouldProcess with the manifest''s ConfirmImpact, and declares its OutputType' {
        $command.Parameters.ContainsKey('WhatIf') | Should -Be ([bool]$Manifest.supportsShouldProcess)
        $command.Parameters.ContainsKey('Confirm') | Should -Be ([bool]$Manifest.supportsShouldProcess)
        $binding = $command.ScriptBlock.Attributes | Where-Object { $_ -is [System.Management.Automation.CmdletBindingAttribute] }
        $binding.SupportsShouldProcess | Should -Be ([bool]$Manifest.supportsShouldProcess)
        if ($Manifest.supportsShouldProcess) { $binding.ConfirmImpact.ToString() | Should -Be $Manifest.confirmImpact }
        if ($Manifest.outputType) { $command.OutputType.Name | Should -Contain $Manifest.outputType }
    }

    It 'shows the synopsis, every parameter''s help and every example in Get-Help -Full' {
        $normalize = { param($s) ([string]$s -replace '\s+', ' ').Trim() }
        $help = & $normalize (Get-Help $Name -Full | Out-String -Width 10000)
        $help | Should -BeLike ('*' + [WildcardPattern]::Escape((& $normalize $Manifest.synopsis)) + '*')
        foreach ($p in $Manifest.parameters) {
            $help | Should -BeLike ('*-' + $p.name + '*' + [WildcardPattern]::Escape((& $normalize $p.help)) + '*') -Because "-$($p.name) has help"
        }
        @($Manifest.examples).Count | Should -BeGreaterThan 0
        foreach ($ex in $Manifest.examples | Where-Object { $_.shell -ne 'Cli' }) {
            $help | Should -BeLike ('*' + [WildcardPattern]::Escape((& $normalize $ex.title)) + '*')
            $help | Should -BeLike ('*' + [WildcardPattern]::Escape((& $normalize $ex.code)) + '*')
            $help | Should -BeLike ('*' + [WildcardPattern]::Escape((& $normalize $ex.remarks)) + '*')
        }
        # The command line's own examples (bash, azsbackup) are not PowerShell's help.
        foreach ($ex in $Manifest.examples | Where-Object { $_.shell -eq 'Cli' }) {
            $help | Should -Not -BeLike ('*' + [WildcardPattern]::Escape((& $normalize $ex.code)) + '*')
        }
        $detailed = Get-Help $Name -Full
        $detailed.Synopsis | Should -Be (& $normalize $Manifest.synopsis)
    }
}
