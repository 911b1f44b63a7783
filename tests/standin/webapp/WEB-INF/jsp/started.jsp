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
    response.setStatus(problem == null ? 200 : 503);
    out.print("{\"started\": " + (problem == null) + ", \"problem\": " + json(problem) + "}");
%>
