# Edges of reading durable writes back from the WAL after a crash: a ring
# that was full refills exactly (its entries, the gaps between them and the
# gap after them fit), and a database made from a template that holds an
# applied mark does not take that mark for its own (its writes, with ids
# below the template's mark, all come back); a crash after a batch's commit
# and before its worker moves the slot past the batch's WAL applies nothing
# twice.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use AsyncWriteTest;

my $node = aw_node('edges', qq{
asyncwrite.queue_size = '64kB'
restart_after_crash = on
});

# Crash the server through a backend.
sub crash
{
	my $psql = $node->background_psql('postgres');
	kill 'KILL', $psql->query_safe('SELECT pg_backend_pid()');
	$psql->quit;
	$node->poll_query_until('postgres', 'SELECT true') or die 'no restart';
}

# A full ring, every other write of a rolled-back transaction (gaps between
# the entries), then a crash.
$node->safe_psql('postgres', q{CREATE TABLE w (id int, pad text);
	SELECT asyncwrite.pause()});
my $n = 0;
for (my $i = 1;; $i++)
{
	my ($ret, $out, $err) = $node->psql('postgres',
		qq{SET asyncwrite.on_full = error;
		   BEGIN; SELECT asyncwrite.insert('w', jsonb_build_object('id', $i, 'pad', repeat('x', 100)));
		   COMMIT;
		   BEGIN; SELECT asyncwrite.insert('w', jsonb_build_object('id', -$i, 'pad', repeat('x', 100)));
		   ROLLBACK;});
	last if $ret != 0 || $err =~ /is full/;
	$n = $i;
}
cmp_ok($n, '>', 100, "the ring is full after $n committed writes");
crash();
is($node->safe_psql('postgres', q{SELECT asyncwrite.flush('60 s'); SELECT count(*), count(DISTINCT id), min(id), max(id) FROM w}),
	"t\n$n|$n|1|$n", "after a crash, the $n writes of a full ring come back and are applied once");

# A database made from a template with an applied mark.
$node->safe_psql('postgres', q{CREATE DATABASE tmpl});
$node->safe_psql('tmpl', q{CREATE EXTENSION asyncwrite; CREATE TABLE t (id int);
	SELECT count(asyncwrite.insert('t', jsonb_build_object('id', g), transactional => false)) FROM generate_series(1, 500) g;
	SELECT asyncwrite.flush()});
my $mark = $node->safe_psql('tmpl', q{SELECT applied_write_id FROM asyncwrite.applied_mark});
cmp_ok($mark, '>=', 500, "the template's mark is $mark");
$node->safe_psql('postgres', q{CREATE DATABASE copy TEMPLATE tmpl});
$node->safe_psql('copy', q{TRUNCATE t; SELECT asyncwrite.pause();
	SELECT count(asyncwrite.insert('t', jsonb_build_object('id', g), transactional => false)) FROM generate_series(1, 20) g});
crash();
is($node->safe_psql('copy', q{SELECT asyncwrite.flush('60 s'); SELECT count(*) FROM t}), "t\n20",
	'the copy\'s writes come back: the template\'s mark is not the copy\'s');
is($node->safe_psql('copy', q{SELECT count(*) FROM asyncwrite.applied_mark WHERE database = (SELECT oid FROM pg_database WHERE datname = 'copy')}),
	'1', 'the copy has a mark of its own');

# A crash between a batch's commit and the slot's advance.  The worker moves
# the slot at most once a second: a batch right after a move commits with
# the slot still before its WAL.  The worker is stopped (SIGSTOP) there, the
# commit flushed, the window checked; then the worker is killed (a crash).
$node->safe_psql('postgres', q{CREATE TABLE w2 (id int); CREATE TABLE flushed (id int)});
my ($in_window, $written, $lsn, $slot_lsn, $worker) = (0, 0, '', '', 0);
for my $round (1 .. 20)
{
	$lsn = $node->safe_psql('postgres', 'SELECT pg_current_wal_insert_lsn()');
	$node->safe_psql('postgres', qq{
		SELECT count(asyncwrite.insert('w2', jsonb_build_object('id', $round * 1000 + g), transactional => false))
		  FROM generate_series(1, 50) g;
		SELECT asyncwrite.flush()});
	$written += 50;
	$worker = aw_worker_pid($node, 'postgres');
	kill 'STOP', $worker;
	# A commit of its own flushes the WAL up to it, the batch's commit too.
	$node->safe_psql('postgres', 'INSERT INTO flushed VALUES (1)');
	$slot_lsn = $node->safe_psql('postgres',
		q{SELECT restart_lsn FROM pg_replication_slots WHERE slot_name LIKE 'asyncwrite_%'
		   AND slot_name = 'asyncwrite_' || (SELECT oid FROM pg_database WHERE datname = 'postgres')});
	$in_window = $node->safe_psql('postgres',
		"SELECT '$slot_lsn'::pg_lsn <= '$lsn'::pg_lsn AND pg_current_wal_flush_lsn() > '$lsn'");
	last if $in_window eq 't';
	kill 'CONT', $worker;
}
is($in_window, 't', "a batch committed and flushed while the slot ($slot_lsn) still keeps its WAL ($lsn)");
my $applied = $node->safe_psql('postgres', 'SELECT count(*) FROM w2');
is($applied, $written, "its $written writes are applied before the crash");
kill 'KILL', $worker;
$node->poll_query_until('postgres', 'SELECT true') or die 'no restart';
is($node->safe_psql('postgres', q{SELECT asyncwrite.flush('60 s');
	SELECT count(*), count(DISTINCT id) FROM w2}), "t\n$written|$written",
	'after the crash, nothing is applied twice');
is(aw_stat($node, 'postgres', 'recovered_writes'), '0',
	'the WAL read back held only writes at or below the applied mark');

$node->stop;
done_testing();
