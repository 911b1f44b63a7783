"""The local search tier: one or three Elasticsearch servers on the private network (never published),
security on with a generated password for the `elastic` user, each server's index on its own volume; or,
with search.uris, an existing cluster.

Three servers keep answering when one is lost (a majority of master-eligible servers remains); they
talk to each other over TLS on the transport port, with certificates from a certificate authority the
program generates, as Elasticsearch requires once security is on between several servers. The nodes
reach the servers' HTTP port inside the private network only."""
from __future__ import annotations

import pulumi
import pulumi_docker as docker
import pulumi_tls as tls

from ..passwords import password
from ..search_tier import SearchTierArgs, SearchTierOutputs
from .network import SEARCH_HOSTS

HTTP_PORT = 9200
CERTS = "/usr/share/elasticsearch/config/certs"
USER = "elastic"  # the built-in superuser, whose password the image takes from ELASTIC_PASSWORD


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
    transport = _transport_certificates(name, servers, addresses, child) if search.servers > 1 else None
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
            authority, keys, certificates = transport
            uploads = [docker.ContainerUploadArgs(file=f"{CERTS}/ca.crt", content=authority),
                       docker.ContainerUploadArgs(file=f"{CERTS}/server.crt", content=certificates[index]),
                       docker.ContainerUploadArgs(file=f"{CERTS}/server.key", content=keys[index])]
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


def _transport_certificates(name: str, servers: list[str], addresses: list[str], child: pulumi.ResourceOptions):
    """A certificate authority of the stack's own, and a certificate per server for its name and address."""
    authority_key = tls.PrivateKey(f"{name}-ca-key", algorithm="ECDSA", ecdsa_curve="P256", opts=child)
    authority = tls.SelfSignedCert(
        f"{name}-ca", private_key_pem=authority_key.private_key_pem, is_ca_certificate=True,
        validity_period_hours=10 * 365 * 24, allowed_uses=["cert_signing", "crl_signing"],
        subject=tls.SelfSignedCertSubjectArgs(common_name=f"openmrs-cluster {pulumi.get_stack()} search CA"),
        opts=child)
    keys, certificates = [], []
    for server, address in zip(servers, addresses):
        key = tls.PrivateKey(f"{server}-key", algorithm="ECDSA", ecdsa_curve="P256", opts=child)
        request = tls.CertRequest(
            f"{server}-csr", private_key_pem=key.private_key_pem, dns_names=[server], ip_addresses=[address],
            subject=tls.CertRequestSubjectArgs(common_name=server), opts=child)
        certificate = tls.LocallySignedCert(
            f"{server}-cert", cert_request_pem=request.cert_request_pem, ca_private_key_pem=authority_key.private_key_pem,
            ca_cert_pem=authority.cert_pem, validity_period_hours=2 * 365 * 24, early_renewal_hours=30 * 24,
            allowed_uses=["digital_signature", "key_encipherment", "server_auth", "client_auth"], opts=child)
        keys.append(pulumi.Output.secret(key.private_key_pem))
        certificates.append(certificate.cert_pem)
    return authority.cert_pem, keys, certificates
