# Foreign tables as targets, through postgres_fdw to a second cluster B:
# writes queued on A into a foreign table and into a partitioned table
# whose partitions are foreign tables on B are applied on B with the rows,
# defaults and triggers (on A's foreign table and on B's tables) of the same
# INSERTs run directly (the oracle); key-based writes to them are refused
# at the call (0A000); a role without a user mapping gets, as a dead letter,
# the error its own INSERT gets.  While B is down the writes are tried
# again (connection failures are transient), not dead-lettered, and once B
# is back they apply exactly once; a B restarted in the middle of a batch
# makes the worker try the batch again in a new transaction (postgres_fdw
# cannot use a connection lost in a transaction again in it); when the
# tries run out the writes become dead letters that retry_failed() applies.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use AsyncWriteTest;

my $node_b = PostgreSQL::Test::Cluster->new('b');
$node_b->init;
$node_b->start;

# 1 + 8 tries of a connection failure span 100 ms x (2^8 - 1) = 25.5 s.
my $node_a = aw_node('a', qq{asyncwrite.retry_delay = '100ms'
asyncwrite.max_retries = 8
asyncwrite.apply_lock_timeout = '60s'
});

# On B: tables with a BEFORE ROW trigger that sets a column and an AFTER
# ROW trigger that notes each row, each with a twin for the oracle.
# postgres_fdw's remote sessions have search_path pg_catalog.
$node_b->safe_psql('postgres', q{
	CREATE ROLE ingest LOGIN;
	CREATE TABLE fired (tbl text, id int);
	CREATE FUNCTION shout() RETURNS trigger LANGUAGE plpgsql AS
	  $$BEGIN NEW.shout := upper(NEW.v); RETURN NEW; END$$;
	CREATE FUNCTION note() RETURNS trigger LANGUAGE plpgsql AS
	  $$BEGIN INSERT INTO public.fired VALUES (TG_TABLE_NAME, NEW.id); RETURN NULL; END$$;
	GRANT INSERT, SELECT ON fired TO ingest;
});
foreach my $t ('events', 'events_oracle', 'p_low', 'p_low_oracle', 'p_high', 'p_high_oracle')
{
	$node_b->safe_psql('postgres', qq{
		CREATE TABLE $t (id int PRIMARY KEY, v text, src text DEFAULT 'b-default', shout text);
		CREATE TRIGGER shout BEFORE INSERT ON $t FOR EACH ROW EXECUTE FUNCTION shout();
		CREATE TRIGGER note AFTER INSERT ON $t FOR EACH ROW EXECUTE FUNCTION note();
		GRANT INSERT, SELECT ON $t TO ingest;
	});
}

# On A: the server, a user mapping for the role that queues (a
# non-superuser: password_required off, B trusts local connections), a
# role with INSERT and no user mapping, foreign tables with their own
# defaults and an AFTER ROW trigger, partitioned tables with two foreign
# partitions and a local one.
my ($bhost, $bport) = ($node_b->host, $node_b->port);
$node_a->safe_psql('postgres', qq{
	CREATE EXTENSION postgres_fdw;
	CREATE SERVER b FOREIGN DATA WRAPPER postgres_fdw
	  OPTIONS (host '$bhost', port '$bport', dbname 'postgres', batch_size '50');
	CREATE ROLE ingest LOGIN;
	CREATE ROLE nomap LOGIN;
	CREATE USER MAPPING FOR ingest SERVER b OPTIONS (user 'ingest', password_required 'false');
	CREATE TABLE fired_a (tbl text, id int);
	CREATE FUNCTION note_a() RETURNS trigger LANGUAGE plpgsql AS
	  \$\$BEGIN INSERT INTO public.fired_a VALUES (TG_TABLE_NAME, NEW.id); RETURN NULL; END\$\$;
	CREATE TABLE local_log (id int);
	CREATE TABLE gate (id int);
	CREATE FUNCTION gate_wait() RETURNS trigger LANGUAGE plpgsql AS
	  \$\$BEGIN PERFORM pg_advisory_lock_shared(4242); PERFORM pg_advisory_unlock_shared(4242); RETURN NEW; END\$\$;
	CREATE TRIGGER gate_wait BEFORE INSERT ON gate FOR EACH ROW EXECUTE FUNCTION gate_wait();
	GRANT INSERT ON fired_a, local_log, gate TO ingest;
	CREATE FUNCTION sqlstate_of(q text) RETURNS text LANGUAGE plpgsql AS
	  \$\$BEGIN EXECUTE q; RETURN 'ok'; EXCEPTION WHEN others THEN RETURN SQLSTATE || ' ' || SQLERRM; END\$\$;
});
foreach my $s ('', '_oracle')
{
	$node_a->safe_psql('postgres', qq{
		CREATE FOREIGN TABLE events$s (id int NOT NULL, v text, src text DEFAULT 'a-default', shout text)
		  SERVER b OPTIONS (table_name 'events$s');
		CREATE TRIGGER note_a AFTER INSERT ON events$s FOR EACH ROW EXECUTE FUNCTION note_a();
		CREATE TABLE parts$s (id int NOT NULL, v text, src text DEFAULT 'a-default', shout text)
		  PARTITION BY RANGE (id);
		CREATE FOREIGN TABLE parts${s}_low PARTITION OF parts$s FOR VALUES FROM (0) TO (1000)
		  SERVER b OPTIONS (table_name 'p_low$s');
		CREATE FOREIGN TABLE parts${s}_high PARTITION OF parts$s FOR VALUES FROM (1000) TO (2000)
		  SERVER b OPTIONS (table_name 'p_high$s');
		CREATE TABLE parts${s}_local PARTITION OF parts$s FOR VALUES FROM (2000) TO (3000);
		GRANT INSERT, SELECT ON events$s, parts$s TO ingest;
		GRANT INSERT ON events$s TO nomap;
	});
}

