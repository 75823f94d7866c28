# The worker finds out itself, under a lock on the extension at the start of
# each batch, whether asyncwrite is still installed, whatever dropped it:
# DROP SCHEMA ... CASCADE discards the queued writes (saying how many)
# instead of pausing the queue; a DROP EXTENSION rolled back to a savepoint
# discards nothing.  A database closed with ALLOW_CONNECTIONS false keeps
# its writes queued (state 'closed') until it is open again.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use AsyncWriteTest;

my $node = aw_node('gone', "log_min_messages = warning\n");    # the worker's WARNINGs
$node->safe_psql('postgres', 'CREATE DATABASE e1');
$node->safe_psql('e1', 'CREATE EXTENSION asyncwrite; CREATE TABLE t (id int)');

# A DROP EXTENSION rolled back to a savepoint: nothing is discarded.
$node->safe_psql('e1', q{SELECT asyncwrite.pause();
	SELECT asyncwrite.insert('t', jsonb_build_object('id', g), transactional => false) FROM generate_series(1, 3) g});
$node->safe_psql('e1', q{BEGIN; SAVEPOINT s; DROP EXTENSION asyncwrite; ROLLBACK TO s; COMMIT});
aw_worker_pid($node, 'e1');
is($node->safe_psql('e1', q{SELECT asyncwrite.resume(); SELECT asyncwrite.flush(); SELECT count(*) FROM t}),
	"\nt\n3", 'a DROP EXTENSION rolled back to a savepoint discards nothing');

# DROP SCHEMA asyncwrite CASCADE drops the extension too: the queued writes
# are discarded, with a WARNING in the log, and the queue does not pause.
my $offset = -s $node->logfile;
$node->safe_psql('e1', q{SELECT asyncwrite.pause();
	SELECT asyncwrite.insert('t', jsonb_build_object('id', g), transactional => false) FROM generate_series(4, 8) g});
$node->safe_psql('e1', 'DROP SCHEMA asyncwrite CASCADE');
$node->wait_for_log(qr/WARNING:  discarded 5 queued asyncwrite writes/, $offset);
ok($node->poll_query_until('postgres',
		q{SELECT queued = 0 AND state <> 'paused' FROM asyncwrite.stats WHERE database = 'e1'}),
	'DROP SCHEMA asyncwrite CASCADE: the queued writes are discarded, the queue is not paused');
unlike(slurp_file($node->logfile, $offset), qr/asyncwrite paused the queue/, 'nothing paused the queue');
$node->safe_psql('e1', 'CREATE EXTENSION asyncwrite');
is($node->safe_psql('e1', q{SELECT asyncwrite.insert('t', '{"id": 9}') IS NULL; SELECT asyncwrite.flush();
	SELECT string_agg(id::text, ',' ORDER BY id) FROM t}),
	"t\nt\n1,2,3,9", 'after CREATE EXTENSION again, new writes apply and none of the discarded ones');

# ALLOW_CONNECTIONS false: the writes wait, visibly, until it is true again.
my $session = $node->background_psql('e1');
$session->query_safe(q{SELECT asyncwrite.insert('t', '{"id": 0}')});
$session->query_safe('SELECT asyncwrite.flush()');
$session->query_safe('SELECT asyncwrite.pause()');
$session->query_safe(q{SELECT asyncwrite.insert('t', '{"id": 10}', transactional => false)});
$node->safe_psql('postgres', 'ALTER DATABASE e1 ALLOW_CONNECTIONS false');
$session->query_safe('SELECT asyncwrite.resume()');
ok($node->poll_query_until('postgres',
		q{SELECT state = 'closed' AND queued = 1 FROM asyncwrite.stats WHERE database = 'e1'}),
	'a database that allows no connections keeps its writes queued, state closed');
is($session->query_safe('SELECT count(*) FROM t WHERE id = 10'), '0', 'and they are not applied');
$node->safe_psql('postgres', 'ALTER DATABASE e1 ALLOW_CONNECTIONS true');
is($session->query_safe('SELECT asyncwrite.flush()'), 't', 'open again: flush');
is($session->query_safe('SELECT count(*) FROM t WHERE id = 10'), '1', 'and the write is applied');
is($node->safe_psql('postgres', q{SELECT state FROM asyncwrite.stats WHERE database = 'e1'}), 'idle',
	'the state is no longer closed');
$session->quit;

$node->stop;
done_testing();
