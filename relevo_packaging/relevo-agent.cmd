@echo off
rem Relevo agent launcher: runs the bundled Python (no other Python needed).
rem Arguments go to the agent: relevo-agent.cmd --help, --dry-run, --once --server URL --enroll-secret SECRET
"%~dp0python\python.exe" -I -B -m agent %*
exit /b %ERRORLEVEL%