# Row i of a run: v NULL for every 7th, src given for every 3rd (else the
# foreign table's default on A, never B's).
my $v = q{CASE WHEN i % 7 = 0 THEN NULL ELSE 'v' || i END};
my $json = qq{jsonb_build_object('id', ID, 'v', $v) || CASE WHEN i % 3 = 0 THEN '{"src": "given"}' ELSE '{}' END::jsonb};

# Queue rows [lo, hi] of target as ingest (one transaction), with id the
# expression idexpr of i.
sub queue_rows
{
	my ($node, $target, $lo, $hi, $idexpr) = @_;
	(my $j = $json) =~ s/ID/$idexpr/;
	$node->safe_psql('postgres', qq{SET ROLE ingest;
		SELECT count(*) FROM (SELECT asyncwrite.insert('$target', $j) FROM generate_series($lo, $hi) i) s});
}

# The oracle: the same rows inserted directly, as ingest.
sub insert_rows
{
	my ($node, $target, $lo, $hi, $idexpr) = @_;
	$node->safe_psql('postgres', qq{SET ROLE ingest;
		INSERT INTO $target (id, v) SELECT $idexpr, $v FROM generate_series($lo, $hi) i WHERE i % 3 <> 0;
		INSERT INTO $target (id, v, src) SELECT $idexpr, $v, 'given' FROM generate_series($lo, $hi) i WHERE i % 3 = 0});
}

# Rows of a table on B (or A) that its oracle twin lacks, and the reverse.
sub differences
{
	my ($node, $t, $o) = @_;
	return $node->safe_psql('postgres', qq{SELECT count(*) FROM (
		(SELECT id, v, src, shout FROM $t EXCEPT ALL SELECT id, v, src, shout FROM $o)
		UNION ALL
		(SELECT id, v, src, shout FROM $o EXCEPT ALL SELECT id, v, src, shout FROM $t)) d});
}

sub stat_counts
{
	return aw_stat($node_a, 'postgres', q{applied || ' ' || failed});
}

# Applied and failed counts since $before.
sub stat_delta
{
	my ($before) = @_;
	my ($a0, $f0) = split / /, $before;
	my ($a1, $f1) = split / /, stat_counts();
	return ($a1 - $a0) . ' applied, ' . ($f1 - $f0) . ' failed';
}

# Inserts into the foreign table and the partitioned table, as the
# oracle's INSERTs give; one duplicate key on B fails alone.
my $before = stat_counts();
for my $k (0 .. 2)
{
	my ($lo, $hi) = (100 * $k + 1, 100 * $k + 100);
	queue_rows($node_a, 'events', $lo, $hi, 'i');
	queue_rows($node_a, 'parts', $lo, $hi, 'i * 10 - 5');
	insert_rows($node_a, 'events_oracle', $lo, $hi, 'i');
	insert_rows($node_a, 'parts_oracle', $lo, $hi, 'i * 10 - 5');
}
$node_a->safe_psql('postgres', q{SET ROLE ingest; SELECT asyncwrite.insert('events', '{"id": 7, "v": "dup"}')});
is($node_a->safe_psql('postgres', 'SELECT asyncwrite.flush()'), 't', 'flush');
is($node_b->safe_psql('postgres', 'SELECT count(*), count(DISTINCT id) FROM events'), '300|300',
	'B has the 300 rows queued into the foreign table, each once');
