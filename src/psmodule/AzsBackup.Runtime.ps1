# The private part of AzsBackup.psm1: the one helper every generated function calls. It turns bound
# parameters into the host's command line (secrets go to standard input, never argv), runs the host
# once with `--output clixml`, lets PowerShell deserialize the objects itself, and turns the host's
# JSON stderr lines into Write-Progress and real ErrorRecords as they arrive.
#
# The generator (src/psmodule/psm1.ts) embeds this file in AzsBackup.psm1 after two lines it writes
# from the build: $script:AzsBackupHostPath (the host, recorded at build time) and
# $script:AzsBackupRemoteLocation (the pattern of a path kept as given, src/manifest/model.ts).
# test/powershell/runtime-parse.test.ts parses it with PowerShell's own parser.

# Path parameters: a relative path, ~ or a PowerShell drive resolves against the current location
# before validation, as in every PowerShell cmdlet; a UNC path or a URL (smb://) stays as it is.
class AzsBackupPathAttribute : System.Management.Automation.ArgumentTransformationAttribute {
    [System.Object] Transform([System.Management.Automation.EngineIntrinsics] $engineIntrinsics, [System.Object] $inputData) {
        $resolved = foreach ($item in @($inputData)) {
            $text = [System.String]$item
            if (-not $text -or $text -match $script:AzsBackupRemoteLocation) {
                $text
            }
            else {
                $engineIntrinsics.SessionState.Path.GetUnresolvedProviderPathFromPSPath($text)
            }
        }
        if ($inputData -is [System.Array]) { return [System.String[]] @($resolved) }
        return $resolved
    }
}

function Get-AzsBackupCompletion {
    # Tab completion from another cmdlet's objects (backup names from the share, registered roles).
    [CmdletBinding()]
    [OutputType([System.Management.Automation.CompletionResult])]
    param(
        [Parameter(Mandatory = $true)] [System.String] $Source,
        [Parameter(Mandatory = $true)] [System.String] $Property,
        [AllowEmptyString()] [System.String] $WordToComplete = '',
        [System.Collections.IDictionary] $BoundParameters = @{}
    )
    $sourceParameters = @{ ErrorAction = 'Ignore' }
    $command = Get-Command -Name $Source -ErrorAction Ignore
    foreach ($name in @('Path', 'Credential')) {
        if ($BoundParameters.Contains($name) -and $command -and $command.Parameters.ContainsKey($name)) { $sourceParameters[$name] = $BoundParameters[$name] }
    }
    $word = $WordToComplete.Trim([System.Char]39, [System.Char]34)
    & $Source @sourceParameters | ForEach-Object { [System.String]$_.$Property } | Where-Object { $_ -like ($word + '*') } | Sort-Object -Unique | ForEach-Object {
        [System.Management.Automation.CompletionResult]::new($_, $_, [System.Management.Automation.CompletionResultType]::ParameterValue, $_)
    }
}

function Use-AzsBackupCallerPreference {
    # A compiled cmdlet reads $WhatIfPreference, $ErrorActionPreference and the other preference
    # variables in the scope it is called from; a script module's function sees the module's and the
    # global ones only, so a script's `$WhatIfPreference = $true` (in a function, a child script, a
    # Pester block) would not hold. Each generated function calls this first: it copies the caller's
    # value of each preference into the function's scope, unless its common parameter was given.
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)] [System.Management.Automation.PSCmdlet] $Cmdlet)
    $bound = $Cmdlet.MyInvocation.BoundParameters
    $preferences = [ordered]@{
        ErrorActionPreference = 'ErrorAction'
        WarningPreference = 'WarningAction'
        InformationPreference = 'InformationAction'
        VerbosePreference = 'Verbose'
        DebugPreference = 'Debug'
        ProgressPreference = 'ProgressAction'
        WhatIfPreference = 'WhatIf'
        ConfirmPreference = 'Confirm'
    }
    foreach ($name in $preferences.Keys) {
        if ($bound.ContainsKey($preferences[$name])) { continue }
        $variable = $Cmdlet.SessionState.PSVariable.Get($name)
        if ($variable) {
            # Scope 1 is the calling function's; Set-Variable must not itself obey -WhatIf or ask.
            Set-Variable -Name $name -Value $variable.Value -Scope 1 -WhatIf:$false -Confirm:$false
        }
    }
}

