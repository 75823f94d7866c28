#!/usr/bin/env bash
# Set up asyncwrite and show it working on a throwaway PostgreSQL instance.
set -euo pipefail
# Not what only the PgBouncer and driver tests need.
AW_TAP_PACKAGES=0
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"

DEMO_DIR=$("${AW_RUN[@]}" mktemp -d /tmp/asyncwrite-demo.XXXXXX)
PORT=54329
stop_demo() {
    local rc=$?
    "${AW_RUN[@]}" pg_ctl -D "$DEMO_DIR/data" -m fast -w stop >/dev/null 2>&1 || true
    # A failed demo keeps the server's log, and says where it is.
    if [ "$rc" -ne 0 ] && [ -f "$DEMO_DIR/server.log" ]; then
        cp "$DEMO_DIR/server.log" /tmp/asyncwrite-demo-server.log
        echo "demo failed; the server log is in /tmp/asyncwrite-demo-server.log"
    fi
    rm -rf "$DEMO_DIR"
    if [ "$AW_SRC" != "$AW_ROOT" ]; then rm -rf "$AW_SRC"; fi
}
trap stop_demo EXIT

echo "== starting a throwaway PostgreSQL in $DEMO_DIR"
"${AW_RUN[@]}" initdb -D "$DEMO_DIR/data" -A trust -U postgres >/dev/null
"${AW_RUN[@]}" bash -c "cat '$AW_SRC/test/asyncwrite.conf' >> '$DEMO_DIR/data/postgresql.conf'
echo \"port = $PORT
listen_addresses = ''
unix_socket_directories = '$DEMO_DIR'\" >> '$DEMO_DIR/data/postgresql.conf'"
"${AW_RUN[@]}" pg_ctl -D "$DEMO_DIR/data" -l "$DEMO_DIR/server.log" -w start >/dev/null

echo "== demo"
"${AW_RUN[@]}" psql -X -h "$DEMO_DIR" -p "$PORT" -U postgres -d postgres \
    -v ON_ERROR_STOP=1 -f "$AW_SRC/test/demo.sql"
echo "== demo finished"
