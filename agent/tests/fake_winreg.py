"""A stand-in for Windows' ``winreg`` module, for the registry reads Linux cannot do.

Keys live in a dict by full path (case-insensitive, as in the registry). The
32-bit view (``KEY_WOW64_32KEY``) of ``HKLM\\SOFTWARE\\...`` is redirected to
``HKLM\\SOFTWARE\\WOW6432Node\\...`` as on 64-bit Windows; a key listed in
``denied`` raises ``PermissionError`` when opened, like another user's hive.
The real module is exercised under Wine (test_windows.py).
"""

from __future__ import annotations

from typing import Any

HKEY_LOCAL_MACHINE = "HKLM"
HKEY_USERS = "HKU"
KEY_READ = 0x20019
KEY_WOW64_64KEY = 0x0100
KEY_WOW64_32KEY = 0x0200


class _Handle:
    def __init__(self, path: str) -> None:
        self.path = path

    def __enter__(self) -> _Handle:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None


class FakeWinreg:
    """``winreg`` over ``keys``: {"HKLM\\SOFTWARE\\...\\Uninstall\\App": {"DisplayName": "App", ...}}."""

    HKEY_LOCAL_MACHINE = HKEY_LOCAL_MACHINE
    HKEY_USERS = HKEY_USERS
    KEY_READ = KEY_READ
    KEY_WOW64_64KEY = KEY_WOW64_64KEY
    KEY_WOW64_32KEY = KEY_WOW64_32KEY

    def __init__(self, keys: dict[str, dict[str, Any]], denied: set[str] = frozenset()) -> None:
        self.keys = {k.lower(): v for k, v in keys.items()}
        self.denied = {d.lower() for d in denied}
        # Every parent of a key exists too.
        for path in list(self.keys):
            parts = path.split("\\")
            for end in range(1, len(parts)):
                self.keys.setdefault("\\".join(parts[:end]), {})

    def OpenKey(self, key: Any, sub_key: str, reserved: int = 0, access: int = KEY_READ) -> _Handle:  # noqa: N802
        base = key.path if isinstance(key, _Handle) else key
        path = f"{base}\\{sub_key}" if sub_key else base
        redirected = path.lower().startswith("hklm\\software\\wow6432node")
        if access & KEY_WOW64_32KEY and path.lower().startswith("hklm\\software\\") and not redirected:
            path = "HKLM\\SOFTWARE\\WOW6432Node\\" + path[len("HKLM\\SOFTWARE\\"):]
        if path.lower() in self.denied:
            raise PermissionError(5, "Access is denied")
        if path.lower() not in self.keys:
            raise FileNotFoundError(2, "The system cannot find the file specified")
        return _Handle(path)

    def EnumKey(self, handle: _Handle, index: int) -> str:  # noqa: N802
        prefix = handle.path.lower() + "\\"
        children = sorted({k[len(prefix):].split("\\", 1)[0] for k in self.keys if k.startswith(prefix)})
        if index >= len(children):
            raise OSError(259, "No more data is available")
        return children[index]

    def QueryValueEx(self, handle: _Handle, name: str) -> tuple[Any, int]:  # noqa: N802
        values = self.keys[handle.path.lower()]
        if name not in values:
            raise FileNotFoundError(2, "The system cannot find the file specified")
        return values[name], 1
