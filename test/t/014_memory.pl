# The caches stay bounded: the worker keeps a statement per target, kind of
# write and column set, and a backend a converter per target table; with
# thousands of column sets, or hundreds of tables, neither grows past its
# bound (the least recently used entry goes).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use AsyncWriteTest;

my $node = aw_node('memory');

# The worker's memory in bytes, as it reports it in the server log.
sub worker_memory
{
	my $pid = aw_worker_pid($node, 'postgres');
	my $offset = -s $node->logfile;
	$node->safe_psql('postgres', "SELECT pg_log_backend_memory_contexts($pid)");
	$node->wait_for_log(qr/\[$pid\] LOG:  Grand total: \d+ bytes/, $offset);
	my ($bytes) = slurp_file($node->logfile, $offset) =~ /\[$pid\] LOG:  Grand total: (\d+) bytes/;
	return $bytes;
}

# 12 columns besides the key: 4095 different sets of columns to upsert.
$node->safe_psql('postgres', 'CREATE TABLE w (id int PRIMARY KEY, '
	  . join(', ', map { "c$_ int" } 0 .. 11) . ')');
my $upserts = sub {
	my ($from, $to) = @_;
	$node->safe_psql('postgres', qq{
		SELECT count(asyncwrite.upsert('w', jsonb_build_object('id', g) ||
			(SELECT jsonb_object_agg('c' || i, g) FROM generate_series(0, 11) i WHERE g & (1 << i) <> 0),
			transactional => false))
		  FROM generate_series($from, $to) g;
		SELECT asyncwrite.flush()});
};
$upserts->(1, 300);
my $after_300 = worker_memory();
$upserts->(301, 4095);
my $after_4095 = worker_memory();
note "worker memory: $after_300 bytes after 300 column sets, $after_4095 after 4095";
cmp_ok($after_4095, '<', 3 * $after_300,
	'4095 column sets take the worker no more memory than a few hundred');
is($node->safe_psql('postgres', 'SELECT count(*), count(*) FILTER (WHERE c0 = id OR c0 IS NULL) FROM w'),
	'4095|4095', 'every upsert applied');

# A backend writing to 400 tables keeps at most 256 converters.
$node->safe_psql('postgres', q{DO $$ BEGIN FOR i IN 1..400 LOOP
	EXECUTE format('CREATE TABLE m%s (a int)', i); END LOOP; END $$});
is($node->safe_psql('postgres', q{
	SELECT count(asyncwrite.insert(('m' || i)::regclass, '{"a": 1}', transactional => false)) FROM generate_series(1, 400) i;
	SELECT count(*) FROM pg_backend_memory_contexts WHERE name = 'asyncwrite target'}),
	"400\n256", 'a backend keeps at most 256 target tables');

$node->stop;
done_testing();
