"""The local search tier: one or three Elasticsearch servers on the private network (never published),
security on with a generated password for the `elastic` user, each server's index on its own volume; or,
with search.uris, an existing cluster.

Three servers keep answering when one is lost (a majority of master-eligible servers remains); they
talk to each other over TLS on the transport port, with certificates from the stack's own authority
(components/local/certificates.py), as Elasticsearch requires once security is on between several servers. The nodes
reach the servers' HTTP port inside the private network only."""
from __future__ import annotations

import pulumi
import pulumi_docker as docker

from ..passwords import password
from ..search_tier import SearchTierArgs, SearchTierOutputs
from .network import SEARCH_HOSTS

HTTP_PORT = 9200
CERTS = "/usr/share/elasticsearch/config/certs"
USER = "elastic"  # the built-in superuser, whose password the image takes from ELASTIC_PASSWORD
TRANSPORT_HOURS = 2 * 365 * 24
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
    # Several servers talk to each other over TLS (Elasticsearch requires it once security is on), with
    # certificates from the stack's authority for each server's name and address.
    transport = [network.authority.issue(server, server, [server], [address], TRANSPORT_HOURS, RENEW_HOURS_BEFORE,
                                         component)
                 for server, address in zip(servers, addresses)] if search.servers > 1 else None
    containers = []
    for index, (logical, address) in enumerate(zip(servers, addresses)):
        machine = network.machine_of("search", index)
        data = docker.Volume(f"{logical}-data", name=network.container_name(f"{logical}-data"),
                             opts=network.options(machine, component))
        settings = [f"node.name={logical}", "cluster.name=openmrs", "xpack.security.enabled=true",
                    # Plain HTTP inside the private network, as the nodes' JVM trusts no private authority.
                    "xpack.security.http.ssl.enabled=false", "bootstrap.memory_lock=false",
                    f"ES_JAVA_OPTS=-Xms{search.heap_mb}m -Xmx{search.heap_mb}m"]
        uploads = []
        if transport is None:
            settings.append("discovery.type=single-node")
        else:
            settings += [f"discovery.seed_hosts={','.join(addresses)}", f"cluster.initial_master_nodes={','.join(servers)}",
                         "xpack.security.transport.ssl.enabled=true",
                         "xpack.security.transport.ssl.verification_mode=full",
                         f"xpack.security.transport.ssl.key={CERTS}/server.key",
                         f"xpack.security.transport.ssl.certificate={CERTS}/server.crt",
                         f"xpack.security.transport.ssl.certificate_authorities={CERTS}/ca.crt"]
            uploads = [docker.ContainerUploadArgs(file=f"{CERTS}/ca.crt", content=network.authority.certificate_pem),
                       docker.ContainerUploadArgs(file=f"{CERTS}/server.crt", content=transport[index].certificate_pem),
                       docker.ContainerUploadArgs(file=f"{CERTS}/server.key", content=transport[index].private_key_pem)]
        containers.append(docker.Container(
            logical,
            **network.identity(logical),
            image=image.image_id,
            envs=[*settings, pulumi.Output.concat("ELASTIC_PASSWORD=", elastic_password)],
            uploads=uploads,
            volumes=[docker.ContainerVolumeArgs(volume_name=data.name, container_path="/usr/share/elasticsearch/data")],
            networks_advanced=[network.attach(machine, address)],
            healthcheck=docker.ContainerHealthcheckArgs(
                tests=["CMD-SHELL", f'curl -fsS -u "{USER}:$ELASTIC_PASSWORD" -o /dev/null '
                                    f'"http://localhost:{HTTP_PORT}/_cluster/health?wait_for_status=yellow&timeout=1s"'],
                interval="5s", timeout="5s", retries=6, start_period="180s",
            ),
            memory=2 * search.heap_mb,  # the heap and as much again for Lucene's files in the page cache
            capabilities=docker.ContainerCapabilitiesArgs(drops=["ALL"]),
            restart="unless-stopped",
            wait=True,
            wait_timeout=300,
            opts=network.options(machine, component,
                                 depends_on=network.image_on(machine, f"{name}-image", search.image, image, component)),
        ))
    # Known once the servers answer, so that whoever uses them waits for them.
    uris = pulumi.Output.all(*[c.id for c in containers]).apply(
        lambda _: [f"http://{address}:{HTTP_PORT}" for address in addresses])
    return SearchTierOutputs(uris=uris, username=pulumi.Output.from_input(USER), password=elastic_password,
                             discovery=True)
