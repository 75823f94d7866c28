#!/usr/bin/env bash
# asyncwrite benchmark: sets up (as test/check.sh does), starts a throwaway
# PostgreSQL with asyncwrite preloaded, runs the comparisons with pgbench and
# prints a markdown table of absolute figures and ratios, all measured in
# this one run.  Each timed figure is the median of REPEAT runs.
#
#   bash test/bench/run.sh                 # full run (about 15 minutes)
#   DURATION=5 REPEAT=3 ROWS=200000 bash test/bench/run.sh   # quicker
#   PARTS=bc bash test/bench/run.sh        # only some comparisons (a..f, h..j;
#                                          # g comes with b); others print 0
set -euo pipefail
# Not what only the PgBouncer and driver tests need.
AW_TAP_PACKAGES=0
source "$(dirname "${BASH_SOURCE[0]}")/../setup.sh"

DURATION=${DURATION:-10}      # seconds per pgbench run
REPEAT=${REPEAT:-3}           # runs per figure; the median is reported
ROWS=${ROWS:-1000000}         # rows for the apply and end-to-end runs
PORT=${PORT:-54330}
PARTS=${PARTS:-abcdefhij}
if [ "$PARTS" = abcdefhij ]; then
    OUT=${OUT:-$AW_ROOT/test/bench/results-latest.md}
else
    OUT=${OUT:-/tmp/asyncwrite-bench-partial.md}   # keep the full table
fi
want() { [[ $PARTS == *"$1"* ]]; }

BENCH_DIR=$("${AW_RUN[@]}" mktemp -d /tmp/asyncwrite-bench.XXXXXX)
HUGE_BEFORE=
stop_bench() {
    "${AW_RUN[@]}" pg_ctl -D "$BENCH_DIR/data" -m fast -w stop >/dev/null 2>&1 || true
    if [ -n "$HUGE_BEFORE" ]; then
        "${SUDO[@]}" sysctl -q -w vm.nr_hugepages="$HUGE_BEFORE" || true
    fi
    rm -rf "$BENCH_DIR"
    if [ "$AW_SRC" != "$AW_ROOT" ]; then rm -rf "$AW_SRC"; fi
}
trap stop_bench EXIT

"${AW_RUN[@]}" initdb -D "$BENCH_DIR/data" -A trust -U postgres >/dev/null
"${AW_RUN[@]}" bash -c "cat >> '$BENCH_DIR/data/postgresql.conf' <<CONF
port = $PORT
listen_addresses = ''
unix_socket_directories = '$BENCH_DIR'
shared_preload_libraries = 'asyncwrite'
asyncwrite.queue_size = '512MB'
asyncwrite.max_databases = 2
shared_buffers = '512MB'
max_wal_size = '4GB'
checkpoint_timeout = '30min'
track_commit_timestamp = on
track_wal_io_timing = on
max_connections = 100
CONF"
# Shared memory in huge pages, as PostgreSQL's documentation advises for a
# large one and as production servers run (HUGE_PAGES=off for 4 kB pages):
# on these virtual machines a backend's first touch of each 4 kB page of
# the WAL buffers costs so much that it hides what any write costs.  The
# pages are reserved for the run and given back after it.
PAGES="4 kB pages"
if [ "${HUGE_PAGES:-on}" = on ]; then
    need=$("${AW_RUN[@]}" postgres -D "$BENCH_DIR/data" -C shared_memory_size_in_huge_pages 2>/dev/null || echo 0)
    have=$(awk '/^HugePages_Free:/ {print $2}' /proc/meminfo)
    if [ "$need" -gt 0 ] && [ "$have" -lt "$need" ]; then
        HUGE_BEFORE=$(cat /proc/sys/vm/nr_hugepages)
        "${SUDO[@]}" sysctl -q -w vm.nr_hugepages=$(( HUGE_BEFORE + need - have )) || true
        have=$(awk '/^HugePages_Free:/ {print $2}' /proc/meminfo)
    fi
    if [ "$need" -gt 0 ] && [ "$have" -ge "$need" ]; then
        "${AW_RUN[@]}" bash -c "echo 'huge_pages = on' >> '$BENCH_DIR/data/postgresql.conf'"
        PAGES="shared memory in 2 MB huge pages"
    fi
