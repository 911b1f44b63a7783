<%@ page trimDirectiveWhitespaces="true" contentType="application/json" session="false" %><%@ include file="db.jspf" %><%
    // GET /ws/rest/v1/session, in the shape of the REST module's SessionController1_9: unauthenticated, the
    // locale only; with HTTP Basic credentials of the admin user (OMRS_ADMIN_USER_PASSWORD), a logged-in HTTP
    // session (its id carries the node's jvmRoute) and the user. Authentication reads the database.
    if (refuseUntilStarted(application, response)) return;
    String locale = "\"locale\": \"en_GB\", \"allowedLocales\": [\"en_GB\"]";
    jakarta.servlet.http.HttpSession session = request.getSession(false);
    String authorization = request.getHeader("Authorization");
    if (authorization != null && authorization.startsWith("Basic ")) {
        try (Connection db = openDatabase(application); Statement st = db.createStatement()) {
            st.executeQuery("SELECT 1").close();
        }
        if (isAdmin(request)) {
            session = request.getSession(true);
            session.setAttribute("user", "admin");
            session.setAttribute("counter", 0);
        }
    }
    if (session == null || session.getAttribute("user") == null) {
        out.print("{\"authenticated\": false, " + locale + "}");
    } else {
        out.print("{\"sessionId\": " + json(session.getId()) + ", \"authenticated\": true, \"user\": {\"uuid\": "
            + "\"1c3db49d-440a-11e6-a65c-00e04c680037\", \"display\": \"admin\", \"username\": \"admin\", \"systemId\": \"admin\"}, "
            + locale + ", \"sessionLocation\": null, \"currentProvider\": null}");
    }
%>
