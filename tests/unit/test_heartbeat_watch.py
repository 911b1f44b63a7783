"""The balancer's heartbeat-watch, the script the program uploads, run as it is with a stand-in `curl` on its
PATH: which members it marks failed in the balancer-manager, and when it fails open instead."""
import os
import signal
import subprocess
import time

import pytest

from program import run_program, stack_config, with_overrides

HEARTBEAT = {"path": "/openmrs/health/started", "interval_seconds": 1, "fails": 2, "passes": 2, "timeout_seconds": 1}
# Heartbeats to the members named in ANSWERING_MEMBERS get an answer; any other times out (curl's exit code 28).
# The balancer-manager's page shows each member as Apache does (its route, then its status four cells on),
# "Init HcFl" once a change marked it failed, with each balancer's nonce in its links; changes are recorded
# in MANAGER_CALLS.
FAKE_CURL = r"""#!/bin/sh
for argument; do last=$argument; done
case "$*" in
  *w_status_C=1*) echo "$*" >> "$MANAGER_CALLS"; exit 0 ;;
  *balancer-manager*)
    echo '<a href="/balancer-manager?b=openmrs-nodes&amp;w=https://node1:8443&amp;nonce=0a1b-2c3d">node1</a>'
    echo '<a href="/balancer-manager?b=openmrs-static&amp;w=https://static1:8443&amp;nonce=4e5f-6a7b">static1</a>'
    for route in node1 node2 node3 static1 static2; do
      status="Init Ok "
      grep -q "w=https://$route:" "$MANAGER_CALLS" && status="Init HcFl "
      echo "<tr><td><a>https://$route:8443</a></td><td>$route</td><td></td><td>1</td><td>0</td><td>$status</td><td>0</td><td>0</td></tr>"
    done
    exit 0 ;;
esac
for member in $ANSWERING_MEMBERS; do
  case "$last" in https://$member:*) exit 0 ;; esac
done
exit 28
"""


@pytest.fixture(scope="module")
def watch_script() -> str:
    graph = run_program("local", with_overrides(stack_config("local"), balancer={"heartbeat": HEARTBEAT}))
    (upload,) = [u for u in graph.named("lb-apache").plain("uploads") if u["file"] == "/usr/local/bin/heartbeat-watch"]
    return upload["content"]


def watched(script: str, tmp_path, answering: list[str], seconds: float = 4.5) -> tuple[list[str], str]:
    """Runs the watch for `seconds` with only `answering` members answering; returns the members it marked
    failed and what it wrote to its error output."""
    bin_directory = tmp_path / "bin"
    bin_directory.mkdir()
    (bin_directory / "curl").write_text(FAKE_CURL)
    (bin_directory / "curl").chmod(0o755)
    (tmp_path / "watch").write_text(script)
    calls = tmp_path / "manager-calls"
    calls.touch()
    watch = subprocess.Popen(
        ["sh", str(tmp_path / "watch")], stderr=subprocess.PIPE, text=True, start_new_session=True,
        env={**os.environ, "PATH": f"{bin_directory}:{os.environ['PATH']}", "MANAGER_CALLS": str(calls),
             "ANSWERING_MEMBERS": " ".join(answering), "TMPDIR": str(tmp_path)})
    time.sleep(seconds)
    os.killpg(watch.pid, signal.SIGTERM)
    _, errors = watch.communicate(timeout=10)
    marked = [call.split("w=")[1].split()[0] for call in calls.read_text().splitlines() if "w_status_C=1" in call]
    nonces = {call.split("b=")[1].split()[0]: call.split("nonce=")[1].split()[0]
              for call in calls.read_text().splitlines() if "w_status_C=1" in call}
    # each balancer's change carries that balancer's nonce, or the manager ignores it
    assert set(nonces.items()) <= {("openmrs-nodes", "0a1b-2c3d"), ("openmrs-static", "4e5f-6a7b")}, nonces
    return marked, errors


def test_a_member_that_stops_answering_while_others_answer_is_marked_failed_once(watch_script, tmp_path):
    marked, errors = watched(watch_script, tmp_path, answering=["node1", "node3", "static1", "static2"])
    assert marked == ["https://node2:8443"], errors
    assert "https://node2:8443 gave no answer within 1 s 2 times in a row: marked failed" in errors


def test_when_no_member_answers_the_watch_keeps_the_last_one_in_service(watch_script, tmp_path):
    """Members silent one after another are more likely the balancer starved than every node hung: as an ALB
    with no healthy target, it keeps the last member in service rather than answer every request with a 503."""
    marked, errors = watched(watch_script, tmp_path, answering=[])
    # each balancer on its own: of the nodes' three and the O3 application's two static servers, one each stays
    assert len([m for m in marked if "//node" in m]) == 2 and len([m for m in marked if "//static" in m]) == 1, marked
    assert errors.count("is the last member in service: left in (fails open)") == 2, errors


def test_the_static_servers_are_judged_apart_from_the_nodes(watch_script, tmp_path):
    """Each balancer's members are judged apart: a silent static server goes while the other serves, a silent
    node while two others serve."""
    marked, errors = watched(watch_script, tmp_path, answering=["node1", "node2", "static1"])
    assert sorted(marked) == ["https://node3:8443", "https://static2:8443"], errors