fi
echo "== bench server: $PAGES"
"${AW_RUN[@]}" pg_ctl -D "$BENCH_DIR/data" -l "$BENCH_DIR/server.log" -w start >/dev/null

PSQL=("${AW_RUN[@]}" psql -X -q -At -h "$BENCH_DIR" -p "$PORT" -U postgres -d postgres -v ON_ERROR_STOP=1)
PGBENCH=("${AW_RUN[@]}" pgbench -h "$BENCH_DIR" -p "$PORT" -U postgres)
sql() { "${PSQL[@]}" -c "$1"; }

sql "CREATE EXTENSION asyncwrite"
sql "CREATE TABLE events (id bigserial PRIMARY KEY, created_at timestamptz DEFAULT now(),
                          user_id bigint, kind text, payload jsonb);
     CREATE INDEX ON events (user_id, created_at);
     CREATE INDEX ON events (kind);
     CREATE TABLE events_copy (LIKE events INCLUDING ALL);
     CREATE TABLE events_lat (LIKE events INCLUDING ALL);
     ALTER TABLE events_lat ADD COLUMN enq_at timestamptz DEFAULT clock_timestamp();"

# Scripts: the same parameters for every variant.
"${AW_RUN[@]}" bash -c "cat > '$BENCH_DIR/params.inc' <<'S'
\set uid random(1, 100000)
\set k random(1, 20)
S"
mk() { "${AW_RUN[@]}" bash -c "{ cat '$BENCH_DIR/params.inc'; echo \"\$1\"; } > '$BENCH_DIR/$2.sql'" _ "$1" "$2"; }
mk "SELECT :uid::bigint, ('kind' || :k)::text, jsonb_build_object('k', :k::int);" floor
mk "INSERT INTO events (user_id, kind, payload) VALUES (:uid, 'kind' || :k, jsonb_build_object('k', :k::int));" insert
mk "SELECT asyncwrite.insert('events', jsonb_build_object('user_id', :uid::bigint, 'kind', 'kind' || :k, 'payload', jsonb_build_object('k', :k::int)));" async
mk "SELECT asyncwrite.insert('events_lat', jsonb_build_object('user_id', :uid::bigint, 'kind', 'kind' || :k));" async_lat
mk "SELECT asyncwrite.insert('events_lat', jsonb_build_object('user_id', :uid::bigint, 'kind', 'urgent'), urgent => true);" urgent_lat

median() { sort -n | awk '{a[NR]=$1} END {if (NR==0) print 0; else if (NR%2) print a[(NR+1)/2]; else printf "%.1f\n", (a[NR/2]+a[NR/2+1])/2}'; }
median_of() { printf '%s\n' "$@" | median; }
# p50 and p99 of enqueue to visible, in ms, of the events_lat rows where $1.
lat() {
    sql "SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 1),
                round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)::numeric, 1)
           FROM (SELECT extract(epoch FROM pg_xact_commit_timestamp(xmin) - enq_at) * 1000 AS ms
                   FROM events_lat WHERE $1) s" | tr '|' ' '
}

# TPS of one pgbench run: script, clients, extra environment.
tps() {
    local script=$1 clients=$2 opts=${3:-}
    sql "TRUNCATE events" >/dev/null
    "${AW_RUN[@]}" env PGOPTIONS="$opts" pgbench -h "$BENCH_DIR" -p "$PORT" -U postgres \
        -n -M prepared -c "$clients" -j "$(( clients < 2 ? 1 : 2 ))" -T "$DURATION" \
        -f "$BENCH_DIR/$script.sql" postgres 2>/dev/null |
        awk '/^tps = / {printf "%.0f\n", $3}'
    sql "SELECT asyncwrite.flush()" >/dev/null
}
tps_median() { for _ in $(seq "$REPEAT"); do tps "$@"; done | median; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b == 0) print "n/a"; else printf "%.2f", a / b}'; }

