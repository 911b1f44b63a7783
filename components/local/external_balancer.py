"""balancer.engine external: the site's own balancer (an F5 BIG-IP) in front of the nodes, on several hosts.

The program makes no balancer. It outputs what that balancer needs, each member (address, port, route), the
health check and the stickiness, and the same as an AS3 declaration, which BIG-IP's AS3 extension applies
whole (`POST /mgmt/shared/appsvcs/declare`). The BIG-IP joins the back network (network.subnet, a port or VLAN
of its own) at host numbers the cluster leaves free (SELF_HOSTS), and reaches the nodes and the O3 static
servers at their fixed addresses over TLS, checking their certificates against the stack's authority. Clients
reach its virtual address, where it presents the site's certificate (the site's own, or one the stack's
authority signs), redirects plain HTTP and adds the headers the Apache balancers add.

Stickiness follows the session, as Apache's does: universal persistence on JSESSIONID (the cookie, or the
;jsessionid= path parameter), recorded from the response that sets it. Cookie *hash* persistence would not do:
it maps a cookie's value to a member by hash, not to the node that holds the session.

A rolling update cannot drain a member of a balancer it cannot reach. A stopping node closes its listener
first, so the BIG-IP reselects another member for a new connection (the pool's reselectTries), and each node
waits, once healthy, as long as the BIG-IP's monitor needs to take it back in before the next one stops."""
from __future__ import annotations

import json

import pulumi

from ..load_balancer_tier import LoadBalancerOutputs, LoadBalancerTierArgs
from . import load_balancer, static_content
from .load_balancer import BALANCER_NAME, BalancerManagerAccess, site_material

SCHEMA_VERSION = "3.56.0"  # the AS3 schema the declaration is checked against (tests/reference/f5-as3)
APPLICATION = "openmrs"
SELF_HOSTS = range(2, 10)  # host numbers of network.subnet the cluster never gives out: the BIG-IP's own
# BIG-IP's F5 load-balancing modes for the configured scheduling.
AS3_MODES = {"round_robin": "round-robin", "by_busyness": "least-connections-member"}
# How long the BIG-IP keeps a session's record since its last request: longer than OpenMRS's sessions last.
PERSISTENCE_SECONDS = 3600
HSTS_SECONDS = 63072000  # two years, as the Apache balancers send
# The iRule that feeds universal persistence: the session id a request carries, and the one a response sets.
JSESSIONID_PERSISTENCE = """when HTTP_REQUEST {
    set session [HTTP::cookie value JSESSIONID]
    if { $session eq "" } { set session [findstr [HTTP::path] ";jsessionid=" 12] }
    if { $session ne "" } { persist uie $session }
}
when HTTP_RESPONSE {
    set session [HTTP::cookie value JSESSIONID]
    if { $session ne "" } { persist add uie $session }
}
"""
# What the Apache balancers add to every answer beside HSTS (which the HTTP profile inserts).
SITE_HEADERS = """when HTTP_RESPONSE {
    HTTP::header replace X-Content-Type-Options nosniff
    HTTP::header replace X-Frame-Options SAMEORIGIN
    HTTP::header replace Referrer-Policy strict-origin-when-cross-origin
}
"""


def members(args: LoadBalancerTierArgs) -> list[dict]:
    """Every member the balancer spreads requests over, as the Apache balancers list them: the nodes, then the O3
    application's static servers."""
    return [{"pool": pool, "route": member["route"], "address": member["address"], "port": member["port"]}
            for pool, listed in (("nodes", load_balancer.members(args)), ("static", load_balancer.static_members(args)))
            for member in listed]


def requirements(args: LoadBalancerTierArgs) -> dict:
    """What any balancer of the site's own must do, in plain terms (the `external_balancer` output); it reaches
    the members over TLS and checks their certificates against the `certificate_authority` output."""
    cluster = args.cluster
    heartbeat = cluster.balancer.heartbeat
    network = args.network.platform_network
    frontend = cluster.frontend
    return {
        "virtual_address": cluster.balancer.external.virtual_address,
        "self_addresses": [network.address(host) for host in SELF_HOSTS],
        "members": members(args),
        "scheduling": cluster.balancer.scheduling,
        "health_check": {
            "path": heartbeat.path, "expect_status": 200, "interval_seconds": heartbeat.interval_seconds,
            "timeout_seconds": heartbeat.timeout_seconds, "fails": heartbeat.fails, "passes": heartbeat.passes,
            "static_path": static_content.health_path(cluster.app.context_path) if frontend.enabled else None,
        },
        "stickiness": {"cookie": "JSESSIONID", "path_parameter": "jsessionid"} if cluster.balancer.sticky_sessions
        else None,
        "o3_path": static_content.spa_path(cluster.app.context_path) if frontend.enabled else None,
    }


