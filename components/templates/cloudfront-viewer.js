{% if behaviour == "spa" %}
// A CloudFront Function (cloudfront-js-2.0) run on each viewer request of {{ spa }}*, served from S3,
{% else %}
// A CloudFront Function (cloudfront-js-2.0) run on each viewer request that goes to the ALB,
{% endif %}
// rendered by components/aws/static_content.py.
{% if clients %}
// The viewers aws.allowed_client_cidrs lets in, as [network, mask], unsigned 32-bit numbers: CloudFront is the
// ALB's only client, so the list is checked here.
var CLIENTS = {{ clients }};

function allowedClient(ip) {
    var parts = ip.split('.');
    if (parts.length !== 4) {
        return false;
    }
    var address = parseInt(parts[0], 10) * 16777216 + parseInt(parts[1], 10) * 65536 + parseInt(parts[2], 10) * 256 +
        parseInt(parts[3], 10);
    for (var i = 0; i < CLIENTS.length; i++) {
        if (((address & CLIENTS[i][1]) >>> 0) === CLIENTS[i][0]) {
            return true;
        }
    }
    return false;
}
{% endif %}
{% if behaviour == "site" %}

function redirect(location) {
    return {statusCode: 302, statusDescription: 'Found', headers: {location: {value: location}}};
}
{% endif %}

function handler(event) {
    var request = event.request;
{% if clients %}
    if (!allowedClient(event.viewer.ip)) {
        return {statusCode: 403, statusDescription: 'Forbidden'};
    }
{% endif %}
{% if behaviour == "spa" %}
    // A client-side route (a last segment without an extension, such as login or home) is the application's
    // page: index.html. A missing file stays a 404, and nothing outside {{ spa }} is touched.
    var last = request.uri.substring(request.uri.lastIndexOf('/') + 1);
    if (last.indexOf('.') === -1) {
        request.uri = '{{ spa }}index.html';
    }
{% else %}
    if (request.uri === '/') {
        return redirect('{{ spa }}home');
    }
    if (request.uri === '{{ spa[:-1] }}') {
        return redirect('{{ spa }}');
    }
{% endif %}
    return request;
}
