"""The static servers' nginx configuration (components/templates/static-server.conf), rendered as the program
renders it and checked by Debian's own nginx (`nginx -t`), which loads its certificate and key too."""
import base64
import datetime
import hashlib
import re
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from components.local.certificates import TLS12_CIPHERS
from components.config.frontend import FrontendConfig
from components.render import render

NGINX = "/usr/sbin/nginx"  # Debian's package nginx; the test fails without it
SERVER_NAME = "static-1"


@pytest.fixture
def tls_files(tmp_path) -> dict[str, str]:
    """A certificate for SERVER_NAME and its key (ECDSA P-256, as the stack's authority issues), as files."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, SERVER_NAME)])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.SubjectAlternativeName([x509.DNSName(SERVER_NAME)]), critical=False)
                   .sign(key, hashes.SHA256()))
    (tmp_path / "certificate.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "private-key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return {"certificate_file": str(tmp_path / "certificate.pem"),
            "private_key_file": str(tmp_path / "private-key.pem")}


def rendered(tls_files, config_urls=()) -> str:
    policy = FrontendConfig(config_urls=list(config_urls)).content_security_policy()
    return render("static-server.conf", https_port=8443, server_name=SERVER_NAME, tls12_ciphers=TLS12_CIPHERS,
                  keep_alive_seconds=60, content_security_policy=policy, **tls_files)


def nginx_test(tmp_path, content: str) -> subprocess.CompletedProcess:
    path = tmp_path / "openmrs-static.conf"
    path.write_text(content)
    return subprocess.run([NGINX, "-t", "-c", str(path)], capture_output=True, text=True)


def content_security_policy(content: str) -> dict[str, list[str]]:
    policy = re.search(r'add_header Content-Security-Policy "([^"]+)" always;', content).group(1)
    return {name: values for name, *values in (part.split() for part in policy.split("; "))}


def test_nginx_accepts_the_static_server_config(tmp_path, tls_files):
    check = nginx_test(tmp_path, rendered(tls_files))
    assert check.returncode == 0, check.stderr
    assert "syntax is ok" in check.stderr and "test is successful" in check.stderr
    assert "[warn]" not in check.stderr, check.stderr


def test_nginx_rejects_a_broken_static_server_config(tmp_path, tls_files):
    """The check above can fail: the same file with a misspelt directive is refused."""
    check = nginx_test(tmp_path, rendered(tls_files).replace("gzip_static on;", "gzip_statik on;"))
    assert check.returncode != 0 and "gzip_statik" in check.stderr


def test_https_only_tls_1_2_and_1_3_with_the_stacks_ciphers(tls_files):
    content = rendered(tls_files)
    assert re.findall(r"^\s*listen (.*);$", content, re.M) == ["8443 ssl"]
    assert "ssl_protocols TLSv1.2 TLSv1.3;" in content
    assert f"ssl_ciphers {TLS12_CIPHERS};" in content


def test_configuration_files_may_come_from_their_origins_only(tmp_path, tls_files):
    content = rendered(tls_files, ["https://config.example.org/a.json", "https://other.example.org:8443/b/c.json",
                                   "https://config.example.org/d.json", "/openmrs/spa/config-core_demo.json"])
    assert nginx_test(tmp_path, content).returncode == 0
    assert content_security_policy(content)["connect-src"] == [
        "'self'", "https://config.example.org", "https://other.example.org:8443"]
    assert content_security_policy(rendered(tls_files))["connect-src"] == ["'self'"]


def test_the_policy_allows_exactly_the_inline_handlers_of_the_app_shells_page(tls_files):
    """index.html's error template has two onclick handlers (Reload, copy); no other inline script runs."""
    def digest(code: str) -> str:
        return "'sha256-" + base64.b64encode(hashlib.sha256(code.encode()).digest()).decode() + "'"

    script = content_security_policy(rendered(tls_files))["script-src"]
    assert script == ["'self'", "'unsafe-eval'", "'unsafe-hashes'", digest("location.reload()"),
                      digest("copyText(this.parentElement)")]
