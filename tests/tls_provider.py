"""The tls provider under the tests' mocks: real keys and certificates made with `cryptography`, shaped as
pulumi-tls 5.6.2 (which bridges hashicorp/terraform-provider-tls) makes them, so that the containers the
tests deploy present certificates a client can check."""
from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import secrets
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Optional

import pulumi
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier


# Go's pkix.Name.ToRDNSequence order, with the provider's subject fields.
_SUBJECT_ATTRIBUTES = [
    ("country", NameOID.COUNTRY_NAME), ("province", NameOID.STATE_OR_PROVINCE_NAME),
    ("locality", NameOID.LOCALITY_NAME), ("streetAddresses", NameOID.STREET_ADDRESS),
    ("postalCode", NameOID.POSTAL_CODE), ("organization", NameOID.ORGANIZATION_NAME),
    ("organizationalUnit", NameOID.ORGANIZATIONAL_UNIT_NAME), ("commonName", NameOID.COMMON_NAME),
    ("serialNumber", NameOID.SERIAL_NUMBER), ("emailAddress", NameOID.EMAIL_ADDRESS),
]
_ECDSA_CURVES = {"P224": ec.SECP224R1, "P256": ec.SECP256R1, "P384": ec.SECP384R1, "P521": ec.SECP521R1}
# allowed_uses names to cryptography's KeyUsage fields and to extended key usages, as common_cert.go maps them.
_KEY_USAGES = {
    "digital_signature": "digital_signature", "content_commitment": "content_commitment",
    "key_encipherment": "key_encipherment", "data_encipherment": "data_encipherment", "key_agreement": "key_agreement",
    "cert_signing": "key_cert_sign", "crl_signing": "crl_sign", "encipher_only": "encipher_only",
    "decipher_only": "decipher_only",
}
_EXTENDED_KEY_USAGES = {
    "any_extended": ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE, "server_auth": ExtendedKeyUsageOID.SERVER_AUTH,
    "client_auth": ExtendedKeyUsageOID.CLIENT_AUTH, "code_signing": ExtendedKeyUsageOID.CODE_SIGNING,
    "email_protection": ExtendedKeyUsageOID.EMAIL_PROTECTION, "ipsec_end_system": ObjectIdentifier("1.3.6.1.5.5.7.3.5"),
    "ipsec_tunnel": ObjectIdentifier("1.3.6.1.5.5.7.3.6"), "ipsec_user": ObjectIdentifier("1.3.6.1.5.5.7.3.7"),
    "timestamping": ExtendedKeyUsageOID.TIME_STAMPING, "ocsp_signing": ExtendedKeyUsageOID.OCSP_SIGNING,
    "microsoft_server_gated_crypto": ObjectIdentifier("1.3.6.1.4.1.311.10.3.3"),
    "netscape_server_gated_crypto": ObjectIdentifier("2.16.840.1.113730.4.1"),
    "microsoft_commercial_code_signing": ObjectIdentifier("1.3.6.1.4.1.311.2.1.22"),
    "microsoft_kernel_code_signing": ObjectIdentifier("1.3.6.1.4.1.311.61.1.1"),
}
_SERIAL_LIMIT = 2 ** 128  # Go draws below it; cryptography refuses 0, so the emulation draws from 1

_PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
_PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey


def _key_algorithm(key: _PrivateKey) -> str:
    if isinstance(key, rsa.RSAPrivateKey):
        return "RSA"
    return "ECDSA" if isinstance(key, ec.EllipticCurvePrivateKey) else "ED25519"


def _load_private_key(pem: str) -> _PrivateKey:
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey)):
        raise ValueError(f"the tls provider supports RSA, ECDSA and ED25519 keys, not {type(key).__name__}")
    return key


def _signature_hash(key: _PrivateKey) -> Optional[hashes.HashAlgorithm]:
    """The hash Go's x509 signs with for the key (signingParamsForKey)."""
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return None
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return {"secp384r1": hashes.SHA384, "secp521r1": hashes.SHA512}.get(key.curve.name, hashes.SHA256)()
    return hashes.SHA256()


