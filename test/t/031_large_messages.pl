# A transaction's durable writes are logged in messages of at most 64 MB,
# committed together (a WAL record over 1 GB could not be read back): 70 MB
# of writes take two, and come back once after a crash.  A non-transactional
# call whose writes would need more than one message is refused (54000)
# before anything is queued.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use AsyncWriteTest;

my $node = aw_node('large', qq{
asyncwrite.queue_size = '512MB'
asyncwrite.worker_idle_timeout = 5
restart_after_crash = on
});
$node->safe_psql('postgres', q{CREATE EXTENSION pg_walinspect; CREATE TABLE t (id int, pad text)});

$node->safe_psql('postgres', 'SELECT asyncwrite.pause()');
my $start = $node->safe_psql('postgres', 'SELECT pg_current_wal_insert_lsn()');
$node->safe_psql('postgres', q{BEGIN;
	SELECT count(asyncwrite.insert('t', jsonb_build_object('id', g, 'pad', repeat('x', 1000000))))
	  FROM generate_series(1, 70) g;
	COMMIT});
is($node->safe_psql('postgres', qq{
	SELECT count(*), max(record_length) < 65 * 1024 * 1024, sum(record_length) > 70 * 1000000
	  FROM pg_get_wal_records_info('$start', pg_current_wal_flush_lsn())
	 WHERE resource_manager = 'LogicalMessage' AND description LIKE '%"asyncwrite"%'}),
	'2|t|t', '70 MB of writes of one transaction are logged as two messages of at most 64 MB');

my $psql = $node->background_psql('postgres');
kill 'KILL', $psql->query_safe('SELECT pg_backend_pid()');
$psql->quit;
$node->poll_query_until('postgres', 'SELECT true') or die 'no restart';
is($node->safe_psql('postgres', q{SELECT asyncwrite.resume(); SELECT asyncwrite.flush('60 s');
	SELECT count(*), count(DISTINCT id), min(length(pad)) FROM t}),
	"\nt\n70|70|1000000", 'after a crash, the 70 writes are read back from both and applied once');
is(aw_stat($node, 'postgres', 'recovered_writes'), '70', 'all 70 came back from the WAL');

# One non-transactional call of 70 rows of 1 MB: refused, nothing queued.
$node->safe_psql('postgres', 'SELECT asyncwrite.pause()');
my ($ret, $out, $err) = $node->psql('postgres', q{
	SELECT asyncwrite.insert('t', (SELECT jsonb_agg(jsonb_build_object('id', 100 + g, 'pad', repeat('y', 1000000)))
	                                 FROM generate_series(1, 70) g), transactional => false)},
	extra_params => [ '-v', 'VERBOSITY=verbose' ]);
like($err, qr/ERROR:  54000: durable writes of \d+ bytes are too large for one non-transactional call/,
	'a non-transactional call too large for one message is refused (54000)');
is($node->safe_psql('postgres', q{SELECT asyncwrite.resume(); SELECT asyncwrite.flush('60 s');
	SELECT count(*) FROM t WHERE id > 100; SELECT queued FROM asyncwrite.stats WHERE database = current_database()}),
	"\nt\n0\n0", 'and nothing of it is queued or applied');

# Its ids were skipped, which moves no applied mark: once the slot has moved
# past them (the queue is empty) and the launcher has noted them, a crash
# with a later write queued reports nothing lost (the mark's replay position
# is older than the slot, as always after skipped ids).
my $after = $node->safe_psql('postgres', 'SELECT pg_current_wal_insert_lsn()');
ok($node->poll_query_until('postgres', qq{
	SELECT (SELECT restart_lsn > '$after' FROM pg_replication_slots WHERE slot_name LIKE 'asyncwrite_%')
	   AND (SELECT count(*) > 0 FROM pg_get_wal_records_info('$after', pg_current_wal_flush_lsn())
	         WHERE resource_manager = 'LogicalMessage' AND description LIKE '%asyncwrite_ids%')}),
	'the slot moves past the skipped ids, and the launcher notes them');
$node->safe_psql('postgres', q{SELECT asyncwrite.pause(); SELECT asyncwrite.insert('t', '{"id": 500}')});
my $offset = -s $node->logfile;
$psql = $node->background_psql('postgres');
kill 'KILL', $psql->query_safe('SELECT pg_backend_pid()');
$psql->quit;
$node->poll_query_until('postgres', 'SELECT true') or die 'no restart';
is($node->safe_psql('postgres', q{SELECT asyncwrite.resume(); SELECT asyncwrite.flush('60 s'); SELECT count(*), count(*) FILTER (WHERE id = 500) FROM t}),
	"\nt\n71|1", 'after a crash the 70 rows are there once, and the write queued later too');
unlike(slurp_file($node->logfile, $offset), qr/may be lost/, 'and nothing is said to be lost');
is(aw_stat($node, 'postgres', 'lost_writes'), '0', 'nor counted lost');

$node->stop;
done_testing();
