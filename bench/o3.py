"""The O3 application's figures (`scripts/bench --o3`): requests/s of one of its content-hashed files through
the balancer against straight from one static server, and how long a clinician waits for the login form in
Chromium, with an empty cache and again with the cache the first visit left."""
import os
import re
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import requests
from playwright.sync_api import sync_playwright

from local_cluster import trusting_home

LOGIN_TRIALS = 3


def shell_bundle(spa_url: str) -> str:
    """The app shell's bundle that index.html loads (named by its content, so browsers keep it for a year)."""
    (script,) = re.findall(r'<script[^>]+src="[^"]*/(openmrs\.[0-9a-f]{16}\.js)"', requests.get(spa_url, timeout=10).text)
    return script


def login_form_seconds(url: str, authority_pem: str) -> dict:
    """Seconds from asking for the login page until its form shows: each trial a new browser profile (an empty
    cache), then the same page once more in it (the files it may keep come from its cache)."""
    cold, warm = [], []
    with tempfile.TemporaryDirectory() as home, sync_playwright() as playwright:
        trusting_home(Path(home), authority_pem)  # a cache is kept only for a certificate the browser trusts
        for trial in range(LOGIN_TRIALS):
            browser = playwright.chromium.launch_persistent_context(
                Path(home) / f"profile-{trial}", executable_path=shutil.which("chromium"), headless=True,
                args=["--no-sandbox"], env={**os.environ, "HOME": home})
            page = browser.new_page()
            for times in (cold, warm):
                started = time.monotonic()
                page.goto(url)
                page.wait_for_selector("#username", timeout=60_000)
                times.append(time.monotonic() - started)
            browser.close()
    return {"cold_median_s": round(statistics.median(cold), 2), "warm_median_s": round(statistics.median(warm), 2),
            "cold_s": [round(t, 2) for t in cold], "warm_s": [round(t, 2) for t in warm]}


def o3_figures(cluster, hey, summary, image: str, load_seconds: int, concurrency: int) -> dict:
    spa = f"{cluster.url}/spa/"
    bundle = shell_bundle(spa)
    # As a browser asks (gzip); hey checks no certificate.
    urls = {"through_balancer": f"https://{cluster.balancer_address()}/openmrs/spa/{bundle}",
            "direct_to_one_static_server": f"https://{cluster.address_of('o3-static-1')}:8443/openmrs/spa/{bundle}"}
    load = ["-z", f"{load_seconds}s", "-c", str(concurrency), "-H", "Accept-Encoding: gzip"]
    for url in urls.values():
        hey(cluster.client, image, cluster.private_network, "-z", "3s", "-c", str(concurrency), url)
    served = {kind: summary(hey(cluster.client, image, cluster.private_network, *load, url))
              for kind, url in urls.items()}
    return {"asset": bundle, **served,
            "throughput_ratio": round(served["through_balancer"]["requests_per_second"]
                                      / served["direct_to_one_static_server"]["requests_per_second"], 2),
            "login_form": login_form_seconds(f"{spa}login", cluster.graph.named("net-authority").outputs["certPem"])}


def markdown(results: dict) -> str:
    o3 = results["o3"]
    through, direct, login = o3["through_balancer"], o3["direct_to_one_static_server"], o3["login_form"]
    return "\n".join([
        f"| O3: the shell's bundle ({o3['asset']}, gzip) through the balancer / straight from one static server, "
        f"req/s | {through['requests_per_second']} / {direct['requests_per_second']} (ratio {o3['throughput_ratio']}) |",
        f"| O3: its p50 / p99 latency, through vs direct | {through['p50_ms']} / {through['p99_ms']} ms vs "
        f"{direct['p50_ms']} / {direct['p99_ms']} ms |",
        f"| O3: the login form shown in Chromium, empty cache / the cache of the first visit (median of "
        f"{LOGIN_TRIALS}) | {login['cold_median_s']} s / {login['warm_median_s']} s |",
    ]) + "\n"