function New-AzsBackupErrorRecord {
    [CmdletBinding()]
    [OutputType([System.Management.Automation.ErrorRecord])]
    param(
        [Parameter(Mandatory = $true)] [System.String] $Message,
        [Parameter(Mandatory = $true)] [System.String] $ErrorId,
        [System.String] $Category = 'NotSpecified',
        [System.Object] $TargetObject,
        [System.String] $RecommendedAction
    )
    $parsedCategory = [System.Management.Automation.ErrorCategory]::NotSpecified
    if (-not [System.Enum]::TryParse([System.Management.Automation.ErrorCategory], $Category, $true, [ref] $parsedCategory)) {
        $parsedCategory = [System.Management.Automation.ErrorCategory]::NotSpecified
    }
    # The exception type follows the category, so catch blocks filtered by type work as usual.
    $exception = switch ($parsedCategory.ToString()) {
        'InvalidArgument' { [System.ArgumentException]::new($Message) }
        'InvalidType' { [System.ArgumentException]::new($Message) }
        'ObjectNotFound' { [System.Management.Automation.ItemNotFoundException]::new($Message) }
        'AuthenticationError' { [System.Security.Authentication.AuthenticationException]::new($Message) }
        'PermissionDenied' { [System.UnauthorizedAccessException]::new($Message) }
        'SecurityError' { [System.Security.SecurityException]::new($Message) }
        'InvalidData' { [System.IO.InvalidDataException]::new($Message) }
        'ConnectionError' { [System.IO.IOException]::new($Message) }
        'ResourceUnavailable' { [System.IO.IOException]::new($Message) }
        'ResourceBusy' { [System.InvalidOperationException]::new($Message) }
        'InvalidOperation' { [System.InvalidOperationException]::new($Message) }
        'OperationTimeout' { [System.TimeoutException]::new($Message) }
        'OperationStopped' { [System.OperationCanceledException]::new($Message) }
        default { [System.Exception]::new($Message) }
    }
    $record = [System.Management.Automation.ErrorRecord]::new($exception, $ErrorId, $parsedCategory, $TargetObject)
    $record.ErrorDetails = [System.Management.Automation.ErrorDetails]::new($Message)
    if ($RecommendedAction) {
        $record.ErrorDetails.RecommendedAction = $RecommendedAction
    }
    $record
}

function Resolve-AzsBackupHost {
    [CmdletBinding()]
    [OutputType([System.Management.Automation.PSObject])]
    param()
    $hostFile = $null
    if ($env:AZSBACKUP_CLI) {
        $hostFile = $env:AZSBACKUP_CLI
    }
    elseif ($script:AzsBackupHostPath -and (Test-Path -LiteralPath $script:AzsBackupHostPath -PathType Leaf)) {
        $hostFile = $script:AzsBackupHostPath
    }
    else {
        $onPath = Get-Command -Name 'azsbackup' -CommandType Application -ErrorAction Ignore | Select-Object -First 1
        if ($onPath) {
            $hostFile = $onPath.Source
        }
    }
    if (-not $hostFile) {
        return $null
    }
    # A JavaScript entry point runs under node; anything else is executed as it is.
    if ($hostFile -match '\.(c|m)?js$') {
        $node = Get-Command -Name 'node' -CommandType Application -ErrorAction Ignore | Select-Object -First 1
        if (-not $node) {
            return $null
        }
        # node's flags as the installed command's first line gives them (src/process/node-flags.ts).
        return [pscustomobject]@{ FilePath = $node.Source; Prefix = @('--max-semi-space-size=2', '--interrupt-budget=1081344', $hostFile) }
    }
    [pscustomobject]@{ FilePath = $hostFile; Prefix = @() }
}

