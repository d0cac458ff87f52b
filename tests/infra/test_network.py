"""Network stack: VPC shape, flow logs, S3 endpoint, and the security-group rules between tasks and EFS."""

from __future__ import annotations

import json

import pytest

from stacks.errors import SettingsError

from .helpers import PRIVATE_SUBNETS, Built, build_app, logical_id, lookup_answer, resources


def private_subnet_ids(template) -> set[str]:
    return {key for key, subnet in resources(template, "AWS::EC2::Subnet").items()
            if {"Key": "aws-cdk:subnet-type", "Value": "Private"} in subnet["Properties"]["Tags"]}


def test_vpc_spans_two_azs_with_public_and_private_subnets(s3_built):
    t = s3_built.network
    subnets = resources(t, "AWS::EC2::Subnet")
    assert len(subnets) == 4 and len(private_subnet_ids(t)) == 2
    azs = {s["Properties"]["AvailabilityZone"] for s in subnets.values()}
    assert azs == {"eu-west-1a", "eu-west-1b"}
    for key in private_subnet_ids(t):
        assert subnets[key]["Properties"]["MapPublicIpOnLaunch"] is False


def test_nat_gateway_count_follows_the_stage(s3_built, prod_built):
    assert len(resources(s3_built.network, "AWS::EC2::NatGateway")) == 1
    assert len(resources(prod_built.network, "AWS::EC2::NatGateway")) == 2


def test_flow_logs_capture_all_traffic_with_retention(s3_built):
    t = s3_built.network
    t.has_resource_properties("AWS::EC2::FlowLog", {
        "ResourceType": "VPC", "TrafficType": "ALL", "LogDestinationType": "cloud-watch-logs"})
    t.has_resource_properties("AWS::Logs::LogGroup", {"RetentionInDays": 30})


def test_s3_gateway_endpoint_on_the_private_route_tables(s3_built):
    endpoint = list(resources(s3_built.network, "AWS::EC2::VPCEndpoint").values())
    assert len(endpoint) == 1
    props = endpoint[0]["Properties"]
    assert props["VpcEndpointType"] == "Gateway"
    assert props["ServiceName"] == {"Fn::Join": ["", ["com.amazonaws.", {"Ref": "AWS::Region"}, ".s3"]]}
    route_tables = {rt["Ref"] for rt in props["RouteTableIds"]}
    assert {rt for rt in route_tables if rt.startswith("Vpcprivate")} == {
        key for key in resources(s3_built.network, "AWS::EC2::RouteTable") if key.startswith("Vpcprivate")}


def nfs_ingress(built) -> list[tuple[str, str]]:
    """(stack, source group's logical id) of every rule that lets NFS into the mirror's group."""
    efs_sg = logical_id(built.network, "AWS::EC2::SecurityGroup", "SecurityGroupsFileSystem")
    found = []
    for stack, t in (("Network", built.network), ("Service", built.service)):
        for rule in resources(t, "AWS::EC2::SecurityGroupIngress").values():
            props = rule["Properties"]
            if efs_sg not in json.dumps(props["GroupId"]):
                continue
            assert (props["IpProtocol"], props["FromPort"], props["ToPort"]) == ("tcp", 2049, 2049)
            source = props["SourceSecurityGroupId"]
            found.append((stack, source["Fn::GetAtt"][0] if "Fn::GetAtt" in source else json.dumps(source)))
    return sorted(found)


def test_the_mirror_takes_nfs_only_from_the_seeding_tasks_and_the_apps_that_mount_it(s3_built, efs_built):
    """Every rule into the mirror's group lives with the tasks it lets in (the service stack), so replacing a
    task's group never leaves a rule in another stack pointing at the old one. The network stack holds none."""
    efs_sg = logical_id(s3_built.network, "AWS::EC2::SecurityGroup", "SecurityGroupsFileSystem")
    assert "SecurityGroupIngress" not in resources(s3_built.network, "AWS::EC2::SecurityGroup")[efs_sg]["Properties"]
    seed_sg = logical_id(s3_built.service, "AWS::EC2::SecurityGroup", "^SeedSecurityGroup[0-9A-F]")
    # An s3-mode app never reaches the mirror; the seeding and signing tasks do.
    assert nfs_ingress(s3_built) == [("Service", seed_sg)]
    demo_sg = logical_id(efs_built.service, "AWS::EC2::SecurityGroup", "^DemoSecurityGroup[0-9A-F]")
    efs_seed_sg = logical_id(efs_built.service, "AWS::EC2::SecurityGroup", "^SeedSecurityGroup[0-9A-F]")
    assert nfs_ingress(efs_built) == sorted([("Service", efs_seed_sg), ("Service", demo_sg)])
    assert not resources(s3_built.network, "AWS::EC2::SecurityGroupIngress")
    assert not resources(s3_built.network, "AWS::EC2::SecurityGroupEgress")