def _go_subject_key_id(public_key: _PublicKey) -> bytes:
    """generateSubjectKeyID: SHA-1 of the key as Go's asn1/elliptic marshal it (an OCTET STRING for ED25519)."""
    if isinstance(public_key, rsa.RSAPublicKey):
        marshalled = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    elif isinstance(public_key, ec.EllipticCurvePublicKey):
        marshalled = public_key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    else:
        raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        marshalled = bytes([0x04, len(raw)]) + raw
    return hashlib.sha1(marshalled).digest()


def _go_time(moment: datetime) -> str:
    """RFC 3339 as Go's time.MarshalText writes it: the fraction without trailing zeros."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f").rstrip("0").rstrip(".") + "Z"


def _subject(fields: Optional[dict[str, Any]]) -> x509.Name:
    rdns = []
    for field_name, oid in _SUBJECT_ATTRIBUTES:
        value = (fields or {}).get(field_name)
        values = value if isinstance(value, list) else [value] if value else []
        if values:  # several street addresses make one multi-valued RDN, as in Go
            rdns.append(x509.RelativeDistinguishedName([x509.NameAttribute(oid, item) for item in values]))
    return x509.Name(rdns)


def _alternative_names(settings: dict[str, Any]) -> list[x509.GeneralName]:
    return ([x509.DNSName(name) for name in settings.get("dnsNames") or []]
            + [x509.IPAddress(ipaddress.ip_address(address)) for address in settings.get("ipAddresses") or []]
            + [x509.UniformResourceIdentifier(uri) for uri in settings.get("uris") or []])


def _tls_private_key(settings: dict[str, Any]) -> dict[str, Any]:
    algorithm = settings["algorithm"]
    if algorithm == "RSA":
        key = rsa.generate_private_key(public_exponent=65537, key_size=int(settings["rsaBits"]))
    elif algorithm == "ECDSA":
        key = ec.generate_private_key(_ECDSA_CURVES[settings["ecdsaCurve"]]())
    elif algorithm == "ED25519":
        key = ed25519.Ed25519PrivateKey.generate()
    else:
        raise ValueError(f"tls.PrivateKey: algorithm must be RSA, ECDSA or ED25519, not {algorithm!r}")
    no_password = serialization.NoEncryption()
    pem_format = (serialization.PrivateFormat.PKCS8 if isinstance(key, ed25519.Ed25519PrivateKey)
                  else serialization.PrivateFormat.TraditionalOpenSSL)
    public_key = key.public_key()
    outputs = {
        "privateKeyPem": key.private_bytes(serialization.Encoding.PEM, pem_format, no_password).decode(),
        "privateKeyPemPkcs8": key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                no_password).decode(),
        "publicKeyPem": public_key.public_bytes(serialization.Encoding.PEM,
                                                serialization.PublicFormat.SubjectPublicKeyInfo).decode(),
        "privateKeyOpenssh": "", "publicKeyOpenssh": "",
        "publicKeyFingerprintMd5": "", "publicKeyFingerprintSha256": "",
    }
    if not (isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP224R1)):
        authorized_key = public_key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        wire = base64.b64decode(authorized_key.split()[1])
        outputs.update(
            privateKeyOpenssh=key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                                no_password).decode(),
            publicKeyOpenssh=authorized_key.decode() + "\n",
            publicKeyFingerprintMd5=":".join(f"{byte:02x}" for byte in hashlib.md5(wire).digest()),
            publicKeyFingerprintSha256="SHA256:" + base64.b64encode(hashlib.sha256(wire).digest()).decode().rstrip("="))
    return outputs


def _tls_cert_request(settings: dict[str, Any]) -> dict[str, Any]:
    key = _load_private_key(settings["privateKeyPem"])
    builder = x509.CertificateSigningRequestBuilder().subject_name(_subject(settings.get("subject")))
    names = _alternative_names(settings)
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    request = builder.sign(key, _signature_hash(key))
    return {"certRequestPem": request.public_bytes(serialization.Encoding.PEM).decode(),
            "keyAlgorithm": _key_algorithm(key)}


def _certificate(settings: dict[str, Any], subject: x509.Name, names: list[x509.GeneralName], public_key: _PublicKey,
                 issuer: x509.Name, issuer_key: _PrivateKey, authority_key_id: Optional[bytes]) -> dict[str, Any]:
    """createCertificate in common_cert.go, with the extensions in the order Go's x509 writes them."""
    uses = settings.get("allowedUses") or []
    unknown = [use for use in uses if use not in _KEY_USAGES and use not in _EXTENDED_KEY_USAGES]
    if unknown:
        raise ValueError(f"allowed_uses: unsupported {unknown}; "
                         f"the provider accepts {sorted(_KEY_USAGES | _EXTENDED_KEY_USAGES)}")
    is_ca = bool(settings.get("isCaCertificate"))
    if is_ca and not subject.rdns:
        raise ValueError("Invalid Certificate Subject: must contain at least one Distinguished Name when creating a CA")
    start = datetime.now(timezone.utc)
    end = start + timedelta(hours=int(settings["validityPeriodHours"]))
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
               .serial_number(1 + secrets.randbelow(_SERIAL_LIMIT - 1))
               .not_valid_before(start.replace(microsecond=0)).not_valid_after(end.replace(microsecond=0)))
    key_usages = {_KEY_USAGES[use] for use in uses if use in _KEY_USAGES}
    if key_usages:
        builder = builder.add_extension(
            x509.KeyUsage(**{usage: usage in key_usages for usage in _KEY_USAGES.values()}), critical=True)
    extended_key_usages = [_EXTENDED_KEY_USAGES[use] for use in uses if use in _EXTENDED_KEY_USAGES]
    if extended_key_usages:
        builder = builder.add_extension(x509.ExtendedKeyUsage(extended_key_usages), critical=False)
    # Go writes no path length for 0 unless told MaxPathLenZero, which the provider never sets.
    max_path_length = int(settings.get("maxPathLength") or 0)
    path_length = max_path_length if is_ca and max_path_length > 0 else None
    builder = builder.add_extension(x509.BasicConstraints(ca=is_ca, path_length=path_length), critical=True)
    if is_ca or settings.get("setSubjectKeyId"):
        builder = builder.add_extension(x509.SubjectKeyIdentifier(_go_subject_key_id(public_key)), critical=False)
    if authority_key_id:
        builder = builder.add_extension(x509.AuthorityKeyIdentifier(authority_key_id, None, None), critical=False)
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=not subject.rdns)
    certificate = builder.sign(issuer_key, _signature_hash(issuer_key))
    return {
        "certPem": certificate.public_bytes(serialization.Encoding.PEM).decode(),
        "validityStartTime": _go_time(start),
        "validityEndTime": _go_time(end),
        "readyForRenewal": _due_for_renewal(end, settings, now=start),
    }


