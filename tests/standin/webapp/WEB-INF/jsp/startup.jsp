<%@ page import="java.sql.*, javax.sql.DataSource, java.util.*, com.mchange.v2.c3p0.DataSources" %><%@ include file="scheduler.jspf" %><%@ include file="db.jspf" %><%!
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
                Scheduler.of(application).startOnStartup();
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
                // Core's scheduler table with two of RefApp's tasks: one that starts on startup (as the
                // appointments module's do), one that an administrator starts (as core's Auto Close Visits).
                st.execute("CREATE TABLE scheduler_task_config (uuid CHAR(38) PRIMARY KEY, name VARCHAR(255), start_on_startup BOOLEAN, started BOOLEAN, repeat_interval INT)");
                st.execute("CREATE TABLE standin_task_runs (uuid CHAR(38), route VARCHAR(64), ran TIMESTAMP(3) DEFAULT CURRENT_TIMESTAMP(3))");
                try (PreparedStatement task = db.prepareStatement("INSERT INTO scheduler_task_config VALUES (?, ?, ?, FALSE, ?)")) {
                    task.setString(1, "a1b2c3d4-0000-4000-8000-00000000a001"); task.setString(2, "Mark Appointment As Missed");
                    task.setBoolean(3, true); task.setInt(4, Integer.parseInt(env("STANDIN_TASK_SECONDS", "2"))); task.executeUpdate();
                    task.setString(1, "8c17b376-1a2b-11e1-a51a-00248140a5eb"); task.setString(2, "Auto Close Visits");
                    task.setBoolean(3, false); task.setInt(4, 86400); task.executeUpdate();
                }
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
%><%
    // The REST module's taskdefinition and taskaction resources, served here because they act on the
    // scheduler of this JVM. As in OpenMRS they need a started node and the privilege Manage Scheduler
    // (here: the admin user).
    if (refuseUntilStarted(application, response)) return;
    if (!isAdmin(request)) { response.sendError(401); return; }
    response.setContentType("application/json");
    Scheduler scheduler = Scheduler.of(application);
    if (request.getServletPath().endsWith("/taskdefinition")) {
        out.print(taskDefinitions(application, "scheduled".equals(request.getParameter("q")) ? scheduler.scheduled() : null));
    } else if ("POST".equals(request.getMethod())) {
        String body = new String(request.getInputStream().readAllBytes(), java.nio.charset.StandardCharsets.UTF_8);
        java.util.regex.Matcher action = java.util.regex.Pattern.compile("\"action\"\\s*:\\s*\"(\\w+)\"").matcher(body);
        java.util.regex.Matcher tasks = java.util.regex.Pattern.compile("\"tasks\"\\s*:\\s*\\[([^\\]]*)\\]").matcher(body);
        if (!action.find() || !tasks.find()) { response.sendError(400, "needs action and tasks"); return; }
        for (String task : tasks.group(1).replace("\"", "").split(",")) {
            if (task.isBlank()) continue;
            switch (action.group(1).toUpperCase()) {
                case "SCHEDULETASK": scheduler.schedule(task.trim()); break;
                case "SHUTDOWNTASK": scheduler.shutdown(task.trim()); break;
                default: response.sendError(400, "unsupported action " + action.group(1)); return;
            }
        }
        response.setStatus(201);
        out.print(body);
    } else {
        response.sendError(405);
    }
%>
