#!/usr/bin/env bash
# Sourced by matrix.sh and deb.sh: Debian root filesystems made with
# debootstrap, prepared and mounted for PostgreSQL.  Needs SUDO (an array,
# empty as root) and MIRROR set by the caller; aw_rootfs_unmount undoes
# every mount made here (run it on exit).

aw_rootfs_mounted=()

# Make a minimal root filesystem of a Debian suite in dir, trying again on
# a failure (the archive is reached over the network); the log goes to
# log.  A half-made one is removed first, never following a mount left in
# it (/dev is bound into these).
aw_rootfs_make() {
    local suite=$1 dir=$2 log=$3 attempt
    if ! command -v debootstrap >/dev/null; then
        "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
    fi
    "${SUDO[@]}" mkdir -p "$(dirname "$dir")"
    for attempt in 1 2 3; do
        if grep -q " $dir/" /proc/mounts; then
            echo "$dir has mounts: unmount them first"
            return 1
        fi
        "${SUDO[@]}" rm -rf --one-file-system "$dir"
        if "${SUDO[@]}" debootstrap --variant=minbase --include=ca-certificates \
            "$suite" "$dir" "$MIRROR" >"$log" 2>&1; then
            return 0
        fi
        echo "debootstrap failed (try $attempt of 3)"
        sleep 10
    done
    tail -n 20 "$log"
    return 1
}

# Ready a root filesystem for PostgreSQL's packages and tests: name
# resolution, no service started and no cluster made by the packages, and
# /proc, /dev and shared memory mounted.
aw_rootfs_prepare() {
    local dir=$1 what
    "${SUDO[@]}" cp /etc/resolv.conf "$dir/etc/resolv.conf"
    printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$dir/usr/sbin/policy-rc.d" >/dev/null
    "${SUDO[@]}" chmod +x "$dir/usr/sbin/policy-rc.d"
    "${SUDO[@]}" mkdir -p "$dir/etc/postgresql-common"
    echo "create_main_cluster = false" |
        "${SUDO[@]}" tee "$dir/etc/postgresql-common/createcluster.conf" >/dev/null
    for what in proc dev dev/pts dev/shm; do
        mountpoint -q "$dir/$what" && continue
        case $what in
            proc) "${SUDO[@]}" mount -t proc proc "$dir/proc" ;;
            dev/shm) "${SUDO[@]}" mount -t tmpfs shm "$dir/dev/shm" ;;
            *) "${SUDO[@]}" mount --bind "/$what" "$dir/$what" ;;
        esac
        aw_rootfs_mounted+=("$dir/$what")
    done
}

# Undo the mounts aw_rootfs_prepare made, innermost first.
aw_rootfs_unmount() {
    local i
    for ((i = ${#aw_rootfs_mounted[@]} - 1; i >= 0; i--)); do
        "${SUDO[@]}" umount -l "${aw_rootfs_mounted[$i]}" 2>/dev/null
    done
    aw_rootfs_mounted=()
}
