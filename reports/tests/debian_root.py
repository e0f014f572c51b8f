"""A booted Debian 12 for system tests: debootstrap, then systemd as PID 1 in private namespaces.

Used by ``test_booted_debian.py`` (the EC2 user data, the agent's .deb), and by
hand: ``python -m reports.tests.debian_root shell`` boots one and opens a shell in it.

How it is built and booted, and why:

* ``base_root()`` runs ``debootstrap`` once for a set of inputs (suite, mirror,
  packages, this harness's version) and keeps the result under
  ``~/.cache/relevo-tests/debian-root/<key>/`` (``RELEVO_TEST_CACHE``); later runs copy it (seconds) instead of
  bootstrapping again (minutes). The mirror is the one this machine's apt
  uses, read from ``/etc/apt/sources.list*``. The packages are what an EC2
  cloud image already has (systemd, dbus, curl, python3); everything the user
  data installs is installed by the user data, in every run.
* The host's CA certificates go in: this machine reaches PyPI through a proxy
  that only its own CA bundle trusts. So do the proxy variables and
  ``/etc/pip.conf`` when the host has them.
* ``Booted`` starts ``unshare --fork --pid --mount --uts --ipc --cgroup --net``,
  bind-mounts the root on itself (systemd's ``ProtectSystem=``/``PrivateTmp=``
  need the root to be a mount point), mounts ``/proc`` (``/proc/sys``
  read-only: the kernel's settings are the host's), a read-only ``/sys``, a
  small ``/dev`` of its own (no host disk is visible) and a tmpfs ``/run``, then
  ``chroot``\\s into ``/lib/systemd/systemd``. The network namespace keeps
  nginx's port 80 and gunicorn's 8000 off the host; ``slirp4netns`` gives it
  a user-mode route to the outside (the Debian mirror, PyPI), nothing more.
  Commands run inside with ``nsenter`` into PID 1's namespaces and root.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "build"
# The bootstrapped base and the apt/pip downloads are keyed by their inputs, so
# every clone on a machine can share them (CI's fresh clone included): outside
# the work tree, like pip's own cache. RELEVO_TEST_CACHE moves it.
CACHE = Path(os.environ.get("RELEVO_TEST_CACHE") or Path.home() / ".cache" / "relevo-tests")
SUITE = "bookworm"
DOWNLOAD_CACHE = CACHE / "debian-downloads"
# What a cloud image has before its user data runs.
BASE_PACKAGES = ("systemd", "systemd-sysv", "dbus", "ca-certificates", "curl", "iproute2", "procps", "python3")
HARNESS_VERSION = "2"  # bump when base_root() changes what it puts in the root
PROXY_VARIABLES = ("http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY")
# pip settings that concern reaching the index; local paths (find-links, constraints) stay on the host.
PIP_VARIABLES = ("PIP_CERT", "PIP_INDEX_URL", "PIP_TRUSTED_HOST", "PIP_DEFAULT_TIMEOUT", "PIP_DISABLE_PIP_VERSION_CHECK")
INSIDE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def missing_prerequisites() -> list[str]:
    """What this machine lacks to build and boot a root (empty when all is there)."""
    missing = []
    if os.geteuid() != 0:
        missing.append("root")
    for tool in ("debootstrap", "unshare", "nsenter", "slirp4netns", "git"):
        if shutil.which(tool) is None:
            missing.append(tool)
    if not Path("/usr/share/keyrings/debian-archive-keyring.gpg").exists():
        missing.append("debian-archive-keyring")
    return missing


def apt_mirror() -> str:
    """The Debian archive this machine's apt uses (deb822 ``.sources`` or one-line ``sources.list``)."""
    files = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*.sources")),
             *sorted(Path("/etc/apt/sources.list.d").glob("*.list"))]
    for path in files:
        if not path.is_file():
            continue
        text = path.read_text(errors="replace")
        for stanza in re.split(r"\n\s*\n", text):
            if re.search(rf"^Suites:.*\b{SUITE}\b", stanza, re.M) and re.search(r"^Types:.*\bdeb\b", stanza, re.M):
                match = re.search(r"^URIs:\s*(\S+)", stanza, re.M)
                if match and "security" not in match.group(1):
                    return match.group(1).rstrip("/")
        for line in text.splitlines():
            match = re.match(rf"\s*deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+{SUITE}\s", line)
            if match and "security" not in match.group(1):
                return match.group(1).rstrip("/")
    return "http://deb.debian.org/debian"


