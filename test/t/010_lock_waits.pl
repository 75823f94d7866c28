# A worker waiting for a lock never holds up anything else: SIGTERM ends it
# at once (pg_terminate_backend, a fast stop, DROP DATABASE), its batch
# stays queued and is applied exactly once later; asyncwrite.apply_lock_timeout
# bounds the wait, after which the write is retried and then dead-lettered.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use FindBin;
use lib $FindBin::RealBin;
use AsyncWriteTest;

my $node = aw_node('lock_waits', qq{
max_prepared_transactions = 4
asyncwrite.apply_lock_timeout = '1h'
});
$node->safe_psql('postgres', 'CREATE TABLE c (id int PRIMARY KEY, v int NOT NULL DEFAULT 0)');
$node->safe_psql('postgres', 'INSERT INTO c VALUES (1, 0), (2, 0), (3, 0)');

# Wait until the worker of database $db waits for a lock; return its pid.
sub locked_worker
{
	my ($db) = @_;
	my $query = qq{SELECT a.pid FROM asyncwrite.stats s JOIN pg_stat_activity a ON a.pid = s.worker_pid
		WHERE s.database = '$db' AND a.wait_event_type = 'Lock'};
	$node->poll_query_until('postgres', "SELECT EXISTS ($query)")
	  or die "the worker of $db never waited for a lock";
	return $node->safe_psql('postgres', $query);
}

# Queue an increment of row $id, at the call.
sub increment
{
	my ($id, $db) = @_;
	$node->safe_psql($db // 'postgres',
		qq{SELECT asyncwrite.increment('c', '{"id": $id}', '{"v": 1}', transactional => false)});
}

# pg_terminate_backend ends a worker waiting for a row lock.
$node->safe_psql('postgres', q{BEGIN; UPDATE c SET v = v + 100 WHERE id = 1; PREPARE TRANSACTION 'p1'});
increment(1);
my $pid = locked_worker('postgres');
my $start = time;
$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
ok($node->poll_query_until('postgres', "SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $pid"),
	'pg_terminate_backend ends a worker waiting for a lock');
cmp_ok(time - $start, '<', 10, 'at once');
my $new = locked_worker('postgres');
isnt($new, $pid, 'a new worker takes the write up and waits for the lock again');

# A fast stop does not wait for it; the write is saved and applied once,
# after the prepared transaction commits.
foreach my $end ('COMMIT', 'ROLLBACK')
{
	if ($end eq 'ROLLBACK')
	{
		$node->safe_psql('postgres', q{BEGIN; UPDATE c SET v = v + 1000 WHERE id = 1; PREPARE TRANSACTION 'p1'});
		increment(1);
		locked_worker('postgres');
	}
	my $offset = -s $node->logfile;
	$start = time;
	$node->stop('fast');
	cmp_ok(time - $start, '<', 15, "$end: a fast stop with the worker waiting for a lock takes seconds");
	$node->start;
	like(slurp_file($node->logfile, $offset), qr/asyncwrite restored 1 queued writes/,
		"$end: the write the worker was applying is saved and restored");
	locked_worker('postgres');
	$node->safe_psql('postgres', "$end PREPARED 'p1'");
	is($node->safe_psql('postgres', 'SELECT asyncwrite.flush()'), 't', "$end: flush");
}
is($node->safe_psql('postgres', 'SELECT v FROM c WHERE id = 1'), '102',
	'each increment applied exactly once, after the prepared transaction that held the row');

# DROP DATABASE ... WITH (FORCE) while the database's worker waits for a
# lock another session holds.
$node->safe_psql('postgres', 'CREATE DATABASE d2');
$node->safe_psql('d2', 'CREATE EXTENSION asyncwrite; CREATE TABLE c (id int PRIMARY KEY, v int NOT NULL DEFAULT 0); INSERT INTO c VALUES (1, 0)');
my $holder = $node->background_psql('d2', on_error_stop => 0);
$holder->query_safe('BEGIN; UPDATE c SET v = 1 WHERE id = 1');
increment(1, 'd2');
locked_worker('d2');
$start = time;
my ($ret, $stdout, $stderr) = $node->psql('postgres', 'DROP DATABASE d2 WITH (FORCE)');
is($ret, 0, 'DROP DATABASE succeeds while the worker waits for a lock');
cmp_ok(time - $start, '<', 15, 'and takes seconds');
like($stderr, qr/discarded 1 queued asyncwrite writes of the dropped database/, 'it says what it discarded');
$holder->quit;

# asyncwrite.apply_lock_timeout: a write waiting longer fails as transient,
# is retried, then dead-lettered; the writes behind it are applied.
$node->safe_psql('postgres', q{
	ALTER SYSTEM SET asyncwrite.apply_lock_timeout = '200ms';
	ALTER SYSTEM SET asyncwrite.max_retries = 1;
	ALTER SYSTEM SET asyncwrite.retry_delay = '10ms';});
$node->restart;    # the worker reads them when it starts
$node->safe_psql('postgres', q{BEGIN; UPDATE c SET v = v + 1 WHERE id = 2; PREPARE TRANSACTION 'p3'});
increment(2);
increment(3);
is($node->safe_psql('postgres', 'SELECT asyncwrite.flush()'), 't', 'flush returns with the row still locked');
is($node->safe_psql('postgres', q{SELECT payload->>'id', sqlstate, attempts FROM asyncwrite.dead_letters}),
	'2|55P03|2', 'the write that waited too long is a dead letter (lock_not_available, 2 attempts)');
is($node->safe_psql('postgres', 'SELECT v FROM c WHERE id = 3'), '1', 'the write behind it was applied');
$node->safe_psql('postgres', "ROLLBACK PREPARED 'p3'");
is($node->safe_psql('postgres', q{SELECT asyncwrite.retry_failed(); SELECT asyncwrite.flush(); SELECT v FROM c WHERE id = 2}),
	"1\nt\n1", 'retried once the lock is gone, it is applied');

$node->stop;
done_testing();
