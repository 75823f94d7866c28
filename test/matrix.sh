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

mounted=()
cleanup() {
    for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
        "${SUDO[@]}" umount -l "${mounted[$i]}" 2>/dev/null
    done
}
trap cleanup EXIT

# Mount what PostgreSQL needs inside a root filesystem (shared memory, /proc).
mount_in() {
    local dir=$1 what
    for what in proc dev dev/pts dev/shm; do
        mountpoint -q "$dir/$what" && continue
        case $what in
            proc) "${SUDO[@]}" mount -t proc proc "$dir/proc" ;;
            dev/shm) "${SUDO[@]}" mount -t tmpfs shm "$dir/dev/shm" ;;
            *) "${SUDO[@]}" mount --bind "/$what" "$dir/$what" ;;
        esac
        mounted+=("$dir/$what")
    done
}

summary=()
status=0
for v in "${versions[@]}"; do
    suite=$(suite_of "$v") || { echo "no Debian release packages PostgreSQL $v here"; exit 2; }
    dir=$CACHE/$suite
    echo "=== PostgreSQL $v (Debian $suite)"
    if [ ! -x "$dir/usr/bin/apt-get" ]; then
        echo "== debootstrap $suite into $dir"
        if ! command -v debootstrap >/dev/null; then
            "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
        fi
        "${SUDO[@]}" mkdir -p "$CACHE"
        # The archive is reached over the network: try again on a failure.
        ok=0
        for attempt in 1 2 3; do
            # A half-made root filesystem: never follow a mount left in it.
            grep -q " $dir/" /proc/mounts && { echo "$dir has mounts: unmount them first"; exit 2; }
            "${SUDO[@]}" rm -rf --one-file-system "$dir"
            if "${SUDO[@]}" debootstrap --variant=minbase --include=ca-certificates \
                "$suite" "$dir" "$MIRROR" >"/tmp/asyncwrite-debootstrap-$suite.log" 2>&1; then
                ok=1; break
            fi
            echo "debootstrap failed (try $attempt of 3)"; sleep 10
        done
        if [ $ok = 0 ]; then
            tail -n 20 "/tmp/asyncwrite-debootstrap-$suite.log"
            summary+=("PostgreSQL $v: debootstrap failed"); status=1; continue
        fi
    fi
    # No service starts and no cluster is made by the packages.
    "${SUDO[@]}" cp /etc/resolv.conf "$dir/etc/resolv.conf"
    printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$dir/usr/sbin/policy-rc.d" >/dev/null
    "${SUDO[@]}" chmod +x "$dir/usr/sbin/policy-rc.d"
    "${SUDO[@]}" mkdir -p "$dir/etc/postgresql-common"
    echo "create_main_cluster = false" | "${SUDO[@]}" tee "$dir/etc/postgresql-common/createcluster.conf" >/dev/null
    mount_in "$dir"

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