def _run(args: list[str], *, timeout: float, log: Path | None = None, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kwargs)
    if log is not None:
        with open(log, "a") as out:
            out.write(f"$ {' '.join(args)}\n{result.stdout}{result.stderr}\n")
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout[-4000:]}\n"
                           f"{result.stderr[-4000:]}")
    return result


def base_root(*, timeout: float = 900) -> Path:
    """A bootstrapped root for the current inputs, built once and kept under CACHE/debian-root/."""
    mirror = apt_mirror()
    key = hashlib.sha256(repr((SUITE, mirror, BASE_PACKAGES, HARNESS_VERSION)).encode()).hexdigest()[:16]
    cache = CACHE / "debian-root" / key
    if (cache / "root" / "lib" / "systemd" / "systemd").exists() and (cache / "ready").exists():
        return cache / "root"
    shutil.rmtree(cache, ignore_errors=True)
    cache.mkdir(parents=True)
    partial = cache / "partial"
    # A private mount namespace: debootstrap mounts /proc in the target, and a
    # crash must not leave that mount on the host. Two stages, so that dpkg
    # can skip fsync while it installs the base (minutes less on a busy disk);
    # the setting is removed before the root is used.
    private = ["unshare", "--mount", "--propagation", "private"]
    _run([*private, "debootstrap", "--foreign", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}",
          SUITE, str(partial), mirror], timeout=timeout, log=cache / "debootstrap.log")
    unsafe_io = partial / "etc/dpkg/dpkg.cfg.d/relevo-build-unsafe-io"
    unsafe_io.parent.mkdir(parents=True, exist_ok=True)
    unsafe_io.write_text("force-unsafe-io\n")
    _run([*private, "chroot", str(partial), "/debootstrap/debootstrap", "--second-stage"], timeout=timeout,
         log=cache / "debootstrap.log")
    unsafe_io.unlink()
    _customise(partial, mirror)
    partial.rename(cache / "root")
    (cache / "ready").write_text(f"{SUITE} {mirror} {' '.join(BASE_PACKAGES)}\n")
    return cache / "root"


def _customise(root: Path, mirror: str) -> None:
    """What a cloud image has set up before its user data runs, minus what a container cannot use."""
    _run(["chroot", str(root), "apt-get", "clean"], timeout=60)
    (root / "etc" / "apt" / "sources.list").write_text(
        f"deb {mirror} {SUITE} main\ndeb {mirror} {SUITE}-updates main\n")
    (root / "etc" / "hostname").write_text("relevo-ec2-standin\n")
    (root / "etc" / "hosts").write_text("127.0.0.1 localhost\n127.0.1.1 relevo-ec2-standin\n::1 localhost\n")
    # Units that have nothing to do in a container and only slow the boot or fail.
    for unit in ("systemd-udevd.service", "systemd-udev-trigger.service", "systemd-udevd-control.socket",
                 "systemd-udevd-kernel.socket", "getty@tty1.service", "systemd-timesyncd.service",
                 "systemd-networkd-wait-online.service", "systemd-modules-load.service",
                 "sys-kernel-config.mount", "sys-kernel-debug.mount", "sys-kernel-tracing.mount"):
        (root / "etc" / "systemd" / "system" / unit).unlink(missing_ok=True)
        (root / "etc" / "systemd" / "system" / unit).symlink_to("/dev/null")


@dataclass(frozen=True)
class RunRoot:
    """One run's root: the cached base, read-only, under an overlay whose changes go to ``upper``.

    An overlay instead of a copy: a run starts in no time and the base stays
    as debootstrap left it. Files put in ``upper`` before the boot appear in
    the root; the overlay itself is mounted only inside the run's namespace.
    """

    base: Path
    upper: Path
    work: Path
    merged: Path


def fresh_root(name: str) -> RunRoot:
    """An empty overlay on the base root, under build/debian-boot/<name>/ (replacing an older one)."""
    base = base_root()
    target = BUILD / "debian-boot" / name
    if target.exists():
        shutil.rmtree(target)
    run = RunRoot(base=base, upper=target / "upper", work=target / "work", merged=target / "root")
    for folder in (run.upper, run.work, run.merged):
        folder.mkdir(parents=True)
    _host_network_settings(run.upper)
    return run


