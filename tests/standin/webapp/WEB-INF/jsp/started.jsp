<%@ page trimDirectiveWhitespaces="true" contentType="application/json" %><%@ include file="db.jspf" %><%
    // 200 only when the database answers and every folder of /openmrs/data (and itself) is writable.
    String problem = null;
    try (Connection db = openDatabase(); Statement st = db.createStatement()) {
        st.executeQuery("SELECT 1").close();
    } catch (SQLException e) {
        problem = "database: " + e.getMessage();
    }
    if (problem == null) {
        Path data = Paths.get("/openmrs/data");
        java.util.List<Path> folders = new java.util.ArrayList<>();
        folders.add(data);
        try (DirectoryStream<Path> children = Files.newDirectoryStream(data, Files::isDirectory)) {
            for (Path child : children) folders.add(child);
        }
        for (Path folder : folders) {
            try {
                Files.delete(Files.createTempFile(folder, ".probe-", ""));
            } catch (Exception e) {
                problem = "not writable: " + folder;
                break;
            }
        }
    }
    if (problem == null && application.getAttribute("readyRecorded") == null) {
        // When this JVM first became ready, and when it started: the order of the nodes' first starts.
        try (Connection db = openDatabase(); Statement st = db.createStatement()) {
            st.execute("CREATE TABLE IF NOT EXISTS standin_starts (route VARCHAR(64), jvm_started TIMESTAMP(3), ready TIMESTAMP(3), PRIMARY KEY (route, jvm_started))");
            try (PreparedStatement insert = db.prepareStatement("INSERT IGNORE INTO standin_starts VALUES (?, ?, CURRENT_TIMESTAMP(3))")) {
                insert.setString(1, route());
                insert.setTimestamp(2, new Timestamp(java.lang.management.ManagementFactory.getRuntimeMXBean().getStartTime()));
                insert.executeUpdate();
            }
            application.setAttribute("readyRecorded", Boolean.TRUE);
        } catch (SQLException e) {
            problem = "database: " + e.getMessage();
        }
    }
    response.setStatus(problem == null ? 200 : 503);
    out.print("{\"started\": " + (problem == null) + ", \"problem\": " + json(problem) + "}");
%>
