"""The database monitor's decisions (images/db-monitor/monitor.py), from the servers' answers: one writer
at a time, a failover only after `fails` unanswered checks, and a restarted writer never writes again
before it has rejoined as a replica."""
import importlib.util
import sys

import pytest

from program import PROJECT_ROOT

_spec = importlib.util.spec_from_file_location("monitor", PROJECT_ROOT / "images" / "db-monitor" / "monitor.py")
monitor = sys.modules["monitor"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(monitor)

A, B = "10.0.0.10", "10.0.0.11"
FAILS = 3


def server(address, reachable=True, read_only=True, replicating_from="", error="", transactions=0):
    return monitor.ServerState(address, reachable, read_only, replicating_from, error, transactions)


def kinds(actions):
    return [(action.kind, action.address, action.writer) for action in actions]


def test_at_the_first_start_the_first_server_becomes_the_writer():
    memory = monitor.Memory()
    assert kinds(monitor.plan([server(A), server(B)], memory, FAILS)) == [("promote", A, "")]


def test_at_the_first_start_the_server_with_more_transactions_wins():
    memory = monitor.Memory()
    assert kinds(monitor.plan([server(A, transactions=5), server(B, transactions=7)], memory, FAILS)) == [("promote", B, "")]


def test_at_the_first_start_an_absent_server_is_waited_for_fails_checks():
    memory = monitor.Memory()
    states = [server(A, reachable=False), server(B)]
    for _ in range(FAILS - 1):
        assert monitor.plan(states, memory, FAILS) == []
    assert kinds(monitor.plan(states, memory, FAILS)) == [("promote", B, "")]


def test_the_other_server_is_made_a_replica_of_the_writer():
    memory = monitor.Memory()
    actions = monitor.plan([server(A, read_only=False), server(B)], memory, FAILS)
    assert kinds(actions) == [("replicate", B, A)] and memory.writer == A
    assert monitor.plan([server(A, read_only=False), server(B, replicating_from=A)], memory, FAILS) == []


def test_the_writer_is_replaced_only_after_fails_unanswered_checks():
    memory = monitor.Memory(writer=A)
    states = [server(A, reachable=False), server(B, replicating_from=A)]
    for _ in range(FAILS - 1):
        assert monitor.plan(states, memory, FAILS) == []
    (promotion,) = monitor.plan(states, memory, FAILS)
    assert (promotion.kind, promotion.address) == ("promote", B)
    assert f"unanswered {FAILS} times" in promotion.reason


def test_a_slow_answer_resets_the_count():
    memory = monitor.Memory(writer=A)
    down = [server(A, reachable=False), server(B, replicating_from=A)]
    for _ in range(FAILS - 1):
        monitor.plan(down, memory, FAILS)
    assert monitor.plan([server(A, read_only=False), server(B, replicating_from=A)], memory, FAILS) == []
    assert monitor.plan(down, memory, FAILS) == []


def test_a_writer_back_from_a_crash_is_not_the_writer_again():
    """It restarted read-only (its my.cnf): the replica, which has every acknowledged commit, takes over
    at once, and the old writer then rejoins as its replica."""
    memory = monitor.Memory(writer=A)
    (promotion,) = monitor.plan([server(A), server(B, replicating_from=A)], memory, FAILS)
    assert (promotion.kind, promotion.address) == ("promote", B) and "restarted read-only" in promotion.reason
    memory.writer = B
    assert kinds(monitor.plan([server(A), server(B, read_only=False)], memory, FAILS)) == [("replicate", A, B)]


def test_the_last_server_left_becomes_the_writer_only_after_the_other_is_gone_for_fails_checks():
    memory = monitor.Memory(writer=A)
    states = [server(A), server(B, reachable=False)]
    for _ in range(FAILS - 1):
        assert monitor.plan(states, memory, FAILS) == []
    assert kinds(monitor.plan(states, memory, FAILS)) == [("promote", A, "")]


def test_a_second_writer_is_set_read_only():
    memory = monitor.Memory(writer=B)
    assert kinds(monitor.plan([server(A, read_only=False), server(B, read_only=False)], memory, FAILS)) == [
        ("fence", A, B), ("replicate", A, B)]


def test_a_diverged_replica_is_left_for_an_operator():
    memory = monitor.Memory(writer=A)
    states = [server(A, read_only=False), server(B, error="Got fatal error 1236 from master")]
    assert monitor.plan(states, memory, FAILS) == []


@pytest.mark.parametrize("position, sequence", [("", 0), ("0-1-42", 42), ("1-2-7,0-2-9", 9)])
def test_the_last_sequence_of_domain_0_measures_advancement(position, sequence):
    assert monitor._last_sequence(position) == sequence
