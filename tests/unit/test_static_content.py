"""The O3 application on the local platform, run under mocks: static servers of its own behind the balancers,
the application built once per digest of what it is built from, and the settings that would leave no one
able to log in refused before any resource."""
import json
import re

import pytest

from components.config import ConfigError, parse_cluster_config
from program import run_program, stack_config, unwrap, with_overrides

CONTAINER = "docker:index/container:Container"
COMMAND = "command:local:Command"
APACHE_CONFIG = "/etc/apache2/openmrs-balancer.conf"
LOGIN_MODULES = ("@openmrs/esm-login-app", "@openmrs/esm-primary-navigation-app", "@openmrs/esm-home-app")


@pytest.fixture(scope="module")
def graph():
    return run_program("local")


def uploaded(registration, path: str) -> str:
    (content,) = [u["content"] for u in registration.plain("uploads") if u["file"] == path]
    return content


def balancer_config(graph) -> str:
    return uploaded(graph.named("lb-apache"), APACHE_CONFIG)


def static_servers(graph) -> list:
    return sorted((r for r in graph.of_type(CONTAINER) if re.fullmatch(r"o3-static-\d", r.name)), key=lambda r: r.name)


def test_the_application_goes_to_the_static_servers_and_the_rest_of_the_context_path_to_the_nodes(graph):
    config = balancer_config(graph)
    spa = config.index('ProxyPass "/openmrs/spa/" "balancer://openmrs-static/openmrs/spa/"')
    backend = config.index('ProxyPass "/openmrs" "balancer://openmrs-nodes/openmrs"')
    assert spa < backend  # Apache takes the first ProxyPass that matches
    assert "RedirectMatch 302 ^/$ /openmrs/spa/home" in config
    static = re.search(r'<Proxy "balancer://openmrs-static">(.*?)</Proxy>', config, re.S)[1]
    members = re.findall(r'BalancerMember "https://(\S+):8443" route=(\S+) .* hcuri=(\S+) ', static)
    assert members == [("static1", "static1", "/openmrs/spa/health"),
                       ("static2", "static2", "/openmrs/spa/health")]
    # Any server holds the same files: round robin, no stickiness.
    assert "ProxySet lbmethod=byrequests\n" in static and "stickysession" not in static
    hosts = {entry["host"]: entry["ip"] for entry in graph.named("lb-apache").plain("hosts")}
    assert [hosts[route] for route, _, _ in members] == [
        server.plain("networksAdvanced")[0]["ipv4Address"] for server in static_servers(graph)]


def test_each_static_server_serves_the_built_image_over_tls_with_a_certificate_for_its_name(graph):
    servers = static_servers(graph)
    assert len(servers) == stack_config("local").get("openmrs-cluster:frontend", {}).get("servers", 2)
    image = graph.named("o3-image")
    for index, server in enumerate(servers, start=1):
        assert server.plain("image") == image.plain("imageName")
        assert "listen 8443 ssl" in uploaded(server, "/etc/nginx/openmrs-static.conf")
        assert uploaded(server, "/etc/openmrs-static/tls/certificate.pem") == graph.named(
            f"o3-static-{index}-cert").outputs["certPem"]
        request = graph.named(f"o3-static-{index}-csr")
        assert request.plain("dnsNames") == [f"static{index}"]
        assert server.plain("capabilities") == {"drops": ["ALL"]}
        assert not server.inputs.get("ports")  # only the balancers reach it
        assert server.plain("healthcheck")["tests"][-1] == "https://localhost:8443/openmrs/spa/health"


def test_static_servers_are_replaced_one_at_a_time_each_drained_from_the_balancers_first(graph):
    previous = graph.named("lb-apache-2").urn  # the first waits for the balancers
    for index in (1, 2):
        drain, server, admit = (graph.named(f"o3-static-{index}{step}") for step in ("-drain", "", "-admit"))
        assert previous in drain.dependencies and drain.urn in server.dependencies
        assert server.urn in admit.dependencies and server.delete_before_replace
        settings = drain.plain("environment")
        assert (settings["ROLLOUT_BALANCER_NAME"], settings["ROLLOUT_ROUTE"]) == ("openmrs-static", f"static{index}")
        assert drain.plain("triggers") == admit.plain("triggers")
        previous = admit.urn


def test_the_application_is_built_once_per_digest_of_what_it_is_built_from(graph):
    image = graph.named("o3-image")
    args = image.plain("build")["args"]
    modules = json.loads(args["ASSEMBLE_CONFIG"])["frontendModules"]
    assert set(LOGIN_MODULES) <= set(modules) and len(modules) > 20
    assert all(re.fullmatch(r"\d+\.\d+\.\d+\S*", version) for version in modules.values())
    tag = image.plain("imageName")

    def tag_with(**frontend) -> str:
        changed = run_program("local", with_overrides(stack_config("local"), **frontend))
        return changed.named("o3-image").plain("imageName")

    assert tag_with(app={"nodes": 4}) == tag  # nothing the application is built from
    assert tag_with(frontend={"modules": {"@openmrs/esm-login-app": "5.6.0"}}) != tag
    assert tag_with(frontend={"default_locale": "fr"}) != tag


def test_the_stack_exports_where_clinicians_log_in(graph):
    (outputs,) = [o for urn, o in graph.component_outputs.items() if urn.endswith("StaticContentTier::o3")]
    assert unwrap(outputs["url"]) == "https://127.0.0.1:8443/openmrs/spa/login"
    assert unwrap(outputs["site_url"]) == "https://127.0.0.1:8443/openmrs/"


def test_without_the_application_the_balancers_serve_the_backend_only():
    graph = run_program("local", with_overrides(stack_config("local"), frontend={"enabled": False}))
    config = balancer_config(graph)
    assert not static_servers(graph) and "openmrs-static" not in config
    assert "RedirectMatch 302 ^/$ /openmrs/\n" in config


def test_on_hosts_no_machine_holds_both_static_servers():
    graph = run_program("onprem")
    providers = [server.provider for server in static_servers(graph)]
    assert len(providers) == 2 and len(set(providers)) == 2


def problems_for(**frontend) -> list[str]:
    with pytest.raises(ConfigError) as refused:
        parse_cluster_config({"frontend": frontend})
    return refused.value.problems


def test_a_module_set_without_what_logging_in_needs_is_refused_naming_the_key():
    (problem,) = problems_for(removed_modules=["@openmrs/esm-login-app"])
    assert problem.startswith("openmrs-cluster:frontend.removed_modules: without @openmrs/esm-login-app no one can log in")


def test_a_version_range_or_an_unknown_removal_is_refused_with_the_fix():
    (problem,) = problems_for(modules={"@openmrs/esm-login-app": "^5.0.0"})
    assert "'^5.0.0' is not an exact version; give one such as 5.3.2" in problem
    (problem,) = problems_for(removed_modules=["@openmrs/esm-no-such-app"])
    assert "frontend.removed_modules: @openmrs/esm-no-such-app not in the RefApp set" in problem
    assert problems_for(servers=1)[0].startswith("openmrs-cluster:frontend.servers:")


def test_the_application_needs_the_openmrs_context_path():
    elsewhere = {"app": {"context_path": "/emr"}, "balancer": {"heartbeat": {"path": "/emr/health/started"}}}
    with pytest.raises(ConfigError) as refused:
        parse_cluster_config(elsewhere)
    assert refused.value.problems == [
        "openmrs-cluster:frontend.enabled: the O3 application calls the backend at /openmrs, not /emr; set "
        "app.context_path to /openmrs, or frontend.enabled to false"]
    assert parse_cluster_config({**elsewhere, "frontend": {"enabled": False}})
