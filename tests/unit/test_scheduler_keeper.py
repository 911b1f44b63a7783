"""The scheduler keeper's decisions (images/scheduler-keeper/keeper.py), from what the nodes answer: each
wanted task scheduled on one designated node only, a restarting designated node waited for, a lost one
replaced by the node that already runs most of the tasks."""
import importlib.util
import sys

from program import PROJECT_ROOT

_spec = importlib.util.spec_from_file_location("keeper", PROJECT_ROOT / "images" / "scheduler-keeper" / "keeper.py")
keeper = sys.modules["keeper"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(keeper)

A, B, C = "10.0.0.101", "10.0.0.102", "10.0.0.103"
MISSED, REMIND = "task-missed", "task-remind"
WANTED = {MISSED, REMIND}
GRACE = 60


def node(address, *scheduled, started=True):
    return keeper.Node(address, started, frozenset(scheduled))


def actions(nodes, memory, now=0.0, wanted=WANTED):
    return [(a.kind, a.address, a.tasks) for a in keeper.plan(nodes, wanted, memory, now, GRACE)]


def test_every_node_started_its_tasks_and_only_the_first_keeps_them():
    memory = keeper.Memory()
    nodes = [node(A, MISSED, REMIND), node(B, MISSED, REMIND), node(C, MISSED, REMIND)]
    assert actions(nodes, memory) == [("SHUTDOWNTASK", B, (MISSED, REMIND)), ("SHUTDOWNTASK", C, (MISSED, REMIND))]
    assert memory.designated == A


def test_the_node_that_already_runs_most_tasks_is_chosen_so_no_timer_restarts():
    memory = keeper.Memory()
    assert actions([node(A), node(B, MISSED, REMIND), node(C, MISSED)], memory) == [
        ("SHUTDOWNTASK", C, (MISSED,))]
    assert memory.designated == B


def test_in_place_nothing_is_asked():
    memory = keeper.Memory(designated=A)
    assert actions([node(A, MISSED, REMIND), node(B), node(C)], memory) == []


def test_a_node_that_restarted_and_started_its_tasks_again_is_stopped_and_the_designated_keeps_them():
    memory = keeper.Memory(designated=A)
    assert actions([node(A, MISSED, REMIND), node(B, MISSED, REMIND), node(C)], memory) == [
        ("SHUTDOWNTASK", B, (MISSED, REMIND))]


def test_a_designated_node_away_is_waited_for_grace_seconds_then_replaced():
    memory = keeper.Memory(designated=A)
    away = [node(A, started=False), node(B, MISSED), node(C)]
    assert actions(away, memory, now=100.0) == [("SHUTDOWNTASK", B, (MISSED,))]  # it may only be restarting
    assert actions(away, memory, now=100.0 + GRACE - 1) == [("SHUTDOWNTASK", B, (MISSED,))]
    assert actions(away, memory, now=100.0 + GRACE) == [("SCHEDULETASK", B, (REMIND,))]
    assert memory.designated == B


def test_a_designated_node_back_within_grace_gets_its_tasks_again():
    memory = keeper.Memory(designated=A)
    assert actions([node(A, started=False), node(B)], memory, now=10.0) == []
    assert actions([node(A), node(B)], memory, now=20.0) == [("SCHEDULETASK", A, (MISSED, REMIND))]
    assert memory.unanswered_since is None


def test_with_no_started_node_nothing_is_asked_and_nothing_is_chosen():
    memory = keeper.Memory()
    assert actions([node(A, started=False)], memory) == [] and memory.designated == ""


def test_wanted_tasks_repeat_and_start_on_startup_or_run_somewhere():
    definitions = [
        {"uuid": MISSED, "startOnStartup": True, "repeatInterval": 86400},
        {"uuid": "auto-close", "startOnStartup": False, "repeatInterval": 86400},
        {"uuid": "one-shot", "startOnStartup": True, "repeatInterval": 0},
        {"uuid": "started-by-hand", "startOnStartup": False, "repeatInterval": 60},
    ]
    assert keeper.wanted_tasks(definitions, [node(A, "started-by-hand"), node(B)]) == {MISSED, "started-by-hand"}
