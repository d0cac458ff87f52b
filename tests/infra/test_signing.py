"""Signed manifests in the templates: the signing key, its policy, who may sign and write models/, the env. The
seeding role (archives, PaddleX) stages versions and never signs; the signing role signs; both live beside the key
and the bucket that trust them and are kept with them."""

from __future__ import annotations

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Match

from model_delivery import ModelStore
from model_delivery.errors import ModelDeliveryError
from model_delivery.signing import KEY_ADMIN_ACTIONS, OBJECT_WRITE_ACTIONS

from .helpers import ACCOUNT, Built, actions, cdk_json_context, containers, env, logical_id, resources, statements

PUBLISHER = f"arn:aws:iam::{ACCOUNT}:role/ModelPublisher"


def role_arn(built: Built, name: str) -> dict:
    """The storage stack's seeding or signing role's ARN, as the key and bucket policies name it."""
    return {"Fn::GetAtt": [logical_id(built.storage, "AWS::IAM::Role", f"^{name}Role"), "Arn"]}


@pytest.fixture(scope="module")
def published() -> Built:
    return Built({"publisher_role_arns": PUBLISHER})


def signing_key(built: Built) -> tuple[str, dict]:
    key = logical_id(built.storage, "AWS::KMS::Key", "^SigningKey")
    return key, resources(built.storage, "AWS::KMS::Key")[key]


def key_arn_in_service(built: Built, value) -> bool:
    """A service-stack value that is the signing key's ARN exported by the storage stack."""
    name = value["Fn::GetStackOutput"]["OutputName"]
    key, _ = signing_key(built)
    return built.storage.to_json()["Outputs"][name]["Value"] == {"Fn::GetAtt": [key, "Arn"]}


def test_signing_key_is_p256_sign_verify_and_retained(s3_built):
    _, key = signing_key(s3_built)
    assert key["Properties"]["KeySpec"] == "ECC_NIST_P256"
    assert key["Properties"]["KeyUsage"] == "SIGN_VERIFY"
    assert key["Properties"].get("EnableKeyRotation") in (None, False)  # asymmetric keys cannot rotate
    assert (key["DeletionPolicy"], key["UpdateReplacePolicy"]) == ("RetainExceptOnCreate", "Retain")


def test_key_policy_is_explicit_and_only_publishers_sign(published):
    _, key = signing_key(published)
    by_sid = {s["Sid"]: s for s in key["Properties"]["KeyPolicy"]["Statement"]}
    assert set(by_sid) == {"KeyAdministrationWithoutUse", "SignOnlyPublishers", "VerifyInThisAccount"}
    root = {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}
    assert all(s["Principal"] == root and s["Effect"] == "Allow" for s in by_sid.values())
    assert by_sid["SignOnlyPublishers"]["Action"] == "kms:Sign"
    # The signing role and the operators' roles; never the seeding role, which parses archives.
    assert by_sid["SignOnlyPublishers"]["Condition"] == {
        "ArnLike": {"aws:PrincipalArn": [role_arn(published, "Signing"), PUBLISHER]}}
    assert sorted(by_sid["VerifyInThisAccount"]["Action"]) == ["kms:DescribeKey", "kms:GetPublicKey", "kms:Verify"]
    admin = by_sid["KeyAdministrationWithoutUse"]["Action"]
    assert sorted(admin) == sorted(KEY_ADMIN_ACTIONS)
    # Nothing that signs, nothing that hands out Sign, no wildcard.
    assert not {"kms:Sign", "kms:CreateGrant", "kms:*"} & set(admin) and not [a for a in admin if "*" in a]
    published.storage.has_resource_properties("AWS::KMS::Key", {
        "KeySpec": "ECC_NIST_P256",
        "KeyPolicy": {"Statement": Match.array_with([Match.object_like({
            "Sid": "SignOnlyPublishers", "Action": "kms:Sign",
            "Condition": {"ArnLike": {"aws:PrincipalArn": Match.array_with([PUBLISHER])}}})])}})


def test_bucket_denies_object_writes_to_all_but_publishers(published):
    t = published.storage
    bucket = logical_id(published.storage, "AWS::S3::Bucket", "BucketModels")
    t.has_resource_properties("AWS::S3::BucketPolicy", {
        "Bucket": {"Ref": bucket},
        "PolicyDocument": {"Statement": Match.array_with([Match.object_like({
            "Sid": "OnlyPublishersWriteModels", "Effect": "Deny", "Principal": {"AWS": "*"},
            "Action": Match.array_with(["s3:DeleteObject", "s3:DeleteObjectVersion", "s3:PutObject"]),
            "Resource": {"Fn::Join": ["", [{"Fn::GetAtt": [bucket, "Arn"]}, "/models/*"]]},
            "Condition": {"ArnNotLike": {"aws:PrincipalArn": [
                role_arn(published, "Seeding"), role_arn(published, "Signing"), PUBLISHER]}}})])}})
    assert {"s3:PutObjectTagging", "s3:PutObjectAcl", "s3:DeleteObjectTagging"} <= set(OBJECT_WRITE_ACTIONS)