def egress_of(t, sg: str) -> tuple[list, list]:
    """(inline CIDR egress, standalone egress to groups) of a security group."""
    inline = resources(t, "AWS::EC2::SecurityGroup")[sg]["Properties"]["SecurityGroupEgress"]
    standalone = [r["Properties"] for r in resources(t, "AWS::EC2::SecurityGroupEgress").values()
                  if r["Properties"]["GroupId"] == {"Fn::GetAtt": [sg, "GroupId"]}]
    return ([(r["CidrIp"], r["IpProtocol"], r["FromPort"], r["ToPort"]) for r in inline],
            [(json.dumps(r["DestinationSecurityGroupId"]), r["FromPort"], r["ToPort"]) for r in standalone])


def test_task_groups_allow_only_https_out_and_nfs_where_the_mirror_is_read(s3_built, efs_built):
    network = s3_built.network
    efs_sg = logical_id(network, "AWS::EC2::SecurityGroup", "SecurityGroupsFileSystem")
    for built, demo_nfs in ((s3_built, []), (efs_built, ["2049"])):
        t = built.service
        for pattern, nfs in (("^SeedSecurityGroup[0-9A-F]", ["2049"]), ("^DemoSecurityGroup[0-9A-F]", demo_nfs)):
            group = logical_id(t, "AWS::EC2::SecurityGroup", pattern)
            inline, standalone = egress_of(t, group)
            assert inline == [("0.0.0.0/0", "tcp", 443, 443)], pattern
            assert [str(port) for _, port, _ in standalone] == nfs, pattern
            if nfs:
                assert "SecurityGroupsFileSystem" in standalone[0][0]  # the mirror's group, from the network stack
            assert "SecurityGroupIngress" not in resources(t, "AWS::EC2::SecurityGroup")[group]["Properties"]
    # The EFS group sends nothing (CDK's placeholder rule that matches no traffic).
    efs_egress = resources(network, "AWS::EC2::SecurityGroup")[efs_sg]["Properties"]["SecurityGroupEgress"]
    assert [rule["CidrIp"] for rule in efs_egress] == ["255.255.255.255/32"]




def test_an_existing_vpc_is_looked_up_not_created():
    vpc_id = "vpc-0123456789abcdef0"
    built = Built({"vpc_id": vpc_id, **lookup_answer(vpc_id)})
    network, storage, service = built.network, built.storage, built.service
    for type_ in ("AWS::EC2::VPC", "AWS::EC2::Subnet", "AWS::EC2::NatGateway", "AWS::EC2::FlowLog"):
        assert not resources(network, type_), type_
    groups = [*resources(network, "AWS::EC2::SecurityGroup").values(), *resources(service, "AWS::EC2::SecurityGroup").values()]
    assert len(groups) == 3 and all(g["Properties"]["VpcId"] == vpc_id for g in groups)  # mirror, seeding, the app
    assert len(resources(network, "AWS::EC2::SecurityGroup")) == 1  # only the mirror's stays in the network stack
    assert sorted(t["Properties"]["SubnetId"] for t in resources(storage, "AWS::EFS::MountTarget").values()) \
        == PRIVATE_SUBNETS
    [ecs_service] = resources(service, "AWS::ECS::Service").values()
    assert sorted(ecs_service["Properties"]["NetworkConfiguration"]["AwsvpcConfiguration"]["Subnets"]) == PRIVATE_SUBNETS


def test_an_existing_vpc_without_private_subnets_in_two_azs_is_a_settings_error():
    vpc_id = "vpc-0123456789abcdef0"
    with pytest.raises(SettingsError) as caught:
        build_app({"vpc_id": vpc_id, **lookup_answer(vpc_id, private=PRIVATE_SUBNETS[:1])})
    assert str(caught.value) == (
        "setting 'vpc_id' = 'vpc-0123456789abcdef0' is not allowed: the VPC needs private subnets with a route to "
        "a NAT gateway in at least 2 AZs (found 1); add them, or leave vpc_id empty for a new VPC")
