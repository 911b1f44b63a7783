"""The policy pack the Pulumi CLI loads: `pulumi preview --policy-pack policy`."""
from pulumi_policy import EnforcementLevel, PolicyPack

from rules import POLICIES

PolicyPack(name="openmrs-cluster", enforcement_level=EnforcementLevel.MANDATORY, policies=POLICIES)
