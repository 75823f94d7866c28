#!/usr/bin/env bash
# Sourced by demo.sh and check.sh: install what is missing (Debian 12),
# build asyncwrite with warnings as errors, install it, and prepare to run
# PostgreSQL as an unprivileged user.  Sets AW_SRC (a tree the test user may
# write to), AW_RUN (a command prefix running as that user) and PATH.
# AW_PG picks another PostgreSQL major (test/matrix.sh runs 17 and 18 in
# Debian 13 and unstable root filesystems); AW_APT_OPTS adds apt options;
# AW_TAP_PACKAGES=0 leaves out what only TAP tests 025 and 026 need
# (PgBouncer, the drivers and their runtimes: demo.sh and bench/run.sh).
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
# PgBouncer and the driver examples of test/apps (TAP tests 025 and 026),
# without their recommends (which double the time they take).  node-pg
# needs Debian's nodejs: a nodejs from elsewhere (NodeSource's) does not
# satisfy Debian's node-* packages, so there pg comes from npm (below).
aw_tap_packages=()
aw_npm_pg=0
if [ "${AW_TAP_PACKAGES:-1}" = 1 ]; then
    aw_tap_packages=(pgbouncer python3-psycopg libpostgresql-jdbc-java default-jdk-headless)
    if command -v node >/dev/null &&
        ! dpkg-query -W -f='${Maintainer}' nodejs 2>/dev/null | grep -qi debian; then
        aw_npm_pg=1
    else
        aw_tap_packages+=(nodejs node-pg)
    fi
fi
# The packages of a list that are not installed.
aw_not_installed() {
    local p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"
    done
}
mapfile -t aw_missing < <(aw_not_installed "${aw_packages[@]}")
mapfile -t aw_missing_tap < <(aw_not_installed "${aw_tap_packages[@]}")
if [ ${#aw_missing[@]} -gt 0 ] || [ ${#aw_missing_tap[@]} -gt 0 ]; then
    # shellcheck disable=SC2086
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get ${AW_APT_OPTS:-} update -qq
fi
if [ ${#aw_missing[@]} -gt 0 ]; then
    echo "== installing ${aw_missing[*]}"
    # Do not let the package start a cluster of its own.
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive DEBCONF_NOWARNINGS=yes apt-get install -y -qq \
        -o Dpkg::Options::=--force-confold "${aw_missing[@]}" >/dev/null
fi
if [ ${#aw_missing_tap[@]} -gt 0 ]; then
    echo "== installing ${aw_missing_tap[*]}"
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive DEBCONF_NOWARNINGS=yes apt-get install -y -qq --no-install-recommends \
        -o Dpkg::Options::=--force-confold "${aw_missing_tap[@]}" >/dev/null
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
    AW_RUN=(runuser -u postgres -- env "PATH=$PATH")
    # Work from a directory that user may enter (no "could not change
    # directory" from every command run as it).
    cd "$AW_SRC"
else
    AW_SRC=$AW_ROOT
    AW_RUN=(env "PATH=$PATH")
fi
if [ "$aw_npm_pg" = 1 ] && [ ! -d "$AW_SRC/test/apps/node-pg/node_modules/pg" ]; then
    echo "== installing pg from npm for the node-pg example (nodejs is not Debian's)"
    npm install --prefix "$AW_SRC/test/apps/node-pg" --no-audit --no-fund --no-package-lock \
        --loglevel=error >/dev/null
fi
if [ "$(id -u)" -eq 0 ]; then chown -R postgres:postgres "$AW_SRC"; fi
export AW_ROOT AW_SRC PG_BIN
