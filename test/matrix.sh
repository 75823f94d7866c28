#!/usr/bin/env bash
# Run the whole suite (pg_regress, isolation, TAP) against the PostgreSQL of
# other Debian releases, each in a root filesystem made with debootstrap
# from Debian's archive: 17 (Debian 13, trixie) and 18 (Debian unstable).
# The default major, 15 (Debian 12), is what test/check.sh runs on the
# machine itself.  Ends with one summary line per version.
#
#   bash test/matrix.sh            # 17 and 18
#   bash test/matrix.sh 18         # one of them
#
# Needs root or sudo (debootstrap, mount, chroot).  The root filesystems
# are kept in $AW_CACHE (default ~/.cache/asyncwrite/roots) and reused.
set -uo pipefail

AW_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${AW_CACHE:-$HOME/.cache/asyncwrite/roots}
MIRROR=${AW_MIRROR:-http://deb.debian.org/debian}
if [ "$(id -u)" -eq 0 ]; then SUDO=(); else SUDO=(sudo); fi
versions=("$@")
[ ${#versions[@]} -eq 0 ] && versions=(17 18)

# The Debian release that packages a PostgreSQL major, and its apt options
# (unstable's Release file may be past its Valid-Until date here).
suite_of() { case $1 in 17) echo trixie ;; 18) echo sid ;; *) return 1 ;; esac; }
apt_opts_of() { [ "$1" = 18 ] && echo "-o Acquire::Check-Valid-Until=false"; }

source "$AW_ROOT/test/rootfs.sh"
trap aw_rootfs_unmount EXIT

summary=()
status=0
for v in "${versions[@]}"; do
    suite=$(suite_of "$v") || { echo "no Debian release packages PostgreSQL $v here"; exit 2; }
    dir=$CACHE/$suite
    echo "=== PostgreSQL $v (Debian $suite)"
    if [ ! -x "$dir/usr/bin/apt-get" ]; then
        echo "== debootstrap $suite into $dir"
        if ! aw_rootfs_make "$suite" "$dir" "/tmp/asyncwrite-debootstrap-$suite.log"; then
            summary+=("PostgreSQL $v: debootstrap failed"); status=1; continue
        fi
    fi
    aw_rootfs_prepare "$dir"

    # A copy of this tree, checked there as test/check.sh checks it here.
    "${SUDO[@]}" rm -rf "$dir/tmp/asyncwrite-matrix"
    "${SUDO[@]}" cp -a "$AW_ROOT/." "$dir/tmp/asyncwrite-matrix/"
    log=/tmp/asyncwrite-matrix-$v.log
    "${SUDO[@]}" chroot "$dir" env AW_PG="$v" AW_SOURCE_CHECKS=0 AW_APT_OPTS="$(apt_opts_of "$v")" \
        HOME=/root bash /tmp/asyncwrite-matrix/test/check.sh 2>&1 | tee "$log"
    line=$(grep -E '^asyncwrite: [0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
    [ -n "$line" ] || line="asyncwrite: no result (see $log)"
    case $line in *" 0 failed") ;; *) status=1 ;; esac
    summary+=("PostgreSQL $v: ${line#asyncwrite: }")
done

echo
printf '%s\n' "${summary[@]}"
exit $status
