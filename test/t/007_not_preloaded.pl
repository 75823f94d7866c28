# Without shared_preload_libraries the queue functions fail with a clear
# error; with asyncwrite.enabled off, writes still work synchronously.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('plain');
$node->init;
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION asyncwrite; CREATE TABLE p (id int)');

foreach my $sql (q{SELECT asyncwrite.insert('p', '{"id": 1}')}, 'SELECT asyncwrite.flush()',
	'SELECT * FROM asyncwrite.stats', 'SELECT asyncwrite.pause()')
{
	my ($ret, $stdout, $stderr) = $node->psql('postgres', $sql, extra_params => ['-v', 'VERBOSITY=verbose']);
	isnt($ret, 0, "$sql fails");
	like($stderr, qr/ERROR:  55000: asyncwrite is not loaded/, "$sql: SQLSTATE 55000, clear message");
	like($stderr, qr/HINT:  Add asyncwrite to shared_preload_libraries/, "$sql: hint");
}
is($node->safe_psql('postgres', q{SET asyncwrite.enabled = off; SELECT asyncwrite.insert('p', '{"id": 2}') IS NULL; SELECT count(*) FROM p}),
	"t\n1", 'with asyncwrite.enabled off the write is done at once');

$node->stop;
done_testing();
