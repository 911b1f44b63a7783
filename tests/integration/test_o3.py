"""The O3 application through the balancer, on the real engine: what a clinician's browser gets (the login
page, files it may keep, files it must ask for again) and that a static server's death goes unnoticed."""
from __future__ import annotations

import re
import time

import requests

from local_cluster import BoundedLoop, chromium, wait_for

IMMUTABLE = "public, max-age=31536000, immutable"


def spa(cluster) -> str:
    return f"{cluster.url}/spa/"


class AssetStream(BoundedLoop):
    """GETs of one file through the balancer, one after another, each logged with its time and status."""

    def __init__(self, url: str, limit_seconds: float = 60):
        super().__init__(limit_seconds, pause=0.01)
        self.url = url
        self.log: list[tuple[float, float, int, str]] = []  # (sent, took, HTTP status or 0, error)

    def step(self):
        sent = time.monotonic()
        try:
            status, error = self.send("GET", self.url, timeout=10).status_code, ""
        except requests.RequestException as failure:
            status, error = 0, repr(failure)
        self.log.append((sent, time.monotonic() - sent, status, error))

    def failures(self) -> list[tuple[float, float, int, str]]:
        return [entry for entry in self.log if entry[2] != 200]


def shell_script(cluster) -> str:
    """The app shell's bundle that index.html loads (openmrs.<16 hex digits of its content>.js)."""
    index = requests.get(spa(cluster), timeout=10).text
    (script,) = re.findall(r'<script[^>]+src="[^"]*/(openmrs\.[0-9a-f]{16}\.js)"', index)
    return script


def test_chromium_opens_the_o3_login_page_through_the_balancer(local_cluster, tmp_path, figures):
    """The real O3 shell and login module, loaded from the static servers, ask the backend (the stand-in's
    REST session answer) whether anyone is logged in, then render the login form."""
    home = tmp_path / "browser"
    page = chromium(f"{spa(local_cluster)}login", home, budget_ms=30000,
                    authority_pem=local_cluster.graph.named("net-authority").outputs["certPem"])
    assert 'id="username"' in page, page[-2000:]
    figures["O3 login page through the balancer"] = f"login form rendered by Chromium (screenshot {home / 'page.png'})"


def test_every_kind_of_file_carries_its_cache_headers_and_comes_compressed(local_cluster, figures):
    base = spa(local_cluster)
    with requests.Session() as browser:
        assert browser.get(f"{local_cluster.url.removesuffix('/openmrs')}/", allow_redirects=False,
                           timeout=10).headers["Location"].endswith("/openmrs/spa/home")
        answers = {path: browser.get(f"{base}{path}", headers={"Accept-Encoding": "gzip"}, timeout=10)
                   for path in ("", "login", "home", "index.html", "importmap.json", "routes.registry.json",
                                shell_script(local_cluster))}
    for path, answer in answers.items():
        assert answer.status_code == 200, path
        assert answer.headers["Content-Encoding"] == "gzip", path
        assert answer.headers["X-Content-Type-Options"] == "nosniff", path
        expected = IMMUTABLE if path.endswith(".js") else "no-cache"
        assert answer.headers["Cache-Control"] == expected, (path, answer.headers)
    # Client-side routes are the application's page: the browser's history works from any of them.
    assert answers["login"].text == answers["home"].text == answers[""].text == answers["index.html"].text
    figures["O3 cache headers"] = "; ".join(
        f"/openmrs/spa/{path}: {answer.headers['Cache-Control']}, {answer.headers['Content-Encoding']}"
        for path, answer in answers.items())


def test_a_static_server_killed_under_load_fails_no_request(local_cluster, figures):
    """Requests for the app's files through the balancer while one static server is killed: the balancer sends
    each to the other (a refused or reset connection is tried on the next member), and the killed one is taken
    back once it serves again."""
    cluster = local_cluster
    stream = AssetStream(f"{spa(cluster)}{shell_script(cluster)}")
    killed = cluster.static_servers["static1"]
    stream.start()
    try:
        time.sleep(2)
        cluster.client.containers.get(killed).kill()
        killed_at = time.monotonic()
        out = wait_for(lambda: "static1" not in cluster.in_service("static") and time.monotonic(), timeout=10, poll=0.1)
        time.sleep(3)
        cluster.client.containers.get(killed).start()
        back = wait_for(lambda: cluster.in_service("static") == set(cluster.static_servers), timeout=60, poll=0.2)
        time.sleep(1)
    finally:
        stream.stop()
    assert out and back, cluster.members(kind="static")
    assert stream.log and not stream.failures(), stream.failures()[:5]
    during = [took for sent, took, _, _ in stream.log if sent >= killed_at - 1]
    figures["static server killed under load"] = (
        f"{len(stream.log)} requests for the shell's bundle, 0 failed, {stream.resent} resent; slowest after the kill "
        f"{max(during):.2f} s; out of the balancers after {out - killed_at:.1f} s")