declare -A R
for k in floor_{1,2,4,8} async_{1,2,4,8} insert_{1,8} insert_off_{1,8} apply_s copy_s \
         queued_bytes_per_row row_bytes e2e_async_s e2e_insert_s tpcb_none tpcb_plain \
         tpcb_capture counter_update counter_async lat_p50 lat_p99 \
         h_{mem,dur_off,dur_on,ins_on,ins_off}_{1,8} many_{async,async_call,insert,copy}_s \
         urg_{p50,p99} plain_{p50,p99} h_flush_{dur,ins}; do R[$k]=0; done

# The memory-only queue (asyncwrite.durable off): the caller cost of the
# queue itself, in parts a and e; parts c and h say what durability costs.
NONDURABLE="-c asyncwrite.durable=off"

if want a; then
echo "== a. caller cost and scaling (median of $REPEAT x ${DURATION}s)"
for c in 1 2 4 8; do
    R[floor_$c]=$(tps_median floor "$c")
    R[async_$c]=$(tps_median async "$c" "$NONDURABLE")
    echo "clients=$c floor=${R[floor_$c]} async=${R[async_$c]}"
done
for c in 1 8; do
    R[insert_$c]=$(tps_median insert "$c")
    R[insert_off_$c]=$(tps_median insert "$c" "-c synchronous_commit=off")
    echo "clients=$c insert=${R[insert_$c]} insert_sync_off=${R[insert_off_$c]}"
done

fi

