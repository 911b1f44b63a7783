"""aws.waf: a WAF web ACL in front of the ALB with AWS's managed rule groups: addresses AWS knows to attack,
the common web exploits (OWASP-style), and request patterns known to be malicious (Log4j's among them).

One rule of the common set is counted instead of enforced: SizeRestrictions_BODY blocks request bodies over
8 KB, which OpenMRS's attachments, complex obs and large forms exceed. Every rule group reports its matches
in CloudWatch metrics and sampled requests, so a false positive can be found and counted in the same way."""
import pulumi
import pulumi_aws as aws

# (rule group, rules counted instead of blocked), in order of evaluation.
RULE_GROUPS = [
    ("AWSManagedRulesAmazonIpReputationList", []),
    ("AWSManagedRulesCommonRuleSet", ["SizeRestrictions_BODY"]),
    ("AWSManagedRulesKnownBadInputsRuleSet", []),
]


def _visibility(metric: str) -> dict:
    return {"cloudwatch_metrics_enabled": True, "metric_name": metric, "sampled_requests_enabled": True}


def build(component: pulumi.ComponentResource, name: str, balancer: aws.lb.LoadBalancer) -> None:
    child = pulumi.ResourceOptions(parent=component)
    rules = [{
        "name": group,
        "priority": priority,
        "override_action": {"none": {}},
        "statement": {"managed_rule_group_statement": {
            "vendor_name": "AWS", "name": group,
            "rule_action_overrides": [{"name": rule, "action_to_use": {"count": {}}} for rule in counted],
        }},
        "visibility_config": _visibility(group),
    } for priority, (group, counted) in enumerate(RULE_GROUPS)]
    acl = aws.wafv2.WebAcl(f"{name}-waf", scope="REGIONAL", default_action={"allow": {}}, rules=rules,
                           visibility_config=_visibility(f"{pulumi.get_stack()}-{name}-waf"), opts=child)
    aws.wafv2.WebAclAssociation(f"{name}-waf", resource_arn=balancer.arn, web_acl_arn=acl.arn, opts=child)
