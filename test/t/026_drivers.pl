# The driver examples of test/apps (psycopg 3, pgjdbc, node-pg) against a
# node with asyncwrite: each queues a write at the call and waits for its id,
# queues one in a transaction and flushes after the commit, and upserts a
# row; each checks its own rows, and the database holds exactly those rows.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use FindBin;
use lib $FindBin::RealBin;
use AsyncWriteTest;

my $apps = "$FindBin::RealBin/../apps";

# pgjdbc speaks TCP only: the node listens on 127.0.0.1 too (its port was
# chosen free there).
my $node = aw_node('drivers', "listen_addresses = '127.0.0.1'\n");
$node->safe_psql('postgres', slurp_file("$apps/schema.sql"));
my $user = $node->safe_psql('postgres', 'SELECT current_user');
my $port = $node->port;

# Debian's python3-psycopg is a module of Debian's python3, whatever else
# PATH finds first.
my $python = -x '/usr/bin/python3' ? '/usr/bin/python3' : 'python3';
my %examples = (
	'psycopg' => [ $python, "$apps/psycopg/example.py", "postgresql://$user\@127.0.0.1:$port/postgres" ],
	'pgjdbc' => [
		'java', '-cp', '/usr/share/java/postgresql.jar',
		"$apps/pgjdbc/Example.java", "jdbc:postgresql://127.0.0.1:$port/postgres?user=$user"
	],
	'node-pg' => [ 'node', "$apps/node-pg/example.js", "postgresql://$user\@127.0.0.1:$port/postgres" ],);

foreach my $source (sort keys %examples)
{
	my ($out, $err) = ('', '');
	my $ok = eval {
		IPC::Run::run($examples{$source}, '<', \undef, '>', \$out, '2>', \$err,
			IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
	};
	$err .= $@ if $@;
	ok($ok, "the $source example exits 0") or diag("$source: $err");
	like(
		$out,
		qr/\Aautocommit: write \d+ applied\ntransaction: committed, flushed\nupsert: write \d+ applied\n\z/,
		"the $source example saw each of its writes applied");
}

# Exactly the rows the three examples queued, nothing else, no dead letters.
is( $node->safe_psql('postgres',
		q{SELECT string_agg(format('%s %s %s', source, kind, payload - 'run'), E'\n' ORDER BY source, kind)
		  FROM app_events}),
	join("\n",
		'node-pg autocommit {"n": 1, "tags": ["a", "b"]}',
		'node-pg transaction {"n": 2}',
		'pgjdbc autocommit {"n": 1, "tags": ["a", "b"]}',
		'pgjdbc transaction {"n": 2}',
		'psycopg autocommit {"n": 1, "tags": ["a", "b"]}',
		'psycopg transaction {"n": 2}'),
	'app_events: an autocommit and a transaction row per driver');
is( $node->safe_psql('postgres',
		q{SELECT string_agg(format('%s %s', name, value - 'run'), E'\n' ORDER BY name) FROM app_settings}),
	join("\n",
		'node-pg {"theme": "dark"}',
		'pgjdbc {"theme": "dark"}',
		'psycopg {"theme": "dark"}'),
	'app_settings: the upsert of each driver');
is( $node->safe_psql('postgres',
		q{SELECT count(*) FROM app_events WHERE payload ? 'run'}),
	'6', 'each event row carries its run');
is($node->safe_psql('postgres', 'SELECT count(*) FROM asyncwrite.dead_letters'), '0', 'no dead letters');

$node->stop;
done_testing();
