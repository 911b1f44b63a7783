"""The stack's own certificate authority: generated once, its key kept in the stack's state as a secret, and
every certificate the cluster's servers present signed by it, so that one file to trust covers them all."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import pulumi
import pulumi_command as command
import pulumi_docker as docker
import pulumi_tls as tls

from ..checksums import PROJECT_ROOT
from . import certificate_rollout
from .engines import STEP_INTERPRETER

if TYPE_CHECKING:  # the network makes the authority
    from .network import LocalNetwork, Machine

AUTHORITY_HOURS = 10 * 365 * 24
SERVER_USES = ["digital_signature", "key_encipherment", "server_auth", "client_auth"]
# Mozilla's "intermediate" TLS 1.2 ciphers (guidelines 6.0, ssl-config.mozilla.org): forward secret AEAD only,
# which no TLS 1.0 or 1.1 handshake can agree on. TLS 1.3's own suites are all strong.
TLS12_CIPHERS = ":".join([
    "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305"])


@dataclass(frozen=True)
class Issued:
    certificate_pem: pulumi.Output[str]
    private_key_pem: pulumi.Output[str]  # a secret
    private_key_pkcs8_pem: pulumi.Output[str]  # the same, as Java reads it; a secret


@dataclass(frozen=True)
class Authority:
    certificate_pem: pulumi.Output[str]
    _private_key_pem: pulumi.Output[str]

    @classmethod
    def create(cls, name: str, parent: pulumi.Resource) -> "Authority":
        child = pulumi.ResourceOptions(parent=parent)
        # ECDSA on P-256: what every browser and server here accepts (the provider's default curve is P-224).
        key = tls.PrivateKey(f"{name}-key", algorithm="ECDSA", ecdsa_curve="P256", opts=child)
        certificate = tls.SelfSignedCert(
            name, private_key_pem=key.private_key_pem, is_ca_certificate=True, set_subject_key_id=True,
            validity_period_hours=AUTHORITY_HOURS, allowed_uses=["cert_signing", "crl_signing"],
            subject=tls.SelfSignedCertSubjectArgs(common_name=f"openmrs-cluster {pulumi.get_stack()} authority",
                                                  organization="openmrs-cluster"),
            opts=child)
        return cls(certificate.cert_pem, pulumi.Output.secret(key.private_key_pem))

    def issue(self, name: str, common_name: str, dns_names: list[str], ip_addresses: list[str],
              validity_hours: int, renew_hours_before: int, parent: pulumi.Resource) -> Issued:
        """A server certificate for these names. A `pulumi up` within `renew_hours_before` of its end replaces it."""
        child = pulumi.ResourceOptions(parent=parent)
        key = tls.PrivateKey(f"{name}-key", algorithm="ECDSA", ecdsa_curve="P256", opts=child)
        request = tls.CertRequest(
            f"{name}-csr", private_key_pem=key.private_key_pem, dns_names=dns_names, ip_addresses=ip_addresses,
            subject=tls.CertRequestSubjectArgs(common_name=common_name, organization="openmrs-cluster"), opts=child)
        certificate = tls.LocallySignedCert(
            f"{name}-cert", cert_request_pem=request.cert_request_pem, ca_private_key_pem=self._private_key_pem,
            ca_cert_pem=self.certificate_pem, validity_period_hours=validity_hours,
            early_renewal_hours=renew_hours_before, allowed_uses=SERVER_USES, opts=child)
        return Issued(certificate.cert_pem, pulumi.Output.secret(key.private_key_pem),
                      pulumi.Output.secret(key.private_key_pem_pkcs8))


@dataclass(frozen=True)
class Holder:
    """A server that reads its certificate from a volume of its own (certificate_volume)."""
    logical_name: str
    machine: Machine
    volume: docker.Volume
    image_ready: list[pulumi.Resource]  # what its image on its machine waits for (LocalNetwork.image_on)


def certificate_volume(network: LocalNetwork, machine: Machine, logical_name: str,
                       parent: pulumi.Resource) -> docker.Volume:
    return docker.Volume(f"{logical_name}-tls", name=network.container_name(f"{logical_name}-tls"),
                         opts=network.options(machine, parent))


def mount(kind: str, volume: docker.Volume) -> docker.ContainerMountArgs:
    """Where a server of `kind` reads the files, read-only."""
    return docker.ContainerMountArgs(target=certificate_rollout.KINDS[kind].directory, source=volume.name,
                                     type="volume", read_only=True)


def rollout_step(name: str, kind: str, holders: list[Holder], image_name: pulumi.Input[str],
                 network: LocalNetwork, certificate_pem: pulumi.Input[str], private_key_pem: pulumi.Input[str],
                 parent: pulumi.Resource, depends_on: Sequence[pulumi.Resource] = ()) -> command.local.Command:
    """The step (components/local/certificate_rollout.py) that fills the holders' volumes before they start,
    and again, reloading them in turn, whenever the certificate or the authority changes."""
    authority_pem = network.trusted_pem
    targets = pulumi.Output.all(image_name, *[holder.volume.name for holder in holders]).apply(
        lambda values: json.dumps([{"engine": holder.machine.engine.to_json(), "volume": volume_name,
                                    "container": network.container_name(holder.logical_name), "image": values[0],
                                    "kind": kind}
                                   for holder, volume_name in zip(holders, values[1:])]))
    return command.local.Command(
        name, create="install", interpreter=[*STEP_INTERPRETER, "components.local.certificate_rollout"],
        dir=str(PROJECT_ROOT),
        environment={"TLS_TARGETS": targets, "TLS_CERTIFICATE": certificate_pem,
                     "TLS_PRIVATE_KEY": pulumi.Output.secret(private_key_pem), "TLS_AUTHORITY": authority_pem},
        # A new certificate (renewed, or given by the site) or authority runs the step again; nothing else does.
        triggers=[pulumi.Output.all(certificate_pem, authority_pem).apply(
            lambda pems: hashlib.sha256("".join(pems).encode()).hexdigest())],
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[
            *depends_on, *(holder.volume for holder in holders), *(ready for holder in holders for ready in holder.image_ready)]))
