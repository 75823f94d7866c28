#!/usr/bin/env bash
# Sourced by demo.sh and check.sh: install what is missing (Debian 12),
# build asyncwrite with warnings as errors, install it, and prepare to run
# PostgreSQL as an unprivileged user.  Sets AW_SRC (a tree the test user may
# write to), AW_RUN (a command prefix running as that user) and PATH.
# AW_PG picks another PostgreSQL major (test/matrix.sh runs 17 and 18 in
# Debian 13 and unstable root filesystems); AW_APT_OPTS adds apt options.
set -euo pipefail

AW_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
AW_PG=${AW_PG:-15}
PG_BIN=/usr/lib/postgresql/$AW_PG/bin
export PATH="$PG_BIN:$PATH"

if [ "$(id -u)" -eq 0 ]; then SUDO=(); else SUDO=(sudo); fi

aw_packages=(postgresql-$AW_PG postgresql-server-dev-$AW_PG build-essential
             libipc-run-perl perl make gcc)
# pgindent is checked on the default major only.
if [ "${AW_SOURCE_CHECKS:-1}" = 1 ]; then aw_packages+=(pg-bsd-indent); fi
# PgBouncer, which TAP test 025 runs itself.
aw_packages+=(pgbouncer)
aw_missing=()
for p in "${aw_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || aw_missing+=("$p")
done
if [ ${#aw_missing[@]} -gt 0 ]; then
    echo "== installing ${aw_missing[*]}"
    # Do not let the package start a cluster of its own.
    # shellcheck disable=SC2086
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get ${AW_APT_OPTS:-} update -qq
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        -o Dpkg::Options::=--force-confold "${aw_missing[@]}" >/dev/null
fi

echo "== building asyncwrite"
make -C "$AW_ROOT" -s clean >/dev/null
make -C "$AW_ROOT" -s AW_EXTRA_CFLAGS=-Werror PG_CONFIG="$PG_BIN/pg_config"
"${SUDO[@]}" make -C "$AW_ROOT" -s install PG_CONFIG="$PG_BIN/pg_config" >/dev/null

# PostgreSQL refuses to run as root: run it as the postgres user, from a
# copy of the tree that user owns.
if [ "$(id -u)" -eq 0 ]; then
    AW_SRC=$(mktemp -d /tmp/asyncwrite.XXXXXX)
    cp -a "$AW_ROOT/." "$AW_SRC/"
    chown -R postgres:postgres "$AW_SRC"
    AW_RUN=(runuser -u postgres -- env "PATH=$PATH")
else
    AW_SRC=$AW_ROOT
    AW_RUN=(env "PATH=$PATH")
fi
export AW_ROOT AW_SRC PG_BIN
