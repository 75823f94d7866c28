# Generated columns as targets, on every major: STORED ones (15 and later)
# and, from PostgreSQL 18, VIRTUAL ones (18's default kind): never given a
# value (428C9, as INSERT), computed when read or applied; queued rows give
# what the same INSERT gives.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use AsyncWriteTest;

my $node = aw_node('generated');
my $version = $node->safe_psql('postgres', 'SHOW server_version_num');
my @kinds = ('STORED');
push @kinds, 'VIRTUAL' if $version >= 180000;

for my $kind (@kinds)
{
	my $t = lc "gen_$kind";
	$node->safe_psql('postgres',
		"CREATE TABLE $t (id int, v text, n int GENERATED ALWAYS AS (length(v)) $kind)");
	$node->safe_psql('postgres', qq{
		SELECT asyncwrite.insert('$t', '{"id": 1, "v": "abc"}');
		SELECT asyncwrite.insert('$t', ROW(2, 'abcd', NULL)::$t);
		SELECT asyncwrite.flush();
		INSERT INTO $t (id, v) VALUES (3, 'abcde');});
	is($node->safe_psql('postgres', "SELECT string_agg(format('%s:%s', id, n), ' ' ORDER BY id) FROM $t"),
		'1:3 2:4 3:5', "$kind generated column: computed for queued rows as for INSERT");
	my ($ret, $out, $err) = $node->psql('postgres',
		qq{SELECT asyncwrite.insert('$t', '{"id": 9, "v": "x", "n": 5}')},
		extra_params => [ '-v', 'VERBOSITY=verbose' ]);
	like($err, qr/428C9/, "$kind generated column: a value for it is refused with 428C9");
	($ret, $out, $err) = $node->psql('postgres',
		"INSERT INTO $t VALUES (9, 'x', 5)", extra_params => [ '-v', 'VERBOSITY=verbose' ]);
	like($err, qr/428C9/, "$kind generated column: as INSERT refuses it");
}
note("PostgreSQL $version: tested " . join(', ', @kinds));

$node->stop;
done_testing();