function ConvertTo-AzsBackupHostCall {
    [CmdletBinding()]
    [OutputType([System.Management.Automation.PSObject])]
    param(
        [Parameter(Mandatory = $true)] [System.String] $CommandName,
        [System.String[]] $ParameterName = @(),
        [Parameter(Mandatory = $true)] [System.Collections.IDictionary] $BoundParameters
    )
    $arguments = [System.Collections.Generic.List[System.String]]::new()
    $stdinLines = [System.Collections.Generic.List[System.String]]::new()
    # A secret is one line of standard input: one holding a line break would reach the host cut at
    # it, the rest read as the next secret. The caller refuses the call when this names a parameter.
    $lineBreakIn = $null
    $invariant = [System.Globalization.CultureInfo]::InvariantCulture
    $arguments.Add($CommandName)
    foreach ($name in $ParameterName) {
        if (-not $BoundParameters.ContainsKey($name)) {
            continue
        }
        $value = $BoundParameters[$name]
        $flag = '-' + $name
        $secretLines = @()
        if ($value -is [System.Security.SecureString]) {
            # The host reads each '-' secret from standard input, in command-line order.
            $arguments.Add($flag)
            $arguments.Add('-')
            $secretLines = @([System.Net.NetworkCredential]::new('', $value).Password)
        }
        elseif ($value -is [System.Management.Automation.PSCredential]) {
            # A credential given as '-' is two lines: the user name, then the password.
            $arguments.Add($flag)
            $arguments.Add('-')
            $secretLines = @([System.String]$value.UserName, $value.GetNetworkCredential().Password)
        }
        elseif ($value -is [System.Management.Automation.SwitchParameter]) {
            if ($value.IsPresent) { $arguments.Add($flag) } else { $arguments.Add($flag + ':$false') }
        }
        elseif ($value -is [System.Boolean]) {
            if ($value) { $arguments.Add($flag + ':$true') } else { $arguments.Add($flag + ':$false') }
        }
        else {
            foreach ($item in @($value)) {
                $text = if ($item -is [System.DateTime]) {
                    $item.ToUniversalTime().ToString('o', $invariant)
                }
                else {
                    [System.Convert]::ToString($item, $invariant)
                }
                # The joined form keeps a value that starts with '-' from reading as a parameter name.
                if ($text.StartsWith('-')) {
                    $arguments.Add($flag + ':' + $text)
                }
                else {
                    $arguments.Add($flag)
                    $arguments.Add($text)
                }
            }
        }
        foreach ($line in $secretLines) {
            if ($line -match '[\r\n]') { $lineBreakIn = $name }
            $stdinLines.Add($line)
        }
    }
    [pscustomobject]@{ Arguments = $arguments.ToArray(); StdinLines = $stdinLines.ToArray(); LineBreakIn = $lineBreakIn }
}