if want b; then
echo "== b. apply throughput: $ROWS queued rows vs COPY"
secs() { printf '%s\n' "$1" | "${PSQL[@]}" -f - | tail -n 1; }
apply_run() {
    sql "TRUNCATE events; SELECT asyncwrite.pause()" >/dev/null
    sql "SELECT count(*) FROM (SELECT asyncwrite.insert('events', jsonb_build_object('user_id', g % 100000, 'kind', 'kind' || g % 20, 'payload', jsonb_build_object('k', g % 20)), transactional => false) FROM generate_series(1, $ROWS) g) s" >/dev/null
    secs "SELECT extract(epoch FROM clock_timestamp()) AS t0 \\gset
          SELECT asyncwrite.resume();
          SELECT asyncwrite.flush();
          SELECT round((extract(epoch FROM clock_timestamp()) - :t0)::numeric, 3)"
}
copy_run() {
    sql "TRUNCATE events_copy" >/dev/null
    secs "SELECT extract(epoch FROM clock_timestamp()) AS t0 \\gset
          COPY events_copy (user_id, kind, payload) FROM '$BENCH_DIR/rows.csv' WITH (FORMAT csv);
          SELECT round((extract(epoch FROM clock_timestamp()) - :t0)::numeric, 3)"
}
sql "COPY (SELECT g % 100000, 'kind' || g % 20, jsonb_build_object('k', g % 20) FROM generate_series(1, $ROWS) g) TO '$BENCH_DIR/rows.csv' WITH (FORMAT csv)"
R[apply_s]=$(for _ in $(seq "$REPEAT"); do apply_run; done | median)
R[copy_s]=$(for _ in $(seq "$REPEAT"); do copy_run; done | median)
echo "apply=${R[apply_s]}s copy=${R[copy_s]}s"
R[queued_bytes_per_row]=$(sql "SELECT asyncwrite.pause();
    SELECT count(*) FROM (SELECT asyncwrite.insert('events', jsonb_build_object('user_id', g % 100000, 'kind', 'kind' || g % 20, 'payload', jsonb_build_object('k', g % 20)), transactional => false) FROM generate_series(1, 10000) g) s;
    SELECT round(queued_bytes / 10000.0, 1) FROM asyncwrite.stats WHERE database = current_database()" | tail -n 1)
R[row_bytes]=$(sql "SELECT round(avg(pg_column_size(e.*)), 1) FROM (SELECT * FROM events LIMIT 10000) e" | tail -n 1)
sql "SELECT asyncwrite.resume(); SELECT asyncwrite.flush()" >/dev/null

fi

if want c; then
echo "== c. end to end: 8 clients, $ROWS rows, then flush(), both with synchronous_commit=off"
e2e() {
    local script=$1 opts=${2:-}
    sql "TRUNCATE events" >/dev/null
    local t0 t1
    t0=$(date +%s.%N)
    "${AW_RUN[@]}" env PGOPTIONS="$opts" pgbench -h "$BENCH_DIR" -p "$PORT" -U postgres \
        -n -M prepared -c 8 -j 2 -t $(( ROWS / 8 )) -f "$BENCH_DIR/$script.sql" postgres >/dev/null 2>&1
    sql "SELECT asyncwrite.flush()" >/dev/null
    t1=$(date +%s.%N)
    awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f\n", b - a}'
}
R[e2e_async_s]=$(for _ in $(seq "$REPEAT"); do e2e async "-c synchronous_commit=off"; done | median)
R[e2e_insert_s]=$(for _ in $(seq "$REPEAT"); do e2e insert "-c synchronous_commit=off"; done | median)
echo "async=${R[e2e_async_s]}s insert_sync_off=${R[e2e_insert_s]}s"

fi

if want d; then
echo "== d. trigger feed: tpcb-like with one audit row per account update"
"${PGBENCH[@]}" -i -q -s 10 postgres >/dev/null 2>&1
sql "CREATE TABLE audit (op text, aid int, bid int, abalance int, at timestamptz DEFAULT now());
     CREATE FUNCTION audit_plain() RETURNS trigger LANGUAGE plpgsql AS \$\$
     BEGIN INSERT INTO public.audit (op, aid, bid, abalance) VALUES (TG_OP, NEW.aid, NEW.bid, NEW.abalance); RETURN NULL; END \$\$;"
tpcb() {
    # Each run starts from vacuumed tables, so that later variants do not pay
    # for the dead rows of earlier ones.
    sql "VACUUM pgbench_accounts, pgbench_branches, pgbench_tellers, pgbench_history" >/dev/null
    "${PGBENCH[@]}" -n -M prepared -c 8 -j 2 -T "$DURATION" -b tpcb-like postgres 2>/dev/null |
        awk '/^tps = / {printf "%.0f\n", $3}'
    sql "SELECT asyncwrite.flush()" >/dev/null
}
sql "CREATE TRIGGER audit_plain AFTER UPDATE ON pgbench_accounts FOR EACH ROW EXECUTE FUNCTION audit_plain();
     CREATE TRIGGER audit_capture AFTER UPDATE ON pgbench_accounts FOR EACH ROW EXECUTE FUNCTION asyncwrite.capture('audit', 'op')"
only() {   # enable one audit trigger (or none)
    sql "ALTER TABLE pgbench_accounts DISABLE TRIGGER audit_plain, DISABLE TRIGGER audit_capture" >/dev/null
    if [ -n "$1" ]; then sql "ALTER TABLE pgbench_accounts ENABLE TRIGGER $1" >/dev/null; fi
}
# Interleaved (none, plain, capture) rounds: drift on this noisy machine
# then hits every variant alike.
d_none=(); d_plain=(); d_capture=()
for _ in $(seq "$REPEAT"); do
    only "";              d_none+=("$(tpcb)")
    only audit_plain;     d_plain+=("$(tpcb)")
    only audit_capture;   d_capture+=("$(tpcb)")
done
only ""
R[tpcb_none]=$(median_of "${d_none[@]}")
R[tpcb_plain]=$(median_of "${d_plain[@]}")
R[tpcb_capture]=$(median_of "${d_capture[@]}")
echo "none=${R[tpcb_none]} plain=${R[tpcb_plain]} capture=${R[tpcb_capture]}"

fi

if want e; then
echo "== e. hot counters: 32 clients, 10 counters"
sql "CREATE TABLE counters (name text PRIMARY KEY, hits bigint NOT NULL DEFAULT 0);
     INSERT INTO counters SELECT 'c' || g, 0 FROM generate_series(0, 9) g"
mk "\\set c random(0, 9)
UPDATE counters SET hits = hits + 1 WHERE name = 'c' || :c;" counter_update
mk "\\set c random(0, 9)
SELECT asyncwrite.increment('counters', jsonb_build_object('name', 'c' || :c), '{\"hits\": 1}');" counter_async
counters() {
    local script=$1 opts=${2:-}
    "${AW_RUN[@]}" env PGOPTIONS="$opts" pgbench -h "$BENCH_DIR" -p "$PORT" -U postgres \
        -n -M prepared -c 32 -j 2 -T "$DURATION" -f "$BENCH_DIR/$script.sql" postgres 2>/dev/null |
        awk '/^tps = / {printf "%.0f\n", $3}'
    sql "SELECT asyncwrite.flush()" >/dev/null
}
e_update=(); e_async=()
for _ in $(seq "$REPEAT"); do   # interleaved, as in d
    e_update+=("$(counters counter_update "-c synchronous_commit=off")")
    e_async+=("$(counters counter_async "$NONDURABLE")")
done
R[counter_update]=$(median_of "${e_update[@]}")
R[counter_async]=$(median_of "${e_async[@]}")
echo "update_sync_off=${R[counter_update]} increment=${R[counter_async]}"

fi

if want f; then
echo "== f. latency from enqueue to visible, 8 clients"
sql "TRUNCATE events_lat" >/dev/null
"${PGBENCH[@]}" -n -M prepared -c 8 -j 2 -T "$DURATION" -f "$BENCH_DIR/async_lat.sql" postgres >/dev/null 2>&1
sql "SELECT asyncwrite.flush()" >/dev/null
read -r R[lat_p50] R[lat_p99] < <(lat true)
echo "p50=${R[lat_p50]}ms p99=${R[lat_p99]}ms"
fi

if want h; then
echo "== h. what durability costs the caller: TPS at 1 and 8 clients (interleaved, median of $REPEAT x ${DURATION}s)"
for c in 1 8; do
    h_mem=(); h_dur_off=(); h_dur_on=(); h_ins_on=(); h_ins_off=()
    for _ in $(seq "$REPEAT"); do   # interleaved: drift hits every variant alike
        h_mem+=("$(tps async "$c" "$NONDURABLE")")
        h_dur_off+=("$(tps async "$c" "-c synchronous_commit=off")")
        h_dur_on+=("$(tps async "$c")")
        h_ins_on+=("$(tps insert "$c")")
        h_ins_off+=("$(tps insert "$c" "-c synchronous_commit=off")")
    done
    R[h_mem_$c]=$(median_of "${h_mem[@]}")
    R[h_dur_off_$c]=$(median_of "${h_dur_off[@]}")
    R[h_dur_on_$c]=$(median_of "${h_dur_on[@]}")
    R[h_ins_on_$c]=$(median_of "${h_ins_on[@]}")
    R[h_ins_off_$c]=$(median_of "${h_ins_off[@]}")
    echo "clients=$c memory=${R[h_mem_$c]} durable_sync_off=${R[h_dur_off_$c]} durable_sync_on=${R[h_dur_on_$c]} insert_sync_on=${R[h_ins_on_$c]} insert_sync_off=${R[h_ins_off_$c]}"
done
# With synchronous_commit on both wait for a WAL flush: how many commits
# one flush serves (group commit) and what a flush takes bound them both.
per_flush() {
    sql "SELECT pg_stat_reset_shared('wal')" >/dev/null
    local t
    t=$(tps "$@")
    sql "SELECT round($t * $DURATION / greatest(wal_sync, 1), 1) || ' (' ||
                round((wal_sync_time / greatest(wal_sync, 1))::numeric, 2) || ' ms)' FROM pg_stat_wal"
}
R[h_flush_dur]=$(per_flush async 8)
R[h_flush_ins]=$(per_flush insert 8)
echo "8 clients, synchronous_commit on, commits per WAL flush (ms per flush): durable=${R[h_flush_dur]} insert=${R[h_flush_ins]}"
fi

if want i; then
echo "== i. many rows per call from one connection: $ROWS rows in calls of 1000 (median of $REPEAT)"
# The same 1000 rows each call, sent as literals: a JSON array of objects
# for asyncwrite.insert, a VALUES list for a multi-row INSERT.  Both
# durable, synchronous_commit on; asyncwrite's time runs until flush()
# returns (the rows applied), and its caller's time until the last call.
"${PSQL[@]}" -c "SELECT 'SELECT asyncwrite.insert(''events'', ''' ||
        jsonb_agg(jsonb_build_object('user_id', g % 100000, 'kind', 'kind' || g % 20, 'payload', jsonb_build_object('k', g % 20)))::text || ''');'
      FROM generate_series(1, 1000) g" -o "$BENCH_DIR/many_async.sql"
"${PSQL[@]}" -c "SELECT 'INSERT INTO events (user_id, kind, payload) VALUES ' ||
        string_agg(format('(%s, %L, %L)', g % 100000, 'kind' || g % 20, jsonb_build_object('k', g % 20)), ', ') || ';'
      FROM generate_series(1, 1000) g" -o "$BENCH_DIR/many_insert.sql"
sql "COPY (SELECT g % 100000, 'kind' || g % 20, jsonb_build_object('k', g % 20) FROM generate_series(1, $ROWS) g) TO '$BENCH_DIR/many.csv' WITH (FORMAT csv)"
many() {   # prints: seconds until applied, seconds of the calls
    local script=$1
    sql "TRUNCATE events" >/dev/null
    local t0 t1 t2
    t0=$(date +%s.%N)
    "${AW_RUN[@]}" pgbench -h "$BENCH_DIR" -p "$PORT" -U postgres -n -c 1 -t $(( ROWS / 1000 )) \
        -f "$BENCH_DIR/$script.sql" postgres >/dev/null 2>&1
    t1=$(date +%s.%N)
    sql "SELECT asyncwrite.flush()" >/dev/null
    t2=$(date +%s.%N)
    awk -v a="$t0" -v b="$t1" -v c="$t2" 'BEGIN {printf "%.2f %.2f\n", c - a, b - a}'
}
many_copy() {
    sql "TRUNCATE events" >/dev/null
    printf '%s\n' "SELECT extract(epoch FROM clock_timestamp()) AS t0 \\gset
          COPY events (user_id, kind, payload) FROM '$BENCH_DIR/many.csv' WITH (FORMAT csv);
          SELECT round((extract(epoch FROM clock_timestamp()) - :t0)::numeric, 3)" |
        "${PSQL[@]}" -f - | tail -n 1
}
i_async=(); i_call=(); i_insert=(); i_copy=()
for _ in $(seq "$REPEAT"); do   # interleaved: drift hits every variant alike
    read -r a c < <(many many_async); i_async+=("$a"); i_call+=("$c")
    read -r a _ < <(many many_insert); i_insert+=("$a")
    i_copy+=("$(many_copy)")
done
R[many_async_s]=$(median_of "${i_async[@]}")
R[many_async_call_s]=$(median_of "${i_call[@]}")
R[many_insert_s]=$(median_of "${i_insert[@]}")
R[many_copy_s]=$(median_of "${i_copy[@]}")
echo "asyncwrite=${R[many_async_s]}s (calls ${R[many_async_call_s]}s) insert=${R[many_insert_s]}s copy=${R[many_copy_s]}s"
fi

if want j; then
echo "== j. urgent writes mixed 1:100 into the 8-client load: enqueue to visible (median of $REPEAT)"
j_u50=(); j_u99=(); j_p50=(); j_p99=()
for _ in $(seq "$REPEAT"); do
    # Each run starts from a checkpoint, so that the writes of earlier parts
    # are not flushed in the middle of it (as d starts from vacuumed tables).
    sql "TRUNCATE events_lat; CHECKPOINT" >/dev/null
    "${PGBENCH[@]}" -n -M prepared -c 8 -j 2 -T "$DURATION" -f "$BENCH_DIR/async_lat.sql@100" \
        -f "$BENCH_DIR/urgent_lat.sql@1" postgres >/dev/null 2>&1
    sql "SELECT asyncwrite.flush()" >/dev/null
    read -r u50 u99 < <(lat "kind = 'urgent'")
    read -r p50 p99 < <(lat "kind <> 'urgent'")
    j_u50+=("$u50"); j_u99+=("$u99"); j_p50+=("$p50"); j_p99+=("$p99")
    echo "urgent p50=${u50}ms p99=${u99}ms; the others p50=${p50}ms p99=${p99}ms ($(sql "SELECT count(*) FILTER (WHERE kind = 'urgent') || ' urgent of ' || count(*) FROM events_lat"))"
done
R[urg_p50]=$(median_of "${j_u50[@]}")
R[urg_p99]=$(median_of "${j_u99[@]}")
R[plain_p50]=$(median_of "${j_p50[@]}")
R[plain_p99]=$(median_of "${j_p99[@]}")
fi

machine="$(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB, $(uname -m), PostgreSQL $(pg_config --version | awk '{print $2}')"
rows_s() { awk -v n="$ROWS" -v s="$1" 'BEGIN {if (s == 0) print "n/a"; else printf "%.0f", n / s}'; }
apply_rs=$(rows_s "${R[apply_s]}"); copy_rs=$(rows_s "${R[copy_s]}")
{
echo "Benchmark of $(date -u +%Y-%m-%d) on $machine, $PAGES; medians of $REPEAT runs of ${DURATION}s; $ROWS rows for b and c."
echo
echo "| | measure | asyncwrite | baseline | ratio | target |"
echo "|---|---|---|---|---|---|"
echo "| a | TPS, 1 client: asyncwrite.insert (durable off) vs SELECT floor | ${R[async_1]} | ${R[floor_1]} | $(ratio "${R[async_1]}" "${R[floor_1]}") | >= 0.9 |"
echo "| a | TPS, 8 clients: asyncwrite.insert (durable off) vs SELECT floor | ${R[async_8]} | ${R[floor_8]} | $(ratio "${R[async_8]}" "${R[floor_8]}") | >= 0.9 |"
echo "| a | TPS, 1 client: asyncwrite.insert (durable off) vs INSERT | ${R[async_1]} | ${R[insert_1]} | $(ratio "${R[async_1]}" "${R[insert_1]}") | |"
echo "| a | TPS, 8 clients: asyncwrite.insert (durable off) vs INSERT | ${R[async_8]} | ${R[insert_8]} | $(ratio "${R[async_8]}" "${R[insert_8]}") | |"
echo "| a | TPS, 1 client: asyncwrite.insert (durable off) vs INSERT, synchronous_commit=off | ${R[async_1]} | ${R[insert_off_1]} | $(ratio "${R[async_1]}" "${R[insert_off_1]}") | |"
echo "| a | TPS, 8 clients: asyncwrite.insert (durable off) vs INSERT, synchronous_commit=off | ${R[async_8]} | ${R[insert_off_8]} | $(ratio "${R[async_8]}" "${R[insert_off_8]}") | |"
echo "| b | apply rows/s vs COPY rows/s | $apply_rs | $copy_rs | $(ratio "$apply_rs" "$copy_rs") | >= 0.9 |"
echo "| c | end to end seconds, 8 clients, then flush, both sync_commit=off: INSERT / asyncwrite (durable) | ${R[e2e_async_s]} s | ${R[e2e_insert_s]} s | $(ratio "${R[e2e_insert_s]}" "${R[e2e_async_s]}") | >= 3 |"
echo "| d | tpcb-like TPS with capture() audit vs no audit | ${R[tpcb_capture]} | ${R[tpcb_none]} | $(ratio "${R[tpcb_capture]}" "${R[tpcb_none]}") | >= 0.97 |"
echo "| d | tpcb-like TPS with plain AFTER trigger INSERT vs no audit | ${R[tpcb_plain]} | ${R[tpcb_none]} | $(ratio "${R[tpcb_plain]}" "${R[tpcb_none]}") | |"
echo "| e | hot counters, 32 clients, 10 keys: increment (durable off) TPS vs UPDATE sync_commit=off | ${R[counter_async]} | ${R[counter_update]} | $(ratio "${R[counter_async]}" "${R[counter_update]}") | >= 3 |"
echo "| f | latency enqueue to visible, 8 clients (durable): p50 / p99 ms | ${R[lat_p50]} / ${R[lat_p99]} | | | p99 < 50 |"
echo "| g | queue bytes per row / row's own bytes (overhead) | ${R[queued_bytes_per_row]} | ${R[row_bytes]} | $(awk -v q="${R[queued_bytes_per_row]}" -v r="${R[row_bytes]}" 'BEGIN {printf "+%.0f B", q - r}') | <= +32 B |"
for c in 1 8; do
echo "| h | TPS, $c client(s): durable, synchronous_commit=off vs durable off | ${R[h_dur_off_$c]} | ${R[h_mem_$c]} | $(ratio "${R[h_dur_off_$c]}" "${R[h_mem_$c]}") | >= 0.85 |"
echo "| h | TPS, $c client(s): durable, synchronous_commit=on vs INSERT, synchronous_commit=on | ${R[h_dur_on_$c]} | ${R[h_ins_on_$c]} | $(ratio "${R[h_dur_on_$c]}" "${R[h_ins_on_$c]}") | $([ "$c" = 8 ] && echo '>= 1.5') |"
echo "| h | TPS, $c client(s): durable, synchronous_commit=off vs INSERT, synchronous_commit=off | ${R[h_dur_off_$c]} | ${R[h_ins_off_$c]} | $(ratio "${R[h_dur_off_$c]}" "${R[h_ins_off_$c]}") | |"
done
echo "| h | 8 clients, synchronous_commit=on: commits per WAL flush (ms per flush), durable vs INSERT | ${R[h_flush_dur]} | ${R[h_flush_ins]} | | |"
many_rs() { rows_s "$1"; }
echo "| i | rows/s from one connection, calls of 1000 rows, until applied: insert(JSON array) vs multi-row INSERT | $(many_rs "${R[many_async_s]}") | $(many_rs "${R[many_insert_s]}") | $(ratio "$(many_rs "${R[many_async_s]}")" "$(many_rs "${R[many_insert_s]}")") | >= 1 |"
echo "| i | the same, the calls only (not yet applied) vs multi-row INSERT | $(many_rs "${R[many_async_call_s]}") | $(many_rs "${R[many_insert_s]}") | $(ratio "$(many_rs "${R[many_async_call_s]}")" "$(many_rs "${R[many_insert_s]}")") | |"
echo "| i | the same until applied vs COPY of all rows | $(many_rs "${R[many_async_s]}") | $(many_rs "${R[many_copy_s]}") | $(ratio "$(many_rs "${R[many_async_s]}")" "$(many_rs "${R[many_copy_s]}")") | |"
echo "| j | enqueue to visible, urgent writes 1:100 in the 8-client load: p50 / p99 ms (the others: p50 / p99) | ${R[urg_p50]} / ${R[urg_p99]} | ${R[plain_p50]} / ${R[plain_p99]} | | p99 < 5 |"
echo
echo "Scaling, TPS by clients (asyncwrite.insert, durable off / SELECT floor):"
echo
echo "| clients | 1 | 2 | 4 | 8 |"
echo "|---|---|---|---|---|"
echo "| SELECT floor | ${R[floor_1]} | ${R[floor_2]} | ${R[floor_4]} | ${R[floor_8]} |"
echo "| asyncwrite.insert | ${R[async_1]} | ${R[async_2]} | ${R[async_4]} | ${R[async_8]} |"
} | tee "$OUT.tmp"
"${SUDO[@]}" true 2>/dev/null || true
cat "$OUT.tmp" > "$OUT" && rm -f "$OUT.tmp"
echo "(table saved to $OUT)"
