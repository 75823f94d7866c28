# A streaming standby promoted after its primary stops: the writes the
# primary had queued and not applied are read back from the WAL the standby
# replayed and applied once, nothing is applied twice, and the new primary's
# write ids start above the applied mark it replicated (its own
# asyncwrite.ids is the copy's, from before those ids were given out), so a
# crash of the new primary does not take its new writes for applied ones.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use AsyncWriteTest;

my $primary = aw_node('primary', "restart_after_crash = on\n", allows_streaming => 1);
$primary->safe_psql('postgres', 'CREATE TABLE t (id int)');
$primary->backup('base');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'base', has_streaming => 1);
$standby->append_conf('postgresql.conf', "restart_after_crash = on\n");
$standby->start;

# 500 writes applied on the primary; its mark is above 500.
$primary->safe_psql('postgres', q{
	SELECT count(asyncwrite.insert('t', jsonb_build_object('id', g), transactional => false))
	  FROM generate_series(1, 500) g;
	SELECT asyncwrite.flush()});
my $mark = $primary->safe_psql('postgres', 'SELECT applied_write_id FROM asyncwrite.applied_mark');
cmp_ok($mark, '>=', 500, "the primary's mark is $mark");
# 20 more, queued and not applied when the primary goes.
$primary->safe_psql('postgres', q{SELECT asyncwrite.pause();
	SELECT count(asyncwrite.insert('t', jsonb_build_object('id', 500 + g))) FROM generate_series(1, 20) g});
$primary->wait_for_catchup($standby);
$primary->stop('immediate');
$standby->promote;
$standby->poll_query_until('postgres', 'SELECT NOT pg_is_in_recovery()') or die 'no promotion';
is($standby->safe_psql('postgres', q{SELECT asyncwrite.flush('60 s'); SELECT count(*), count(DISTINCT id) FROM t}),
	"t\n520|520", 'after promotion the 500 applied writes are there once, and the 20 queued ones are read back and applied');
like(slurp_file($standby->logfile), qr/asyncwrite recovered 20 durable writes/,
	'the new primary says it recovered them');

# New writes on the promoted standby get ids above the replicated mark, and
# come back after a crash.
my $id = $standby->safe_psql('postgres', q{SELECT asyncwrite.pause();
	SELECT max(asyncwrite.insert('t', jsonb_build_object('id', 1000 + g), transactional => false))
	  FROM generate_series(1, 10) g});
$id = (split /\n/, $id)[-1];
cmp_ok($id, '>', $mark, "the new primary's ids start above the mark ($id > $mark)");
my $psql = $standby->background_psql('postgres');
kill 'KILL', $psql->query_safe('SELECT pg_backend_pid()');
$psql->quit;
$standby->poll_query_until('postgres', 'SELECT true') or die 'no restart';
is($standby->safe_psql('postgres', q{SELECT asyncwrite.flush('60 s'); SELECT count(*), count(DISTINCT id) FROM t WHERE id > 1000}),
	"t\n10|10", 'after a crash of the new primary its 10 queued writes come back, once');

$standby->stop;
done_testing();
