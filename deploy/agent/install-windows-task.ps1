<#
.SYNOPSIS
Registers (or removes) the Scheduled Task that runs the Relevo agent on Windows.

.DESCRIPTION
Runs `python -m agent --once` as SYSTEM every few minutes and at startup. The
token is written to %ProgramData%\Relevo\token, readable only by SYSTEM and
Administrators, and passed with --token-file so it never appears in the task
definition or on a command line. The agent's state (spool, host id) lives in
%ProgramData%\Relevo as well. See docs/agent.md ("Windows").

.EXAMPLE
powershell -ExecutionPolicy Bypass -File install-windows-task.ps1 -Server https://relevo.example.internal -Token abc123 -Python "C:\Program Files\Python313\python.exe"

.EXAMPLE
powershell -ExecutionPolicy Bypass -File install-windows-task.ps1 -Uninstall
#>
[CmdletBinding(DefaultParameterSetName = 'Install')]
param(
    [Parameter(Mandatory, ParameterSetName = 'Install')] [string] $Server,
    [Parameter(Mandatory, ParameterSetName = 'Install')] [string] $Token,
    # python.exe with psutil and requests installed (python -m pip install -r agent\requirements.txt).
    [Parameter(ParameterSetName = 'Install')] [string] $Python = 'C:\Program Files\Python313\python.exe',
    # The folder that contains the copied agent\ folder.
    [Parameter(ParameterSetName = 'Install')] [string] $AgentParent = (Join-Path $env:ProgramFiles 'Relevo'),
    [Parameter(ParameterSetName = 'Install')] [ValidateRange(1, 1440)] [int] $IntervalMinutes = 5,
    [Parameter(ParameterSetName = 'Install')] [string] $CaBundle,
    [Parameter(Mandatory, ParameterSetName = 'Uninstall')] [switch] $Uninstall,
    [string] $TaskName = 'Relevo Agent'
)

$ErrorActionPreference = 'Stop'

$principal = New-Object Security.Principal.WindowsPrincipal([Security.Principal.WindowsIdentity]::GetCurrent())
if (-not $principal.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)) {
    throw 'Run this script from an elevated (Administrator) PowerShell.'
}

$state = Join-Path $env:ProgramData 'Relevo'
$tokenFile = Join-Path $state 'token'

if ($Uninstall) {
    Unregister-ScheduledTask -TaskName $TaskName -Confirm:$false -ErrorAction SilentlyContinue
    Remove-Item -Force -ErrorAction SilentlyContinue $tokenFile
    Write-Host "Removed task '$TaskName'. Spooled snapshots, if any, remain in $state."
    return
}

if (-not (Test-Path (Join-Path $AgentParent 'agent\__main__.py'))) {
    throw "No agent\ folder in $AgentParent: copy the repository's agent\ folder there first."
}
if (-not (Test-Path $Python)) { throw "python.exe not found at $Python" }

# Only SYSTEM and Administrators may read the state folder (it holds the token).
New-Item -ItemType Directory -Force -Path $state | Out-Null
& icacls.exe $state /inheritance:r /grant:r '*S-1-5-18:(OI)(CI)F' '*S-1-5-32-544:(OI)(CI)F' | Out-Null
if ($LASTEXITCODE -ne 0) { throw "icacls failed on $state" }
[IO.File]::WriteAllText($tokenFile, $Token.Trim())

$arguments = "-m agent --once --server `"$Server`" --token-file `"$tokenFile`""
if ($CaBundle) { $arguments += " --ca-bundle `"$CaBundle`"" }

$action = New-ScheduledTaskAction -Execute $Python -Argument $arguments -WorkingDirectory $AgentParent
$every = New-ScheduledTaskTrigger -Once -At (Get-Date).AddMinutes(1) -RepetitionInterval (New-TimeSpan -Minutes $IntervalMinutes)
$atBoot = New-ScheduledTaskTrigger -AtStartup
$runAs = New-ScheduledTaskPrincipal -UserId 'SYSTEM' -LogonType ServiceAccount -RunLevel Highest
# IgnoreNew: a slow run (server down, retries) is never overlapped by the next one.
$settings = New-ScheduledTaskSettingsSet -MultipleInstances IgnoreNew -StartWhenAvailable `
    -ExecutionTimeLimit (New-TimeSpan -Minutes 10) -AllowStartIfOnBatteries -DontStopIfGoingOnBatteries

Register-ScheduledTask -TaskName $TaskName -Action $action -Trigger @($every, $atBoot) -Principal $runAs `
    -Settings $settings -Description 'Sends an inventory snapshot to the Relevo server.' -Force | Out-Null

Write-Host "Registered task '$TaskName': every $IntervalMinutes min and at startup, as SYSTEM."
Write-Host "Try it now: Start-ScheduledTask -TaskName '$TaskName'; then (Get-ScheduledTaskInfo -TaskName '$TaskName').LastTaskResult"
Write-Host 'Result codes: 0 delivered, 3 spooled for later, 4 token refused, 5 snapshot rejected, 2 bad usage.'
