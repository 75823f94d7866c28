# Queue slots are held only by databases with queued or paused writes: an
# idle database's worker is stopped and its slot handed to a database that
# needs one.  Handing slots over while every database writes loses nothing
# and mixes nothing up (the check and the reset of a slot happen under one
# hold of its lock).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use AsyncWriteTest;

my $node = aw_node('slots', qq{
asyncwrite.max_databases = 2
asyncwrite.worker_idle_timeout = '1h'
max_prepared_transactions = 4
});
my @dbs = ('s1', 's2', 's3');
foreach my $db (@dbs)
{
	$node->safe_psql('postgres', "CREATE DATABASE $db");
	$node->safe_psql($db, q{
		CREATE EXTENSION asyncwrite;
		CREATE TABLE t (id bigserial PRIMARY KEY, n int NOT NULL);
		CREATE TABLE done (n int NOT NULL);
		-- Queue one write at the call; false when no queue slot is free.
		CREATE FUNCTION try_write(n int) RETURNS boolean LANGUAGE plpgsql AS $$
		BEGIN
			PERFORM asyncwrite.insert('t', jsonb_build_object('n', n), transactional => false);
			RETURN true;
		EXCEPTION WHEN configuration_limit_exceeded THEN
			RETURN false;
		END $$;});
}

# Two databases write once and keep their (idle) workers; a third still
# gets a slot: one of the idle workers is stopped and its slot handed over.
foreach my $db ('s1', 's2')
{
	$node->safe_psql($db, q{SELECT asyncwrite.insert('t', '{"n": 0}'); SELECT asyncwrite.flush()});
	aw_worker_pid($node, $db);
}
is($node->safe_psql('postgres', 'SELECT count(*) FROM asyncwrite.stats WHERE worker_pid IS NOT NULL'), '2',
	'both slots are held by idle workers');
my ($ret, $stdout, $stderr) = $node->psql('s3',
	q{SELECT asyncwrite.insert('t', '{"n": 0}') IS NULL; SELECT asyncwrite.flush()});
is($ret, 0, 'a third database gets a slot from an idle worker') or diag $stderr;
is($node->safe_psql('s3', 'SELECT count(*) FROM t'), '1', 'and its write is applied');
is($node->safe_psql('postgres', q{SELECT string_agg(database, ',' ORDER BY database) FROM asyncwrite.stats}),
	's2,s3', 'the oldest idle slot was handed over');

# A paused queue keeps its slot, even when empty.
$node->safe_psql('s2', 'SELECT asyncwrite.pause()');
$node->safe_psql('s1', q{SELECT asyncwrite.insert('t', '{"n": 0}') IS NULL; SELECT asyncwrite.flush()});
is($node->safe_psql('postgres', q{SELECT string_agg(database, ',' ORDER BY database) FROM asyncwrite.stats}),
	's1,s2', 'the idle, not the paused, database gave up its slot');
$node->safe_psql('s2', 'SELECT asyncwrite.resume()');

# All three write at once through two slots, handing them over again and
# again: every write accepted is applied once, in its own database.
my $script = $node->basedir . '/write.sql';
PostgreSQL::Test::Utils::append_to_file($script,
	"\\set n random(1, 1000000)\nINSERT INTO done SELECT :n WHERE try_write(:n);\n");
my @pgbench;
foreach my $db (@dbs)
{
	push @pgbench, IPC::Run::start(
		[ 'pgbench', '-n', '-c', '2', '-j', '2', '-t', '4000', '-f', $script,
		  '-h', $node->host, '-p', $node->port, $db ],
		'>', \my $out, '2>', \my $err);
}
$_->finish foreach @pgbench;
my $accepted_total = 0;
foreach my $db (@dbs)
{
	is($node->safe_psql($db, 'SELECT asyncwrite.flush()'), 't', "$db: flush");
	my ($accepted, $applied) = split /\n/, $node->safe_psql($db, q{
		SELECT count(*) || '/' || coalesce(sum(n), 0) FROM done;
		SELECT count(*) || '/' || coalesce(sum(n), 0) FROM t WHERE n > 0});
	is($applied, $accepted, "$db: every accepted write applied exactly once, none lost (count/sum $accepted)");
	is($node->safe_psql($db, 'SELECT count(*) FROM asyncwrite.dead_letters'), '0', "$db: none failed");
	$accepted_total += (split m{/}, $accepted)[0];
}
cmp_ok($accepted_total, '>', 0, "writes were accepted ($accepted_total)");
my $handovers = () = slurp_file($node->logfile) =~ /terminating background worker "asyncwrite worker/g;
cmp_ok($handovers, '>', 1, "slots were handed over ($handovers times)");

# COMMIT PREPARED: nothing happens in a database without the extension or
# for a transaction that kept no writes, and nothing after the commit
# raises an error, not even with no slot free.
$node->safe_psql('postgres', 'CREATE DATABASE s4');
$node->safe_psql('s4', q{CREATE TABLE p (a int); BEGIN; INSERT INTO p VALUES (1); PREPARE TRANSACTION 'noext'});
$node->safe_psql('s4', q{COMMIT PREPARED 'noext'});
is($node->safe_psql('postgres', q{SELECT count(*) FROM asyncwrite.stats WHERE database = 's4'}), '0',
	'COMMIT PREPARED binds no queue in a database without asyncwrite');
foreach my $db ('s1', 's2')
{
	$node->safe_psql($db, q{SELECT asyncwrite.pause(); SELECT asyncwrite.insert('t', '{"n": -1}', transactional => false)});
}
is($node->safe_psql('postgres', q{SELECT string_agg(database || ':' || state, ',' ORDER BY database) FROM asyncwrite.stats}),
	's1:paused,s2:paused', 'both slots are held by paused queues');
$node->safe_psql('s3', q{BEGIN; INSERT INTO done VALUES (0); PREPARE TRANSACTION 'nokept'});
($ret, $stdout, $stderr) = $node->psql('s3', q{COMMIT PREPARED 'nokept'});
is($ret, 0, 'COMMIT PREPARED of a transaction that kept no writes succeeds with no slot free');
is($stderr, '', 'and says nothing');
$node->safe_psql('s3', q{BEGIN; SELECT asyncwrite.insert('t', '{"n": -2}'); PREPARE TRANSACTION 'kept'});
($ret, $stdout, $stderr) = $node->psql('s3', q{COMMIT PREPARED 'kept'});
is($ret, 0, 'COMMIT PREPARED of a transaction that kept writes succeeds with no slot free');
like($stderr, qr/WARNING:  no asyncwrite queue is free to apply the writes of the committed prepared transaction now/,
	'and warns that its writes wait');
foreach my $db ('s1', 's2')
{
	$node->safe_psql($db, 'SELECT asyncwrite.resume(); SELECT asyncwrite.flush()');
}
is($node->safe_psql('s3', q{SELECT asyncwrite.insert('t', '{"n": -3}') IS NULL; SELECT asyncwrite.flush();
	SELECT string_agg(n::text, ',' ORDER BY n) FROM t WHERE n < 0}),
	"t\nt\n-3,-2", 'the prepared write is applied when the database next gets a worker');

$node->stop;
done_testing();
