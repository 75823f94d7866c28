# Foreign tables as targets, through postgres_fdw to a second cluster B:
# writes queued on A into a foreign table and into a partitioned table
# whose partitions are foreign tables on B are applied on B with the rows,
# defaults and triggers (on A's foreign table and on B's tables) of the same
# INSERTs run directly (the oracle); key-based writes to them are refused
# at the call (0A000); a role without a user mapping gets, as a dead letter,
# the error its own INSERT gets.
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

my $node_a = aw_node('a');

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
	GRANT INSERT ON fired_a TO ingest;
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

$node_a->stop;
$node_b->stop;
done_testing();
