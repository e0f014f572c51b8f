"""Command-line redaction: secrets never leave the host, harmless arguments stay readable."""

import pytest

from agent.redact import cmdline_redact, is_secret_name


@pytest.mark.parametrize("args, expected", [
    (["mysqld", "--password=hunter2"], ["mysqld", "--password=***"]),
    (["app", "--token", "abc", "--port", "80"], ["app", "--token", "***", "--port", "80"]),
    (["env", "PASSWORD=x", "HOME=/root"], ["env", "PASSWORD=***", "HOME=/root"]),
    (["x", "--db-passwd", "p"], ["x", "--db-passwd", "***"]),
    (["x", "--client-secret=s"], ["x", "--client-secret=***"]),
    (["x", "--api-key", "k"], ["x", "--api-key", "***"]),
    (["x", "--apiKey=k"], ["x", "--apiKey=***"]),
    (["x", "-auth", "u:p"], ["x", "-auth", "***"]),
    (["x", "AWS_SECRET_ACCESS_KEY=abc"], ["x", "AWS_SECRET_ACCESS_KEY=***"]),
    (["x", "--credentials-file", "/etc/c"], ["x", "--credentials-file", "***"]),
    (["tool.exe", "/password:hunter2"], ["tool.exe", "/password:***"]),
    (["git", "clone", "https://bob:pw@git.example/r.git"], ["git", "clone", "https://***@git.example/r.git"]),
    (["x", "--url=postgres://u:p@db:5432/x"], ["x", "--url=postgres://***@db:5432/x"]),
    (["curl", "https://h/a?access_token=abc&page=2"], ["curl", "https://h/a?access_token=***&page=2"]),
    (["x", "--auth", "--verbose"], ["x", "--auth", "--verbose"]),
    (["x", "--token"], ["x", "--token"]),
    (["x", "--keyboard", "us", "--author", "me", "--monkey=1"],
     ["x", "--keyboard", "us", "--author", "me", "--monkey=1"]),
    (["ssh", "git@github.example"], ["ssh", "git@github.example"]),
    (["/usr/bin/token-helper", "/etc/secret.conf"], ["/usr/bin/token-helper", "/etc/secret.conf"]),
    ([], []),
])
def test_cmdline_redact(args, expected):
    assert cmdline_redact(args) == expected


def test_redact_does_not_change_its_input():
    args = ["--password=x"]
    cmdline_redact(args)
    assert args == ["--password=x"]


@pytest.mark.parametrize("name, secret", [
    ("password", True), ("DB_PASS", True), ("X-Auth", True), ("private_key", True),
    ("keyboard", False), ("author", False), ("port", False), ("path", False),
])
def test_is_secret_name(name, secret):
    assert is_secret_name(name) is secret
