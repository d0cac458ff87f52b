"""The way in to one app: its own Application Load Balancer and the load balancer's security group (setting
`apps.NAME.ingress`). One per app: no app has to change its paths, each health check is its own, and one app's
listener or certificate never touches another's (the cost of one more: docs/costs.md).

internal: in the private subnets, reachable from the VPC (or `ingress_cidrs`); HTTPS when a
          certificate is given (HTTP redirected), plain HTTP inside the VPC otherwise.
public:   internet-facing in the public subnets, HTTPS only with `certificate_arn` (HTTP redirected).

Access logs go to the access-log bucket, invalid header fields are dropped, deletion protection follows
termination protection (prod). The app's service is the only target and accepts traffic only from this load
balancer's security group on the app's port (the rules are added when it is registered as the target).
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_s3 as s3
from constructs import Construct

from model_delivery import nag
from model_delivery.scanner import skip_checkov
from stacks.settings import AppSettings

ACCESS_LOG_PREFIX = "load-balancer"
# Long enough for in-flight requests to finish, short enough that a rollout is not held up for the
# default 300 s per task; the app's own stop timeout is the other bound.
DEREGISTRATION_DELAY_SECONDS = 30
HTTPS_PORT = 443
HTTP_PORT = 80
EC23_REASONS = {
    "public": "An internet-facing load balancer (setting ingress=public) must accept any client; it serves HTTPS "
    "only (HTTP redirects) and only the listener ports are open. Narrow it with ingress_cidrs.",
    "internal": "The only source is this VPC's own CIDR block (a deploy-time value cdk-nag cannot read at synth), "
    "on the listener ports. Narrow it with ingress_cidrs.",
}
HTTP_FROM_ANYWHERE = (
    "Public load balancer: port 80 from anywhere only answers with a redirect to HTTPS (the listener "
    "serves nothing over HTTP); narrow it with ingress_cidrs."
)
INTERNAL_HTTP = (
    "Internal load balancer without certificate_arn: plain HTTP inside the VPC by choice (reachable from "
    "the VPC CIDR or ingress_cidrs only); setting certificate_arn makes it HTTPS with TLS 1.2+."
)


def load_balancer_security_group(scope: Construct, id: str, *, vpc: ec2.IVpc, app: AppSettings) -> ec2.SecurityGroup:
    """HTTPS (and HTTP, redirected or internal) from the allowed networks only; the rules to the app's tasks on
    its port are added when the service becomes the target."""
    group = ec2.SecurityGroup(
        scope,
        id,
        vpc=vpc,
        allow_all_outbound=False,
        description=f"App {app.name} load balancer ({app.ingress}): listeners in, app port to its tasks",
    )
    # Public: anyone by default (it serves HTTPS only); internal: the VPC, unless narrowed.
    default = ["0.0.0.0/0"] if app.ingress == "public" else [vpc.vpc_cidr_block]
    ports = [HTTPS_PORT, HTTP_PORT] if app.certificate_arn else [HTTP_PORT]
    for cidr in app.ingress_cidrs or default:
        source = "the VPC" if cdk.Token.is_unresolved(cidr) else cidr
        for port in ports:
            what = "HTTP, redirected to HTTPS," if port == HTTP_PORT and app.certificate_arn else "listener"
            group.add_ingress_rule(ec2.Peer.ipv4(cidr), ec2.Port.tcp(port), f"{what} port {port} from {source}")
    if "0.0.0.0/0" in (app.ingress_cidrs or default) and HTTP_PORT in ports:
        skip_checkov(group, "CKV_AWS_260", HTTP_FROM_ANYWHERE)
    if not app.ingress_cidrs:  # explicit CIDRs are literal and pass EC23 on their own
        nag.acknowledge(group, "AwsSolutions-EC23", EC23_REASONS[app.ingress])
    return group


class AppIngress(Construct):
    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        app: AppSettings,
        vpc: ec2.IVpc,
        service: ecs.FargateService,
        container_name: str,
        access_logs: s3.IBucket,
        deletion_protection: bool,
    ) -> None:
        super().__init__(scope, id)
        public = app.ingress == "public"
        self.security_group = load_balancer_security_group(self, "SecurityGroup", vpc=vpc, app=app)
        self.load_balancer = elbv2.ApplicationLoadBalancer(
            self,
            "LoadBalancer",
            vpc=vpc,
            internet_facing=public,
            vpc_subnets=ec2.SubnetSelection(
                subnet_type=ec2.SubnetType.PUBLIC if public else ec2.SubnetType.PRIVATE_WITH_EGRESS
            ),
            security_group=self.security_group,
            drop_invalid_header_fields=True,
            deletion_protection=deletion_protection,
        )
        # One prefix for every app: the bucket policy (in the storage stack) stays the same when apps come and go.
        self.load_balancer.log_access_logs(access_logs, prefix=ACCESS_LOG_PREFIX)
        if app.certificate_arn:
            listener = self.load_balancer.add_listener(
                "Https",
                port=443,
                protocol=elbv2.ApplicationProtocol.HTTPS,
                open=False,
                certificates=[elbv2.ListenerCertificate.from_arn(app.certificate_arn)],
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
            port=app.port,
            protocol=elbv2.ApplicationProtocol.HTTP,
            targets=[service.load_balancer_target(container_name=container_name, container_port=app.port)],
            health_check=elbv2.HealthCheck(
                path=app.health_check_path,
                healthy_http_codes="200-399",
                interval=cdk.Duration.seconds(15),
                timeout=cdk.Duration.seconds(5),
                healthy_threshold_count=2,
                unhealthy_threshold_count=3,
            ),
            deregistration_delay=cdk.Duration.seconds(DEREGISTRATION_DELAY_SECONDS),
        )
        self.url = f"{scheme}://{self.load_balancer.load_balancer_dns_name}"
