"""Passwords are the user's Pulumi secrets or generated, never a default such as Admin123."""
from typing import Optional

import pulumi
import pulumi_random as random


def password(name: str, given: Optional[pulumi.Input[str]], parent: pulumi.Resource) -> pulumi.Output[str]:
    """The given secret, or a generated 32-character one kept in state as a secret."""
    if given is not None:
        return pulumi.Output.secret(given)
    generated = random.RandomPassword(
        name, length=32, special=False, opts=pulumi.ResourceOptions(parent=parent)
    )
    return pulumi.Output.secret(generated.result)
