"""tls.*: HTTPS at the balancers, with a certificate the site gives or one the stack's own authority signs."""
from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path
from typing import Optional

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pydantic import Field, field_validator, model_validator

from ._base import _matching, _Section

HOST_NAME = r"(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*"


class TlsConfig(_Section):
    # The name clinicians type (https://<host_name>/): the certificate must cover it. Unset, the generated
    # certificate names the balancers' addresses only.
    host_name: Optional[str] = None
    # The site's own certificate (a public or the hospital's authority), PEM files read when the program runs:
    # the certificate followed by its intermediates, and its private key. Unset (and without the secrets
    # tls_certificate and tls_private_key), the stack's internal authority signs one.
    certificate_file: Optional[str] = None
    private_key_file: Optional[str] = None
    # The generated certificate's life, and how long before its end a `pulumi up` replaces it.
    certificate_days: int = Field(365, ge=30, le=397)
    renew_days_before: int = Field(90, ge=7, le=180)
    # The stack's own authority by generation (a new number is a new authority): `authority` signs every
    # certificate inside the cluster (and the site's, when none is given); `also_trust`, another generation, is
    # trusted beside it while one replaces the other (the README's "A new authority").
    authority: int = Field(1, ge=1)
    also_trust: Optional[int] = Field(None, ge=1)

    @field_validator("host_name")
    @classmethod
    def _host_name(cls, name: Optional[str]) -> Optional[str]:
        if name is None:
            return None
        return _matching(name, HOST_NAME, "must be a DNS name in lower case, such as openmrs.clinic.example")

    @model_validator(mode="after")
    def _files_in_pairs(self) -> "TlsConfig":
        if (self.certificate_file is None) != (self.private_key_file is None):
            raise ValueError("tls: certificate_file and private_key_file go together; set both, or neither to have "
                             "the stack's authority sign a certificate")
        if self.also_trust == self.authority:
            raise ValueError(f"tls: also_trust ({self.also_trust}) is the authority that signs already; set it to "
                             "the generation being replaced or introduced, or remove it")
        if self.renew_days_before >= self.certificate_days:
            raise ValueError(f"tls: renew_days_before ({self.renew_days_before}) must be shorter than "
                             f"certificate_days ({self.certificate_days})")
        return self

    @property
    def trusted_authorities(self) -> list[int]:
        """The generations every member trusts, the signing one first."""
        return [self.authority] + ([self.also_trust] if self.also_trust is not None else [])

    @property
    def lifetime_hours(self) -> tuple[int, int]:
        """A generated certificate's life and its renewal lead, in the hours the tls provider takes."""
        return self.certificate_days * 24, self.renew_days_before * 24

    def given_files(self, root: Path) -> Optional[tuple[str, str]]:
        """The certificate and key files' text, paths relative to the project; None when none is given."""
        if self.certificate_file is None:
            return None
        return tuple((root / path).read_text() for path in (self.certificate_file, self.private_key_file))


def certificate_problems(certificate_pem: str, key_pem: str, names: list[str],
                         now: datetime.datetime | None = None) -> list[str]:
    """Why a given certificate cannot serve the site (empty if it can): it does not parse, its key is another
    one's, it is not valid now, or its names miss one that clients use."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    try:
        chain = x509.load_pem_x509_certificates(certificate_pem.encode())
    except ValueError:
        return ["is not a PEM certificate (the site's certificate first, then its intermediates)"]
    try:
        key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    except (ValueError, TypeError):
        return ["the private key is not an unencrypted PEM private key"]
    leaf, problems = chain[0], []
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(serialization.Encoding.DER, public) != \
            leaf.public_key().public_bytes(serialization.Encoding.DER, public):
        problems.append("the private key does not match the certificate (each came from a different request)")
    if leaf.not_valid_after_utc <= now:
        problems.append(f"the certificate expired on {leaf.not_valid_after_utc:%Y-%m-%d}")
    elif leaf.not_valid_before_utc > now:
        problems.append(f"the certificate is valid only from {leaf.not_valid_before_utc:%Y-%m-%d %H:%M} UTC")
    uncovered = [name for name in names if not covers(leaf, name)]
    if uncovered:
        problems.append(f"the certificate does not cover {', '.join(uncovered)} (it names "
                        f"{', '.join(subject_names(leaf)) or 'nothing in subjectAltName'})")
    return problems


def subject_names(certificate: x509.Certificate) -> list[str]:
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [*names.get_values_for_type(x509.DNSName), *map(str, names.get_values_for_type(x509.IPAddress))]


def covers(certificate: x509.Certificate, name: str) -> bool:
    """As browsers match: subjectAltName only, a wildcard stands for exactly one leftmost label."""
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        address = None
    for entry in subject_names(certificate):
        if address is not None:
            if entry == str(address):
                return True
        elif entry.lower() == name or (entry.startswith("*.") and "." in name
                                       and name.split(".", 1)[1] == entry[2:].lower()):
            return True
    return False
