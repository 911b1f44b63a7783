<%@ page trimDirectiveWhitespaces="true" contentType="text/plain" session="false" %><%@ include file="db.jspf" %><%
    if (refuseUntilStarted(application, response)) return;
    // POST ?name=&content= writes /openmrs/data/complex_obs/<name> (without a name, a new one); GET ?name= reads it back.
    String name = request.getParameter("name");
    if (name == null && "POST".equals(request.getMethod())) name = "upload-" + java.util.UUID.randomUUID() + ".txt";
    if (name == null || !name.matches("[A-Za-z0-9._-]+")) { response.sendError(400, "name must be a plain file name"); return; }
    Path file = Paths.get("/openmrs/data/complex_obs").resolve(name);
    response.setHeader("X-Node-Route", route());
    if ("POST".equals(request.getMethod())) {
        String content = request.getParameter("content");
        Files.writeString(file, content == null ? "" : content);
        out.print(route());
    } else if (Files.exists(file)) {
        out.print(Files.readString(file));
    } else {
        response.sendError(404);
    }
%>