function Invoke-AzsBackupHost {
    [CmdletBinding()]
    param(
        [Parameter(Mandatory = $true)] [System.Management.Automation.PSCmdlet] $Cmdlet,
        [Parameter(Mandatory = $true)] [System.String] $CommandName,
        [System.String[]] $ParameterName = @(),
        [Parameter(Mandatory = $true)] [System.Collections.IDictionary] $BoundParameters,
        [System.String] $OutputTypeName,
        [System.String[]] $SecretPropertyName = @(),
        [System.Management.Automation.SwitchParameter] $ReportsProgress,
        [System.Management.Automation.SwitchParameter] $Confirmed,
        [System.Management.Automation.SwitchParameter] $DiscardOutput
    )
    $hostCommand = Resolve-AzsBackupHost
    if (-not $hostCommand) {
        $Cmdlet.ThrowTerminatingError((New-AzsBackupErrorRecord -ErrorId 'HostNotFound' -Category 'ObjectNotFound' -TargetObject 'azsbackup' -Message ('The azsbackup host was not found: not at ' + $script:AzsBackupHostPath + ', not in $env:AZSBACKUP_CLI and not on PATH (or node is missing).') -RecommendedAction 'Install azsbackup, put it on PATH, or set $env:AZSBACKUP_CLI to its path.'))
    }

    $call = ConvertTo-AzsBackupHostCall -CommandName $CommandName -ParameterName $ParameterName -BoundParameters $BoundParameters
    if ($call.LineBreakIn) {
        $Cmdlet.ThrowTerminatingError((New-AzsBackupErrorRecord -ErrorId 'SecretHasLineBreak' -Category 'InvalidArgument' -TargetObject $call.LineBreakIn -Message ('The value given for -' + $call.LineBreakIn + ' holds a line break. Secrets reach azsbackup one line each, so only the text before the break would have been used; nothing was done.') -RecommendedAction ('Give -' + $call.LineBreakIn + ' without line breaks. A secret read from a file with Get-Content -Raw keeps its last line break: trim it, as in (Get-Content -LiteralPath <file> -Raw).TrimEnd("`r`n").')))
    }
    $start = [System.Diagnostics.ProcessStartInfo]::new($hostCommand.FilePath)
    foreach ($item in $hostCommand.Prefix) { $start.ArgumentList.Add($item) }
    foreach ($item in $call.Arguments) { $start.ArgumentList.Add($item) }
    if ($Confirmed) {
        # ShouldProcess already happened in PowerShell; the host must not ask again.
        $start.ArgumentList.Add('-Confirm:$false')
    }
    $start.ArgumentList.Add('--output')
    $start.ArgumentList.Add('clixml')
    if ($ReportsProgress) {
        $start.ArgumentList.Add('--progress')
        $start.ArgumentList.Add('json')
    }
    # The host speaks PowerShell's syntax in its messages and sends its verbose, debug and warning
    # lines as JSON, which become PowerShell's own streams (filtered by -Verbose, -WarningAction, ...).
    $start.ArgumentList.Add('--dialect')
    $start.ArgumentList.Add('powershell')
    $utf8 = [System.Text.UTF8Encoding]::new($false)
    $start.UseShellExecute = $false
    $start.RedirectStandardInput = $true
    $start.RedirectStandardOutput = $true
    $start.RedirectStandardError = $true
    $start.StandardInputEncoding = $utf8
    $start.StandardOutputEncoding = $utf8
    $start.StandardErrorEncoding = $utf8
    # Relative paths the host meets mean what they mean at the PowerShell prompt.
    $start.WorkingDirectory = $Cmdlet.SessionState.Path.CurrentFileSystemLocation.ProviderPath

    $state = @{ Terminating = $null; Relayed = $false; Other = [System.Collections.Generic.List[System.String]]::new(); Activities = @{} }
    $process = [System.Diagnostics.Process]::Start($start)
    $finished = $false
    try {
        foreach ($line in $call.StdinLines) { $process.StandardInput.Write($line + [System.Char]10) }
        $process.StandardInput.Close()
        $readers = @{ Out = $process.StandardOutput.ReadLineAsync(); Err = $process.StandardError.ReadLineAsync() }
        while ($readers.Count -gt 0) {
            # A short wait keeps the loop where Ctrl-C and Stop-Job can reach it.
            $null = [System.Threading.Tasks.Task]::WaitAny([System.Threading.Tasks.Task[]] @($readers.Values), 200)
            foreach ($stream in @($readers.Keys)) {
                $task = $readers[$stream]
                if (-not $task.IsCompleted) { continue }
                $line = $task.Result
                if ($null -eq $line) { $readers.Remove($stream); continue }
                $readers[$stream] = if ($stream -eq 'Out') { $process.StandardOutput.ReadLineAsync() } else { $process.StandardError.ReadLineAsync() }
                if ($stream -eq 'Out') {
                    if ($DiscardOutput) { continue }
                    Write-AzsBackupHostObject -Cmdlet $Cmdlet -Line $line -SecretPropertyName $SecretPropertyName -AsPlainText:($BoundParameters['AsPlainText'] -eq $true)
                }
                else {
                    Write-AzsBackupHostMessage -Cmdlet $Cmdlet -Line $line -CommandName $CommandName -State $state
                }
            }
        }
        $process.WaitForExit()
        $finished = $true
        $exitCode = $process.ExitCode
    }
    finally {
        if (-not $finished) {
            Stop-AzsBackupHostProcess -Process $process
        }
        $process.Dispose()
    }

    foreach ($id in @($state.Activities.Keys)) {
        $done = [System.Management.Automation.ProgressRecord]::new($id, $state.Activities[$id], 'Completed')
        $done.RecordType = [System.Management.Automation.ProgressRecordType]::Completed
        $Cmdlet.WriteProgress($done)
    }
    if ($state.Terminating) {
        $Cmdlet.ThrowTerminatingError($state.Terminating)
    }
    # 3 is a partial success: its failures came as non-terminating records beside the objects. A
    # failure the host already reported that way (every role of a backup failed) is not repeated.
    if ($exitCode -ne 0 -and $exitCode -ne 3 -and -not $state.Relayed) {
        $detail = ($state.Other | Select-Object -Last 5) -join [System.Environment]::NewLine
        $Cmdlet.ThrowTerminatingError((New-AzsBackupErrorRecord -ErrorId 'HostFailed' -Category 'NotSpecified' -TargetObject $CommandName -Message ('azsbackup ' + $CommandName + ' failed with exit code ' + $exitCode + '. ' + $detail).Trim() -RecommendedAction 'Run the same command with azsbackup directly to see its full output, and report the problem if it persists.'))
    }
}

