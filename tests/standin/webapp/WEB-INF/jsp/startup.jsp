<%@ page import="java.sql.*, javax.sql.DataSource, java.util.*, com.mchange.v2.c3p0.DataSources" %><%!
    /*
     * OpenMRS's start, as far as the cluster depends on it (each step's source in tests/standin/README.md):
     * a connection pool configured as core configures c3p0; the database update under Liquibase's lock, so
     * one node runs the first setup while any other waits for the lock; then "started", which
     * /health/started reports from then on whatever the database does. A start that fails stays failed, as
     * OpenMRS shows its startup error until the node is restarted.
     */
    public void jspInit() {
        jakarta.servlet.ServletContext application = getServletConfig().getServletContext();
        Thread starter = new Thread(() -> {
            try {
                start(application);
                application.setAttribute("openmrs.started", Boolean.TRUE);
                application.log("OpenMRS stand-in started");
            } catch (Exception e) {
                application.setAttribute("openmrs.startupError", e.toString());
                application.log("OpenMRS stand-in failed to start", e);
            }
        }, "openmrs-startup");
        starter.setDaemon(true);
        starter.start();
        if ("cluster".equals(System.getProperty("cache.type"))) listenAsTheClusteredCaches(application);
    }

    /** With cache.type=cluster, core 2.8's JGroups channels listen on jgroups.bind.port (7800, the Hibernate
     *  cache) and the next port (the API cache): the stand-in holds the same ports (it speaks no JGroups). */
    static void listenAsTheClusteredCaches(jakarta.servlet.ServletContext application) {
        int hibernatePort = Integer.parseInt(System.getProperty("jgroups.bind.port", "7800"));
        for (int port : new int[] {hibernatePort, hibernatePort + 1}) {
            Thread listener = new Thread(() -> {
                try (java.net.ServerSocket socket = new java.net.ServerSocket(port)) {
                    while (true) socket.accept().close();
                } catch (java.io.IOException e) {
                    application.log("cache port " + port + " closed", e);
                }
            }, "cache-port-" + port);
            listener.setDaemon(true);
            listener.start();
        }
    }

    public void jspDestroy() {
        Object pool = getServletConfig().getServletContext().getAttribute("openmrs.pool");
        if (pool != null) {
            try { DataSources.destroy((DataSource) pool); } catch (SQLException ignored) { }
        }
    }

    static void start(jakarta.servlet.ServletContext application) throws Exception {
        String url = System.getenv("OMRS_DB_URL");
        if (url == null || url.isEmpty()) {  // as startup-init.sh builds connection.url for OMRS_DB=mariadb
            url = "jdbc:mariadb://" + env("OMRS_DB_HOSTNAME", "localhost") + ":" + env("OMRS_DB_PORT", "3306") + "/"
                + env("OMRS_DB_NAME", "openmrs") + env("OMRS_DB_ARGS",
                    "?autoReconnect=true&sessionVariables=default_storage_engine=InnoDB&useUnicode=true&characterEncoding=UTF-8")
                + env("OMRS_DB_EXTRA_ARGS", "");
        }
        Class.forName("org.mariadb.jdbc.Driver");  // DriverManager does not scan a web app's own jars
        // hibernate.default.properties' hibernate.c3p0.* as hibernate-c3p0's C3P0ConnectionProvider passes them;
        // anything else comes from c3p0's own defaults, which c3p0.* Java system properties override.
        Map<String, Object> pooling = new HashMap<>();
        pooling.put("maxPoolSize", 50);
        pooling.put("minPoolSize", 0);
        pooling.put("initialPoolSize", 0);
        pooling.put("maxIdleTime", 100);
        pooling.put("maxStatements", 0);
        pooling.put("idleConnectionTestPeriod", 3000);
        pooling.put("acquireIncrement", 1);
        DataSource pool = DataSources.pooledDataSource(
            DataSources.unpooledDataSource(url, env("OMRS_DB_USERNAME", "openmrs"), env("OMRS_DB_PASSWORD", "openmrs")), pooling);
        application.setAttribute("openmrs.pool", pool);

        updateDatabase(pool, application);
        Thread.sleep(1000L * Integer.parseInt(env("STANDIN_START_SECONDS", "2")));  // the context and modules load
        try (Connection db = pool.getConnection(); Statement st = db.createStatement()) {
            // When this JVM started and when it was ready: the order of the nodes' starts, for the tests.
            st.execute("CREATE TABLE IF NOT EXISTS standin_starts (route VARCHAR(64), jvm_started TIMESTAMP(3), ready TIMESTAMP(3), PRIMARY KEY (route, jvm_started))");
            try (PreparedStatement insert = db.prepareStatement("INSERT IGNORE INTO standin_starts VALUES (?, ?, CURRENT_TIMESTAMP(3))")) {
                insert.setString(1, System.getProperty("jvmRoute", ""));
                insert.setTimestamp(2, new Timestamp(java.lang.management.ManagementFactory.getRuntimeMXBean().getStartTime()));
                insert.executeUpdate();
            }
        }
    }

    /** DatabaseUpdater: Liquibase's waitForLock (a poll every 10 s, for at most 5 min), the first setup when the
     *  database is empty (STANDIN_SETUP_SECONDS, for OpenMRS's 5-15 min), then the lock released. */
    static void updateDatabase(DataSource pool, jakarta.servlet.ServletContext application) throws Exception {
        String node = System.getProperty("jvmRoute", "");
        try (Connection db = pool.getConnection(); Statement st = db.createStatement()) {
            st.execute("CREATE TABLE IF NOT EXISTS liquibasechangeloglock (ID INT PRIMARY KEY, LOCKED BOOLEAN NOT NULL, LOCKGRANTED DATETIME, LOCKEDBY VARCHAR(255))");
            st.execute("INSERT IGNORE INTO liquibasechangeloglock VALUES (1, FALSE, NULL, NULL)");
        }
        long waitUntil = System.currentTimeMillis() + 1000L * Integer.parseInt(env("STANDIN_LOCK_WAIT_SECONDS", "300"));
        while (true) {
            try (Connection db = pool.getConnection();
                 PreparedStatement lock = db.prepareStatement("UPDATE liquibasechangeloglock SET LOCKED = TRUE, LOCKGRANTED = NOW(), LOCKEDBY = ? WHERE ID = 1 AND LOCKED = FALSE")) {
                lock.setString(1, node);
                if (lock.executeUpdate() == 1) break;
            }
            if (System.currentTimeMillis() > waitUntil) throw new SQLException("Could not acquire change log lock");
            application.log("waiting for the changelog lock");
            Thread.sleep(1000L * Integer.parseInt(env("STANDIN_LOCK_POLL_SECONDS", "10")));
        }
        try (Connection db = pool.getConnection(); Statement st = db.createStatement()) {
            if (!db.getMetaData().getTables(db.getCatalog(), null, "standin_schema", null).next()) {
                application.log("setting up the database");
                Thread.sleep(1000L * Integer.parseInt(env("STANDIN_SETUP_SECONDS", "20")));
                st.execute("CREATE TABLE standin_schema (installed_by VARCHAR(64), installed TIMESTAMP(3) DEFAULT CURRENT_TIMESTAMP(3))");
                try (PreparedStatement record = db.prepareStatement("INSERT INTO standin_schema (installed_by) VALUES (?)")) {
                    record.setString(1, node);
                    record.executeUpdate();
                }
            }
        } finally {
            try (Connection db = pool.getConnection(); Statement st = db.createStatement()) {
                st.execute("UPDATE liquibasechangeloglock SET LOCKED = FALSE, LOCKGRANTED = NULL, LOCKEDBY = NULL WHERE ID = 1");
            }
        }
    }

    static String env(String name, String fallback) {
        String value = System.getenv(name);
        return value == null || value.isEmpty() ? fallback : value;
    }
%>
