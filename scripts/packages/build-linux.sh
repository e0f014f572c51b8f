#!/bin/bash
# Build the Linux packages of the agent into DIST (default dist/):
#   relevo-agent_<version>_all.deb     (dpkg-deb; Debian 12+, Ubuntu 24.04+)
#   relevo-agent-<version>.noarch.rpm  (rpmbuild; Fedora, RHEL/Rocky/Alma 10, see docs/agent.md)
# each with a <name>.sha256 next to it. `make packages-linux` runs it.
#
# Both packages hold the same layout, taken from the tree as it is:
#   /usr/lib/relevo-agent/agent/      the agent (agent/*.py, no tests)
#   /usr/bin/relevo-agent             the command (python3 -I: no module from the current folder or PYTHON*)
#   <systemd>/relevo-agent{,-once}.service, relevo-agent.timer
#                                     deploy/agent/*, pointed at /usr/bin/relevo-agent
#   /etc/relevo-agent/agent.env       conffile, mode 0600: INVENTORY_SERVER and the token or enroll secret
#   /usr/share/doc/relevo-agent/      agent.md, copyright (deb: changelog.gz too)
#   /usr/share/man/man1/relevo-agent.1.gz
# The version comes from agent/__init__.py alone.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
DIST="$(realpath -m "${1:-$repo/dist}")"
WORK="$(realpath -m "${WORK:-$repo/build/packages}")"  # staging; a test gives its own
cd "$repo"
VERSION="$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' agent/__init__.py)"
[ -n "$VERSION" ] || { echo "no __version__ in agent/__init__.py" >&2; exit 1; }
MAINTAINER="${RELEVO_PACKAGE_MAINTAINER:-Relevo maintainers <relevo-maintainers@users.noreply.github.com>}"
# The same bytes from the same tree: timestamps from the last commit.
SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}"
export SOURCE_DATE_EPOCH
YEAR="$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y)"
umask 022
# Only for the manual page (the agent's --help needs psutil and requests): `make` passes the venv's.
PYTHON="${PYTHON:-python3}"

rm -rf "$WORK"
mkdir -p "$WORK" "$DIST"

