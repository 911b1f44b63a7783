<%@ page trimDirectiveWhitespaces="true" contentType="application/json" session="false" %><%@ include file="db.jspf" %><%
    if (refuseUntilStarted(application, response)) return;
    // Which node answered, and the per-session counter (null without a session).
    jakarta.servlet.http.HttpSession existing = request.getSession(false);
    Integer counter = null;
    if (existing != null && existing.getAttribute("counter") != null) {
        counter = (Integer) existing.getAttribute("counter") + 1;
        existing.setAttribute("counter", counter);
    }
    out.print("{\"route\": " + json(route()) + ", \"host\": " + json(java.net.InetAddress.getLocalHost().getHostName())
        + ", \"session\": " + json(existing == null ? null : existing.getId()) + ", \"counter\": " + counter
        + ", \"moduleWebAdmin\": " + json(System.getenv("OMRS_MODULE_WEB_ADMIN")) + "}");
%>
