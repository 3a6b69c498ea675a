/**
 * The private part of AzsBackup.psm1: the one helper every generated function calls. It turns bound
 * parameters into the host's command line (secrets go to standard input, never argv), runs the host
 * once with `--output clixml`, lets PowerShell deserialize the objects itself, and turns the host's
 * JSON stderr lines into Write-Progress and real ErrorRecords as they arrive.
 *
 * Kept free of backticks and `${` so it sits safely in a template literal.
 */
import { psQuote } from './powershell.js';

export function runtimeSource(hostPath: string): string {
  return String.raw`
# Recorded at build time; $env:AZSBACKUP_CLI overrides it, and azsbackup on PATH is the fallback.
$script:AzsBackupHostPath = ${psQuote(hostPath)}

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
        return [pscustomobject]@{ FilePath = $node.Source; Prefix = @($hostFile) }
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
    $invariant = [System.Globalization.CultureInfo]::InvariantCulture
    $arguments.Add($CommandName)
    foreach ($name in $ParameterName) {
        if (-not $BoundParameters.ContainsKey($name)) {
            continue
        }
        $value = $BoundParameters[$name]
        $flag = '-' + $name
        if ($value -is [System.Security.SecureString]) {
            # The host reads each '-' secret from standard input, in command-line order.
            $arguments.Add($flag)
            $arguments.Add('-')
            $stdinLines.Add([System.Net.NetworkCredential]::new('', $value).Password)
        }
        elseif ($value -is [System.Management.Automation.PSCredential]) {
            # A credential given as '-' is two lines: the user name, then the password.
            $arguments.Add($flag)
            $arguments.Add('-')
            $stdinLines.Add($value.UserName)
            $stdinLines.Add($value.GetNetworkCredential().Password)
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
    }
    [pscustomobject]@{ Arguments = $arguments.ToArray(); StdinLines = $stdinLines.ToArray() }
}

function Invoke-AzsBackupHost {
    [CmdletBinding()]
    param(
        [Parameter(Mandatory = $true)] [System.Management.Automation.PSCmdlet] $Cmdlet,
        [Parameter(Mandatory = $true)] [System.String] $CommandName,
        [System.String[]] $ParameterName = @(),
        [Parameter(Mandatory = $true)] [System.Collections.IDictionary] $BoundParameters,
        [System.String] $OutputTypeName,
        [System.Management.Automation.SwitchParameter] $ReportsProgress,
        [System.Management.Automation.SwitchParameter] $Confirmed
    )
    $hostCommand = Resolve-AzsBackupHost
    if (-not $hostCommand) {
        $Cmdlet.ThrowTerminatingError((New-AzsBackupErrorRecord -ErrorId 'HostNotFound' -Category 'ObjectNotFound' -TargetObject 'azsbackup' -Message ('The azsbackup host was not found: not at ' + $script:AzsBackupHostPath + ', not in $env:AZSBACKUP_CLI and not on PATH (or node is missing).') -RecommendedAction 'Install azsbackup, put it on PATH, or set $env:AZSBACKUP_CLI to its path.'))
    }

    $call = ConvertTo-AzsBackupHostCall -CommandName $CommandName -ParameterName $ParameterName -BoundParameters $BoundParameters
    $arguments = [System.Collections.Generic.List[System.String]]::new()
    foreach ($item in $hostCommand.Prefix) { $arguments.Add($item) }
    foreach ($item in $call.Arguments) { $arguments.Add($item) }
    if ($Confirmed) {
        # ShouldProcess already happened in PowerShell; the host must not ask again.
        $arguments.Add('-Confirm:$false')
    }
    $arguments.Add('--output')
    $arguments.Add('clixml')
    if ($ReportsProgress) {
        $arguments.Add('--progress')
        $arguments.Add('json')
    }

    $state = @{ Terminating = $null; Relayed = $false; Other = [System.Collections.Generic.List[System.String]]::new(); Activities = @{} }
    $PSNativeCommandUseErrorActionPreference = $false

    # Objects on stdout: PowerShell deserializes the '#< CLIXML' stream of a native command itself.
    # Lines on stderr arrive, as they are written, as ErrorRecords of the 2>&1 redirection.
    $call.StdinLines | & $hostCommand.FilePath @arguments 2>&1 | ForEach-Object {
        if ($_ -isnot [System.Management.Automation.ErrorRecord]) {
            $typeNames = $_.PSObject.TypeNames
            if ($typeNames.Count -gt 0 -and $typeNames[0] -like 'Deserialized.AzsBackup.*') {
                # Also carry the undecorated name, so objects read and format like the host's own type.
                $typeNames.Insert(0, $typeNames[0].Substring(13))
            }
            $_
            return
        }
        $line = $_.ToString()
        $message = $null
        if ($line.StartsWith('{')) {
            try { $message = $line | ConvertFrom-Json -ErrorAction Stop } catch { $message = $null }
        }
        if ($message -and $message.PSObject.Properties['Progress']) {
            $p = $message.Progress
            $id = if ($null -ne $p.Id) { [System.Int32]$p.Id } else { 0 }
            $activity = if ($p.Activity) { [System.String]$p.Activity } else { $CommandName }
            $status = if ($p.Status) { [System.String]$p.Status } else { 'Running' }
            $record = [System.Management.Automation.ProgressRecord]::new($id, $activity, $status)
            if ($null -ne $p.PercentComplete) { $record.PercentComplete = [System.Math]::Max(0, [System.Math]::Min(100, [System.Int32]$p.PercentComplete)) }
            if ($null -ne $p.ParentId) { $record.ParentActivityId = [System.Int32]$p.ParentId }
            if ($p.Completed) {
                $record.RecordType = [System.Management.Automation.ProgressRecordType]::Completed
                $state.Activities.Remove($id)
            }
            else {
                $state.Activities[$id] = $activity
            }
            $Cmdlet.WriteProgress($record)
        }
        elseif ($message -and $message.PSObject.Properties['Warning']) {
            $Cmdlet.WriteWarning([System.String]$message.Warning.Message)
        }
        elseif ($message -and $message.PSObject.Properties['ErrorRecord']) {
            $e = $message.ErrorRecord
            $errorRecord = New-AzsBackupErrorRecord -Message ([System.String]$e.Message) -ErrorId ([System.String]$e.ErrorId) -Category ([System.String]$e.Category) -TargetObject $e.TargetObject -RecommendedAction ([System.String]$e.RecommendedAction)
            # Not finding something is not an error the statement must stop for (as with Get-Item):
            # -ErrorAction decides, as for a role that failed in a partial backup.
            if (($e.PSObject.Properties['Terminating'] -and $e.Terminating -eq $false) -or [System.String]$e.Category -eq 'ObjectNotFound') {
                $Cmdlet.WriteError($errorRecord)
                $state.Relayed = $true
            }
            elseif (-not $state.Terminating) {
                # Raised once the host has exited, so no output it still writes is lost.
                $state.Terminating = $errorRecord
            }
        }
        elseif ($line) {
            $state.Other.Add($line)
            $Cmdlet.WriteVerbose($line)
        }
    }
    $exitCode = $LASTEXITCODE

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
`;
}
