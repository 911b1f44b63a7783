<%@ page trimDirectiveWhitespaces="true" contentType="application/json" session="false" %><%@ include file="db.jspf" %><%
    if (refuseUntilStarted(application, response)) return;
    // The release this node runs, and the modules and configuration files it loaded, each with its sha256.
    Path release = Paths.get("/openmrs/distribution/cluster-release");
    out.print("{\"route\": " + json(route())
        + ", \"release\": " + json(Files.exists(release) ? Files.readString(release).trim() : null)
        + ", \"modules\": " + checksums(Paths.get("/openmrs/data/modules"))
        + ", \"configuration\": " + checksums(Paths.get("/openmrs/data/configuration")) + "}");
%><%!
    static String checksums(Path folder) throws Exception {
        StringBuilder listing = new StringBuilder("{");
        java.util.List<Path> files;
        try (java.util.stream.Stream<Path> walk = Files.walk(folder)) {
            files = walk.filter(Files::isRegularFile).sorted().collect(java.util.stream.Collectors.toList());
        }
        for (Path file : files) {
            byte[] digest = java.security.MessageDigest.getInstance("SHA-256").digest(Files.readAllBytes(file));
            if (listing.length() > 1) listing.append(", ");
            listing.append(json(folder.relativize(file).toString())).append(": ").append(json(java.util.HexFormat.of().formatHex(digest)));
        }
        return listing.append("}").toString();
    }
%>
