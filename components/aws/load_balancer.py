"""The AWS load balancer: an internet-facing ALB whose target group carries the heartbeat, stickiness
and scheduling of the same configuration keys as the local Apache balancer. It writes access logs to a
bucket of its own (access_logs.py) and, with aws.waf, sits behind a WAF web ACL (waf.py)."""
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from ..load_balancer_tier import LoadBalancerOutputs, LoadBalancerTierArgs
from . import access_logs, waf

ALB_ALGORITHMS = {"round_robin": "round_robin", "by_busyness": "least_outstanding_requests"}
TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"


@dataclass
class AwsMembership:
    """What the ECS service registers its tasks with, and must wait for; and the ALB, for its alarms."""

    target_group: aws.lb.TargetGroup
    listeners: list[aws.lb.Listener]
    load_balancer: aws.lb.LoadBalancer


def _target_group(name: str, args: LoadBalancerTierArgs, child: pulumi.ResourceOptions) -> aws.lb.TargetGroup:
    cluster = args.cluster
    balancer, heartbeat = cluster.balancer, cluster.balancer.heartbeat
    stickiness = aws.lb.TargetGroupStickinessArgs(enabled=False, type="lb_cookie")
    if balancer.sticky_sessions:
        stickiness = aws.lb.TargetGroupStickinessArgs(
            enabled=True,
            type=cluster.aws.stickiness,
            cookie_duration=cluster.aws.stickiness_seconds,
            cookie_name="JSESSIONID" if cluster.aws.stickiness == "app_cookie" else None,
        )
    return aws.lb.TargetGroup(
        f"{name}-nodes",
        port=cluster.app.port,
        protocol="HTTP",
        target_type="ip",
        vpc_id=args.network.platform_network.vpc_id,
        load_balancing_algorithm_type=ALB_ALGORITHMS[balancer.scheduling],
        deregistration_delay=cluster.app.drain_seconds,  # a leaving task's running requests may finish
        health_check=aws.lb.TargetGroupHealthCheckArgs(
            path=heartbeat.path,
            matcher="200",
            interval=heartbeat.interval_seconds,
            timeout=heartbeat.timeout_seconds,
            unhealthy_threshold=heartbeat.fails,
            healthy_threshold=heartbeat.passes,
        ),
        stickiness=stickiness,
        opts=child,
    )


def build(
    component: pulumi.ComponentResource, name: str, args: LoadBalancerTierArgs
) -> LoadBalancerOutputs:
    settings = args.cluster.aws
    network = args.network.platform_network
    child = pulumi.ResourceOptions(parent=component)
    target_group = _target_group(name, args, child)
    logs, logs_policy = access_logs.bucket(component, name, aws.config.region, settings.log_retention_days,
                                           settings.production)
    balancer = aws.lb.LoadBalancer(
        f"{name}-alb",
        load_balancer_type="application",
        internal=False,
        security_groups=[network.balancer_group.id],
        subnets=network.public_subnet_ids,
        drop_invalid_header_fields=True,
        idle_timeout=settings.idle_timeout_seconds,
        enable_deletion_protection=settings.production,
        access_logs=aws.lb.LoadBalancerAccessLogsArgs(bucket=logs.id, prefix=access_logs.PREFIX, enabled=True),
        # The ALB checks that it may write to the bucket when the logs are turned on.
        opts=pulumi.ResourceOptions(parent=component, depends_on=[logs_policy]),
    )
    if settings.waf:
        waf.build(component, name, balancer)
    forward = [aws.lb.ListenerDefaultActionArgs(type="forward", target_group_arn=target_group.arn)]
    context = args.cluster.app.context_path
    if settings.certificate_arn:
        listeners = [
            aws.lb.Listener(f"{name}-https", load_balancer_arn=balancer.arn, port=443, protocol="HTTPS",
                            certificate_arn=settings.certificate_arn, ssl_policy=TLS_POLICY,
                            default_actions=forward, opts=child),
            aws.lb.Listener(
                f"{name}-http", load_balancer_arn=balancer.arn, port=80, protocol="HTTP",
                default_actions=[aws.lb.ListenerDefaultActionArgs(
                    type="redirect",
                    redirect=aws.lb.ListenerDefaultActionRedirectArgs(port="443", protocol="HTTPS", status_code="HTTP_301"),
                )],
                opts=child,
            ),
        ]
        url = pulumi.Output.format("https://{0}{1}/", balancer.dns_name, context)
    else:
        # Staging without a certificate only: the configuration refuses this in production.
        listeners = [aws.lb.Listener(f"{name}-http", load_balancer_arn=balancer.arn, port=80, protocol="HTTP",
                                     default_actions=forward, opts=child)]
        url = pulumi.Output.format("http://{0}{1}/", balancer.dns_name, context)
    # The ALB presents the ACM certificate, which browsers trust already: no authority to hand out.
    return LoadBalancerOutputs(urls=[url], authority_certificate=None, membership=AwsMembership(
        target_group=target_group, listeners=listeners, load_balancer=balancer))
