# On a standby the write functions fail with a clear error; flush() and the
# stats view still answer.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use AsyncWriteTest;

my $primary = aw_node('primary', undef, allows_streaming => 1);
$primary->safe_psql('postgres', 'CREATE TABLE s (id int PRIMARY KEY)');
$primary->backup('b');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'b', has_streaming => 1);
$standby->start;
$primary->safe_psql('postgres', q{SELECT asyncwrite.insert('s', '{"id": 1}'); SELECT asyncwrite.flush()});
$primary->wait_for_catchup($standby);

my ($ret, $stdout, $stderr) = $standby->psql('postgres',
	q{SELECT asyncwrite.insert('s', '{"id": 2}')}, extra_params => ['-v', 'VERBOSITY=verbose']);
isnt($ret, 0, 'insert on a standby fails');
like($stderr, qr/ERROR:  25006: cannot queue writes during recovery/, 'with SQLSTATE 25006 and a clear message');
like($stderr, qr/HINT:  Call asyncwrite functions on the primary/, 'and a hint');
is($standby->safe_psql('postgres', q{SELECT asyncwrite.flush('10 s')}), 't', 'flush on a standby returns at once');
is($standby->safe_psql('postgres', q{SELECT count(*) FROM asyncwrite.stats WHERE state = 'recovering'}), '0',
	'and binds no queue there to wait on');
is($standby->safe_psql('postgres', 'SELECT count(*) FROM s'), '1', 'the primary\'s applied write is replicated');

$standby->stop;
$primary->stop;
done_testing();