function Stop-AzsBackupHostProcess {
    # Ctrl-C, Stop-Job or a pipeline that stopped early: the host is asked to stop as on Ctrl-C, so
    # it cancels cleanly (nothing half-written on the share, the job lock released); killed only if
    # it does not end within a minute.
    [CmdletBinding(SupportsShouldProcess = $false)]
    param([Parameter(Mandatory = $true)] [System.Diagnostics.Process] $Process)
    if ($Process.HasExited) { return }
    try {
        # The host may end before kill runs (it had written its last object): what kill says then
        # goes nowhere, since a child's own stderr would reach the console past PowerShell's streams.
        $start = [System.Diagnostics.ProcessStartInfo]::new('kill')
        foreach ($item in @('-s', 'INT', [System.String]$Process.Id)) { $start.ArgumentList.Add($item) }
        $start.UseShellExecute = $false
        $start.RedirectStandardOutput = $true
        $start.RedirectStandardError = $true
        $signal = [System.Diagnostics.Process]::Start($start)
        $null = $signal.StandardError.ReadToEnd() + $signal.StandardOutput.ReadToEnd()
        $signal.WaitForExit()
        $signal.Dispose()
    }
    catch {
        $null = $_
    }
    if (-not $Process.WaitForExit(60000)) {
        $Process.Kill($true)
    }
}

function Write-AzsBackupHostObject {
    [CmdletBinding()]
    param(
        [Parameter(Mandatory = $true)] [System.Management.Automation.PSCmdlet] $Cmdlet,
        [Parameter(Mandatory = $true)] [AllowEmptyString()] [System.String] $Line,
        [System.String[]] $SecretPropertyName = @(),
        [System.Management.Automation.SwitchParameter] $AsPlainText
    )
    if (-not $Line.StartsWith('<Objs')) { return }
    foreach ($object in @([System.Management.Automation.PSSerializer]::Deserialize($Line))) {
        if ($null -eq $object) { continue }
        Add-AzsBackupTypeName -InputObject $object
        if (-not $AsPlainText) {
            foreach ($name in $SecretPropertyName) {
                $property = $object.PSObject.Properties[$name]
                if ($property -and $property.Value -is [System.String] -and $property.Value) {
                    $property.Value = ConvertTo-SecureString -String $property.Value -AsPlainText -Force
                }
            }
        }
        $Cmdlet.WriteObject($object)
    }
}

