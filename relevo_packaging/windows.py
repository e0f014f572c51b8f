"""Build the Windows packages: ``relevo-agent-<version>-windows-amd64.zip`` and ``relevo-agent-<version>-x64.msi``.

Both hold the same tree, so what the zip proves about the interpreter holds
for the MSI::

    relevo-agent.cmd          launcher: python\\python.exe -I -B -m agent %*
    python\\                   embeddable CPython 3.13 (relevo_packaging.embed)
    python\\site\\              psutil, requests and their dependencies (win_amd64 wheels)
    python\\app\\agent\\         the agent

The MSI (built on Linux with wixl) installs that tree under
``%ProgramFiles%\\Relevo Agent`` and runs ``agent.windows_setup`` as deferred
custom actions, as SYSTEM: ``install`` after the files are copied, ``uninstall``
before they are removed. Each artifact gets a ``.sha256`` file beside it
(``sha256sum -c`` format). The version is ``agent.__version__``.

Builds are cached under ``build/packages/``: an artifact is rebuilt only when
the hash of its inputs (the agent's sources, this package, the requirements,
the interpreter's sdist) changes. Run ``python -m relevo_packaging.windows
--dist dist``.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import shutil
import subprocess
import sys
import uuid
import zipfile
from pathlib import Path
from xml.sax.saxutils import quoteattr

from relevo_packaging import embed

REPO = embed.REPO
BUILD = REPO / "build" / "packages" / "windows"
DOWNLOADS = REPO / "build" / "windows" / "downloads"  # shared with the Wine test harness
LAUNCHER = Path(__file__).with_name("relevo-agent.cmd")
# Fixed forever: Windows Installer recognises upgrades of the same product by it.
UPGRADE_CODE = "6E1B7C4A-5D0F-4C59-9A63-2F3E8B1D7A40"
MANUFACTURER = "Relevo"
PRODUCT = "Relevo Agent"
# 50 (exe named by a property) + 1024 deferred + 2048 no impersonation (SYSTEM) + 8192 HideTarget.
FILE_IDS = {"python/python.exe": "PythonExe", "python/pythonw.exe": "PythonwExe"}
CA_CONFIGURE_TYPE = 50 + 1024 + 2048 + 8192


def version() -> str:
    """``__version__`` from ``agent/__init__.py``, read as text so building never imports the agent."""
    text = (REPO / "agent" / "__init__.py").read_text(encoding="utf-8")
    match = re.search(r'^__version__ = "([0-9]+\.[0-9]+\.[0-9]+)"$', text, re.M)
    if not match:
        raise SystemExit("agent/__init__.py has no __version__ = \"X.Y.Z\"")
    return match.group(1)


def zip_name(ver: str) -> str:
    return f"relevo-agent-{ver}-windows-amd64.zip"


def msi_name(ver: str) -> str:
    return f"relevo-agent-{ver}-x64.msi"


def inputs_key() -> str:
    """Hash of everything that goes into the packages."""
    digest = hashlib.sha256(f"{embed.EMBED_SDIST}\n{embed.wheels_key()}\n".encode())
    sources = sorted(p for p in (REPO / "agent").rglob("*")
                     if p.is_file() and "tests" not in p.relative_to(REPO / "agent").parts
                     and "__pycache__" not in p.parts and p.suffix != ".pyc")
    sources += sorted(p for p in Path(__file__).parent.iterdir() if p.is_file() and p.suffix in (".py", ".cmd"))
    for path in sources:
        digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def sha256_write(artifact: Path) -> Path:
    """``<artifact>.sha256`` in ``sha256sum -c`` format."""
    digest = hashlib.sha256()
    with artifact.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    target = artifact.with_name(artifact.name + ".sha256")
    target.write_text(f"{digest.hexdigest()}  {artifact.name}\n")
    return target


def stage(target: Path) -> Path:
    """Lay out the package tree in ``target`` (from the cached interpreter and wheels)."""
    python_cache = embed.python_with_wheels(DOWNLOADS, REPO / "build" / "windows" / "python")
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    shutil.copytree(python_cache, target / "python",
                    ignore=shutil.ignore_patterns(".relevo-*", "__pycache__", "*.pyc", "app"))
    (target / "python" / "app").mkdir()
    embed.agent_copy(target / "python" / "app")
    shutil.copy2(LAUNCHER, target / "relevo-agent.cmd")
    return target


def zip_build(tree: Path, out: Path) -> Path:
    files = sorted(p for p in tree.rglob("*") if p.is_file())
    tmp = out.with_name(out.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in files:
            archive.write(path, path.relative_to(tree).as_posix())
    tmp.replace(out)
    return out


def _id(prefix: str, relative: str) -> str:
    return prefix + hashlib.sha1(relative.encode()).hexdigest()[:24].upper()


def wxs_render(tree: Path, ver: str) -> str:
    """The WiX source for wixl: one component per file, the custom actions, the upgrade rule.

    Sources are relative to ``tree``'s parent, where the .wxs is written: wixl
    takes no absolute paths.
    """
    lines: list[str] = []
    components: list[str] = []

    def walk(folder: Path, depth: int) -> None:
        pad = "  " * depth
        for path in sorted(folder.iterdir()):
            relative = path.relative_to(tree).as_posix()
            if path.is_dir():
                lines.append(f"{pad}<Directory Id={quoteattr(_id('d', relative))} Name={quoteattr(path.name)}>")
                walk(path, depth + 1)
                lines.append(f"{pad}</Directory>")
            else:
                component = _id("c", relative)
                file_id = FILE_IDS.get(relative) or _id("f", relative)
                components.append(component)
                # A stable GUID per path keeps repairs and upgrades from orphaning files.
                guid = str(uuid.uuid5(uuid.UUID(UPGRADE_CODE), relative)).upper()
                lines.append(f"{pad}<Component Id={quoteattr(component)} Guid={quoteattr(guid)} Win64=\"yes\">"
                             f"<File Id={quoteattr(file_id)} Name={quoteattr(path.name)} "
                             f"Source={quoteattr(path.relative_to(tree.parent).as_posix())} KeyPath=\"yes\"/></Component>")

    walk(tree, 5)
    files = "\n".join(lines)
    refs = "\n".join(f"      <ComponentRef Id={quoteattr(c)}/>" for c in components)
    # Deferred, not impersonated (so as SYSTEM), formatted when scheduled so the
    # properties reach the command line. Through cmd.exe with its standard
    # handles on NUL: a custom action has none, and CPython then dies in
    # init_sys_streams (seen under Wine with python.exe and pythonw.exe alike).
    setup = '"[INSTALLDIR]python\\pythonw.exe" -I -B -m agent.windows_setup'
    configure = (f'/d /c "{setup} install --server "[SERVER]" --enroll-secret "[ENROLL_SECRET]" '
                 f'--token "[TOKEN]" &lt;NUL &gt;NUL 2&gt;&amp;1"')
    unconfigure = f'/d /c "{setup} uninstall &lt;NUL &gt;NUL 2&gt;&amp;1"'
    return f"""<?xml version="1.0" encoding="utf-8"?>
