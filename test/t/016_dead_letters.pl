# Dead letters survive an upgrade from 1.0 and a pg_dump / restore, with
# their role and table by name; each role sees and deletes its own,
# pg_read_all_data reads all, pg_monitor reads every one without payloads.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::RealBin;
use AsyncWriteTest;

my $node = aw_node('dead');
$node->safe_psql('postgres', q{
	CREATE ROLE aw_dl_writer LOGIN;
	CREATE ROLE aw_dl_other LOGIN;
	CREATE ROLE aw_dl_monitor LOGIN IN ROLE pg_monitor;
	CREATE ROLE aw_dl_reader LOGIN IN ROLE pg_read_all_data;
	CREATE DATABASE d1;
});

# 1.0, with dead letters of two roles.
$node->safe_psql('d1', q{
	CREATE EXTENSION asyncwrite VERSION '1.0';
	CREATE SCHEMA app;
	CREATE TABLE app.t (id int PRIMARY KEY, v int CHECK (v > 0));
	GRANT USAGE ON SCHEMA app TO PUBLIC;
	GRANT INSERT, SELECT ON app.t TO PUBLIC;
});
my $fail = q{SELECT asyncwrite.insert('app.t', jsonb_build_object('id', g, 'v', -g), transactional => false)
	FROM generate_series(%d, %d) g; SELECT asyncwrite.flush();};
$node->safe_psql('d1', sprintf($fail, 1, 3), extra_params => [ '-U', 'aw_dl_writer' ]);
$node->safe_psql('d1', sprintf($fail, 4, 5), extra_params => [ '-U', 'aw_dl_other' ]);
is($node->safe_psql('d1', q{SELECT extversion FROM pg_extension WHERE extname = 'asyncwrite'}),
	'1.0', 'version 1.0 installed');
is($node->safe_psql('d1', q{SELECT count(*), max(id) FROM asyncwrite.dead_letters}),
	'5|5', 'five dead letters under 1.0');
# The last one deleted: its id must not be given again after the update.
$node->safe_psql('d1', sprintf($fail, 6, 6), extra_params => [ '-U', 'aw_dl_writer' ]);
$node->safe_psql('d1', 'DELETE FROM asyncwrite.dead_letters WHERE id = 6');

$node->safe_psql('d1', 'ALTER EXTENSION asyncwrite UPDATE');
is($node->safe_psql('d1', q{SELECT extversion FROM pg_extension WHERE extname = 'asyncwrite'}),
	'1.1', 'updated to 1.1');
is($node->safe_psql('d1',
		q{SELECT string_agg(format('%s:%s:%s:%s', id, role, target, payload->>'v'), ' ' ORDER BY id)
		  FROM asyncwrite.dead_letters}),
	'1:aw_dl_writer:app.t:-1 2:aw_dl_writer:app.t:-2 3:aw_dl_writer:app.t:-3 4:aw_dl_other:app.t:-4 5:aw_dl_other:app.t:-5',
	'after the update every dead letter is kept, role and target by name');
is($node->safe_psql('d1', q{SELECT count(*) FROM asyncwrite.stats WHERE held_by_pid IS NULL}),
	'1', 'the new stats column works');
$node->safe_psql('d1', sprintf($fail, 6, 6), extra_params => [ '-U', 'aw_dl_writer' ]);
is($node->safe_psql('d1', q{SELECT max(id) FROM asyncwrite.dead_letters}),
	'7', 'ids go on after the update from where they stood, never reusing a deleted one');

# Who sees what.
my %sees = (
	aw_dl_writer => '1,2,3,7',
	aw_dl_other => '4,5',
	aw_dl_monitor => '',
	aw_dl_reader => '1,2,3,4,5,7');
for my $role (sort keys %sees)
{
	is($node->safe_psql('d1',
			q{SELECT coalesce(string_agg(id::text, ',' ORDER BY id), '') FROM asyncwrite.dead_letters WHERE payload IS NOT NULL},
			extra_params => [ '-U', $role ]),
		$sees{$role}, "$role reads the payloads of exactly these dead letters");
}
is($node->safe_psql('d1', q{SELECT count(*), count(DISTINCT role) FROM asyncwrite.dead_letters_overview},
		extra_params => [ '-U', 'aw_dl_monitor' ]),
	'6|2', 'pg_monitor sees every dead letter in the overview');
my ($ret, $out, $err) = $node->psql('d1', 'SELECT payload FROM asyncwrite.dead_letters_overview',
	extra_params => [ '-U', 'aw_dl_monitor' ]);
like($err, qr/column "payload" does not exist/, 'the overview has no payloads');
($ret, $out, $err) = $node->psql('d1', 'SELECT count(*) FROM asyncwrite.dead_letters_overview',
	extra_params => [ '-U', 'aw_dl_other' ]);
like($err, qr/permission denied/, 'other roles cannot read the overview');

# A role deletes its own dead letters, never another's.
is($node->safe_psql('d1', q{WITH d AS (DELETE FROM asyncwrite.dead_letters RETURNING id) SELECT count(*) FROM d},
		extra_params => [ '-U', 'aw_dl_other' ]),
	'2', 'a role deletes its own dead letters');
is($node->safe_psql('d1', q{SELECT string_agg(id::text, ',' ORDER BY id) FROM asyncwrite.dead_letters}),
	'1,2,3,7', 'and only those');
$node->safe_psql('d1', sprintf($fail, 7, 7), extra_params => [ '-U', 'aw_dl_other' ]);