def declaration(plan: dict, stack: str, tenant: str, site_certificate: str, site_key: str, authority: str,
                host_name: str) -> dict:
    """The AS3 request for `plan` (requirements()): one HTTPS service, the nodes' pool and, with the O3
    application, the static servers' pool and the policy that sends its path there."""
    health = plan["health_check"]
    by_pool = {pool: [m for m in plan["members"] if m["pool"] == pool] for pool in ("nodes", "static")}

    def monitor(path: str) -> dict:
        # AS3 counts time, not checks: down after `fails` intervals without an answer, up after `passes`.
        return {"class": "Monitor", "monitorType": "https",
                "send": f"GET {path} HTTP/1.1\\r\\nHost: {host_name}\\r\\nConnection: close\\r\\n\\r\\n",
                "receive": "HTTP/1.1 200", "interval": health["interval_seconds"],
                "timeout": health["interval_seconds"] * health["fails"] + 1,
                "timeUntilUp": health["interval_seconds"] * health["passes"]}

    def pool(name: str, mode: str) -> dict:
        return {"class": "Pool", "loadBalancingMode": mode, "monitors": [{"use": f"{name}_started"}],
                # One entry per member, so that an operator can set one's adminState (drain) alone.
                "members": [{"servicePort": m["port"], "serverAddresses": [m["address"]], "remark": m["route"]}
                            for m in by_pool[name]],
                # A member that refuses a connection (a node stopping) is passed over for the next one.
                "reselectTries": max(len(by_pool[name]) - 1, 0), "serviceDownAction": "reset"}

    service = {
        "class": "Service_HTTPS", "virtualAddresses": [plan["virtual_address"]], "virtualPort": 443,
        "redirect80": True, "serverTLS": "site_tls", "clientTLS": "members_tls", "pool": "nodes", "snat": "auto",
        "profileHTTP": {"use": "site_http"}, "iRules": ["site_headers"],
        "persistenceMethods": [{"use": "jsessionid"}] if plan["stickiness"] else [],
    }
    application = {
        "class": "Application",
        "openmrs": service,
        "site_tls": {"class": "TLS_Server", "certificates": [{"certificate": "site_certificate"}],
                     "tls1_3Enabled": True, "tls1_2Enabled": True, "tls1_1Enabled": False, "tls1_0Enabled": False,
                     "ssl3Enabled": False, "sslEnabled": False, "cipherGroup": {"bigip": "/Common/f5-secure"}},
        "site_certificate": {"class": "Certificate", "certificate": site_certificate, "privateKey": site_key},
        "members_tls": {"class": "TLS_Client", "validateCertificate": True, "trustCA": {"use": "stack_authority"},
                        "ignoreExpired": False, "ignoreUntrusted": False,
                        "tls1_2Enabled": True, "tls1_1Enabled": False, "tls1_0Enabled": False},
        "stack_authority": {"class": "CA_Bundle", "bundle": authority},
        "site_http": {"class": "HTTP_Profile", "xForwardedFor": True,
                      # Tomcat's RemoteIpValve takes the scheme from it: Secure cookies, https redirects.
                      "insertHeader": {"name": "X-Forwarded-Proto", "value": "https"},
                      "hstsInsert": True, "hstsPeriod": HSTS_SECONDS, "hstsIncludeSubdomains": False},
        "site_headers": {"class": "iRule", "iRule": SITE_HEADERS},
        "nodes": pool("nodes", AS3_MODES[plan["scheduling"]]),
        "nodes_started": monitor(health["path"]),
    }
    if plan["stickiness"]:
        application["jsessionid"] = {"class": "Persist", "persistenceMethod": "universal",
                                     "iRule": "jsessionid_persistence", "duration": PERSISTENCE_SECONDS,
                                     "mirror": True}  # kept when the BIG-IP pair fails over
        application["jsessionid_persistence"] = {"class": "iRule", "iRule": JSESSIONID_PERSISTENCE}
    if plan["o3_path"]:
        service["policyEndpoint"] = "o3_routing"
        application["static"] = pool("static", "round-robin")
        application["static_started"] = monitor(health["static_path"])

        def forward(to: str) -> dict:
            return {"type": "forward", "event": "request", "select": {"pool": {"use": to}}}

        application["o3_routing"] = {"class": "Endpoint_Policy", "strategy": "first-match", "rules": [
            {"name": "o3_application", "actions": [forward("static")],
             "conditions": [{"type": "httpUri", "event": "request",
                             "path": {"operand": "starts-with", "values": [plan["o3_path"]]}}]},
            {"name": "home", "actions": [{"type": "httpRedirect", "event": "request", "code": 302,
                                          "location": f"{plan['o3_path']}home"}],
             "conditions": [{"type": "httpUri", "event": "request", "path": {"operand": "equals", "values": ["/"]}}]},
            # Every other request to the nodes, named: a pool chosen for one request stays chosen for the next
            # on the same connection otherwise.
            {"name": "application", "actions": [forward("nodes")], "conditions": []},
        ]}
    return {"class": "AS3", "action": "deploy", "persist": True, "declaration": {
        "class": "ADC", "schemaVersion": SCHEMA_VERSION, "id": f"openmrs-cluster-{stack}",
        "label": f"openmrs-cluster stack {stack}"[:64], tenant: {"class": "Tenant", APPLICATION: application}}}


def build(component: pulumi.ComponentResource, name: str, args: LoadBalancerTierArgs) -> LoadBalancerOutputs:
    cluster = args.cluster
    network = args.network.platform_network
    plan = requirements(args)
    certificate, private_key = site_material(component, name, args)
    host_name = cluster.tls.host_name or plan["virtual_address"]
    as3 = pulumi.Output.all(certificate, private_key, network.trusted_pem).apply(
        lambda material: json.dumps(declaration(plan, pulumi.get_stack(), cluster.balancer.external.tenant,
                                                *material, host_name=host_name), indent=2))
    heartbeat = cluster.balancer.heartbeat
    # No balancer to drain: each member, once healthy, waits for the BIG-IP's monitor to take it back in.
    membership = BalancerManagerAccess(container_names=[], engines=[], balancer_name=BALANCER_NAME,
                                       settle_seconds=heartbeat.interval_seconds * (heartbeat.passes + 1))
    url = f"https://{host_name}{cluster.app.context_path}/"
    return LoadBalancerOutputs(
        urls=[pulumi.Output.from_input(url)], membership=membership,
        authority_certificate=network.trusted_pem if args.site_certificate is None else None,
        external=pulumi.Output.from_input(plan), as3_declaration=pulumi.Output.secret(as3))
