# The WAL insert position at a page boundary: moving the slot there must
# not ask to flush past the end of the generated WAL (which fails, and
# used to make the worker exit with an error and start again, in a loop,
# until something else wrote WAL).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use FindBin;
use lib $FindBin::RealBin;
use AsyncWriteTest;

my $node = aw_node('boundary', "asyncwrite.worker_idle_timeout = 1\n");
$node->safe_psql('postgres', q{
	CREATE TABLE b (n int NOT NULL);
	-- End the WAL at a page boundary: non-transactional logical messages
	-- (no xid, no commit record) sized to fill the current page.  Returns
	-- the insert position then, just past the next page's header.
	CREATE FUNCTION pad_to_page() RETURNS pg_lsn LANGUAGE plpgsql AS $$
	DECLARE
		pos pg_lsn;
		off int;
		need int;
		overhead int;
		page int := current_setting('wal_block_size')::int;
	BEGIN
		-- The WAL a message takes besides its bytes (a multiple of 8 of them),
		-- measured within one page.
		LOOP
			pos := pg_current_wal_insert_lsn();
			PERFORM pg_logical_emit_message(false, 'pad', repeat('x', 1000));
			overhead := (pg_current_wal_insert_lsn() - pos)::int - 1000;
			EXIT WHEN overhead < 100;
		END LOOP;
		FOR i IN 1..50 LOOP
			pos := pg_current_wal_insert_lsn();
			off := ((pos - '0/0'::pg_lsn) % page)::int;
			-- 24: just past a page's header, no WAL on the page yet
			IF off = 24 THEN
				RETURN pos;
			END IF;
			need := page - off;
			IF need < 512 THEN
				need := need + page - 24;
			END IF;
			PERFORM pg_logical_emit_message(false, 'pad', repeat('x', need - overhead));
		END LOOP;
		RAISE EXCEPTION 'could not end the WAL at a page boundary';
	END $$;});

# Each round: a write applied, then the WAL ends at a page boundary and the
# worker (idle for a second, then leaving) or the launcher moves the slot
# there.  Something else may write WAL first (the launcher's id notes), so
# three rounds.
my $offset = -s $node->logfile;
my $exact = 0;
for my $round (1 .. 3)
{
	$node->safe_psql('postgres',
		"SELECT asyncwrite.insert('b', jsonb_build_object('n', $round)); SELECT asyncwrite.flush()");
	my $pad = $node->safe_psql('postgres', 'SELECT pad_to_page()');
	my ($moved, $failed) = (0, '');
	my $deadline = time() + $PostgreSQL::Test::Utils::timeout_default;
	while (time() < $deadline)
	{
		my $at = $node->safe_psql('postgres', qq{
			SELECT restart_lsn >= '$pad', restart_lsn = '$pad' FROM pg_replication_slots
			 WHERE slot_name = 'asyncwrite_' || (SELECT oid FROM pg_database WHERE datname = 'postgres')});
		($moved, my $there) = split /\|/, $at;
		if ($moved eq 't')
		{
			$exact++ if $there eq 't';
			last;
		}
		($failed) = slurp_file($node->logfile, $offset) =~
		  /(.*(?:flush past end of generated WAL|is not satisfied|exited with exit code 1).*)/;
		last if $failed;
		usleep(100_000);
	}
	is($failed // '', '', "round $round: no flush past the end of the WAL, no worker error");
	is($moved, 't', "round $round: the slot moved to the page boundary ($pad)");
}
# Something else may have written WAL before the move in a round, but not
# in every one: the slot was moved to the boundary itself at least once.
ok($exact > 0, "the slot was moved to the page boundary itself in $exact of 3 rounds");
is($node->safe_psql('postgres', 'SELECT string_agg(n::text, \',\' ORDER BY n) FROM b'), '1,2,3',
	'each write applied once');
is(aw_stat($node, 'postgres', 'failed'), '0', 'none failed');

$node->stop;
done_testing();