is(differences($node_b, 'events', 'events_oracle'), '0', "B's rows are the oracle's: values, A's defaults, B's BEFORE ROW trigger");
is($node_b->safe_psql('postgres', q{SELECT count(*) FILTER (WHERE src = 'a-default') || ' ' || count(*) FILTER (WHERE src = 'given') FROM events}),
	'200 100', "a column left out takes the foreign table's default on A, as in the INSERT");
is($node_b->safe_psql('postgres', q{SELECT count(*) FILTER (WHERE tbl = 'events') || ' ' || count(DISTINCT id) FILTER (WHERE tbl = 'events') || ' ' || count(*) FILTER (WHERE tbl = 'events_oracle') FROM fired}),
	'300 300 300', "B's AFTER ROW trigger fired once per row, as for the INSERTs");
is($node_a->safe_psql('postgres', q{SELECT count(*) FILTER (WHERE tbl = 'events') || ' ' || count(*) FILTER (WHERE tbl = 'events_oracle') FROM fired_a}),
	'300 300', "the AFTER ROW trigger of A's foreign table fired once per row, as for the INSERTs");
is($node_b->safe_psql('postgres', q{SELECT (SELECT count(*) FROM p_low) || ' ' || (SELECT count(*) FROM p_high)}),
	'100 100', 'rows routed to the foreign partitions on B');
is(differences($node_b, 'p_low', 'p_low_oracle') . ' ' . differences($node_b, 'p_high', 'p_high_oracle')
	  . ' ' . differences($node_a, 'parts_local', 'parts_oracle_local'),
	'0 0 0', "each partition's rows are the oracle's, foreign and local");
is($node_b->safe_psql('postgres', q{SELECT count(*) FILTER (WHERE tbl = 'p_low') + count(*) FILTER (WHERE tbl = 'p_high') || ' '
		|| count(*) FILTER (WHERE tbl = 'p_low_oracle') + count(*) FILTER (WHERE tbl = 'p_high_oracle') FROM fired}),
	'200 200', "B's triggers fired once per row routed there");
my $dup_oracle = $node_a->safe_psql('postgres', q{SET ROLE ingest; SELECT sqlstate_of($$INSERT INTO events_oracle (id, v) VALUES (7, 'dup')$$)});
like($dup_oracle, qr/^23505 duplicate key value violates unique constraint "events_oracle_pkey"/, 'the INSERT of a duplicate fails on B');
is($node_a->safe_psql('postgres', q{SELECT sqlstate || ' ' || message || ' ' || (payload->>'v') || ' ' || attempts FROM asyncwrite.dead_letters}),
	'23505 duplicate key value violates unique constraint "events_pkey" dup 1',
	"the queued duplicate alone is a dead letter, with B's error (the others applied through remote savepoints)");
is(stat_delta($before), '600 applied, 1 failed', 'stats: 600 applied, 1 failed');
$node_a->safe_psql('postgres', 'DELETE FROM asyncwrite.dead_letters');

# Key-based writes need a unique index, which neither a foreign table
# nor a partitioned table with foreign partitions can have: refused at the
# call, with or without asyncwrite.enabled.
my $enqueued = aw_stat($node_a, 'postgres', 'enqueued');
my %calls = (
	upsert => q{asyncwrite.upsert('T', '{"id": 1, "v": "x"}')},
	'upsert (conflict_columns)' => q{asyncwrite.upsert('T', '{"id": 1, "v": "x"}', ARRAY['id'])},
	update => q{asyncwrite.update('T', '{"id": 1}', '{"v": "x"}')},
	delete => q{asyncwrite.delete('T', '{"id": 1}')},
	increment => q{asyncwrite.increment('T', '{"id": 1}', '{"id": 1}')},
);
foreach my $name (sort keys %calls)
{
	(my $fn = $name) =~ s/ .*//;
	foreach my $enabled ('on', 'off')
	{
		(my $call = $calls{$name}) =~ s/'T'/'events'/;
		is($node_a->safe_psql('postgres', "SET ROLE ingest; SET asyncwrite.enabled = $enabled; SELECT sqlstate_of(\$\$SELECT $call\$\$)"),
			qq{0A000 asyncwrite.$fn() cannot write to foreign table "events"},
			"$name of a foreign table refused (enabled $enabled)");
		($call = $calls{$name}) =~ s/'T'/'parts'/;
		is($node_a->safe_psql('postgres', "SET ROLE ingest; SET asyncwrite.enabled = $enabled; SELECT sqlstate_of(\$\$SELECT $call\$\$)"),
			qq{0A000 asyncwrite.$fn() cannot write to partitioned table "parts"},
			"$name of a partitioned table with foreign partitions refused (enabled $enabled)");
	}
}
$node_a->psql('postgres', q{SELECT asyncwrite.delete('parts', '{"id": 1}')}, stderr => \my $stderr);
like($stderr, qr/DETAIL:  Its partition "parts_(low|high)" is a foreign table/, 'the refusal names the foreign partition');
is(aw_stat($node_a, 'postgres', 'enqueued'), $enqueued, 'nothing queued');

