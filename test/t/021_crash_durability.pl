# Durable writes (asyncwrite.durable, the default) survive any crash and are
# applied exactly once.  Under 8-client load, each transaction inserts a key
# into a companion table and queues a write of the same key; some roll back.
# After each kind of crash (kill -9 of a client backend, of the apply
# worker, of the postmaster, of an unrelated backend, an immediate stop, and
# a crash while a committing transaction waits for synchronous
# replication), three times each: every committed key is applied, once, and
# no key of a transaction that did not commit is.
use strict;
use warnings;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use AsyncWriteTest;

my $node = aw_node('crash', qq{
restart_after_crash = on
asyncwrite.flush_interval = 50
asyncwrite.batch_size = 200
log_min_messages = warning
});
$node->safe_psql('postgres', q{
	CREATE SEQUENCE keys;
	CREATE TABLE committed (k bigint PRIMARY KEY);
	CREATE TABLE t (k bigint, at timestamptz DEFAULT now());
});

# The load: pgbench, 8 clients; 1 transaction in 5 rolls back.
my $dir = PostgreSQL::Test::Utils::tempdir;
open(my $fh, '>', "$dir/commit.sql") or die $!;
print $fh q{SELECT nextval('keys') AS k \gset
BEGIN;
INSERT INTO committed VALUES (:k);
SELECT asyncwrite.insert('t', jsonb_build_object('k', :k));
COMMIT;
};
close $fh;
open($fh, '>', "$dir/rollback.sql") or die $!;
print $fh q{SELECT nextval('keys') AS k \gset
BEGIN;
INSERT INTO committed VALUES (:k);
SELECT asyncwrite.insert('t', jsonb_build_object('k', :k));
ROLLBACK;
};
close $fh;

# Start the load for $seconds; returns the pgbench handle.
sub start_load
{
	my ($seconds, $options) = @_;
	my ($out, $err) = ('', '');
	local $ENV{PGOPTIONS} = $options // '';
	local $ENV{PGAPPNAME} = 'pgbench';
	return IPC::Run::start(
		[
			'pgbench', '-n', '-c', '8', '-j', '2', '-T', $seconds,
			'-f', "$dir/commit.sql\@4", '-f', "$dir/rollback.sql\@1",
			$node->connstr('postgres')
		],
		'>', \$out, '2>', \$err);
}

# Wait until the server accepts connections again.
sub wait_up
{
	$node->poll_query_until('postgres', 'SELECT true')
	  or die 'the server did not come back';
}

# The pid of a client backend of the load.
sub load_backend
{
	my $pid;
	$node->poll_query_until('postgres',
		q{SELECT count(*) > 0 FROM pg_stat_activity WHERE application_name = 'pgbench'})
	  or die 'no load';
	return $node->safe_psql('postgres',
		q{SELECT pid FROM pg_stat_activity WHERE application_name = 'pgbench' LIMIT 1});
}

# Writes read back from the WAL after the crashes.
my $recovered_total = 0;

# After a crash and the restart: every committed key applied once, nothing
# else.
sub check_exact
{
	my ($what) = @_;
	wait_up();
	is($node->safe_psql('postgres', q{SELECT asyncwrite.flush('60 s')}), 't',
		"$what: flush() returns");
	my $result = $node->safe_psql('postgres', q{
		SELECT (SELECT count(*) FROM committed c WHERE NOT EXISTS (SELECT 1 FROM t WHERE t.k = c.k)),
		       (SELECT count(*) - count(DISTINCT k) FROM t),
		       (SELECT count(*) FROM t WHERE NOT EXISTS (SELECT 1 FROM committed c WHERE c.k = t.k)),
		       (SELECT count(*) FROM committed) > 0
	});
	is($result, '0|0|0|t',
		"$what: 0 committed writes lost, 0 applied twice, 0 applied without a commit");
	my $recovered = aw_stat($node, 'postgres', 'recovered_writes');
	note "$what: $recovered writes read back from the WAL";
	$recovered_total += $recovered;
}

my %crash = (
	'kill -9 of a client backend' => sub {
		kill 'KILL', load_backend();
	},
	'kill -9 of the apply worker' => sub {
		kill 'KILL', aw_worker_pid($node, 'postgres');
	},
	'kill -9 of an unrelated backend' => sub {
		my $psql = $node->background_psql('postgres');
		my $pid = $psql->query_safe('SELECT pg_backend_pid()');
		kill 'KILL', $pid;
		$psql->quit;
	},
	'kill -9 of the postmaster' => sub {
		my ($pid) = split /\n/, slurp_file($node->data_dir . '/postmaster.pid');
		kill 'KILL', $pid;
		# Its children exit when they see it gone; then start again: a poll,
		# a try a second for up to 100 s, as nothing answers to query.
		my $started = 0;
		for (my $i = 0; $i < 100 && !$started; $i++)
		{
			$started = system('pg_ctl', '-D', $node->data_dir, '-l', $node->logfile,
				'-w', 'start') == 0;
			sleep 1 unless $started;
		}
		die 'the server did not start again after kill -9 of the postmaster' unless $started;
		$node->_update_pid(1);
	},
	'an immediate stop' => sub {
		$node->stop('immediate');
		$node->start;
	},
);