# pg_dump and restore into a new database: rows, names and the id sequence.
my $dump = $node->basedir . '/d1.sql';
$node->command_ok([ 'pg_dump', '-d', $node->connstr('d1'), '-f', $dump ], 'pg_dump');
$node->safe_psql('postgres', 'CREATE DATABASE d2');
$node->command_ok([ 'psql', '-X', '-v', 'ON_ERROR_STOP=1', '-q', '-d', $node->connstr('d2'), '-f', $dump ],
	'restore into a new database');
my $rows = q{SELECT string_agg(format('%s:%s:%s:%s:%s', id, role, target, payload->>'v', sqlstate), ' ' ORDER BY id)
	FROM asyncwrite.dead_letters};
is($node->safe_psql('d2', $rows), $node->safe_psql('d1', $rows),
	'the restored dead letters are the dumped ones, role and target by name');
is($node->safe_psql('d2', q{SELECT count(*) FROM asyncwrite.dead_letters}), '5', 'five restored');
$node->safe_psql('d2', sprintf($fail, 8, 8), extra_params => [ '-U', 'aw_dl_writer' ]);
is($node->safe_psql('d2', q{SELECT max(id), count(*) FROM asyncwrite.dead_letters}),
	'9|6', 'new dead letters after a restore get new ids');
is($node->safe_psql('d2', q{SELECT asyncwrite.retry_failed(1)}), '1',
	'a restored dead letter can be retried by a superuser');
is($node->safe_psql('d2', q{SELECT asyncwrite.flush(); SELECT count(*) FROM asyncwrite.dead_letters WHERE id = 1}),
	"t\n1", 'its retry fails again, as the row still violates the check');

# A fresh install of this version has exactly the objects, columns,
# policies, grants and configuration tables an upgraded 1.0 has.
$node->safe_psql('postgres', 'CREATE DATABASE d3');
$node->safe_psql('d3', 'CREATE EXTENSION asyncwrite');
my $objects = q{
	SELECT string_agg(x, E'\n' ORDER BY x) FROM (
	  SELECT 'member ' || pg_describe_object(classid, objid, objsubid) AS x
	    FROM pg_depend WHERE deptype = 'e'
	     AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'asyncwrite')
	  UNION ALL
	  SELECT format('column %s.%s %s %s %s', c.relname, a.attname, format_type(a.atttypid, a.atttypmod),
	                a.attnotnull, pg_get_expr(d.adbin, d.adrelid))
	    FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
	    LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
	   WHERE c.relnamespace = 'asyncwrite'::regnamespace AND a.attnum > 0 AND NOT a.attisdropped
	  UNION ALL
	  SELECT format('relation %s %s acl %s rls %s', relname, relkind, relacl, relrowsecurity)
	    FROM pg_class WHERE relnamespace = 'asyncwrite'::regnamespace
	  UNION ALL
	  SELECT format('policy %s %s %s', polname, polcmd, pg_get_expr(polqual, polrelid))
	    FROM pg_policy
	  UNION ALL
	  SELECT format('function %s(%s) %s acl %s', proname, pg_get_function_identity_arguments(oid),
	                pg_get_function_result(oid), proacl)
	    FROM pg_proc WHERE pronamespace = 'asyncwrite'::regnamespace
	  UNION ALL
	  SELECT 'view ' || c.relname || ' ' || pg_get_viewdef(c.oid)
	    FROM pg_class c WHERE c.relnamespace = 'asyncwrite'::regnamespace AND c.relkind = 'v'
	  UNION ALL
	  SELECT 'config ' || extconfig::regclass[]::text || ' ' || extcondition::text
	    FROM pg_extension WHERE extname = 'asyncwrite') s};
is($node->safe_psql('d1', $objects), $node->safe_psql('d3', $objects),
	'the upgraded 1.0 and a fresh install have the same objects');

# A batch that fails as a whole after one of its writes was recorded as
# failed (here recording the next one fails, once): each write is then
# tried alone, and each dead letter is logged once, when the transaction
# that records it commits.
$node->safe_psql('postgres', q{
	CREATE TABLE late (v int CHECK (v > 0));
	CREATE SEQUENCE refusals;
	CREATE FUNCTION refuse_once() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
		IF NEW.payload->>'v' = '-13' THEN
			IF nextval('public.refusals') = 1 THEN
				RAISE EXCEPTION 'dead letter refused once';
			END IF;
		END IF;
		RETURN NEW;
	END $$;
	CREATE TRIGGER refuse_once BEFORE INSERT ON asyncwrite.dead_letters
		FOR EACH ROW EXECUTE FUNCTION refuse_once();
});
my $offset = -s $node->logfile;
my ($last) = grep { /^\d+$/ } split /\n/, $node->safe_psql('postgres', q{
	BEGIN;
	SELECT asyncwrite.insert('late', jsonb_build_object('v', v)) FROM unnest(ARRAY[-1, 1, -13]) v;
	COMMIT;
	SELECT asyncwrite.last_write_id();
	SELECT asyncwrite.flush();});
my ($bad, $refused) = ($last - 2, $last);
is($node->safe_psql('postgres', q{SELECT v, (SELECT last_value FROM refusals) FROM late}), '1|2',
	'the good write applied, the second dead letter refused once');
is($node->safe_psql('postgres',
		q{SELECT string_agg(format('%s:%s', write_id, sqlstate), ' ' ORDER BY write_id) FROM asyncwrite.dead_letters WHERE target = 'late'::regclass}),
	"$bad:23514 $refused:23514", 'the two others recorded once each');
my $log = slurp_file($node->logfile, $offset);
my @logged = $log =~ /asyncwrite write (\d+) to "late" failed/g;
is(join(',', @logged), "$bad,$refused", 'each dead letter logged once, after its transaction committed');
$node->safe_psql('postgres', 'DROP TRIGGER refuse_once ON asyncwrite.dead_letters');

$node->stop;
done_testing();
