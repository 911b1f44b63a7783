<%@ page trimDirectiveWhitespaces="true" contentType="application/json" %><%@ include file="db.jspf" %><%
    // Starts a session holding a request counter, as a login does in OpenMRS.
    session.setAttribute("user", request.getParameter("user") == null ? "admin" : request.getParameter("user"));
    session.setAttribute("counter", 0);
    out.print("{\"route\": " + json(route()) + ", \"session\": " + json(session.getId()) + "}");
%>