function Add-AzsBackupTypeName {
    # Also carries the undecorated name, on nested objects too, so objects read and format like
    # the host's own types.
    [CmdletBinding()]
    param([Parameter(Mandatory = $true)] [System.Object] $InputObject)
    if ($InputObject -isnot [System.Management.Automation.PSObject]) { return }
    $typeNames = $InputObject.PSObject.TypeNames
    if ($typeNames.Count -gt 0 -and $typeNames[0] -like 'Deserialized.AzsBackup.*') {
        $typeNames.Insert(0, $typeNames[0].Substring(13))
    }
    foreach ($property in $InputObject.PSObject.Properties) {
        if ($property.MemberType -ne 'NoteProperty') { continue }
        foreach ($item in @($property.Value)) {
            if ($item -is [System.Management.Automation.PSObject] -and $item.PSObject.TypeNames.Count -gt 0 -and $item.PSObject.TypeNames[0] -like 'Deserialized.AzsBackup.*') {
                Add-AzsBackupTypeName -InputObject $item
            }
        }
    }
}

function ConvertTo-AzsBackupDisplayText {
    # Text for the console (messages, progress), as the host shows it on a terminal (sanitize in
    # src/output/display.ts): a message may quote what a writer of the share chose, and its control
    # characters must not drive the terminal, so all but line breaks become U+FFFD. Objects and
    # TargetObject stay exact.
    [CmdletBinding()]
    [OutputType([System.String])]
    param([AllowNull()] [AllowEmptyString()] [System.String] $Text)
    if (-not $Text) { return $Text }
    ($Text -replace '\r\n?', "`n" -replace '\t', ' ') -replace '[\u0000-\u0009\u000b-\u001f\u007f-\u009f]', [System.String][System.Char]0xFFFD
}

