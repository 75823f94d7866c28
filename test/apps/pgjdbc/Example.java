import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.util.UUID;
import org.postgresql.util.PGobject;

/**
 * asyncwrite from Java with pgjdbc.
 *
 *   java -cp /usr/share/java/postgresql.jar Example.java "jdbc:postgresql://host:5432/dbname?user=me"
 *
 * (or JDBC_URL).  Writes to app_events and app_settings (test/apps/schema.sql);
 * exits non-zero if a row it queued is not there once asyncwrite says it is
 * applied.  asyncwrite's functions are SELECTs that return a row: run them
 * with executeQuery() (or execute()), never executeUpdate(), which throws
 * "A result was returned when none was expected" after the write was
 * queued, so code that retries on that error queues it twice.
 */
public class Example {
    static final String SOURCE = "pgjdbc";

    /** The first column of the first row a query returns (null if none). */
    static Object one(Connection conn, String sql, Object... params) throws SQLException {
        try (PreparedStatement ps = conn.prepareStatement(sql)) {
            for (int i = 0; i < params.length; i++) {
                ps.setObject(i + 1, params[i]);
            }
            try (ResultSet rs = ps.executeQuery()) {
                return rs.next() ? rs.getObject(1) : null;
            }
        }
    }

    static PGobject jsonb(String json) throws SQLException {
        PGobject value = new PGobject();
        value.setType("jsonb");
        value.setValue(json);
        return value;
    }

    static void check(boolean ok, String what) {
        if (!ok) {
            System.err.println(SOURCE + ": " + what);
            System.exit(1);
        }
    }

    static long events(Connection conn, String kind, String run) throws SQLException {
        return (Long) one(conn, "SELECT count(*) FROM app_events"
                + " WHERE source = ? AND kind = ? AND payload->>'run' = ?", SOURCE, kind, run);
    }

    public static void main(String[] args) throws SQLException {
        String url = args.length > 0 ? args[0] : System.getenv("JDBC_URL");
        String run = UUID.randomUUID().toString();

        try (Connection conn = DriverManager.getConnection(url)) {
            // Autocommit (JDBC's default): queued at the call, the id comes
            // back at once.  A PGobject of type jsonb carries the row.
            Long id = (Long) one(conn,
                    "SELECT asyncwrite.insert('app_events', ?, transactional => false)",
                    jsonb("{\"source\": \"pgjdbc\", \"kind\": \"autocommit\", \"payload\": "
                            + "{\"run\": \"" + run + "\", \"n\": 1, \"tags\": [\"a\", \"b\"]}}"));
            check(id != null, "a non-transactional write returned no id");
            // Wait for that write (from any connection to this database).
            check(Boolean.TRUE.equals(one(conn, "SELECT asyncwrite.wait(?)", id)), "wait(" + id + ") failed");
            check(events(conn, "autocommit", run) == 1, "write " + id + " is not in app_events");
            System.out.println("autocommit: write " + id + " applied");

            // In a transaction (the default, transactional => true) the write
            // is queued when the transaction commits: the call returns NULL.
            // A String with ?::jsonb works as well as a PGobject.
            conn.setAutoCommit(false);
            Object ret = one(conn, "SELECT asyncwrite.insert('app_events', ?::jsonb)",
                    "{\"source\": \"pgjdbc\", \"kind\": \"transaction\", \"payload\": "
                            + "{\"run\": \"" + run + "\", \"n\": 2}}");
            check(ret == null, "a transactional write returned " + ret + ", not NULL");
            conn.commit();
            conn.setAutoCommit(true);
            // Committed: flush() waits for every write queued in the database
            // before it.
            one(conn, "SELECT asyncwrite.flush()");
            check(events(conn, "transaction", run) == 1, "the committed write is not in app_events");
            System.out.println("transaction: committed, flushed");

            // An upsert with the value as a plain String (sent as varchar).
            id = (Long) one(conn, "SELECT asyncwrite.upsert('app_settings', ?, transactional => false)",
                    "{\"name\": \"pgjdbc\", \"value\": {\"run\": \"" + run + "\", \"theme\": \"dark\"}}");
            one(conn, "SELECT asyncwrite.wait(?)", id);
            Object got = one(conn, "SELECT value->>'run' FROM app_settings WHERE name = ?", SOURCE);
            check(run.equals(got), "upsert " + id + ": app_settings has " + got);
            System.out.println("upsert: write " + id + " applied");
        }
    }
}
