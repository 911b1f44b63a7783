"""Usage: scripts/up [stack] [pulumi up options]

Checks what the stack needs on this machine, creates the stack if it is new, and runs `pulumi up` on it.
The stack is `local` unless the first argument names another; the arguments after it (or all of them,
from the first one that starts with `-`) go to `pulumi up`, as in `scripts/up local --yes`.

Exit codes: pulumi's own once the checks pass; before, the first failure's:"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from launch.preflight import Exit, Problem, check_python, host_problems
from launch.workspace import pulumi_environment

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_STACK = "local"
# Pulumi's rule for a stack name, which also keeps it safe inside the passphrase file's name.
STACK_NAME = re.compile(r"[A-Za-z0-9_.-]+")


def split_arguments(argv: list[str]) -> tuple[str, list[str]]:
    """`scripts/up --yes` means the default stack, not a stack named --yes."""
    if argv and not argv[0].startswith("-"):
        return argv[0], argv[1:]
    return DEFAULT_STACK, argv


def report(problems: list[Problem]) -> int:
    print("\n\n".join(problem.message for problem in problems), file=sys.stderr)
    return problems[0].code


def main(argv: list[str], environ: Mapping[str, str]) -> int:
    if argv[:1] in (["-h"], ["--help"]):
        print(__doc__)
        print("\n".join(f"  {code:d}  {code.name.lower().replace('_', ' ')}" for code in Exit))
        return 0
    stack, up_options = split_arguments(argv)
    if not STACK_NAME.fullmatch(stack):
        return report([Problem(Exit.USAGE, (
            f"{stack!r} is not a stack name: Pulumi allows letters, digits, `-`, `_` and `.`. "
            f"Usage: scripts/up [stack] [pulumi up options], for example `scripts/up local --yes`."
        ))])
    too_old = check_python(sys.version_info, sys.executable)
    if too_old:
        return report([too_old])
    # Imported after the version check, so that an old Python gets its message rather than a traceback.
    from components.config import ConfigError
    from launch.stack import read_cluster_config

    stack_file = Path("stacks") / f"Pulumi.{stack}.yaml"
    try:
        cluster = read_cluster_config(PROJECT_ROOT / stack_file)
    except ConfigError as invalid:
        return report([Problem(Exit.INVALID_CONFIG, (
            f"{stack_file}: {invalid}\nCorrect each key in that file, then run scripts/up again."
        ))])
    problems = host_problems(stack, cluster, environ)
    if problems:
        return report(problems)

    env = pulumi_environment(stack, environ)
    pulumi = shutil.which("pulumi", path=environ.get("PATH"))
    in_project = ["--cwd", str(PROJECT_ROOT)]
    selected = subprocess.run(
        [pulumi, "stack", "select", "--create", stack, "--secrets-provider", "passphrase", *in_project],
        env=env, check=False,
    )
    if selected.returncode:
        return selected.returncode
    # Replaced by pulumi rather than waiting for it, so that Ctrl-C reaches pulumi alone and it can cancel
    # the update cleanly instead of being killed with this process.
    os.execve(pulumi, [pulumi, "up", "--stack", stack, *in_project, *up_options], env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], os.environ))
