"""Runs the policy pack over a stack's mocked graph, with no Pulumi CLI and no cloud account:
`scripts/policy-check STACK`. Props reach each rule as the engine hands them over (camelCase, secrets
unwrapped): a resource rule sees the inputs; a stack rule sees every resource's outputs, the inputs with what
the provider computed (an ARN)."""
import sys
from dataclasses import dataclass

from pulumi_policy import (
    PolicyCustomTimeouts, PolicyResource, PolicyResourceOptions, ResourceValidationArgs, ResourceValidationPolicy,
    StackValidationArgs,
)
from pulumi_policy.deserialize import deserialize_properties

from policy.rules import POLICIES


@dataclass(frozen=True)
class Violation:
    policy: str
    resource: str
    message: str


def _options(parent: str) -> PolicyResourceOptions:
    return PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [], parent or None)


def evaluate(graph, config: dict | None = None) -> list[Violation]:
    """Every violation of every policy in the pack, for the registered graph of one program run."""
    config = config or {}
    violations: list[Violation] = []
    resources = [(r, deserialize_properties(r.inputs)) for r in graph.registrations]
    # The inputs last: a test that breaks a graph edits a resource's inputs.
    outputs = [(r, deserialize_properties({**r.outputs, **r.inputs})) for r in graph.registrations]
    for policy in POLICIES:
        def report(message, urn=None, name=policy.name, default=""):
            violations.append(Violation(name, (urn or default).rsplit("::", 1)[-1], message))

        settings = config.get(policy.name, {})
        if isinstance(policy, ResourceValidationPolicy):
            for registration, props in resources:
                args = ResourceValidationArgs(registration.type, props, registration.urn, registration.name,
                                              _options(registration.parent), None, settings)
                policy.validate(args, lambda message, urn=None: report(message, urn, default=registration.urn))
        else:
            stack = [PolicyResource(r.type, props, r.urn, r.name, _options(r.parent), None, None, [], {})
                     for r, props in outputs]
            policy.validate(StackValidationArgs(stack, settings), report)
    return violations


def main(stack: str) -> int:
    from program import run_program, stack_config

    sticky = stack_config(stack).get("openmrs-cluster:balancer", {}).get("sticky_sessions", True)
    violations = evaluate(run_program(stack), {"sessions-stick": {"stickySessions": sticky}})
    for violation in violations:
        print(f"{stack}: [{violation.policy}] {violation.resource}: {violation.message}")
    print(f"{stack}: {len(POLICIES)} policies, {len(violations)} violations")
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
