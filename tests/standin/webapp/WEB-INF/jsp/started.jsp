<%@ page trimDirectiveWhitespaces="true" session="false" %><%
    // As core's StartupFilter: 200 once OpenMRS has started (Listener.isOpenmrsStarted()), else 503, and no
    // body. It asks nothing of the database: a database failover does not take started nodes out.
    response.setStatus(Boolean.TRUE.equals(application.getAttribute("openmrs.started")) ? 200 : 503);
%>
