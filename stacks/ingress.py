"""The way in to the model service: an Application Load Balancer (setting `ingress`).

internal: in the private subnets, reachable from the VPC (or `ingress_cidrs`); HTTPS when a
          certificate is given (HTTP redirected), plain HTTP inside the VPC otherwise.
public:   internet-facing in the public subnets, HTTPS only with `certificate_arn` (HTTP redirected).

Access logs go to the access-log bucket, invalid header fields are dropped, deletion protection follows
termination protection (prod). The service is the only target and accepts traffic only from the load
balancer's security group on app_port (the rules are added when it is registered as the target).
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_s3 as s3
from constructs import Construct

from model_delivery.scanner import skip_checkov
from stacks.settings import Settings

ACCESS_LOG_PREFIX = "load-balancer"
# Long enough for in-flight requests to finish, short enough that a rollout is not held up for the
# default 300 s per task; the app's own stop timeout is the other bound.
DEREGISTRATION_DELAY_SECONDS = 30
INTERNAL_HTTP = (
    "Internal load balancer without certificate_arn: plain HTTP inside the VPC by choice (reachable from "
    "the VPC CIDR or ingress_cidrs only); setting certificate_arn makes it HTTPS with TLS 1.2+."
)


class ModelServiceIngress(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        settings: Settings,
        vpc: ec2.IVpc,
        security_group: ec2.ISecurityGroup,
        service: ecs.FargateService,
        container_name: str,
        access_logs: s3.IBucket,
    ) -> None:
        super().__init__(scope, id)
        public = settings.ingress == "public"
        self.load_balancer = elbv2.ApplicationLoadBalancer(
            self,
            "LoadBalancer",
            vpc=vpc,
            internet_facing=public,
            vpc_subnets=ec2.SubnetSelection(
                subnet_type=ec2.SubnetType.PUBLIC if public else ec2.SubnetType.PRIVATE_WITH_EGRESS
            ),
            security_group=security_group,
            drop_invalid_header_fields=True,
            deletion_protection=settings.termination_protection,
        )
        self.load_balancer.log_access_logs(access_logs, prefix=ACCESS_LOG_PREFIX)
        if settings.certificate_arn:
            listener = self.load_balancer.add_listener(
                "Https",
                port=443,
                protocol=elbv2.ApplicationProtocol.HTTPS,
                open=False,
                certificates=[elbv2.ListenerCertificate.from_arn(settings.certificate_arn)],
                ssl_policy=elbv2.SslPolicy.RECOMMENDED_TLS,
            )
            self.load_balancer.add_redirect(source_port=80, target_port=443, open=False)
            scheme = "https"
        else:  # internal only (public without a certificate is refused by the settings)
            listener = self.load_balancer.add_listener(
                "Http", port=80, protocol=elbv2.ApplicationProtocol.HTTP, open=False
            )
            for check_id in ("CKV_AWS_2", "CKV_AWS_103"):  # HTTPS / TLS 1.2 need a certificate
                skip_checkov(listener, check_id, INTERNAL_HTTP)
            scheme = "http"
        self.target_group = listener.add_targets(
            "Service",
            port=settings.app_port,
            protocol=elbv2.ApplicationProtocol.HTTP,
            targets=[service.load_balancer_target(container_name=container_name, container_port=settings.app_port)],
            health_check=elbv2.HealthCheck(
                path=settings.health_path,
                healthy_http_codes="200-399",
                interval=cdk.Duration.seconds(15),
                timeout=cdk.Duration.seconds(5),
                healthy_threshold_count=2,
                unhealthy_threshold_count=3,
            ),
            deregistration_delay=cdk.Duration.seconds(DEREGISTRATION_DELAY_SECONDS),
        )
        self.url = f"{scheme}://{self.load_balancer.load_balancer_dns_name}"
