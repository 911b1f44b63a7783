"""The database monitor's decisions (images/db-monitor/monitor.py), from the servers' answers: one writer
at a time, a failover only after `fails` unanswered checks, and a restarted writer never writes again
before it has rejoined as a replica. With several monitors: only the leader with a majority acts, a
promotion waits until the writer has fenced itself, and semi-sync is switched only by a majority's view;
and the fence agent's decisions (images/mariadb/fence.py)."""
import importlib.util
import shutil
import subprocess
import sys
from dataclasses import asdict

import pytest

from program import PROJECT_ROOT

_spec = importlib.util.spec_from_file_location("monitor", PROJECT_ROOT / "images" / "db-monitor" / "monitor.py")
monitor = sys.modules["monitor"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(monitor)
_fence_spec = importlib.util.spec_from_file_location("fence", PROJECT_ROOT / "images" / "mariadb" / "fence.py")
fence = sys.modules["fence"] = importlib.util.module_from_spec(_fence_spec)
_fence_spec.loader.exec_module(fence)

A, B = "10.0.0.10", "10.0.0.11"
FAILS = 3


FENCE, MARGIN, SETTLE = 2.0, 2.0, 2.5


def server(address, reachable=True, read_only=True, replicating_from="", error="", transactions=0, semi_sync=True):
    return monitor.ServerState(address, reachable, read_only, replicating_from, error, transactions,
                               semi_sync=semi_sync, waits_for_replica=semi_sync)


def view(index, unanswered=(), writer="", heard=None):
    return monitor.View(index, frozenset(unanswered), writer, frozenset(heard or {index}))


def quorum(now, *views, index=0, monitors=3):
    return monitor.Quorum(index, monitors, list(views), now, FENCE, MARGIN, SETTLE)


def settled(memory, *views, index=0, monitors=3):
    """A memory whose monitor has had a majority long enough to lead, as of time 100."""
    memory.majority_since, memory.checked_at = 100 - SETTLE, 100 - 0.5
    return quorum(100, *views, index=index, monitors=monitors)


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


def test_a_diverged_replica_is_left_for_an_operator_with_what_to_do():
    memory = monitor.Memory(writer=A)
    states = [server(A, read_only=False), server(B, error="Got fatal error 1236 from master")]
    (report,) = monitor.plan(states, memory, FAILS)
    assert (report.kind, report.address) == ("report", B)
    assert "fatal error 1236" in report.reason and "rebuild it from the writer" in report.reason


def test_a_replica_whose_writer_died_is_promoted_not_reported():
    """Its connection error is no divergence."""
    memory = monitor.Memory(writer=A)
    states = [server(A, reachable=False), server(B, error="error reconnecting to master")]
    for _ in range(FAILS - 1):
        monitor.plan(states, memory, FAILS)
    assert kinds(monitor.plan(states, memory, FAILS)) == [("promote", B, "")]


@pytest.mark.parametrize("position, sequence", [("", 0), ("0-1-42", 42), ("1-2-7,0-2-9", 9)])
def test_the_last_sequence_of_domain_0_measures_advancement(position, sequence):
    assert monitor._last_sequence(position) == sequence


def test_a_majority_is_more_than_half_of_all_monitors_itself_included():
    assert not quorum(0).majority()
    assert quorum(0, view(1)).majority()
    assert not quorum(0, view(1), monitors=5).majority()


def test_the_leader_is_the_lowest_index_heard_directly_or_through_another_monitor():
    assert quorum(0, view(1), view(2)).leader()
    assert not quorum(1, view(0), view(2), index=1).leader()
    # 1 does not hear 0, but 2 does: 1 does not lead beside 0.
    assert not quorum(1, view(2, heard={0, 2}), index=1).leader()
    assert quorum(1, view(2, heard={1, 2}), index=1).leader()


def test_a_monitor_without_a_majority_only_reports():
    memory = monitor.Memory(writer=A)
    states = [server(A, reachable=False), server(B, replicating_from=A)]
    for second in range(20):
        assert monitor.plan(states, memory, FAILS, quorum(second)) == []
    assert memory.misses[A] == 20  # it still watches, for its view


def test_a_follower_does_not_act_and_a_leader_acts_only_once_settled():
    memory = monitor.Memory()
    states = [server(A), server(B)]
    assert monitor.plan(states, memory, FAILS, quorum(0, view(0), index=1)) == []
    memory = monitor.Memory()
    assert monitor.plan(states, memory, FAILS, quorum(0, view(1))) == []  # a majority just now
    assert kinds(monitor.plan(states, memory, FAILS, quorum(SETTLE, view(1)))) == [("promote", A, "")]


def test_a_monitor_back_from_a_freeze_waits_before_it_leads_again():
    memory = monitor.Memory(writer=A)
    states = [server(A, read_only=False), server(B)]
    assert kinds(monitor.plan(states, memory, FAILS, settled(memory, view(1)))) == [("replicate", B, A)]
    assert monitor.plan(states, memory, FAILS, quorum(100 + 60, view(1))) == []


def test_the_writer_is_replaced_only_after_a_majority_saw_it_gone_for_the_fence_time_and_margin():
    """By then a writer cut off from the monitors has killed itself (fence.py)."""
    memory = monitor.Memory(writer=A)
    states = [server(A, reachable=False), server(B, replicating_from=A)]
    settled(memory)
    checks = [100 + step * 0.5 for step in range(int((FENCE + MARGIN) / 0.5) + 1)]
    for now in checks[:-1]:
        assert monitor.plan(states, memory, FAILS, quorum(now, view(1, unanswered={A}))) == [], now
    assert kinds(monitor.plan(states, memory, FAILS, quorum(checks[-1], view(1, unanswered={A})))) == [
        ("promote", B, "")]


def test_no_promotion_while_the_other_monitors_still_reach_the_writer():
    memory = monitor.Memory(writer=A)
    states = [server(A, reachable=False), server(B, replicating_from=A)]
    memory.unanswered_since[A], memory.misses[A] = 0, 50
    assert monitor.plan(states, memory, FAILS, settled(memory, view(1), view(2))) == []


def test_no_promotion_of_a_replica_the_writer_stopped_waiting_for():
    """The writer acknowledged commits alone: the replica may lack them; an operator decides."""
    memory = monitor.Memory(writer=A)
    monitor.plan([server(A, read_only=False, semi_sync=False), server(B, replicating_from=A)], memory, FAILS,
                 settled(memory, view(1)))
    memory.unanswered_since[A], memory.misses[A] = 0, 50
    (report,) = monitor.plan([server(A, reachable=False), server(B)], memory, FAILS,
                             settled(memory, view(1, unanswered={A})))
    assert report.kind == "report" and "no promotion" in report.reason


@pytest.mark.parametrize("ahead", [A, B])
def test_a_writer_that_stopped_waiting_and_comes_back_read_only_lets_the_more_advanced_server_write(ahead):
    """Its fence agent restarted it read-only (its monitors starved, say): with both servers answering, the
    one with more transactions has every acknowledged commit, so the pair is not left without a writer."""
    memory = monitor.Memory(writer=A)
    monitor.plan([server(A, read_only=False, semi_sync=False), server(B, replicating_from=A)], memory, FAILS,
                 settled(memory, view(1)))
    back = [server(A, transactions=12 if ahead == A else 10), server(B, transactions=12 if ahead == B else 10)]
    (promotion,) = monitor.plan(back, memory, FAILS, settled(memory, view(1)))
    assert (promotion.kind, promotion.address) == ("promote", ahead)


def test_a_second_writer_is_left_to_its_fence_agent():
    memory = monitor.Memory(writer=B)
    states = [server(A, read_only=False), server(B, read_only=False)]
    actions = monitor.plan(states, memory, FAILS, settled(memory, view(1)))
    assert kinds(actions) == [("report", A, B)]


def test_two_writers_and_none_known_are_named_by_no_monitor():
    memory = monitor.Memory()
    (report,) = monitor.plan([server(A, read_only=False), server(B, read_only=False)], memory, FAILS,
                             settled(memory, view(1)))
    assert report.kind == "report" and memory.writer == ""


def test_the_writer_goes_asynchronous_only_when_a_majority_sees_the_replica_gone_for_fails_checks():
    memory = monitor.Memory(writer=A)
    states = [server(A, read_only=False), server(B, reachable=False)]
    for _ in range(FAILS - 1):
        assert monitor.plan(states, memory, FAILS, settled(memory, view(1, unanswered={B}))) == []
    assert monitor.plan(states, memory, FAILS, settled(memory, view(1))) == []  # only this monitor misses it
    assert kinds(monitor.plan(states, memory, FAILS, settled(memory, view(1, unanswered={B})))) == [
        ("asynchronous", B, A)]


def test_the_writer_goes_asynchronous_when_its_replica_does_not_replicate_for_fails_checks():
    memory = monitor.Memory(writer=A)
    states = [server(A, read_only=False), server(B, error="Got fatal error 1236 from master")]
    for _ in range(FAILS - 1):
        assert [a.kind for a in monitor.plan(states, memory, FAILS, settled(memory, view(1)))] == ["report"]
    assert [a.kind for a in monitor.plan(states, memory, FAILS, settled(memory, view(1)))] == ["report", "asynchronous"]


def test_semi_sync_is_back_once_the_replica_replicates_and_has_caught_up():
    memory = monitor.Memory(writer=A)
    writer = server(A, read_only=False, semi_sync=False, transactions=9)
    behind = [writer, server(B, replicating_from=A, transactions=7)]
    assert monitor.plan(behind, memory, FAILS, settled(memory, view(1))) == []
    caught_up = [writer, server(B, replicating_from=A, transactions=9)]
    assert kinds(monitor.plan(caught_up, memory, FAILS, settled(memory, view(1)))) == [("semi-sync", B, A)]


def test_a_single_monitor_never_switches_semi_sync():
    """Its servers' own timeout does (my.cnf)."""
    memory = monitor.Memory(writer=A)
    states = [server(A, read_only=False), server(B, reachable=False)]
    for _ in range(10):
        assert monitor.plan(states, memory, FAILS) == []


def test_a_writer_fences_itself_after_fence_seconds_without_a_majority():
    assert fence.fence_reason(now=10, last_majority=8.5, fence_seconds=FENCE) == ""
    assert "no majority of monitors for 2.5 s" in fence.fence_reason(now=11, last_majority=8.5, fence_seconds=FENCE)


def test_the_fence_agent_counts_a_majority_of_all_monitors():
    assert fence.majority(fence.Heard(2, [1, 1]), total=3)
    assert not fence.majority(fence.Heard(1, [1]), total=3)


def test_a_writer_is_deposed_when_a_majority_names_another_writer():
    assert fence.deposed(fence.Heard(2, [2, 2]), total=3, own_id=1)
    assert not fence.deposed(fence.Heard(3, [2, 1, 1]), total=3, own_id=1)
    assert not fence.deposed(fence.Heard(3, [0, 0, 2]), total=3, own_id=1)


@pytest.mark.parametrize("age, fresh", [(0.1, True), (2.5, True), (2.6, False)])
def test_the_fence_agent_trusts_only_fresh_views(age, fresh):
    assert fence.fresh({"age": age, "stale_after": 2.5}) == fresh


def test_the_metrics_say_what_the_last_check_saw_in_prometheus_format():
    """GET /metrics: the writer, the replica replicating with its lag, the writer waiting for it, the writer
    changes made; a server unanswered is down and nothing else about it is claimed. `promtool check metrics`
    (Prometheus' own linter) accepts the text."""
    writer = server(A, read_only=False)
    replica = monitor.ServerState(B, True, True, A, "", 7, semi_sync=True, waits_for_replica=True, lag_seconds=2)
    status = {"writer": A, "majority": True, "servers": [asdict(writer), asdict(replica)]}
    text = monitor.metrics(status, writer_changes=1)
    lines = set(text.splitlines())
    assert {f'openmrs_database_writer{{server="{A}"}} 1.0', f'openmrs_database_writer{{server="{B}"}} 0.0',
            f'openmrs_database_replicating{{server="{B}"}} 1.0',
            f'openmrs_database_replica_lag_seconds{{server="{B}"}} 2.0',
            f'openmrs_database_waits_for_replica{{server="{A}"}} 1.0', "openmrs_database_writer_changes_total 1"} <= lines
    check = subprocess.run([shutil.which("promtool") or "/usr/bin/promtool", "check", "metrics"], input=text,
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr

    lost = {"writer": B, "majority": True, "servers": [asdict(server(A, reachable=False)), asdict(
        monitor.ServerState(B, True, False, semi_sync=True, waits_for_replica=False))]}
    lines = set(monitor.metrics(lost, writer_changes=2).splitlines())
    assert f'openmrs_database_server_up{{server="{A}"}} 0.0' in lines
    assert not any(line.startswith("openmrs_database_replicating") and A in line for line in lines)
    assert f'openmrs_database_waits_for_replica{{server="{B}"}} 0.0' in lines
