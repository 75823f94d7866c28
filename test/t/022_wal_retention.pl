# The WAL kept for durable writes is bounded, visible and never silent:
# asyncwrite.stats shows the replication slot, the position it keeps and the
# bytes that is; a paused queue keeps WAL and resuming releases it; the
# launcher moves the slot of an idle database; DROP EXTENSION and DROP
# DATABASE drop the slot, and the launcher drops slots of databases that
# are gone; an invalidated slot (max_slot_wal_keep_size) is reported, with
# the range of write ids that may be lost after a crash; with wal_level
# minimal a durable write fails at the call and queues nothing.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use AsyncWriteTest;

my $node = aw_node('wal', qq{
asyncwrite.worker_idle_timeout = 1
restart_after_crash = on
});
$node->safe_psql('postgres', q{
	CREATE TABLE t (id int);
	CREATE TABLE filler (id int, pad text);
});

# Write about $mb MB of WAL that asyncwrite has nothing to do with.
sub make_wal
{
	my ($db, $mb) = @_;
	$node->safe_psql($db,
		"INSERT INTO filler SELECT g, repeat('x', 900) FROM generate_series(1, $mb * 1000) g");
}

# No slot before the first durable write; one after it.
is($node->safe_psql('postgres', q{SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE 'asyncwrite%'}),
	'0', 'no slot before the first durable write');
$node->safe_psql('postgres', q{SELECT asyncwrite.insert('t', '{"id": 1}'); SELECT asyncwrite.flush()});
my $oid = $node->safe_psql('postgres', q{SELECT oid FROM pg_database WHERE datname = 'postgres'});
is($node->safe_psql('postgres', q{SELECT slot_name, slot_type, restart_lsn IS NOT NULL FROM pg_replication_slots}),
	"asyncwrite_$oid|physical|t", 'the first durable write created the database\'s physical slot');
is(aw_stat($node, 'postgres', 'wal_slot'), "asyncwrite_$oid", 'stats name the slot');

# A paused queue keeps the WAL since its oldest write, and shows it.
$node->safe_psql('postgres', q{SELECT asyncwrite.pause(); SELECT asyncwrite.insert('t', '{"id": 2}')});
my $kept = aw_stat($node, 'postgres', 'wal_replay_lsn');
make_wal('postgres', 20);
$node->safe_psql('postgres', 'CHECKPOINT');
is(aw_stat($node, 'postgres', 'wal_replay_lsn'), $kept, 'a paused queue keeps its position');
cmp_ok(aw_stat($node, 'postgres', 'wal_retained_bytes'), '>', 16 * 1024 * 1024,
	'and the WAL written since: more than 16 MB retained, shown in stats');
is($node->safe_psql('postgres', qq{SELECT restart_lsn = '$kept' FROM pg_replication_slots}), 't',
	'the slot itself keeps it');

# Resumed, the worker moves the slot behind what it applied.
$node->safe_psql('postgres', q{SELECT asyncwrite.resume(); SELECT asyncwrite.flush()});
$node->poll_query_until('postgres',
	q{SELECT wal_retained_bytes < 1024 * 1024 FROM asyncwrite.stats WHERE database = 'postgres'})
  or die 'the slot did not move';
pass('resumed and applied, the slot keeps less than 1 MB');

# Idle (the worker gone), the launcher moves the slot as WAL goes by.
$node->poll_query_until('postgres',
	q{SELECT worker_pid IS NULL FROM asyncwrite.stats WHERE database = 'postgres'})
  or die 'the worker did not exit';
make_wal('postgres', 20);
$node->poll_query_until('postgres',
	q{SELECT pg_current_wal_insert_lsn() - restart_lsn < 1024 * 1024 FROM pg_replication_slots})
  or die 'the launcher did not move the idle slot';
pass('with no worker, the launcher moves the slot of an idle database');

# DROP EXTENSION drops the slot; the next durable write after CREATE makes
# a new one.
$node->safe_psql('postgres', 'DROP EXTENSION asyncwrite');
is($node->safe_psql('postgres', q{SELECT count(*) FROM pg_replication_slots}), '0',
	'DROP EXTENSION drops the slot');
$node->safe_psql('postgres', q{CREATE EXTENSION asyncwrite; SELECT asyncwrite.insert('t', '{"id": 3}'); SELECT asyncwrite.flush()});
is($node->safe_psql('postgres', q{SELECT count(*) FROM pg_replication_slots}), '1',
	'the next durable write makes a new one');

# A DROP EXTENSION whose transaction fails at commit, after the pre-commit
# callbacks (a serializable transaction found to be a pivot), keeps the
# slot: the extension stays, with its writes.
$node->safe_psql('postgres', q{CREATE TABLE ssi_a (x int); CREATE TABLE ssi_b (x int)});
my $s1 = $node->background_psql('postgres', on_error_stop => 0);
$s1->query_safe('BEGIN ISOLATION LEVEL SERIALIZABLE');
$s1->query_safe('SELECT count(*) FROM ssi_a');
$s1->query_safe('INSERT INTO ssi_b VALUES (1)');
$node->safe_psql('postgres', q{BEGIN ISOLATION LEVEL SERIALIZABLE;
	SELECT count(*) FROM ssi_b; INSERT INTO ssi_a VALUES (1); COMMIT});
