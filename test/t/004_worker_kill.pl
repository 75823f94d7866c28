# The worker killed with SIGTERM, busy or paused: a worker comes back and
# nothing queued is lost or applied twice.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use AsyncWriteTest;

my $node = aw_node('kill', "asyncwrite.batch_size = 500\n");
$node->safe_psql('postgres', 'CREATE TABLE k (id bigserial PRIMARY KEY, round text, n int, UNIQUE (round, n))');

sub worker_pid
{
	return aw_worker_pid($node, 'postgres');
}

# Busy: kill the worker while it works through 100000 writes.
$node->safe_psql('postgres', q{SELECT asyncwrite.insert('k', '{"round": "warmup", "n": 0}'); SELECT asyncwrite.flush()});
my $pid = worker_pid();
ok($pid > 0, 'a worker runs');
$node->safe_psql('postgres', q{
	SELECT count(asyncwrite.insert('k', jsonb_build_object('round', 'busy', 'n', g)))
	  FROM generate_series(1, 100000) g});
is($node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)"), 't', 'SIGTERM sent to the busy worker');
is($node->safe_psql('postgres', 'SELECT asyncwrite.flush()'), 't', 'flush after the kill');
is($node->safe_psql('postgres', q{SELECT count(*) FROM k WHERE round = 'busy'}), '100000', 'all 100000 writes applied');
is(aw_stat($node, 'postgres', 'failed'), '0', 'none failed (none applied twice: the unique key would say so)');
is($node->safe_psql('postgres', 'SELECT count(*) FROM asyncwrite.dead_letters'), '0', 'no dead letters');

# Paused: the killed worker leaves its writes queued; a new one takes over.
$node->safe_psql('postgres', 'SELECT asyncwrite.pause()');
$node->safe_psql('postgres', q{
	SELECT count(asyncwrite.insert('k', jsonb_build_object('round', 'paused', 'n', g)))
	  FROM generate_series(1, 1000) g});
$pid = worker_pid();
ok($pid > 0, 'a worker runs while paused');
$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
ok($node->poll_query_until('postgres',
		"SELECT worker_pid IS NOT NULL AND worker_pid <> $pid FROM asyncwrite.stats WHERE database = current_database()"),
	'the postmaster starts a new worker for the paused queue');
is(aw_stat($node, 'postgres', 'state'), 'paused', 'the queue is still paused');
is(aw_stat($node, 'postgres', 'queued'), '1000', 'the 1000 writes are still queued');
$node->safe_psql('postgres', 'SELECT asyncwrite.resume()');
is($node->safe_psql('postgres', 'SELECT asyncwrite.flush()'), 't', 'flush after resume');
is($node->safe_psql('postgres', q{SELECT count(*) FROM k WHERE round = 'paused'}), '1000', 'all 1000 applied');

# New writes still go through, and the total is exact.
$pid = worker_pid();
$node->safe_psql('postgres', q{SELECT asyncwrite.insert('k', '{"round": "after", "n": 1}')});
is($node->safe_psql('postgres', 'SELECT asyncwrite.flush()'), 't', 'flush still works');
is($node->safe_psql('postgres', q{SELECT count(*) FROM k}), '101002', 'exact total');

$node->stop;
done_testing();
