# asyncwrite behind PgBouncer.  Transaction pooling: 12 clients each queue
# writes at the call and wait for the id the call returned, whichever server
# connection the wait lands on (write ids are per database, not per
# session), and each sees its own row right after; transactional writes
# committed through the pooler are visible after flush().  Session pooling
# with server_reset_query = DISCARD ALL: a client that reuses a server
# connection does not see the last_write_id() of the client before it.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use Time::HiRes qw(usleep);
use FindBin;
use lib $FindBin::RealBin;
use AsyncWriteTest;

my $clients = 12;
my $rounds = 1000;

my $node = aw_node('bouncer');
$node->safe_psql('postgres', q{
	CREATE TABLE pooled (client int, seq int, queued_by int, PRIMARY KEY (client, seq));
	CREATE TABLE pooled_checks (client int, seq int, write_id bigint, waited int, state text,
	                            seen int, waited_on int, PRIMARY KEY (client, seq));
	CREATE TABLE pooled_tx (client int, seq int, PRIMARY KEY (client, seq));
	CREATE TABLE pooled_tx_checks (client int, seq int, returned_null int, flushed int, seen int,
	                               PRIMARY KEY (client, seq));
});
my $user = $node->safe_psql('postgres', 'SELECT current_user');

# PgBouncer run by the test, not as a service: database "txn" pools
# transactions over 4 server connections, "sess" pools sessions over one.
my $dir = PostgreSQL::Test::Utils::tempdir;
my $bport = PostgreSQL::Test::Cluster::get_free_port();
my $server = 'host=' . $node->host . ' port=' . $node->port . ' dbname=postgres';
append_to_file("$dir/users.txt", qq{"$user" ""\n});
append_to_file("$dir/pgbouncer.ini", qq{[databases]
txn = $server pool_mode=transaction pool_size=4
sess = $server pool_mode=session pool_size=1

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $bport
unix_socket_dir =
auth_type = trust
auth_file = $dir/users.txt
server_reset_query = DISCARD ALL
max_client_conn = 100
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
});
my $pgbouncer = -x '/usr/sbin/pgbouncer' ? '/usr/sbin/pgbouncer' : 'pgbouncer';
my ($bout, $berr) = ('', '');
my $bouncer = IPC::Run::start([ $pgbouncer, "$dir/pgbouncer.ini" ], '<', \undef, '>', \$bout, '2>', \$berr);

# Stop it however the test ends.
END
{
	local $?;
	$bouncer->kill_kill(grace => 5) if $bouncer;
}

sub via
{
	my ($db) = @_;
	return "host=127.0.0.1 port=$bport dbname=$db user=$user";
}

# PgBouncer is ready once a query through it answers.
my $ready = 0;
for (my $waited = 0; $waited < $PostgreSQL::Test::Utils::timeout_default * 10; $waited++)
{
	my ($ret, $out) = $node->psql('txn', 'SELECT 1', connstr => via('txn'));
	if ($ret == 0 && $out eq '1') { $ready = 1; last; }
	usleep(100_000);
}
ok($ready, 'PgBouncer answers') or die "PgBouncer did not start: $berr";

# Transaction pooling: each statement may run on another server connection.
# Each round queues a write at the call, waits for the id it returned, and
# records what status() says of that id and whether its row was visible
# right after.
my $total = $clients * $rounds;
$node->pgbench(
	"-n -M simple -c $clients -j 4 -t $rounds -D seq=0 -h 127.0.0.1 -p $bport -U $user",
	0,
	[qr{number of transactions actually processed: $total/$total}],
	[qr{^$}],
	"$clients clients x $rounds rounds through transaction pooling: insert, wait(id), read",
	{
		'025_wait_id' => q{
\set seq :seq + 1
SELECT asyncwrite.insert('pooled', jsonb_build_object('client', :client_id, 'seq', :seq, 'queued_by', pg_backend_pid()), transactional => false) AS write_id \gset
SELECT asyncwrite.wait(:write_id)::int AS waited, pg_backend_pid() AS waited_on \gset
INSERT INTO pooled_checks SELECT :client_id, :seq, :write_id, :waited, (SELECT state FROM asyncwrite.status(:write_id)), count(*), :waited_on FROM pooled WHERE client = :client_id AND seq = :seq;
}
	},
	'txn');