# A role without a user mapping: its write fails when applied with the
# error its own INSERT gets, a permanent one: a dead letter, tried once.
my $own = $node_a->safe_psql('postgres', q{SET ROLE nomap; SELECT sqlstate_of($$INSERT INTO events (id, v) VALUES (5001, 'nomap')$$)});
like($own, qr/^42704 user mapping not found for /, "the role's own INSERT: $own");
$before = stat_counts();
$node_a->safe_psql('postgres', q{SET ROLE nomap; SELECT asyncwrite.insert('events', '{"id": 5000, "v": "nomap"}')});
is($node_a->safe_psql('postgres', 'SELECT asyncwrite.flush()'), 't', 'flush');
is($node_a->safe_psql('postgres', q{SELECT sqlstate || ' ' || message FROM asyncwrite.dead_letters WHERE role = 'nomap'::regrole}),
	$own, 'the queued write of that role is a dead letter with the same error');
is($node_a->safe_psql('postgres', q{SELECT attempts FROM asyncwrite.dead_letters}), '1', 'tried once: permanent');
is(stat_delta($before), '0 applied, 1 failed', 'stats: 1 failed');
$node_a->safe_psql('postgres', 'DELETE FROM asyncwrite.dead_letters');

# B down: the writes (and the local ones queued with them) are tried
# again, not dead-lettered; once B is back they apply exactly once.
$before = stat_counts();
$node_b->stop('fast');
my $offset = -s $node_a->logfile;
queue_rows($node_a, 'events', 1001, 1050, 'i');
queue_rows($node_a, 'parts', 1001, 1050, '(i - 1000) * 10');
$node_a->safe_psql('postgres', q{SET ROLE ingest;
	SELECT count(*) FROM (SELECT asyncwrite.insert('local_log', jsonb_build_object('id', i)) FROM generate_series(1, 10) i) s});
$node_a->wait_for_log(qr/asyncwrite writes \d+ to \d+ hit a connection failure, try 2 of 9/, $offset);
# A cancel between tries ends the wait (or the try), not the worker.
my $pid = aw_worker_pid($node_a, 'postgres');
$node_a->safe_psql('postgres', "SELECT pg_cancel_backend($pid)");
$node_a->wait_for_log(qr/asyncwrite writes \d+ to \d+ hit a connection failure, try 4 of 9/, $offset);
is(aw_worker_pid($node_a, 'postgres'), $pid, 'a cancel between tries leaves the worker running');
is($node_a->safe_psql('postgres', 'SELECT count(*) FROM asyncwrite.dead_letters'), '0', 'B down: no dead letter');
is(stat_delta($before), '0 applied, 0 failed', 'B down: nothing applied or failed yet, not even the local writes queued behind');
is(aw_stat($node_a, 'postgres', 'queued'), '110', 'the writes stay queued');
$node_b->start;
is($node_a->safe_psql('postgres', 'SELECT asyncwrite.flush()'), 't', 'B back: flush');
insert_rows($node_a, 'events_oracle', 1001, 1050, 'i');
insert_rows($node_a, 'parts_oracle', 1001, 1050, '(i - 1000) * 10');
is($node_b->safe_psql('postgres', 'SELECT count(*), count(DISTINCT id) FROM events WHERE id > 1000'), '50|50',
	'the 50 foreign-table writes applied once each');
is(differences($node_b, 'events', 'events_oracle') . ' ' . differences($node_b, 'p_low', 'p_low_oracle'), '0 0',
	"B's rows are still the oracle's");
is($node_b->safe_psql('postgres', q{SELECT count(*) FROM fired WHERE tbl = 'events' AND id > 1000}), '50',
	"B's trigger fired once per row, none for the tries rolled back");