def _host_network_settings(upper: Path) -> None:
    """The host's CA certificates and pip settings, so apt and pip reach out as the host does.

    The bundle is used as it is; the host's own CAs also go where
    ``update-ca-certificates`` finds them, so a package that rebuilds the
    bundle inside keeps them.
    """
    local_cas = Path("/usr/local/share/ca-certificates")
    (upper / "usr/local/share/ca-certificates").mkdir(parents=True, exist_ok=True)
    if local_cas.is_dir():
        for cert in local_cas.glob("*.crt"):
            shutil.copy2(cert, upper / "usr/local/share/ca-certificates" / cert.name)
    (upper / "etc/ssl/certs").mkdir(parents=True, exist_ok=True)
    shutil.copy2("/etc/ssl/certs/ca-certificates.crt", upper / "etc/ssl/certs/ca-certificates.crt")
    if Path("/etc/pip.conf").is_file():
        shutil.copy2("/etc/pip.conf", upper / "etc/pip.conf")
    # slirp4netns's resolver, which forwards to the host's.
    (upper / "etc/resolv.conf").write_text("nameserver 10.0.2.3\n")
    # A test root need not survive a power cut: dpkg without fsync installs the
    # user data's packages in a fraction of the time on a busy disk.
    (upper / "etc/dpkg/dpkg.cfg.d").mkdir(parents=True, exist_ok=True)
    (upper / "etc/dpkg/dpkg.cfg.d/relevo-test-unsafe-io").write_text("force-unsafe-io\n")


def copy_repository(upper: Path, inside: str = "/srv/relevo") -> str:
    """This working tree (tracked and new files, not ignored ones) as a one-commit git repository inside.

    The user data clones it the way it would clone the real remote, so what is
    tested is the tree as it is, uncommitted changes included.
    """
    dest = upper / inside.lstrip("/")
    listing = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                             capture_output=True, check=True, timeout=60).stdout
    for name in filter(None, listing.decode().split("\0")):
        source = ROOT / name
        if not source.is_file():  # deleted but still in the index
            continue
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, dest / name)
    git = ["git", "-C", str(dest), "-c", "user.name=Relevo test", "-c", "user.email=test@relevo.invalid"]
    _run([*git, "init", "-q", "-b", "main"], timeout=60)
    _run([*git, "add", "-A"], timeout=60)
    _run([*git, "commit", "-q", "-m", "the working tree under test"], timeout=60)
    return inside


def passed_through_environment() -> dict[str, str]:
    """The host's proxy and pip network settings, for commands that reach out from inside."""
    return {name: os.environ[name] for name in (*PROXY_VARIABLES, *PIP_VARIABLES) if name in os.environ}


STAGE1 = r"""
set -eu
base="$1" upper="$2" work="$3" root="$4" cache="$5"
# Wait until the host has attached the network (slirp4netns) to this namespace.
while [ ! -e "$work/../network-ready" ]; do sleep 0.05; done
mount --make-rprivate /
mount -t overlay overlay -o "lowerdir=$base,upperdir=$upper,workdir=$work" "$root"
# systemd's ProtectSystem=/PrivateTmp= need the root to be a mount point (the overlay is; this keeps it so).
mount --bind "$root" "$root"
mount -t proc proc "$root/proc"
mount --bind "$root/proc/sys" "$root/proc/sys"
mount -o remount,bind,ro "$root/proc/sys"
mount -t sysfs -o ro sysfs "$root/sys"
mount -t tmpfs -o mode=0755,nosuid tmpfs "$root/dev"
# Nodes of its own, not binds of the host's (whose modes may differ from a normal system's).
mknod -m 666 "$root/dev/null" c 1 3
mknod -m 666 "$root/dev/zero" c 1 5
mknod -m 666 "$root/dev/full" c 1 7
mknod -m 666 "$root/dev/random" c 1 8
mknod -m 666 "$root/dev/urandom" c 1 9
mknod -m 666 "$root/dev/tty" c 5 0
# systemd chowns the console to root:tty 0620: a node of its own, that writes nowhere.
mknod -m 600 "$root/dev/console" c 1 3
mkdir -p "$root/dev/pts" "$root/dev/shm" "$root/dev/mqueue"
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts "$root/dev/pts"
ln -s pts/ptmx "$root/dev/ptmx"
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$root/dev/shm"
ln -s /proc/self/fd "$root/dev/fd"
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs "$root/run"
# Downloads kept between runs (apt's .debs, pip's wheels); everything is still installed every run.
mkdir -p "$cache/apt-archives/partial" "$cache/pip" "$root/var/cache/apt/archives" "$root/root/.cache/pip"
mount --bind "$cache/apt-archives" "$root/var/cache/apt/archives"
mount --bind "$cache/pip" "$root/root/.cache/pip"
exec chroot "$root" /lib/systemd/systemd --log-target=console
"""