$s1->query_safe('DROP EXTENSION asyncwrite');
$s1->query('COMMIT');
like($s1->{stderr}, qr/could not serialize access/, 'the COMMIT of the DROP EXTENSION fails');
$s1->quit;
is($node->safe_psql('postgres', q{SELECT count(*) FROM pg_extension WHERE extname = 'asyncwrite';
	SELECT count(*) FROM pg_replication_slots}), "1\n1",
	'the extension stays, and so does its slot');

# DROP DATABASE drops the database's slot.
$node->safe_psql('postgres', 'CREATE DATABASE other');
$node->safe_psql('other', q{CREATE EXTENSION asyncwrite; CREATE TABLE t (id int);
	SELECT asyncwrite.insert('t', '{"id": 1}'); SELECT asyncwrite.flush()});
is($node->safe_psql('postgres', q{SELECT count(*) FROM pg_replication_slots}), '2',
	'a slot per database');
$node->safe_psql('postgres', 'DROP DATABASE other');
is($node->safe_psql('postgres', q{SELECT count(*) FROM pg_replication_slots}), '1',
	'DROP DATABASE drops its slot');

# The launcher drops a slot whose database is gone.
$node->safe_psql('postgres', q{SELECT pg_create_physical_replication_slot('asyncwrite_4000000000', true)});
$node->poll_query_until('postgres',
	q{SELECT count(*) = 0 FROM pg_replication_slots WHERE slot_name = 'asyncwrite_4000000000'})
  or die 'the slot of a database that is gone stays';
pass('the launcher drops the slot of a database that is gone');
$node->stop;

# An invalidated slot: the next durable write says so, naming the queued
# writes whose WAL is gone, and makes a new slot; after a crash those
# writes are reported by id range, the later one comes back, and nothing is
# applied twice.
my $small = aw_node('small', qq{
max_slot_wal_keep_size = '1MB'
restart_after_crash = on
log_min_messages = warning
});
$small->safe_psql('postgres', q{CREATE TABLE t (id int); CREATE TABLE filler (id int, pad text)});
$small->safe_psql('postgres', q{SELECT asyncwrite.pause();
	SELECT count(asyncwrite.insert('t', jsonb_build_object('id', g))) FROM generate_series(1, 10) g});
$small->safe_psql('postgres',
	"INSERT INTO filler SELECT g, repeat('x', 900) FROM generate_series(1, 60000) g; CHECKPOINT");
$small->poll_query_until('postgres',
	q{SELECT wal_status = 'lost' FROM pg_replication_slots})
  or die 'the slot was not invalidated';
is(aw_stat($small, 'postgres', 'wal_replay_lsn'), '', 'stats show no position for an invalidated slot');
my ($out, $err) = ('', '');
$small->psql('postgres', q{SELECT asyncwrite.insert('t', '{"id": 11}')}, stderr => \$err);
like($err, qr/WARNING:  replication slot "asyncwrite_\d+" of asyncwrite was invalidated\nDETAIL:  The WAL of the queued durable writes with write ids 1 to 10 may be gone/,
	'the next durable write warns that the slot was invalidated, naming the writes at risk');
is($small->safe_psql('postgres', q{SELECT wal_status FROM pg_replication_slots}), 'reserved',
	'and makes a new slot');
my $offset = -s $small->logfile;
my $psql = $small->background_psql('postgres');
kill 'KILL', $psql->query_safe('SELECT pg_backend_pid()');
$psql->quit;
$small->poll_query_until('postgres', 'SELECT true') or die 'no restart';
$small->safe_psql('postgres', q{SELECT asyncwrite.resume(); SELECT asyncwrite.flush()});
like(slurp_file($small->logfile, $offset),
	qr/durable asyncwrite writes of database \d+ with write ids 1 to 10 may be lost/,
	'after a crash, the writes whose WAL is gone are reported by id range');
is(aw_stat($small, 'postgres', 'lost_writes') . ' ' . aw_stat($small, 'postgres', 'lost_write_ids'),
	'10 {[1,11)}', 'and counted in asyncwrite.stats, with their ids');
is($small->safe_psql('postgres', 'SELECT count(*) = count(DISTINCT id), bool_or(id = 11) FROM t'), 't|t',
	'the write logged after the new slot came back, and nothing is applied twice');
$small->stop;

# wal_level minimal: a durable write fails at the call, queueing nothing;
# durable off works.
my $minimal = aw_node('minimal');
$minimal->append_conf('postgresql.conf', "wal_level = minimal\nmax_wal_senders = 0\n");
$minimal->restart;
$minimal->safe_psql('postgres', 'CREATE TABLE t (id int)');
my $ret = $minimal->psql('postgres', q{SELECT asyncwrite.insert('t', '{"id": 1}')},
	stderr => \$err, on_error_stop => 1, extra_params => [ '-v', 'VERBOSITY=verbose' ]);
like($err, qr/ERROR:  55000: durable asyncwrite writes need wal_level "replica" or "logical"/,
	'wal_level minimal: a durable write fails with 55000');
is($minimal->safe_psql('postgres', q{SELECT asyncwrite.flush(); SELECT count(*) FROM t}), "t\n0",
	'and queues nothing');
is($minimal->safe_psql('postgres', q{SET asyncwrite.durable = off;
	SELECT asyncwrite.insert('t', '{"id": 2}', transactional => false) > 0; SELECT asyncwrite.flush(); SELECT count(*) FROM t}),
	"t\nt\n1", 'with asyncwrite.durable off the write is queued and applied');
$minimal->stop;

done_testing();
