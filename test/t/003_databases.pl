# Several databases at once, each with its own queue and worker; database
# DDL that needs the database to itself works while a worker runs; DROP
# EXTENSION stops the worker; an idle worker exits.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use FindBin;
use lib $FindBin::RealBin;
use AsyncWriteTest;

my $node = aw_node('dbs', "asyncwrite.worker_idle_timeout = '2s'\n");

foreach my $db ('db1', 'db2')
{
	$node->safe_psql('postgres', "CREATE DATABASE $db");
	$node->safe_psql($db, 'CREATE EXTENSION asyncwrite');
	$node->safe_psql($db, 'CREATE TABLE t (id bigserial PRIMARY KEY, db text, n int)');
}

# Two databases written at once by concurrent clients.
$node->pgbench('-n -c 2 -j 2 -t 2000', 0,
	[qr{processed: 4000/4000}], [qr{^$}], 'db1 writers',
	{ '003_db1' => q{SELECT asyncwrite.insert('t', jsonb_build_object('db', 'db1', 'n', :client_id::int));} }, 'db1');
$node->pgbench('-n -c 2 -j 2 -t 2000', 0,
	[qr{processed: 4000/4000}], [qr{^$}], 'db2 writers',
	{ '003_db2' => q{SELECT asyncwrite.insert('t', jsonb_build_object('db', 'db2', 'n', :client_id::int));} }, 'db2');
foreach my $db ('db1', 'db2')
{
	is($node->safe_psql($db, 'SELECT asyncwrite.flush()'), 't', "$db: flush");
	is($node->safe_psql($db, "SELECT count(*) FROM t WHERE db = '$db'"), '4000', "$db: 4000 rows, all its own");
}
is($node->safe_psql('postgres',
		q{SELECT string_agg(database || '=' || applied, ',' ORDER BY database) FROM asyncwrite.stats WHERE database LIKE 'db%'}),
	'db1=4000,db2=4000', 'stats: one row per database with its own counters');
my $pids = $node->safe_psql('postgres',
	q{SELECT count(DISTINCT worker_pid) FROM asyncwrite.stats WHERE database LIKE 'db%' AND worker_pid IS NOT NULL});
is($pids, '2', 'one worker per database');

# ALTER DATABASE ... RENAME with the worker running and writes queued.
$node->safe_psql('db1', 'SELECT asyncwrite.pause()');
$node->safe_psql('db1', q{SELECT asyncwrite.insert('t', '{"db": "db1", "n": 99}') FROM generate_series(1, 10)});
my $start = time;
$node->safe_psql('postgres', 'ALTER DATABASE db1 RENAME TO db1_renamed');
ok(time - $start < 10, 'rename with a running worker is prompt');
$node->safe_psql('db1_renamed', 'SELECT asyncwrite.resume()');
is($node->safe_psql('db1_renamed', 'SELECT asyncwrite.flush()'), 't', 'flush in the renamed database');
is($node->safe_psql('db1_renamed', 'SELECT count(*) FROM t WHERE n = 99'), '10', 'writes queued before the rename applied after it');

# CREATE DATABASE ... TEMPLATE of a database whose worker runs.
$node->safe_psql('db1_renamed', q{SELECT asyncwrite.insert('t', '{"db": "db1", "n": 98}')});
$start = time;
$node->safe_psql('postgres', 'CREATE DATABASE db1_copy TEMPLATE db1_renamed');
ok(time - $start < 10, 'CREATE DATABASE ... TEMPLATE with a running worker is prompt');
is($node->safe_psql('db1_renamed', 'SELECT asyncwrite.flush()'), 't', 'flush after the copy');
is($node->safe_psql('db1_renamed', 'SELECT count(*) FROM t WHERE n = 98'), '1', 'write queued before the copy applied');

# DROP DATABASE with a running worker and writes queued.
$node->safe_psql('db2', 'SELECT asyncwrite.pause()');
$node->safe_psql('db2', q{SELECT asyncwrite.insert('t', '{"db": "db2"}') FROM generate_series(1, 10)});
ok(aw_worker_pid($node, 'db2') > 0, 'db2 has a worker before the drop');
$start = time;
my ($ret, $stdout, $stderr) = $node->psql('postgres', 'DROP DATABASE db2');
is($ret, 0, 'DROP DATABASE with a running worker succeeds');
ok(time - $start < 10, 'DROP DATABASE with a running worker is prompt');
like($stderr, qr/discarded 10 queued asyncwrite writes of the dropped database/, 'DROP DATABASE says what it discarded');
is($node->safe_psql('postgres', q{SELECT count(*) FROM asyncwrite.stats WHERE dboid NOT IN (SELECT oid FROM pg_database)}),
	'0', 'the dropped database has no queue left');

# DROP EXTENSION stops the worker.
$node->safe_psql('db1_copy', 'CREATE TABLE IF NOT EXISTS t2 (a int)');
$node->safe_psql('db1_copy', q{SELECT asyncwrite.insert('t2', '{"a": 1}'); SELECT asyncwrite.flush()});
my $worker = aw_worker_pid($node, 'db1_copy');
ok($worker > 0, 'db1_copy has a worker');
$node->safe_psql('db1_copy', 'DROP EXTENSION asyncwrite');
ok($node->poll_query_until('postgres', "SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $worker"),
	'DROP EXTENSION stops the worker');
is($node->safe_psql('db1_copy', 'SELECT count(*) FROM t2'), '1', 'the write queued before DROP EXTENSION was applied');

# Writes queued in the transaction that creates the extension are kept,
# not discarded, by a worker that starts before that transaction commits.
$node->safe_psql('postgres', 'CREATE DATABASE db3');
my $creator = $node->background_psql('db3');
my $offset = -s $node->logfile;
$creator->query_safe(q{
	BEGIN;
	CREATE EXTENSION asyncwrite;
	CREATE TABLE t (id int);
	SELECT asyncwrite.insert('t', jsonb_build_object('id', g), transactional => false) FROM generate_series(1, 5) g;});
# The worker starts, cannot see the extension yet, and exits to be retried.
$node->wait_for_log(qr/background worker "asyncwrite worker" \(PID \d+\) exited with exit code 1/, $offset);
$creator->query_safe('COMMIT');
$creator->quit;
is($node->safe_psql('db3', 'SELECT asyncwrite.flush()'), 't', 'flush after CREATE EXTENSION commits');
is($node->safe_psql('db3', 'SELECT count(*) FROM t'), '5', 'writes queued while the extension was being created are applied');

# A database with nothing queued does not keep its worker.
ok($node->poll_query_until('postgres',
		q{SELECT state = 'stopped' AND worker_pid IS NULL FROM asyncwrite.stats WHERE database = 'db1_renamed'}),
	'an idle worker exits after asyncwrite.worker_idle_timeout');
is($node->safe_psql('db1_renamed', q{SELECT asyncwrite.insert('t', '{"n": 97}') IS NULL; SELECT asyncwrite.flush()}), "t\nt",
	'a new write starts a worker again');
is($node->safe_psql('db1_renamed', 'SELECT count(*) FROM t WHERE n = 97'), '1', 'and it is applied');

$node->stop;
done_testing();
