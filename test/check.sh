#!/usr/bin/env bash
# Set up asyncwrite and run the whole suite: pg_regress, isolation and TAP
# tests, each on throwaway instances.  Ends with one summary line.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh" || exit 1
set +e

LOG_DIR=$(mktemp -d /tmp/asyncwrite-check.XXXXXX)
chmod 777 "$LOG_DIR"
passed=0
failed=0
failures=()

# Run one part of the suite as the unprivileged user; count its results.
run_part() {
    local name=$1; shift
    local log="$LOG_DIR/$name.log"
    echo "== $name"
    ( cd "$AW_SRC" && "${AW_RUN[@]}" make -s "$@" PG_CONFIG="$PG_BIN/pg_config" ) >"$log" 2>&1
    local rc=$?
    grep -E '^(ok|not ok) |\.\.\. (ok|FAILED)|^test/t/.*\.\. |^(test |     )' "$log" | grep -vE '^# ' || true
    local ok bad
    if [ "$name" = tap ]; then
        ok=$(grep -cE '^test/t/.*\.pl \.+ ok' "$log")
        bad=$(grep -cE '^test/t/.*\.pl \.+ ' "$log")
        bad=$((bad - ok))
    else
        # pg_regress 15 prints "test x ... ok", 16 and later "ok 1 - x".
        ok=$(grep -cE '(\.\.\. | )ok +[0-9]+ ms|^ok [0-9]+ +- ' "$log")
        bad=$(grep -cE '(\.\.\. | )FAILED|^not ok [0-9]+ ' "$log")
    fi
    if [ "$rc" -ne 0 ] && [ "$bad" -eq 0 ]; then bad=1; fi
    passed=$((passed + ok)); failed=$((failed + bad))
    if [ "$bad" -ne 0 ]; then
        failures+=("$name")
        echo "-- $name failed; its output:"
        tail -n 60 "$log"
        for d in "$AW_SRC"/regression.diffs "$AW_SRC"/output_iso/regression.diffs; do
            [ -f "$d" ] && head -n 200 "$d"
        done
        for f in "$AW_SRC"/tmp_check/log/*; do
            [ -f "$f" ] && { echo "-- $f"; tail -n 40 "$f"; }
        done
    fi
}

# Checks of the source tree itself, run as the invoking user.
run_check() {
    local name=$1; shift
    echo "== $name"
    if "$@" >"$LOG_DIR/$name.log" 2>&1; then
        echo "$name ... ok"
        passed=$((passed + 1))
    else
        echo "$name ... FAILED"
        tail -n 80 "$LOG_DIR/$name.log"
        failed=$((failed + 1))
        failures+=("$name")
    fi
}

# The C sources are laid out as PostgreSQL lays out its own, and their
# layers depend only downward (test/layers.pl reads the objects just built).
if [ "${AW_SOURCE_CHECKS:-1}" = 1 ]; then
    run_check pgindent bash "$AW_ROOT/test/pgindent.sh"
    run_check layers perl "$AW_ROOT/test/layers.pl" "$AW_ROOT/src"
fi

run_part regress installcheck ISOLATION= TAP_TESTS=
run_part isolation installcheck REGRESS= TAP_TESTS=
run_part tap installcheck REGRESS= ISOLATION=

echo
if [ ${#failures[@]} -gt 0 ]; then
    echo "failed parts: ${failures[*]} (logs in $LOG_DIR, tree in $AW_SRC)"
else
    rm -rf "$LOG_DIR"
    [ "$AW_SRC" != "$AW_ROOT" ] && rm -rf "$AW_SRC"
fi
echo "asyncwrite: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
