"""The local search tier: one or three Elasticsearch servers on the private network (never published),
security on with a generated password for the `elastic` user, each server's index on its own volume; or,
with search.uris, an existing cluster.

Three servers keep answering when one is lost (a majority of master-eligible servers remains). Every
connection is TLS with a certificate from the stack's own authority (components/local/certificates.py) for the
server's name and address: between servers on the transport port, as Elasticsearch requires once security is
on, and from the nodes on the HTTP port, since the index holds patients' names and the nodes may be on other
machines. The nodes check it against the authority (app_nodes.TRUST_STORE); the port answers inside the
private network only."""
from __future__ import annotations

import pulumi
import pulumi_docker as docker

from ..passwords import password
from ..search_tier import SearchTierArgs, SearchTierOutputs
from .network import HEALTH_CHECK_SECONDS, LOG_OPTIONS, SEARCH_HOSTS

HTTP_PORT = 9200
CERTS = "/usr/share/elasticsearch/config/certs"
USER = "elastic"  # the built-in superuser, whose password the image takes from ELASTIC_PASSWORD
CERTIFICATE_HOURS = 2 * 365 * 24
RENEW_HOURS_BEFORE = 30 * 24


def build(component: pulumi.ComponentResource, name: str, args: SearchTierArgs) -> SearchTierOutputs:
    search = args.cluster.search
    if search.uris:
        given = pulumi.Output.secret(args.password if args.password is not None else "")
        return SearchTierOutputs(uris=pulumi.Output.from_input(search.uris),
                                 username=pulumi.Output.from_input(search.username), password=given, discovery=True)
    network = args.network.platform_network
    child = pulumi.ResourceOptions(parent=component)
    elastic_password = password(f"{name}-password", None, component)
    image = docker.RemoteImage(f"{name}-image", name=search.image, keep_locally=True, opts=child)
    servers = [f"{name}-{index + 1}" for index in range(search.servers)]
    addresses = [network.address(host) for host in SEARCH_HOSTS[:search.servers]]
    issued = [network.authority.issue(server, server, [server], [address], CERTIFICATE_HOURS, RENEW_HOURS_BEFORE,
                                      component)
              for server, address in zip(servers, addresses)]
    containers = []
    for index, (logical, address) in enumerate(zip(servers, addresses)):
        machine = network.machine_of("search", index)
        data = docker.Volume(f"{logical}-data", name=network.container_name(f"{logical}-data"),
                             opts=network.options(machine, component))
        settings = [f"node.name={logical}", "cluster.name=openmrs", "xpack.security.enabled=true",
                    "bootstrap.memory_lock=false", f"ES_JAVA_OPTS=-Xms{search.heap_mb}m -Xmx{search.heap_mb}m",
                    *tls_settings("http")]
        if search.servers == 1:
            settings.append("discovery.type=single-node")
        else:
            settings += [f"discovery.seed_hosts={','.join(addresses)}", f"cluster.initial_master_nodes={','.join(servers)}",
                         *tls_settings("transport"), "xpack.security.transport.ssl.verification_mode=full"]
        uploads = [docker.ContainerUploadArgs(file=f"{CERTS}/ca.crt", content=network.trusted_pem),
                   docker.ContainerUploadArgs(file=f"{CERTS}/server.crt", content=issued[index].certificate_pem),
                   docker.ContainerUploadArgs(file=f"{CERTS}/server.key", content=issued[index].private_key_pem)]
        containers.append(docker.Container(
            logical,
            **network.identity(logical),
            image=image.image_id,
            envs=[*settings, pulumi.Output.concat("ELASTIC_PASSWORD=", elastic_password)],
            uploads=uploads,
            volumes=[docker.ContainerVolumeArgs(volume_name=data.name, container_path="/usr/share/elasticsearch/data")],
            networks_advanced=[network.attach(machine, address)],
            healthcheck=docker.ContainerHealthcheckArgs(
                tests=["CMD-SHELL", f'curl -fsS --cacert {CERTS}/ca.crt -u "{USER}:$ELASTIC_PASSWORD" -o /dev/null '
                                    f'"https://{address}:{HTTP_PORT}/_cluster/health?wait_for_status=yellow&timeout=1s"'],
                interval=f"{HEALTH_CHECK_SECONDS}s", timeout="5s", retries=6, start_period="180s",
            ),
            memory=2 * search.heap_mb,  # the heap and as much again for Lucene's files in the page cache
            capabilities=docker.ContainerCapabilitiesArgs(drops=["ALL"]),
            restart="unless-stopped",
            wait=True,
            wait_timeout=300,
            log_opts=LOG_OPTIONS,
            opts=network.container_options(machine, component,
                                           depends_on=network.image_on(machine, f"{name}-image", image.image_id, image,
                                                                       component)),
        ))
    # Known once the servers answer, so that whoever uses them waits for them.
    uris = pulumi.Output.all(*[c.id for c in containers]).apply(
        lambda _: [f"https://{address}:{HTTP_PORT}" for address in addresses])
    return SearchTierOutputs(uris=uris, username=pulumi.Output.from_input(USER), password=elastic_password,
                             discovery=True)


def tls_settings(layer: str) -> list[str]:
    """TLS on Elasticsearch's `layer` (http or transport) with the server's certificate from the authority."""
    return [f"xpack.security.{layer}.ssl.enabled=true", f"xpack.security.{layer}.ssl.key={CERTS}/server.key",
            f"xpack.security.{layer}.ssl.certificate={CERTS}/server.crt",
            f"xpack.security.{layer}.ssl.certificate_authorities={CERTS}/ca.crt"]