# --- the common tree, staged once; $1 is where systemd units go ---
stage() {
  local dest="$1" unitdir="$2"
  install -d "$dest/usr/lib/relevo-agent/agent" "$dest/usr/bin" "$dest$unitdir" \
    "$dest/usr/share/doc/relevo-agent" "$dest/usr/share/man/man1"
  install -d -m 0755 "$dest/etc/relevo-agent"
  for f in agent/*.py; do install -m 0644 "$f" "$dest/usr/lib/relevo-agent/agent/"; done

  cat > "$dest/usr/bin/relevo-agent" <<'PY'
#!/usr/bin/python3 -I
"""relevo-agent: the Relevo inventory agent installed by the relevo-agent package (see relevo-agent(1))."""
import sys

sys.path.insert(0, "/usr/lib/relevo-agent")
from agent.run_agent import main  # noqa: E402

sys.exit(main())
PY
  chmod 0755 "$dest/usr/bin/relevo-agent"

  # deploy/agent/*: the same hardening, run through the installed command.
  for unit in relevo-agent.service relevo-agent-once.service relevo-agent.timer; do
    sed -e 's|/opt/relevo-agent/venv/bin/python -m agent|/usr/bin/relevo-agent|' \
        -e 's|^Documentation=.*|Documentation=man:relevo-agent(1) file:///usr/share/doc/relevo-agent/agent.md|' \
        -e '/^WorkingDirectory=/d' \
        -e 's|^# Install: see docs/agent.md ("Linux").|# Installed by the relevo-agent package, which enables relevo-agent.timer.|' \
        "deploy/agent/$unit" > "$dest$unitdir/$unit"
    chmod 0644 "$dest$unitdir/$unit"
    if grep -q '/opt/relevo-agent' "$dest$unitdir/$unit"; then
      echo "$unit still names /opt/relevo-agent" >&2; exit 1
    fi
  done

  cat > "$dest/etc/relevo-agent/agent.env" <<'ENV'
# Relevo agent settings, read by relevo-agent-once.service (run by relevo-agent.timer)
# and relevo-agent.service. Mode 0600, root only: it holds a secret.
# Set the server and EITHER the fleet's enroll secret OR an agent token, then:
#   systemctl start relevo-agent-once.service   (or wait for the timer: every 5 minutes)
#INVENTORY_SERVER=https://relevo.example.com
#INVENTORY_ENROLL_SECRET=
#INVENTORY_TOKEN=
ENV
  chmod 0600 "$dest/etc/relevo-agent/agent.env"

  install -m 0644 docs/agent.md "$dest/usr/share/doc/relevo-agent/agent.md"
  cat > "$dest/usr/share/doc/relevo-agent/copyright" <<EOF
relevo-agent: the agent of Relevo, a server inventory.

Copyright (C) $YEAR the Relevo authors.
The Relevo repository carries no licence file; ask its maintainers
($MAINTAINER) before redistributing this package.
EOF
  manpage | gzip -9n > "$dest/usr/share/man/man1/relevo-agent.1.gz"
  find "$dest" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
}

# A manual page from the command's own --help, so the two cannot disagree.
manpage() {
  local help
  help="$("$PYTHON" -c 'from agent.run_agent import build_parser
parser = build_parser()
parser.prog = "relevo-agent"
parser.print_help()')"
  printf '.TH RELEVO\\-AGENT 1 "" "relevo-agent %s" "User Commands"\n' "$VERSION"
  printf '.SH NAME\nrelevo\\-agent \\- send this host'"'"'s inventory snapshot to a Relevo server\n'
  printf '.SH SYNOPSIS\n.nf\n'
  printf '%s\n' "$help" | sed -e 's/\\/\\e/g' -e "s/^\\([.']\\)/\\\\\\&\\1/"
  printf '.fi\n.SH FILES\n.TP\n/etc/relevo\\-agent/agent.env\n'
  printf 'INVENTORY_SERVER and INVENTORY_ENROLL_SECRET or INVENTORY_TOKEN for the systemd units (mode 0600).\n'
  printf '.TP\n/var/lib/relevo\\-agent\nThe state folder: host id, per\\-host token, spool of undelivered snapshots.\n'
  printf '.SH SEE ALSO\n/usr/share/doc/relevo\\-agent/agent.md\n'
}

checksum() { (cd "$DIST" && sha256sum "$1" > "$1.sha256"); }

# --- .deb ---
deb_root="$WORK/deb"
stage "$deb_root" /lib/systemd/system
printf 'relevo-agent (%s) unstable; urgency=medium\n\n  * Release %s; see the Relevo repository for changes.\n\n -- %s  %s\n' \
  "$VERSION" "$VERSION" "$MAINTAINER" "$(date -u -R -d "@$SOURCE_DATE_EPOCH")" \
  | gzip -9n > "$deb_root/usr/share/doc/relevo-agent/changelog.gz"
touch -d "@$SOURCE_DATE_EPOCH" "$deb_root/usr/share/doc/relevo-agent/changelog.gz"
install -d "$deb_root/usr/share/lintian/overrides"
install -m 0644 scripts/packages/deb/lintian-overrides "$deb_root/usr/share/lintian/overrides/relevo-agent"
install -d "$deb_root/DEBIAN"
install -m 0755 scripts/packages/deb/postinst scripts/packages/deb/prerm scripts/packages/deb/postrm "$deb_root/DEBIAN/"
echo /etc/relevo-agent/agent.env > "$deb_root/DEBIAN/conffiles"
(cd "$deb_root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\n' | grep -v '^etc/' | LC_ALL=C sort \
  | xargs md5sum) > "$deb_root/DEBIAN/md5sums"
chmod 0644 "$deb_root/DEBIAN/conffiles" "$deb_root/DEBIAN/md5sums"
installed_size="$(du -sk --exclude=DEBIAN "$deb_root" | cut -f1)"
cat > "$deb_root/DEBIAN/control" <<EOF
Package: relevo-agent
Version: $VERSION
Architecture: all
Maintainer: $MAINTAINER
Installed-Size: $installed_size
Depends: python3 (>= 3.11), python3-psutil, python3-requests, init-system-helpers (>= 1.54~)
Section: admin
Priority: optional
Description: Relevo inventory agent
 Collects one snapshot of this host (operating system, CPU, memory, logged-in
 users, running processes) and sends it to a Relevo server, every five
 minutes from a systemd timer. Undelivered snapshots wait in a spool under
 /var/lib/relevo-agent for the next run.
 .
 Set the server and an enroll secret or agent token in
 /etc/relevo-agent/agent.env.
EOF
find "$deb_root/DEBIAN" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
deb="relevo-agent_${VERSION}_all.deb"
dpkg-deb --root-owner-group -Zxz --build "$deb_root" "$DIST/$deb" >/dev/null
checksum "$deb"

# --- .rpm ---
rpm_root="$WORK/rpm-stage"
stage "$rpm_root" /usr/lib/systemd/system
rpmbuild --quiet -bb scripts/packages/rpm/relevo-agent.spec \
  --define "_topdir $WORK/rpmbuild" \
  --define "relevo_version $VERSION" \
  --define "relevo_stage $rpm_root" \
  --define "relevo_maintainer $MAINTAINER" \
  --define "use_source_date_epoch_as_buildtime 1" \
  --define "clamp_mtime_to_source_date_epoch 1" \
  --define "_buildhost relevo-build"
rpm="relevo-agent-${VERSION}.noarch.rpm"
mv "$WORK/rpmbuild/RPMS/noarch/relevo-agent-${VERSION}-1.noarch.rpm" "$DIST/$rpm"
checksum "$rpm"

for f in "$deb" "$rpm"; do
  printf '%s  %s bytes\n' "$DIST/$f" "$(stat -c %s "$DIST/$f")"
done
