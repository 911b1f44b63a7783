"""The database monitors' views over mutual TLS (images/db-monitor/monitor.py, images/mariadb/fence.py), on a
real socket: a monitor answers only a peer or fence agent holding a certificate from the stack's authority,
believes only a monitor whose certificate names its address, and serves a renewed certificate without a
restart."""
import datetime
import importlib.util
import ipaddress
import socket
import ssl
import sys
import time
import urllib.request

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from program import PROJECT_ROOT


def _load(name: str, path):
    """The image's script as a module (once, shared with test_db_monitor)."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, PROJECT_ROOT / path)
        sys.modules[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules[name])
    return sys.modules[name]


monitor = _load("monitor", "images/db-monitor/monitor.py")
fence = _load("fence", "images/mariadb/fence.py")

NOW = datetime.datetime.now(datetime.timezone.utc)
DAY = datetime.timedelta(days=1)
LOOPBACK = "127.0.0.1"


def _pem(certificate, key) -> tuple[str, str]:
    return (certificate.public_bytes(serialization.Encoding.PEM).decode(),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()).decode())


class Authority:
    def __init__(self, name: str):
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.certificate = (
            x509.CertificateBuilder().subject_name(self.name).issuer_name(self.name).public_key(self.key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(NOW - DAY).not_valid_after(NOW + 90 * DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256()))

    @property
    def pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode()

    def issue(self, common_name: str, address: str) -> tuple[str, str]:
        key = ec.generate_private_key(ec.SECP256R1())
        built = (x509.CertificateBuilder()
                 .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
                 .issuer_name(self.name).public_key(key.public_key()).serial_number(x509.random_serial_number())
                 .not_valid_before(NOW - DAY).not_valid_after(NOW + 90 * DAY)
                 .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(address))]),
                                critical=False)
                 .sign(self.key, hashes.SHA256()))
        return _pem(built, key)


def install(directory, authority: Authority, issued: tuple[str, str]):
    """As the certificate rollout lays the files out."""
    directory.mkdir(exist_ok=True)
    certificate_pem, key_pem = issued
    for name, text in (("private-key.pem", key_pem), ("certificate.pem", certificate_pem),
                       ("authority.pem", authority.pem)):
        (directory / ".new").write_text(text)
        (directory / ".new").replace(directory / name)
    return directory


@pytest.fixture(scope="module")
def authority():
    return Authority("openmrs-cluster test authority")


@pytest.fixture
def serving(tmp_path, authority):
    """A monitor serving its view on a free loopback port, with its certificate for 127.0.0.1."""
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        port = probe.getsockname()[1]
    own = install(tmp_path / "monitor-a", authority, authority.issue("openmrs-db-monitor", LOOPBACK))
    peers = monitor.Peers({"MONITOR_TLS": str(own), "MONITOR_PEERS": f"{LOOPBACK}:{port}"}, interval=1.0)
    peers.publish({"index": 0, "unanswered": [], "writer": "10.0.0.10", "heard": [0]})
    peers.serve(port)
    return peers, port, own


def asker(tmp_path, authority, name="monitor-b", issued=None):
    """Another monitor, with its own certificate, asking the one served."""
    directory = install(tmp_path / name, authority, issued or authority.issue("openmrs-db-monitor", "10.0.0.3"))
    return monitor.Peers({"MONITOR_TLS": str(directory)}, interval=1.0)


def presented(port: int, authority_pem: str, client_directory) -> x509.Certificate:
    context = ssl.create_default_context(cadata=authority_pem)
    context.load_cert_chain(client_directory / "certificate.pem", client_directory / "private-key.pem")
    with socket.create_connection((LOOPBACK, port), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname=LOOPBACK) as connection:
        return x509.load_der_x509_certificate(connection.getpeercert(binary_form=True))


def test_a_peer_with_the_authoritys_certificate_gets_the_view(tmp_path, authority, serving):
    _, port, _ = serving
    view = asker(tmp_path, authority).ask(f"{LOOPBACK}:{port}")
    assert view is not None and view["writer"] == "10.0.0.10"


def test_a_servers_fence_agent_gets_the_view_with_the_servers_own_certificate(tmp_path, authority, serving):
    _, port, _ = serving
    server_tls = install(tmp_path / "db-1", authority, authority.issue("db-1", "10.0.0.10"))
    heard = fence.ask_monitors([f"{LOOPBACK}:{port}"], fence.tls_context(str(server_tls)))
    assert heard.monitors == 1


def test_a_client_without_a_certificate_or_with_another_authoritys_gets_nothing(tmp_path, authority, serving):
    _, port, _ = serving
    anonymous = ssl.create_default_context(cadata=authority.pem)
    with pytest.raises(OSError):
        with urllib.request.urlopen(f"https://{LOOPBACK}:{port}/view", timeout=5, context=anonymous) as answer:
            answer.read()
    stranger = Authority("someone else's authority")
    forged = asker(tmp_path, stranger, "forged", stranger.issue("openmrs-db-monitor", "10.0.0.3"))
    assert forged.ask(f"{LOOPBACK}:{port}") is None


def test_a_monitor_whose_certificate_names_another_address_is_not_believed(tmp_path, authority):
    """A view is believed only from the address its certificate names: a stolen monitor's key elsewhere, or
    another member's certificate, is not a monitor at that address."""
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        port = probe.getsockname()[1]
    elsewhere = install(tmp_path / "elsewhere", authority, authority.issue("openmrs-db-monitor", "10.0.0.99"))
    impostor = monitor.Peers({"MONITOR_TLS": str(elsewhere)}, interval=1.0)
    impostor.publish({"index": 2, "unanswered": ["10.0.0.10"], "writer": "", "heard": [2]})
    impostor.serve(port)
    assert asker(tmp_path, authority).ask(f"{LOOPBACK}:{port}") is None


def test_a_renewed_certificate_is_served_without_a_restart(tmp_path, authority, serving):
    peers, port, own = serving
    client = install(tmp_path / "client", authority, authority.issue("openmrs-db-monitor", "10.0.0.3"))
    before = presented(port, authority.pem, client)
    install(own, authority, authority.issue("openmrs-db-monitor", LOOPBACK))
    time.sleep(0.01)  # a later modification time, on file systems that keep coarse ones
    after = presented(port, authority.pem, client)
    assert after.serial_number != before.serial_number
    assert asker(tmp_path, authority, "monitor-c").ask(f"{LOOPBACK}:{port}")["writer"] == "10.0.0.10"


def test_a_half_written_renewal_keeps_the_last_certificate(tmp_path, authority, serving):
    """The rollout renames the key first: for a moment the key is new and the certificate old."""
    _, port, own = serving
    client = install(tmp_path / "client", authority, authority.issue("openmrs-db-monitor", "10.0.0.3"))
    before = presented(port, authority.pem, client)
    (own / "private-key.pem").write_text(authority.issue("openmrs-db-monitor", LOOPBACK)[1])
    assert presented(port, authority.pem, client).serial_number == before.serial_number
