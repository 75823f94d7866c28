# A transient error (here lock_timeout while another session holds an
# uncommitted row with the same key) is tried again, waiting asyncwrite.retry_delay and growing;
# after asyncwrite.max_retries the write becomes a dead letter.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use AsyncWriteTest;

my $node = aw_node('transient', "asyncwrite.retry_delay = '100ms'\nasyncwrite.max_retries = 3\n");
$node->safe_psql('postgres', 'CREATE TABLE locked (id int PRIMARY KEY)');
# The worker connects as the bootstrap superuser: give it a lock_timeout.
$node->safe_psql('postgres', 'ALTER ROLE CURRENT_USER IN DATABASE postgres SET lock_timeout = 50');

my $locker = $node->background_psql('postgres');

# Hold an uncommitted row with key $id until unlock_table() rolls it back:
# the worker's insert of the same key waits for it and times out.
sub lock_table
{
	my ($id) = @_;
	$locker->query_safe("BEGIN; INSERT INTO locked VALUES ($id)");
}

sub unlock_table
{
	$locker->query_safe('ROLLBACK');
}

# Released after the first failed try: applied, no dead letter.
lock_table(1);
my $offset = -s $node->logfile;
$node->safe_psql('postgres', q{SELECT asyncwrite.insert('locked', '{"id": 1}')});
$node->wait_for_log(qr/asyncwrite write \d+ hit a transient error, try 1 of 4: canceling statement due to lock timeout/, $offset);
unlock_table();
is($node->safe_psql('postgres', 'SELECT asyncwrite.flush()'), 't', 'flush after the row lock is released');
is($node->safe_psql('postgres', 'SELECT count(*) FROM locked'), '1', 'the write was applied on a later try');
is($node->safe_psql('postgres', 'SELECT count(*) FROM asyncwrite.dead_letters'), '0', 'no dead letter');

# Held through every try: a dead letter after 1 + max_retries attempts.
lock_table(2);
$offset = -s $node->logfile;
$node->safe_psql('postgres', q{SELECT asyncwrite.insert('locked', '{"id": 2}')});
$node->wait_for_log(qr/asyncwrite write \d+ to "locked" failed: canceling statement due to lock timeout/, $offset);
unlock_table();
is($node->safe_psql('postgres', 'SELECT asyncwrite.flush()'), 't', 'flush after the retries ran out');
is($node->safe_psql('postgres', 'SELECT attempts || \' \' || sqlstate FROM asyncwrite.dead_letters'),
	'4 55P03', 'dead letter after 4 attempts, SQLSTATE 55P03');
like(slurp_file($node->logfile, $offset), qr/try 3 of 4.*\n(.*\n)*.*failed/, 'the log shows each try');
is($node->safe_psql('postgres', 'SELECT asyncwrite.retry_failed()'), '1', 'retry_failed queues it again');
is($node->safe_psql('postgres', 'SELECT asyncwrite.flush()'), 't', 'flush the retry');
is($node->safe_psql('postgres', 'SELECT count(*) FROM locked'), '2', 'the retried write is applied');
is($node->safe_psql('postgres', 'SELECT count(*) FROM asyncwrite.dead_letters'), '0', 'and its dead letter removed');

$locker->quit;

# Each failure sends NOTIFY asyncwrite_failed with the dead letter's id.
$node->safe_psql('postgres', 'ALTER ROLE CURRENT_USER IN DATABASE postgres RESET lock_timeout');
$node->safe_psql('postgres', 'CREATE TABLE notified (id int CHECK (id > 0))');
my $out = $node->safe_psql('postgres', q{
	LISTEN asyncwrite_failed;
	SELECT asyncwrite.insert('notified', '{"id": -1}', transactional => false) > 0;
	SELECT asyncwrite.flush();
	SELECT max(id) FROM asyncwrite.dead_letters;});
my ($dead_id) = $out =~ /(\d+)\s*$/;
like($out, qr/Asynchronous notification "asyncwrite_failed" with payload "$dead_id" received/,
	"NOTIFY asyncwrite_failed carries the dead letter's id ($dead_id)");

$node->stop;
done_testing();
