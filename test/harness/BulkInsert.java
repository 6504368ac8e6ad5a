// A MariaDB Connector/J client for the bulk-execution tests (test/kernel/session/mariadb-extensions.test.ts):
// inserts rows with PreparedStatement.executeBatch, which Connector/J sends as COM_STMT_BULK_EXECUTE when
// the server offers MARIADB_CLIENT_STMT_BULK_OPERATIONS and useBulkStmts=true.
// Usage: java -cp mariadb-java-client.jar BulkInsert.java <jdbc-url> <user> <password> <table> <rows per batch> <batches>
// Before each batch after the first it prints "waiting" and reads one line from stdin (the test moves the
// session meanwhile); after each batch it prints "batch <n> <sum of update counts>".
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;

public class BulkInsert {
  public static void main(String[] args) throws Exception {
    String url = args[0], user = args[1], password = args[2], table = args[3];
    int rows = Integer.parseInt(args[4]), batches = Integer.parseInt(args[5]);
    BufferedReader stdin = new BufferedReader(new InputStreamReader(System.in));
    try (Connection c = DriverManager.getConnection(url, user, password);
         PreparedStatement ps = c.prepareStatement("INSERT INTO " + table + " (id, v) VALUES (?, ?)")) {
      for (int b = 0; b < batches; b++) {
        if (b > 0) {
          System.out.println("waiting");
          System.out.flush();
          if (stdin.readLine() == null) throw new IllegalStateException("stdin closed");
        }
        for (int i = 0; i < rows; i++) {
          int id = b * rows + i + 1;
          ps.setInt(1, id);
          ps.setString(2, "row-" + id);
          ps.addBatch();
        }
        int[] counts = ps.executeBatch();
        long sum = 0;
        for (int n : counts) sum += n;
        System.out.println("batch " + (b + 1) + " " + sum);
        System.out.flush();
      }
    }
  }
}