function Write-AzsBackupHostMessage {
    [CmdletBinding()]
    param(
        [Parameter(Mandatory = $true)] [System.Management.Automation.PSCmdlet] $Cmdlet,
        [Parameter(Mandatory = $true)] [AllowEmptyString()] [System.String] $Line,
        [Parameter(Mandatory = $true)] [System.String] $CommandName,
        [Parameter(Mandatory = $true)] [System.Collections.IDictionary] $State
    )
    $message = $null
    if ($Line.StartsWith('{')) {
        try { $message = $Line | ConvertFrom-Json -ErrorAction Stop } catch { $message = $null }
    }
    if ($message -and $message.PSObject.Properties['Progress']) {
        $p = $message.Progress
        $id = if ($null -ne $p.Id) { [System.Int32]$p.Id } else { 0 }
        $activity = if ($p.Activity) { ConvertTo-AzsBackupDisplayText ([System.String]$p.Activity) } else { $CommandName }
        $status = if ($p.Status) { ConvertTo-AzsBackupDisplayText ([System.String]$p.Status) } else { 'Running' }
        $record = [System.Management.Automation.ProgressRecord]::new($id, $activity, $status)
        if ($null -ne $p.PercentComplete) { $record.PercentComplete = [System.Math]::Max(-1, [System.Math]::Min(100, [System.Int32]$p.PercentComplete)) }
        if ($null -ne $p.ParentId) { $record.ParentActivityId = [System.Int32]$p.ParentId }
        if ($p.Completed) {
            $record.RecordType = [System.Management.Automation.ProgressRecordType]::Completed
            $State.Activities.Remove($id)
        }
        else {
            $State.Activities[$id] = $activity
        }
        $Cmdlet.WriteProgress($record)
    }
    elseif ($message -and $message.PSObject.Properties['ErrorRecord']) {
        $e = $message.ErrorRecord
        $errorRecord = New-AzsBackupErrorRecord -Message (ConvertTo-AzsBackupDisplayText ([System.String]$e.Message)) -ErrorId ([System.String]$e.ErrorId) -Category ([System.String]$e.Category) -TargetObject $e.TargetObject -RecommendedAction (ConvertTo-AzsBackupDisplayText ([System.String]$e.RecommendedAction))
        # Not finding something is not an error the statement must stop for (as with Get-Item):
        # -ErrorAction decides, as for a role that failed in a partial backup.
        if (($e.PSObject.Properties['Terminating'] -and $e.Terminating -eq $false) -or [System.String]$e.Category -eq 'ObjectNotFound') {
            $Cmdlet.WriteError($errorRecord)
            $State.Relayed = $true
        }
        elseif (-not $State.Terminating) {
            # Raised once the host has exited, so no output it still writes is lost.
            $State.Terminating = $errorRecord
        }
    }
    elseif ($message -and $message.PSObject.Properties['Warning']) {
        # {"Warning":{"Message":…,"TargetObject":…}}, the shape of an error record's.
        $Cmdlet.WriteWarning((ConvertTo-AzsBackupDisplayText ([System.String]$message.Warning.Message)))
    }
    elseif ($message -and $message.PSObject.Properties['Verbose']) {
        $Cmdlet.WriteVerbose((ConvertTo-AzsBackupDisplayText ([System.String]$message.Verbose)))
    }
    elseif ($message -and $message.PSObject.Properties['Debug']) {
        $Cmdlet.WriteDebug((ConvertTo-AzsBackupDisplayText ([System.String]$message.Debug)))
    }
    elseif ($Line) {
        $State.Other.Add((ConvertTo-AzsBackupDisplayText $Line))
        $Cmdlet.WriteVerbose((ConvertTo-AzsBackupDisplayText $Line))
    }
}

function Start-AzsBackupJob {
    # -AsJob: the same function, run to its end in a thread job, so the job's state follows the
    # host, Receive-Job yields the same typed objects, its progress feeds Write-Progress and
    # Stop-Job stops the host as Ctrl-C does.
    [CmdletBinding(SupportsShouldProcess = $false)]
    [OutputType([System.Management.Automation.Job])]
    param(
        [Parameter(Mandatory = $true)] [System.Management.Automation.PSCmdlet] $Cmdlet,
        [Parameter(Mandatory = $true)] [System.String] $CommandName,
        [Parameter(Mandatory = $true)] [System.Collections.IDictionary] $BoundParameters
    )
    $parameters = @{}
    foreach ($key in $BoundParameters.Keys) {
        if ($key -ne 'AsJob' -and $key -ne 'Confirm' -and $key -ne 'WhatIf') { $parameters[$key] = $BoundParameters[$key] }
    }
    $parameters['Confirm'] = $false
    $manifestPath = Join-Path -Path $ExecutionContext.SessionState.Module.ModuleBase -ChildPath 'AzsBackup.psd1'
    $location = $Cmdlet.SessionState.Path.CurrentFileSystemLocation.ProviderPath
    $job = Start-ThreadJob -Name $CommandName -ArgumentList $manifestPath, $CommandName, $parameters, $location -ScriptBlock {
        param($ManifestPath, $Name, $Parameters, $Location)
        Set-Location -LiteralPath $Location
        Import-Module -Name $ManifestPath
        # A terminating error of the command fails the job (Failed, with its reason), as in a
        # Job2; non-terminating ones (a failed role of a partial backup) only go to its Error stream.
        try {
            & $Name @Parameters
        }
        catch {
            throw
        }
    }
    $Cmdlet.WriteObject($job)
}
