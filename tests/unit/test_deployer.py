"""The test deployer applies every input the program registers, and refuses what it cannot apply."""
import copy

import pytest

from deployer import APPLIED_INPUTS, Deployer, UnsupportedInput
from program import PROJECT_ROOT, run_program, stacks_on


@pytest.fixture(scope="module")
def graph():
    return run_program("local")


def test_it_knows_every_input_the_program_registers():
    """Across every local stack (one machine, several hosts), each type it knows is used: none is dead."""
    used = set()
    for stack in stacks_on("local"):
        used |= {r.type for r in Deployer(run_program(stack), PROJECT_ROOT, client=object()).resources}
    assert used == set(APPLIED_INPUTS)


def test_an_input_it_cannot_apply_fails_the_deployment(graph):
    changed = copy.deepcopy(graph)
    changed.named("db-1").inputs["privileged"] = True
    with pytest.raises(UnsupportedInput, match=r"db-1 .*\['privileged'\]"):
        Deployer(changed, PROJECT_ROOT, client=object())


def test_a_resource_type_it_cannot_apply_fails_the_deployment(graph):
    changed = copy.deepcopy(graph)
    changed.named("db-1").type = "docker:index/service:Service"
    with pytest.raises(UnsupportedInput, match="docker:index/service:Service"):
        Deployer(changed, PROJECT_ROOT, client=object())
