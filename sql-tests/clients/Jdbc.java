// PostgreSQL's JDBC driver (Debian's libpostgresql-jdbc-java) against a
// running ciab: connect, parameterised statements over every column type in
// text and binary transfer, NULLs, SQLSTATEs, transactions, metadata
// (tables and columns).
// Usage: java -cp /usr/share/java/postgresql.jar Jdbc.java HOST PORT
// (server/tests/it/clients.rs runs it).
import java.math.BigDecimal;
import java.sql.*;
import java.util.*;

public class Jdbc {
    static void check(String name, Object got, Object want) {
        if (!Objects.equals(got, want)) {
            throw new AssertionError(name + ": got " + got + ", want " + want);
        }
    }

    public static void main(String[] args) throws Exception {
        String url = "jdbc:postgresql://" + args[0] + ":" + args[1] + "/ciab";
        // prepareThreshold=1: statements are server-prepared at once, and
        // results come in binary where the driver asks for it.
        Properties props = new Properties();
        props.setProperty("user", "ciab");
        props.setProperty("prepareThreshold", "1");
        try (Connection conn = DriverManager.getConnection(url, props)) {
            try (Statement s = conn.createStatement()) {
                s.execute("CREATE TABLE jd (id serial PRIMARY KEY, t text, n numeric(10,2), "
                        + "f double precision, b boolean, d date, ts timestamp, by bytea, i bigint)");
                s.execute("CREATE INDEX jd_t_d ON jd (t, d)");
            }
            String insert = "INSERT INTO jd (t, n, f, b, d, ts, by, i) VALUES (?, ?, ?, ?, ?, ?, ?, ?)";
            for (int round = 0; round < 3; round++) {
                try (PreparedStatement p = conn.prepareStatement(insert, Statement.RETURN_GENERATED_KEYS)) {
                    p.setString(1, "text é");
                    p.setBigDecimal(2, new BigDecimal("12.50"));
                    p.setDouble(3, 2.5);
                    p.setBoolean(4, true);
                    p.setDate(5, java.sql.Date.valueOf("2024-02-29"));
                    p.setTimestamp(6, Timestamp.valueOf("2024-02-29 12:34:56.789"));
                    p.setBytes(7, new byte[] {0, (byte) 255});
                    p.setLong(8, 1L << 40);
                    check("insert count", p.executeUpdate(), 1);
                    try (ResultSet keys = p.getGeneratedKeys()) {
                        keys.next();
                        check("generated key", keys.getInt("id"), round + 1);
                    }
                }
            }
            try (PreparedStatement q = conn.prepareStatement(
                    "SELECT t, n, f, b, d, ts, by, i FROM jd WHERE id = ?")) {
                for (int id = 1; id <= 3; id++) {
                    q.setInt(1, id);
                    try (ResultSet r = q.executeQuery()) {
                        check("row", r.next(), true);
                        check("text", r.getString(1), "text é");
                        check("numeric", r.getBigDecimal(2), new BigDecimal("12.50"));
                        check("float", r.getDouble(3), 2.5);
                        check("bool", r.getBoolean(4), true);
                        check("date", r.getDate(5).toString(), "2024-02-29");
                        check("timestamp", r.getTimestamp(6), Timestamp.valueOf("2024-02-29 12:34:56.789"));
                        check("bytea", Arrays.toString(r.getBytes(7)), "[0, -1]");
                        check("bigint", r.getLong(8), 1L << 40);
                    }
                }
            }
            try (PreparedStatement p = conn.prepareStatement("INSERT INTO jd (t, i) VALUES (?, ?)")) {
                p.setNull(1, Types.VARCHAR);
                p.setNull(2, Types.BIGINT);
                p.executeUpdate();
            }
            try (Statement s = conn.createStatement();
                 ResultSet r = s.executeQuery("SELECT t, i FROM jd WHERE id = 4")) {
                r.next();
                check("null text", r.getString(1), null);
                r.getLong(2);
                check("null bigint", r.wasNull(), true);
            }
            // Errors carry their SQLSTATE; the connection goes on.
            try (Statement s = conn.createStatement()) {
                s.executeQuery("SELECT * FROM missing");
                throw new AssertionError("missing table accepted");
            } catch (SQLException e) {
                check("sqlstate", e.getSQLState(), "42P01");
            }
            // A transaction that rolls back leaves nothing.
            conn.setAutoCommit(false);
            try (Statement s = conn.createStatement()) {
                s.executeUpdate("DELETE FROM jd");
            }
            conn.rollback();
            conn.setAutoCommit(true);
            try (Statement s = conn.createStatement();
                 ResultSet r = s.executeQuery("SELECT count(*) FROM jd")) {
                r.next();
                check("count after rollback", r.getLong(1), 4L);
            }
            // Metadata, as tools (DBeaver and the like) read it.
            DatabaseMetaData meta = conn.getMetaData();
            check("product", meta.getDatabaseProductName(), "PostgreSQL");
            List<String> tables = new ArrayList<>();
            try (ResultSet r = meta.getTables(null, "public", "jd", new String[] {"TABLE"})) {
                while (r.next()) {
                    tables.add(r.getString("TABLE_NAME"));
                }
            }
            check("tables", tables, List.of("jd"));
            List<String> columns = new ArrayList<>();
            try (ResultSet r = meta.getColumns(null, "public", "jd", null)) {
                while (r.next()) {
                    columns.add(r.getString("COLUMN_NAME") + " " + r.getString("TYPE_NAME"));
                }
            }
            check("columns", columns, List.of("id serial", "t text", "n numeric", "f float8",
                    "b bool", "d date", "ts timestamp", "by bytea", "i int8"));
            List<String> keys = new ArrayList<>();
            try (ResultSet r = meta.getPrimaryKeys(null, "public", "jd")) {
                while (r.next()) {
                    keys.add(r.getString("COLUMN_NAME") + " " + r.getInt("KEY_SEQ") + " "
                            + r.getString("PK_NAME"));
                }
            }
            check("primary keys", keys, List.of("id 1 jd_pkey"));
            List<String> indexes = new ArrayList<>();
            try (ResultSet r = meta.getIndexInfo(null, "public", "jd", false, false)) {
                while (r.next()) {
                    indexes.add(r.getString("INDEX_NAME") + " " + r.getString("COLUMN_NAME") + " "
                            + r.getInt("ORDINAL_POSITION") + " " + r.getBoolean("NON_UNIQUE"));
                }
            }
            check("indexes", indexes, List.of("jd_pkey id 1 false", "jd_t_d t 1 true", "jd_t_d d 2 true"));
            try (ResultSet r = meta.getImportedKeys(null, "public", "jd")) {
                check("imported keys", r.next(), false);
            }
            // Arrays: setArray in, getArray out.
            try (Statement s = conn.createStatement()) {
                s.executeUpdate("CREATE TABLE ja (id integer PRIMARY KEY, tags text[], nums integer[])");
            }
            try (PreparedStatement p = conn.prepareStatement("INSERT INTO ja VALUES (?, ?, ?)")) {
                p.setInt(1, 1);
                p.setArray(2, conn.createArrayOf("text", new String[] {"a b", null, "q\"t"}));
                p.setArray(3, conn.createArrayOf("int4", new Integer[] {1, 2}));
                p.executeUpdate();
            }
            try (Statement s = conn.createStatement();
                 ResultSet r = s.executeQuery("SELECT tags, nums FROM ja")) {
                r.next();
                check("text array", Arrays.toString((String[]) r.getArray(1).getArray()), "[a b, null, q\"t]");
                check("int array", Arrays.toString((Integer[]) r.getArray(2).getArray()), "[1, 2]");
            }
        }
        System.out.println("ok");
    }
}