is($node_a->safe_psql('postgres', 'SELECT count(*), count(DISTINCT id) FROM local_log'), '10|10', 'the local writes applied once each');
is($node_a->safe_psql('postgres', 'SELECT count(*) FROM asyncwrite.dead_letters'), '0', 'no dead letter');
is(stat_delta($before), '110 applied, 0 failed', 'stats: 110 applied, 0 failed');

# B restarts while the worker is in the middle of a batch that wrote
# through the connection: the rest of the batch cannot use it in that
# transaction, so the batch is rolled back and tried again at once in a
# new one, not write by write in the broken one (8 tries each, 25 s).
$before = stat_counts();
my $locker = $node_a->background_psql('postgres');
$locker->query_safe('SELECT pg_advisory_lock(4242)');
$offset = -s $node_a->logfile;
$node_a->safe_psql('postgres', q{SET ROLE ingest; BEGIN;
	SELECT count(*) FROM (SELECT asyncwrite.insert('events', jsonb_build_object('id', i, 'v', 'mid')) FROM generate_series(2001, 2003) i) s;
	SELECT asyncwrite.insert('gate', '{"id": 1}');
	SELECT count(*) FROM (SELECT asyncwrite.insert('events', jsonb_build_object('id', i, 'v', 'mid')) FROM generate_series(2004, 2006) i) s;
	COMMIT});
$node_a->poll_query_until('postgres',
	q{SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'asyncwrite worker' AND wait_event = 'advisory'})
  or die 'the worker does not wait at the gate';
$node_b->restart;
$locker->query_safe('SELECT pg_advisory_unlock(4242)');
$locker->quit;
is($node_a->safe_psql('postgres', q{SELECT asyncwrite.flush('20 s')}), 't', 'the batch applied within seconds once B is back');
like(slurp_file($node_a->logfile, $offset), qr/asyncwrite writes \d+ to \d+ hit a connection failure, try 1 of 9/,
	'the batch was tried again in a new transaction');
is($node_b->safe_psql('postgres', q{SELECT count(*), count(DISTINCT id) FROM events WHERE v = 'mid'}), '6|6',
	'all 6 foreign-table writes of the batch are on B, once each, also those before the restart');
is($node_a->safe_psql('postgres', 'SELECT count(*) FROM gate'), '1', 'the local write between them applied once');
is($node_a->safe_psql('postgres', 'SELECT count(*) FROM asyncwrite.dead_letters'), '0', 'no dead letter');
is(stat_delta($before), '7 applied, 0 failed', 'stats: 7 applied, 0 failed');

# B down for longer than the tries (now 1 + 2): the writes become dead
# letters (connection failure, 3 attempts), the local ones apply, and
# retry_failed() applies them once B is back.
$node_a->append_conf('postgresql.conf', "asyncwrite.max_retries = 2\n");
$node_a->restart;
$before = stat_counts();
$node_b->stop('fast');
$node_a->safe_psql('postgres', q{SET ROLE ingest; BEGIN;
	SELECT count(*) FROM (SELECT asyncwrite.insert('events', jsonb_build_object('id', i, 'v', 'late')) FROM generate_series(3001, 3005) i) s;
	SELECT asyncwrite.insert('local_log', '{"id": 11}');
	COMMIT});
is($node_a->safe_psql('postgres', 'SELECT asyncwrite.flush()'), 't', 'B down: flush returns once the tries ran out');
is($node_a->safe_psql('postgres', q{SELECT count(*) FROM asyncwrite.dead_letters WHERE sqlstate LIKE '08%' AND attempts = 3}),
	'5', 'the 5 writes to B are dead letters: connection failure, 3 attempts');
is($node_a->safe_psql('postgres', 'SELECT count(*) FROM local_log WHERE id = 11'), '1', 'the local write of the batch applied');
is(stat_delta($before), '1 applied, 5 failed', 'stats: 1 applied, 5 failed');
$node_b->start;
is($node_a->safe_psql('postgres', q{SET ROLE ingest; SELECT asyncwrite.retry_failed()}), '5', 'retry_failed() queues them again');
is($node_a->safe_psql('postgres', 'SELECT asyncwrite.flush()'), 't', 'flush');
is($node_b->safe_psql('postgres', q{SELECT count(*), count(DISTINCT id) FROM events WHERE v = 'late'}), '5|5',
	'applied once each');
is($node_a->safe_psql('postgres', 'SELECT count(*) FROM asyncwrite.dead_letters'), '0', 'no dead letter left');

$node_a->stop;
$node_b->stop;
done_testing();