class Booted:
    """systemd running as PID 1 of its own namespaces in *root*; use as a context manager."""

    def __init__(self, root: RunRoot, *, log: Path):
        self.root = root
        self.log_path = log
        self.unshare: subprocess.Popen | None = None
        self.slirp: subprocess.Popen | None = None
        self.pid1 = 0

    def __enter__(self) -> Booted:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self, *, timeout: float = 120) -> None:
        log = open(self.log_path, "ab")
        env = {"PATH": INSIDE_PATH, "container": "relevo-test", "LANG": "C.UTF-8"}
        self.unshare = subprocess.Popen(
            ["unshare", "--fork", "--pid", "--mount", "--uts", "--ipc", "--cgroup", "--net", "--propagation",
             "private", "sh", "-c", STAGE1, "stage1", str(self.root.base), str(self.root.upper), str(self.root.work),
             str(self.root.merged), str(DOWNLOAD_CACHE)],
            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while not self.pid1:
            children = subprocess.run(["pgrep", "-P", str(self.unshare.pid)], capture_output=True,
                                      text=True).stdout.split()
            if children:
                self.pid1 = int(children[0])
            elif self.unshare.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"unshare did not start:\n{self.boot_log()}")
            else:
                time.sleep(0.05)
        self.slirp = subprocess.Popen(
            ["slirp4netns", "--configure", "--mtu=65520", "--disable-host-loopback", str(self.pid1), "tap0"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        (self.root.work.parent / "network-ready").touch()
        self.wait_until_running(deadline - time.monotonic())

    def wait_until_running(self, timeout: float) -> str:
        """Wait for ``systemctl is-system-running`` to say running or degraded; return it."""
        deadline = time.monotonic() + max(timeout, 1)
        state = ""
        while time.monotonic() < deadline:
            if self.unshare.poll() is not None:
                raise RuntimeError(f"systemd stopped while booting:\n{self.boot_log()}")
            result = self.run("systemctl is-system-running", check=False, timeout=30)
            state = result.stdout.strip()
            if state in ("running", "degraded"):
                return state
            time.sleep(0.5)
        raise RuntimeError(f"systemd did not finish booting (state {state!r}):\n{self.boot_log()}")

    def run(self, script: str, *, env: dict[str, str] | None = None, check: bool = True,
            timeout: float = 120) -> subprocess.CompletedProcess:
        """Run a bash *script* inside as root, with a clean environment plus *env*."""
        inner = {"PATH": INSIDE_PATH, "HOME": "/root", "LANG": "C.UTF-8", "TERM": "dumb", **(env or {})}
        command = ["nsenter", "--target", str(self.pid1), "--mount", "--uts", "--ipc", "--net", "--pid",
                   "--cgroup", "--root", "--wd", "env", "-i", *[f"{k}={v}" for k, v in inner.items()],
                   "bash", "-c", script]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise RuntimeError(f"inside, {script!r} failed ({result.returncode}):\n{result.stdout[-6000:]}\n"
                               f"{result.stderr[-6000:]}")
        return result

    def boot_log(self) -> str:
        return self.log_path.read_text(errors="replace")[-8000:] if self.log_path.exists() else ""

    def stop(self, *, timeout: float = 60) -> None:
        """Halt systemd (SIGRTMIN+3, what ``machinectl poweroff`` sends), then kill what is left."""
        if self.unshare is not None and self.unshare.poll() is None:
            if self.pid1:
                try:
                    os.kill(self.pid1, signal.SIGRTMIN + 3)
                except ProcessLookupError:
                    pass
            try:
                self.unshare.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                if self.pid1:
                    try:
                        os.kill(self.pid1, signal.SIGKILL)  # PID 1 of the namespace: takes all of it along
                    except ProcessLookupError:
                        pass
                self.unshare.kill()
                self.unshare.wait(timeout=30)
        if self.slirp is not None and self.slirp.poll() is None:
            self.slirp.terminate()
            self.slirp.wait(timeout=30)


def main(argv: list[str] | None = None) -> int:
    """``python -m reports.tests.debian_root shell``: boot a fresh root and open a shell in it."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] != ["shell"]:
        print("usage: python -m reports.tests.debian_root shell", file=sys.stderr)
        return 2
    missing = missing_prerequisites()
    if missing:
        print(f"missing: {', '.join(missing)}", file=sys.stderr)
        return 2
    root = fresh_root("by-hand")
    with Booted(root, log=Path(tempfile.mkstemp(prefix="debian-boot-", suffix=".log")[1])) as booted:
        print(f"booted {root.merged} (PID 1 is {booted.pid1} on the host); exit the shell to halt it")
        subprocess.run(["nsenter", "--target", str(booted.pid1), "--all", "--root", "--wd",
                        "env", "-i", f"PATH={INSIDE_PATH}", "HOME=/root", "TERM=xterm", "bash", "-l"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
