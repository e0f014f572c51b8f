"""The service files under deploy/agent/ call the agent with options it really accepts."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from agent.run_agent import build_parser

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "agent"


def _agent_args(command: str) -> list[str]:
    words = shlex.split(command)
    return words[words.index("agent") + 1:]


@pytest.mark.parametrize("unit", ["relevo-agent.service", "relevo-agent-once.service"])
def test_systemd_units_use_valid_options(unit):
    text = (DEPLOY / unit).read_text()
    [exec_start] = re.findall(r"^ExecStart=(.+)$", text, re.M)
    args = build_parser().parse_args(_agent_args(exec_start))
    assert args.once or args.interval
    assert "EnvironmentFile=/etc/relevo-agent/agent.env" in text
    assert "StateDirectory=relevo-agent" in text  # = the agent's default state folder as root


def test_timer_starts_the_oneshot_unit():
    assert "Unit=relevo-agent-once.service" in (DEPLOY / "relevo-agent.timer").read_text()


def test_windows_task_uses_valid_options_and_a_token_file():
    script = (DEPLOY / "install-windows-task.ps1").read_text()
    [arguments] = re.findall(r'^\$arguments = "(.+)"$', script, re.M)
    # PowerShell's `" is a literal quote inside a double-quoted string.
    command = arguments.replace('`"', '"').replace("$Server", "https://relevo.example").replace("$tokenFile", "C:/t")
    args = build_parser().parse_args(_agent_args("python -m " + command))
    assert args.once and args.token_file and args.token is None