def bucket_statements(built: Built) -> dict[str, dict]:
    [policy] = resources(built.storage, "AWS::S3::BucketPolicy").values() and [
        p for p in resources(built.storage, "AWS::S3::BucketPolicy").values()
        if "BucketModels" in str(p["Properties"]["Bucket"])]
    return {s.get("Sid", ""): s for s in policy["Properties"]["PolicyDocument"]["Statement"]}


@pytest.mark.parametrize("role, sid, keys", [
    ("Seeding", "SeedingRoleStagesOnly", ["models/*/*/files/*", "models/*/*/manifest.json", "models/*/STAGED"]),
    ("Signing", "SigningRoleSignsOnly", ["models/*/*/manifest.json.sig", "models/*/*/model.sig", "models/*/LATEST",
                                         "models/*/STAGED"]),
])
def test_the_bucket_lets_each_step_write_only_its_own_objects(s3_built, role, sid, keys):
    """Whatever IAM says: a taken-over seeding task cannot write a signature or LATEST; the signing task cannot
    rewrite a model file after it re-hashed it."""
    statement = bucket_statements(s3_built)[sid]
    bucket = logical_id(s3_built.storage, "AWS::S3::Bucket", "BucketModels")
    assert (statement["Effect"], statement["Principal"]) == ("Deny", {"AWS": "*"})
    assert sorted(statement["Action"]) == sorted(OBJECT_WRITE_ACTIONS)
    assert statement["NotResource"] == [{"Fn::Join": ["", [{"Fn::GetAtt": [bucket, "Arn"]}, f"/{key}"]]}
                                        for key in keys]
    assert statement["Condition"] == {"ArnLike": {"aws:PrincipalArn": role_arn(s3_built, role)}}


def test_the_publishing_roles_live_and_are_kept_with_the_key_and_bucket_that_trust_them(s3_built, prod_built):
    """A role of the same name made later elsewhere is not the one the policies trust: the roles are created beside
    the key and bucket, retained like them, and the service stack only points at them."""
    for built in (s3_built, prod_built):
        for name in ("Seeding", "Signing"):
            role = resources(built.storage, "AWS::IAM::Role")[logical_id(built.storage, "AWS::IAM::Role",
                                                                          f"^{name}Role")]
            assert "RoleName" not in role["Properties"]  # a generated name: nothing to claim after a delete
            assert (role["DeletionPolicy"], role["UpdateReplacePolicy"]) == ("RetainExceptOnCreate", "Retain")
        assert not [k for k in resources(built.service, "AWS::IAM::Role") if k.startswith(("Seeding", "Signing"))
                    and "ExecutionRole" not in k]
    delivery = s3_built.delivery
    assert delivery.service not in delivery.storage.dependencies and delivery.storage in delivery.service.dependencies


def test_only_the_signing_role_signs_and_service_roles_only_read_the_public_key(s3_built, efs_built):
    assert "kms:Sign" not in actions(statements(s3_built, "^SeedingRole"))
    seeding = statements(s3_built, "^SigningRole")
    sign = next(s for s in seeding if s["Sid"] == "SignManifests")
    assert sorted(sign["Action"]) == ["kms:GetPublicKey", "kms:Sign"]
    assert sign["Resource"] == {"Fn::GetAtt": [signing_key(s3_built)[0], "Arn"]}
    for built in (s3_built, efs_built):
        found = statements(built, "DemoTaskRole")
        kms_actions = {a for a in actions(found) if a.startswith("kms:")}
        assert kms_actions <= {"kms:Decrypt", "kms:GetPublicKey"} and "kms:GetPublicKey" in kms_actions
        verify = next(s for s in found if s["Sid"] == "VerifyManifests")
        assert verify["Action"] == "kms:GetPublicKey"


@pytest.mark.parametrize("mode, container", [("s3", "model-pull"), ("efs", "model-verify")])
def test_init_containers_trust_the_signing_key(s3_built, efs_built, mode, container):
    built = s3_built if mode == "s3" else efs_built
    init = containers(built.service, "DemoTaskDefinition")[container]
    assert key_arn_in_service(built, env(init)["MODELSYNC_TRUST_KEY"])
    assert "MODELSYNC_SIGNING_KEY" not in env(init)


def test_only_the_signing_task_holds_the_signing_key(s3_built):
    [seed] = containers(s3_built.service, "SeedingTaskDefinition").values()
    assert "MODELSYNC_SIGNING_KEY" not in env(seed)
    assert key_arn_in_service(s3_built, env(seed)["MODELSYNC_TRUST_KEY"])
    [sign] = containers(s3_built.service, "SigningTaskDefinition").values()
    assert key_arn_in_service(s3_built, env(sign)["MODELSYNC_SIGNING_KEY"])


def test_store_props_are_checked():
    app = cdk.App(context={k: v for k, v in cdk_json_context().items() if k.startswith("@aws-cdk")})
    stack = cdk.Stack(app, "S", env=cdk.Environment(account=ACCOUNT, region="eu-west-1"))
    with pytest.raises(ModelDeliveryError, match="publisher_role_arns = 'nobody' is not allowed"):
        ModelStore(stack, "Store", publisher_role_arns=["nobody"])


def test_operators_get_the_signing_key_arn_as_an_output(s3_built):
    output = s3_built.service.find_outputs("SigningKeyArn")["SigningKeyArn"]
    assert key_arn_in_service(s3_built, output["Value"])