<Wix xmlns="http://schemas.microsoft.com/wix/2006/wi">
  <Product Id="*" Name="{PRODUCT}" Language="1033" Version="{ver}" Manufacturer="{MANUFACTURER}"
           UpgradeCode="{UPGRADE_CODE}">
    <Package InstallerVersion="500" Compressed="yes" InstallScope="perMachine"
             Description="{PRODUCT} {ver}" Comments="Inventory agent for Relevo; no other Python needed."/>
    <Media Id="1" Cabinet="agent.cab" EmbedCab="yes"/>
    <MajorUpgrade DowngradeErrorMessage="A newer {PRODUCT} is already installed."/>
    <Property Id="MsiHiddenProperties" Value="ENROLL_SECRET;TOKEN"/>
    <Property Id="ARPNOMODIFY" Value="1"/>
    <Directory Id="TARGETDIR" Name="SourceDir">
      <Directory Id="ProgramFiles64Folder">
        <Directory Id="INSTALLDIR" Name="{PRODUCT}">
{files}
        </Directory>
      </Directory>
    </Directory>
    <Feature Id="Agent" Title="{PRODUCT}" Level="1">
{refs}
    </Feature>
    <CustomAction Id="SetCmdExe" Property="RELEVOCMD" Value="[System64Folder]cmd.exe"/>
    <CustomAction Id="RelevoConfigure" Property="RELEVOCMD" Execute="deferred" Impersonate="no" Return="check"
                  ExeCommand='{configure}'/>
    <CustomAction Id="RelevoUnconfigure" Property="RELEVOCMD" Execute="deferred" Impersonate="no" Return="ignore"
                  ExeCommand='{unconfigure}'/>
    <!-- Explicit numbers: wixl 0.101 places Before/After actions wrongly (checked in the tests). -->
    <InstallExecuteSequence>
      <Custom Action="SetCmdExe" Sequence="1001"/>
      <Custom Action="RelevoUnconfigure" Sequence="3400">REMOVE="ALL" AND NOT UPGRADINGPRODUCTCODE</Custom>
      <Custom Action="RelevoConfigure" Sequence="4100">NOT REMOVE</Custom>
    </InstallExecuteSequence>
  </Product>