def _due_for_renewal(end: datetime, settings: dict[str, Any], now: datetime) -> bool:
    return now >= end - timedelta(hours=int(settings["earlyRenewalHours"]))


def _tls_self_signed_cert(settings: dict[str, Any]) -> dict[str, Any]:
    key = _load_private_key(settings["privateKeyPem"])
    subject = _subject(settings.get("subject"))
    authority_key_id = None
    if settings.get("setAuthorityKeyId"):
        if not (settings.get("isCaCertificate") or settings.get("setSubjectKeyId")):
            raise ValueError("Invalid Certificate Authority: could not determine the Authority Key Identifier "
                             "(set_authority_key_id needs is_ca_certificate or set_subject_key_id)")
        authority_key_id = _go_subject_key_id(key.public_key())
    return {"keyAlgorithm": _key_algorithm(key),
            **_certificate(settings, subject, _alternative_names(settings), key.public_key(), subject, key,
                           authority_key_id)}


def _tls_locally_signed_cert(settings: dict[str, Any]) -> dict[str, Any]:
    request = x509.load_pem_x509_csr(settings["certRequestPem"].encode())
    ca_key = _load_private_key(settings["caPrivateKeyPem"])
    ca_certificate = x509.load_pem_x509_certificate(settings["caCertPem"].encode())
    if ca_key.public_key() != ca_certificate.public_key():
        raise ValueError("x509: provided PrivateKey doesn't match parent's PublicKey")
    try:
        requested = list(request.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        requested = []
    # The template takes the request's DNS names, IPs and URIs, in that order, and no other kind of name.
    names = [name for kind in (x509.DNSName, x509.IPAddress, x509.UniformResourceIdentifier)
             for name in requested if isinstance(name, kind)]
    try:
        ca_key_id = ca_certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        ca_key_id = None
    # Go's x509 names the CA's key as the authority's, unless the certificate's subject is the CA's own.
    authority_key_id = ca_key_id if request.subject != ca_certificate.subject else None
    return {"caKeyAlgorithm": _key_algorithm(ca_key),
            **_certificate(settings, request.subject, names, request.public_key(), ca_certificate.subject, ca_key,
                           authority_key_id)}


# Each emulated type: the defaults the provider's schema fills in, and how it computes the rest.
_TLS_TYPES: dict[str, tuple[dict[str, Any], Callable[[dict[str, Any]], dict[str, Any]]]] = {
    "tls:index/privateKey:PrivateKey": ({"rsaBits": 2048, "ecdsaCurve": "P224"}, _tls_private_key),
    "tls:index/certRequest:CertRequest": ({}, _tls_cert_request),
    "tls:index/selfSignedCert:SelfSignedCert": (
        {"earlyRenewalHours": 0, "isCaCertificate": False, "setSubjectKeyId": False, "setAuthorityKeyId": False},
        _tls_self_signed_cert),
    "tls:index/locallySignedCert:LocallySignedCert": (
        {"earlyRenewalHours": 0, "isCaCertificate": False, "setSubjectKeyId": False}, _tls_locally_signed_cert),
}
# What the provider made, by stack, type, name and inputs: the engine's state for the test run.
_TLS_STATE: dict[str, dict[str, Any]] = {}


def tls_resource_outputs(type_: str, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """The outputs of the tls provider (pulumi-tls 5.6.2, which bridges hashicorp/terraform-provider-tls), made
    with `cryptography` so that the containers the harness deploys get real keys and certificates.

    It follows the provider's internal/provider/resource_private_key.go, resource_cert_request.go,
    resource_self_signed_cert.go, resource_locally_signed_cert.go, common_key.go and common_cert.go, and what Go's
    crypto/x509 makes of their templates:
    - private_key_pem is PKCS#1 for RSA, SEC 1 ("EC PRIVATE KEY") for ECDSA and PKCS#8 for ED25519; the OpenSSH
      forms are empty for P-224, which x/crypto/ssh cannot encode.
    - a certificate always has basic constraints (critical; CA:TRUE only with is_ca_certificate), key usage from
      allowed_uses (critical), extended key usage, a subject key identifier for a CA or with set_subject_key_id,
      the CA's key identifier as the authority's (on a self-signed certificate only with set_authority_key_id), and
      the SANs (critical when the subject is empty); a random serial below 2^128; validity from now.
    - a locally signed certificate takes the subject, SANs and public key from the request, the issuer from the
      CA's certificate.
    The engine keeps what the provider made in its state: the same stack, resource and inputs give the same outputs
    within a test run, and a certificate is made anew once ready for renewal, as the provider's plan replaces it.
    """
    if type_ not in _TLS_TYPES:
        raise NotImplementedError(f"the mocks do not emulate {type_} ({name}); "
                                  "add it to _TLS_TYPES in tests/tls_provider.py")
    defaults, create = _TLS_TYPES[type_]
    settings = {**defaults, **inputs}
    state_key = json.dumps([pulumi.get_stack(), type_, name, settings], sort_keys=True)
    computed = _TLS_STATE.get(state_key)
    if computed is None or ("validityEndTime" in computed and _due_for_renewal(
            datetime.fromisoformat(computed["validityEndTime"]), settings, now=datetime.now(timezone.utc))):
        computed = _TLS_STATE[state_key] = create(settings)
    return {**{key: value for key, value in defaults.items() if key not in inputs}, **computed}
