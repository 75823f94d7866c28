#!/usr/bin/env bash
# Build the Debian package with Debian's own tooling (dpkg-buildpackage,
# debhelper, pg_buildext: postgresql-NN-asyncwrite for each installed
# server-dev major), install the built .deb into a fresh Debian 12 root
# filesystem, preload it, and run the regression suite there against the
# installed package (installcheck), not the build tree.  Ends with one line.
#
#   bash test/deb.sh
#
# Needs root or sudo.  The pristine root filesystem is kept in $AW_CACHE
# (default ~/.cache/asyncwrite/roots) and copied for each run.
set -uo pipefail

AW_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${AW_CACHE:-$HOME/.cache/asyncwrite/roots}
MIRROR=${AW_MIRROR:-http://deb.debian.org/debian}
if [ "$(id -u)" -eq 0 ]; then SUDO=(); else SUDO=(sudo); fi
WORK=$(mktemp -d /tmp/asyncwrite-deb.XXXXXX)
FRESH=$WORK/root
source "$AW_ROOT/test/rootfs.sh"
cleanup() {
    aw_rootfs_unmount
    # Never follow a mount that is still there (/dev is bound in).
    if grep -q " $WORK/" /proc/mounts; then
        echo "left $WORK in place: something is still mounted under it"
    else
        "${SUDO[@]}" rm -rf --one-file-system "$WORK"
    fi
}
trap cleanup EXIT
fail() { echo "$1"; echo "asyncwrite deb: 0 passed, 1 failed"; exit 1; }

missing=()
for p in debhelper dpkg-dev postgresql-server-dev-all postgresql-server-dev-15 debootstrap; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "== installing ${missing[*]}"
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

echo "== building the package"
mkdir -p "$WORK/src"
cp -a "$AW_ROOT/." "$WORK/src/asyncwrite/"
make -C "$WORK/src/asyncwrite" -s clean >/dev/null 2>&1
rm -rf "$WORK/src/asyncwrite/.git"
if ! (cd "$WORK/src/asyncwrite" && dpkg-buildpackage -us -uc -b) >"$WORK/build.log" 2>&1; then
    tail -n 40 "$WORK/build.log"
    fail "dpkg-buildpackage failed"
fi
debs=("$WORK"/src/postgresql-*-asyncwrite_*.deb)
[ -f "${debs[0]}" ] || fail "no package built"
for d in "${debs[@]}"; do echo "built $(basename "$d")"; done
deb=$(ls "$WORK"/src/postgresql-15-asyncwrite_*.deb)

echo "== a fresh Debian 12 root filesystem"
pristine=$CACHE/bookworm
if [ ! -x "$pristine/usr/bin/apt-get" ]; then
    aw_rootfs_make bookworm "$pristine" "$WORK/debootstrap.log" || fail "debootstrap failed"
fi
"${SUDO[@]}" cp -a "$pristine" "$FRESH"
aw_rootfs_prepare "$FRESH"
# A DBA's machine takes updates: the package needs at least the minor
# release it was built against.
printf 'deb %s bookworm main\ndeb %s bookworm-updates main\ndeb http://deb.debian.org/debian-security bookworm-security main\n' \
    "$MIRROR" "$MIRROR" | "${SUDO[@]}" tee "$FRESH/etc/apt/sources.list" >/dev/null

echo "== installing $(basename "$deb") there"
"${SUDO[@]}" cp "$deb" "$FRESH/tmp/"
in_root() { "${SUDO[@]}" chroot "$FRESH" env DEBIAN_FRONTEND=noninteractive HOME=/root "$@"; }
in_root apt-get update -qq || fail "apt-get update failed"
# The package and what pg_regress needs (not a compiler: nothing is built).
in_root apt-get install -y -qq "/tmp/$(basename "$deb")" postgresql-server-dev-15 make >/dev/null \
    || fail "installing the package failed"
in_root test -f /usr/lib/postgresql/15/lib/asyncwrite.so || fail "the package did not install the library"
in_root test -f /usr/share/postgresql/15/extension/asyncwrite.control || fail "the package did not install the extension"

echo "== regression suite against the installed package"
# Only the tests and the Makefile: no sources, so nothing can be built.
in_root mkdir -p /tmp/aw-tests
"${SUDO[@]}" cp -a "$AW_ROOT/test" "$AW_ROOT/Makefile" "$FRESH/tmp/aw-tests/"
in_root chown -R postgres:postgres /tmp/aw-tests
in_root runuser -u postgres -- make -C /tmp/aw-tests -s installcheck ISOLATION= TAP_TESTS= \
    PG_CONFIG=/usr/lib/postgresql/15/bin/pg_config >"$WORK/installcheck.log" 2>&1
rc=$?
grep -E '\.\.\. (ok|FAILED)|^(ok|not ok) ' "$WORK/installcheck.log"
ok=$(grep -cE '\.\.\. +ok|^ok [0-9]+ ' "$WORK/installcheck.log")
bad=$(grep -cE '\.\.\. +FAILED|^not ok [0-9]+ ' "$WORK/installcheck.log")
if [ $rc -ne 0 ] && [ "$bad" -eq 0 ]; then bad=1; tail -n 30 "$WORK/installcheck.log"; fi
[ -f "$FRESH/tmp/aw-tests/regression.diffs" ] && head -n 100 "$FRESH/tmp/aw-tests/regression.diffs"
[ "$bad" -ne 0 ] && [ -f "$FRESH/tmp/aw-tests/log/postmaster.log" ] && tail -n 30 "$FRESH/tmp/aw-tests/log/postmaster.log"
echo "asyncwrite deb: $ok passed, $bad failed"
[ "$bad" -eq 0 ]