</Wix>
"""


def msi_build(tree: Path, out: Path, ver: str) -> Path:
    wixl = shutil.which("wixl")
    if wixl is None:
        raise FileNotFoundError("wixl is not installed: apt-get install -y wixl")
    wxs = tree.parent / "relevo-agent.wxs"
    wxs.write_text(wxs_render(tree, ver), encoding="utf-8")
    tmp = out.with_name(out.name + ".tmp")
    subprocess.run([wixl, "-a", "x64", "-o", str(tmp), str(wxs)], check=True, timeout=600)
    # wixl ignores HideTarget and has no Secure="yes"; set both in the tables directly.
    msibuild = shutil.which("msibuild")
    if msibuild is None:
        raise FileNotFoundError("msibuild is not installed: apt-get install -y msitools")
    for query in (f"UPDATE `CustomAction` SET `Type` = {CA_CONFIGURE_TYPE} WHERE `Action` = 'RelevoConfigure'",
                  "UPDATE `Property` SET `Value` = 'WIX_DOWNGRADE_DETECTED;WIX_UPGRADE_DETECTED;SERVER;ENROLL_SECRET;TOKEN'"
                  " WHERE `Property` = 'SecureCustomProperties'"):
        subprocess.run([msibuild, str(tmp), "-q", query], check=True, timeout=60)
    tmp.replace(out)
    return out


def build(dist: Path, *, force: bool = False) -> list[Path]:
    """Build (or keep) both packages in ``dist``; returns the artifacts."""
    ver = version()
    dist.mkdir(parents=True, exist_ok=True)
    BUILD.mkdir(parents=True, exist_ok=True)
    key = inputs_key()
    artifacts = [dist / zip_name(ver), dist / msi_name(ver)]
    # One marker per output folder, so `make packages` and the tests do not rebuild each other's.
    marker = BUILD / f"inputs-{hashlib.sha256(str(dist.resolve()).encode()).hexdigest()[:12]}.key"
    fresh = (not force and marker.is_file() and marker.read_text() == key
             and all(a.is_file() and a.with_name(a.name + ".sha256").is_file() for a in artifacts))
    if fresh:
        return artifacts
    tree = stage(BUILD / "tree")
    zip_build(tree, artifacts[0])
    msi_build(tree, artifacts[1], ver)
    for artifact in artifacts:
        sha256_write(artifact)
    marker.write_text(key)
    return artifacts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m relevo_packaging.windows", description=__doc__.split("\n")[0])
    parser.add_argument("--dist", type=Path, default=REPO / "dist")
    parser.add_argument("--force", action="store_true", help="rebuild even if the inputs did not change")
    args = parser.parse_args(argv)
    for artifact in build(args.dist, force=args.force):
        print(f"{artifact}  {artifact.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