for my $round (1 .. 3)
{
	for my $what (sort keys %crash)
	{
		my $load = start_load(3);
		load_backend();
		# Let writes queue up, some applied, some not.
		$node->poll_query_until('postgres', q{SELECT count(*) > 100 FROM committed})
		  or die 'the load does not commit';
		$crash{$what}->();
		$load->finish;
		check_exact("$what, round $round");
	}

	# A crash while a committing transaction waits for synchronous
	# replication: its commit is in the WAL, so its write is applied.
	$node->safe_psql('postgres', q{ALTER SYSTEM SET synchronous_standby_names = 'nobody'; SELECT pg_reload_conf()});
	my $waiting = $node->background_psql('postgres', on_error_stop => 0);
	$waiting->query_until(qr/started/, q{\echo started
		BEGIN;
		INSERT INTO committed VALUES (-1000 - } . $round . q{);
		SELECT asyncwrite.insert('t', jsonb_build_object('k', -1000 - } . $round . q{));
		COMMIT;
});
	$node->poll_query_until('postgres',
		q{SELECT count(*) = 1 FROM pg_stat_activity WHERE wait_event = 'SyncRep'})
	  or die 'no commit waits for synchronous replication';
	my $load = start_load(3, '-c synchronous_commit=local');
	$node->poll_query_until('postgres', q{SELECT count(*) > 100 FROM committed})
	  or die 'the load does not commit';
	kill 'KILL', load_backend();
	$load->finish;
	eval { $waiting->quit; };
	wait_up();
	$node->safe_psql('postgres', q{ALTER SYSTEM RESET synchronous_standby_names; SELECT pg_reload_conf()});
	check_exact("a crash while a commit waits for synchronous replication, round $round");
	is($node->safe_psql('postgres', "SELECT count(*) FROM t WHERE k = -1000 - $round"), '1',
		"round $round: the write of the transaction that waited is applied once");
	$node->safe_psql('postgres', 'TRUNCATE committed, t');
}

# Transactions that only queue writes, one write each: 50 commits, 10
# rolled back, a crash: the 50 are applied once, the 10 never.
$node->safe_psql('postgres', 'SELECT asyncwrite.pause()');
for my $i (1 .. 50)
{
	$node->safe_psql('postgres', "SELECT asyncwrite.insert('t', '{\"k\": -" . (100 + $i) . "}')");
}
for my $i (1 .. 10)
{
	$node->safe_psql('postgres', "BEGIN; SELECT asyncwrite.insert('t', '{\"k\": -" . (200 + $i) . "}'); ROLLBACK");
}
my $crasher = $node->background_psql('postgres');
kill 'KILL', $crasher->query_safe('SELECT pg_backend_pid()');
$crasher->quit;
wait_up();
is($node->safe_psql('postgres', q{SELECT asyncwrite.flush('60 s');
	SELECT count(*), count(DISTINCT k) FROM t WHERE k BETWEEN -150 AND -101;
	SELECT count(*) FROM t WHERE k BETWEEN -210 AND -201}),
	"t\n50|50\n0", 'the 50 commits come back once, the 10 rolled back never');

# wait() for an id given out before a crash waits for that write, which
# comes back from the WAL, and answers once it is applied.
my $id = $node->safe_psql('postgres', q{SELECT asyncwrite.pause();
	SELECT asyncwrite.insert('t', '{"k": -1}', transactional => false)});
$id = (split /\n/, $id)[-1];
my $psql = $node->background_psql('postgres');
kill 'KILL', $psql->query_safe('SELECT pg_backend_pid()');
$psql->quit;
wait_up();
is($node->safe_psql('postgres', qq{SELECT asyncwrite.wait($id, '60 s'); SELECT count(*) FROM t WHERE k = -1}),
	"t\n1", "wait($id) for a write queued before a crash returns once it is applied");

# The crashes hit writes still queued: they came back from the WAL.
cmp_ok($recovered_total, '>', 0, "writes were read back from the WAL ($recovered_total)");

# No write failed along the way.
is($node->safe_psql('postgres', q{SELECT count(*) FROM asyncwrite.dead_letters}), '0',
	'no write failed');

$node->stop;
done_testing();
