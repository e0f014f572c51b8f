"""Redaction of command lines before they leave the host.

Command lines routinely carry secrets (``--password=...``, ``DB_TOKEN=...``,
``postgres://user:pass@db/``). The server must never receive them, so the
agent masks the values here, conservatively: a false positive hides a harmless
value, a false negative leaks a credential.
"""

from __future__ import annotations

import re

MASK = "***"

# Words that name a secret wherever they appear in an argument name.
_STRONG = ("password", "passwd", "passphrase", "secret", "token", "apikey", "credential", "pwd")
# Short words that name a secret only as a whole part of a name, so that
# "--api-key" and "AUTH=..." match but "--keyboard" and "--author" do not.
_WHOLE = ("key", "auth", "authorization", "pass", "credentials")

_NAME_PART = re.compile(r"[^a-z0-9]+")
# Bounded repetitions keep every pattern linear: command lines are attacker-shaped input.
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]{0,31}://)(?P<user>[^/\s:@]{0,256}):(?P<password>[^/\s@]{0,8192})@")
_QUERY_PARAM = re.compile(r"(?P<lead>[?&;])(?P<name>[^=&;#\s]{1,64})=(?P<value>[^&;#\s]*)")
_OPTION = re.compile(r"^(?P<dashes>--?|/)(?P<name>[A-Za-z][A-Za-z0-9_.\-]*)(?:(?P<sep>[=:])(?P<value>.*))?$", re.S)
_ASSIGNMENT = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_.\-]*)=(?P<value>.*)$", re.S)


def is_secret_name(name: str) -> bool:
    """Tell whether an argument or variable name looks like it holds a secret."""
    lowered = name.lower()
    if any(word in lowered for word in _STRONG):
        return True
    parts = [part for part in _NAME_PART.split(lowered) if part]
    return any(part in _WHOLE for part in parts)


def _redact_urls(text: str) -> str:
    if "://" in text:
        text = _USERINFO.sub(lambda m: f"{m['scheme']}{MASK}@", text)
    if "?" in text or "&" in text:
        text = _QUERY_PARAM.sub(
            lambda m: f"{m['lead']}{m['name']}={MASK}" if is_secret_name(m["name"]) else m[0], text
        )
    return text


def cmdline_redact(args: list[str]) -> list[str]:
    """Return a copy of ``args`` with secret values replaced by ``***``.

    Handles ``--name=value``, ``--name value``, ``/name:value`` (Windows),
    ``NAME=value`` and the ``user:password@`` part of URLs anywhere in an
    argument.
    """
    redacted: list[str] = []
    mask_next = False
    for arg in args:
        if mask_next:
            mask_next = False
            # "--auth --verbose": the flag had no value, keep the next option.
            if not arg.startswith("--"):
                redacted.append(MASK)
                continue
        option = _OPTION.match(arg)
        if option and is_secret_name(option["name"]):
            if option["sep"] is not None:
                redacted.append(f"{option['dashes']}{option['name']}{option['sep']}{MASK}")
            else:
                redacted.append(arg)
                # A lone "/" prefix is a Windows switch or a path, never "switch value".
                mask_next = option["dashes"] != "/"
            continue
        assignment = _ASSIGNMENT.match(arg)
        if assignment and is_secret_name(assignment["name"]):
            redacted.append(f"{assignment['name']}={MASK}")
            continue
        redacted.append(_redact_urls(arg))
    return redacted