is($node->safe_psql('postgres', 'SELECT count(*) FROM pooled_checks'), $total, "$total rounds recorded");
is( $node->safe_psql('postgres',
		q{SELECT count(*) FROM pooled_checks WHERE write_id IS NULL OR waited <> 1 OR state IS DISTINCT FROM 'applied' OR seen <> 1}),
	'0', '0 wrong ids: every client saw its own row right after waiting on the id its call returned, and status() said applied');
is($node->safe_psql('postgres', 'SELECT count(DISTINCT write_id) FROM pooled_checks'), $total,
	'each round got an id of its own');
is($node->safe_psql('postgres', 'SELECT count(*) FROM pooled'), $total,
	"$total rows: clients x rounds");
is( $node->safe_psql('postgres',
		'SELECT count(DISTINCT client) || \' \' || min(n) || \' \' || max(n) FROM (SELECT client, count(*) n FROM pooled GROUP BY client) s'),
	"$clients $rounds $rounds", "$rounds rows from each of the $clients clients");
my $elsewhere = $node->safe_psql('postgres',
	'SELECT count(*) FROM pooled_checks c JOIN pooled p USING (client, seq) WHERE c.waited_on <> p.queued_by');
cmp_ok($elsewhere, '>', 0,
	"waits ran on another server connection than their write's ($elsewhere of $total), and found it");

# The documented alternative: a transactional write in an explicit
# transaction returns NULL and is queued at COMMIT; flush() after the commit,
# on whatever server connection, makes it visible.
$node->pgbench(
	"-n -M simple -c $clients -j 4 -t $rounds -D seq=0 -h 127.0.0.1 -p $bport -U $user",
	0,
	[qr{number of transactions actually processed: $total/$total}],
	[qr{^$}],
	"$clients clients x $rounds rounds through transaction pooling: BEGIN, insert, COMMIT, flush(), read",
	{
		'025_flush' => q{
\set seq :seq + 1
BEGIN;
SELECT (asyncwrite.insert('pooled_tx', jsonb_build_object('client', :client_id, 'seq', :seq)) IS NULL)::int AS returned_null \gset
COMMIT;
SELECT asyncwrite.flush()::int AS flushed \gset
INSERT INTO pooled_tx_checks SELECT :client_id, :seq, :returned_null, :flushed, count(*) FROM pooled_tx WHERE client = :client_id AND seq = :seq;
}
	},
	'txn');
is($node->safe_psql('postgres', 'SELECT count(*) FROM pooled_tx_checks'), $total, "$total rounds recorded");
is( $node->safe_psql('postgres',
		'SELECT count(*) FROM pooled_tx_checks WHERE returned_null <> 1 OR flushed <> 1 OR seen <> 1'),
	'0', 'every transactional call returned NULL and its row was visible after COMMIT and flush()');
is($node->safe_psql('postgres', 'SELECT count(*) FROM pooled_tx'), $total, "$total transactional rows");

# Session pooling over one server connection, reset with DISCARD ALL when a
# client leaves: the next client gets the same backend, and none of the
# asyncwrite state of the client before it.
my $writer = $node->safe_psql(
	'sess', q{
	SELECT asyncwrite.insert('pooled', '{"client": 100, "seq": 1}', transactional => false) IS NOT NULL;
	SELECT asyncwrite.insert('pooled', '{"client": 100, "seq": 2}');
	SELECT pg_backend_pid(), asyncwrite.last_write_id() IS NOT NULL},
	connstr => via('sess'));
like($writer, qr/\At\n\n\d+\|t\z/,
	'a client queues writes through session pooling (an id at the call, NULL in a transaction): its last_write_id() is set');
my ($first) = $writer =~ /(\d+)\|t\z/;
is( $node->safe_psql('sess', 'SELECT pg_backend_pid(), asyncwrite.last_write_id() IS NULL',
		connstr => via('sess')),
	"$first|t", 'the next client, on the same server connection after DISCARD ALL, has no last_write_id()');
is($node->safe_psql('postgres', 'SELECT asyncwrite.flush(); SELECT count(*) FROM pooled WHERE client = 100'),
	"t\n2", 'the session-pooled writes are applied');
is($node->safe_psql('postgres', 'SELECT count(*) FROM asyncwrite.dead_letters'), '0', 'no dead letters');

$bouncer->kill_kill(grace => 5);
undef $bouncer;
$node->stop;
done_testing();
