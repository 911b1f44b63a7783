<%@ page trimDirectiveWhitespaces="true" contentType="application/json" session="false" %><%@ include file="db.jspf" %><%
    // POST ?id=...: inserts a row on the writer through the node's pool and reports which node wrote it.
    if (refuseUntilStarted(application, response)) return;
    if (!"POST".equals(request.getMethod())) { response.sendError(405); return; }
    String id = request.getParameter("id");
    if (id == null || id.isEmpty()) id = java.util.UUID.randomUUID().toString();
    try (Connection db = openDatabase(application); Statement st = db.createStatement()) {
        st.execute("CREATE TABLE IF NOT EXISTS standin_rows (id VARCHAR(64) PRIMARY KEY, route VARCHAR(64), created TIMESTAMP(3) DEFAULT CURRENT_TIMESTAMP(3))");
        try (PreparedStatement insert = db.prepareStatement("INSERT INTO standin_rows (id, route) VALUES (?, ?)")) {
            insert.setString(1, id);
            insert.setString(2, route());
            insert.executeUpdate();
        }
    }
    out.print("{\"id\": " + json(id) + ", \"route\": " + json(route()) + "}");
%>
