"""tools/pins.py: pins written from the bucket's LATEST into cdk.json, and checked before a deploy.

The bucket is the real local S3 server (moto); only CloudFormation (where the bucket name comes from)
is stubbed, with the real describe_stacks shape.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber

from modelsync.publish import publish_directory
from tools import pins

PROJECT = Path(__file__).resolve().parents[2]
SERVED = ("SEG_M2F_GrapheneL", "CLS_AMM_GrapheneL", "PP_L2_material_agnostic", "paddleocr")  # catalog defaults


@pytest.fixture
def cdk_json(tmp_path) -> Path:
    copy = tmp_path / "cdk.json"
    shutil.copy(PROJECT / "cdk.json", copy)
    return copy


def publish(client, bucket, tmp_path, name, content: bytes) -> str:
    folder = tmp_path / f"{name}-{content.hex()[:8]}"
    folder.mkdir()
    (folder / "weights.bin").write_bytes(content)
    return publish_directory(client, bucket, name, folder).version


def run(*argv, cloudformation=None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = pins.main(list(argv), cloudformation=cloudformation, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def stage_models(cdk_json: Path, stage: str = "dev", app: str = "demo") -> list[str]:
    return json.loads(cdk_json.read_text())["context"]["model-delivery"]["stages"][stage]["apps"][app]["models"]


def set_models(cdk_json: Path, apps: dict[str, list[str]], stage: str = "dev") -> None:
    document = json.loads(cdk_json.read_text())
    document["context"]["model-delivery"]["stages"][stage]["apps"] = {
        name: {"models": models} for name, models in apps.items()}
    cdk_json.write_text(json.dumps(document))


def test_lock_writes_the_latest_of_every_served_model_and_check_confirms_them(s3, bucket, tmp_path, cdk_json):
    versions = {name: publish(s3, bucket, tmp_path, name, name.encode()) for name in SERVED}

    code, out, err = run("lock", "--stage", "dev", "--bucket", bucket, "--cdk-json", str(cdk_json))

    assert code == 0, err
    assert stage_models(cdk_json) == [f"{name}@{versions[name]}" for name in SERVED]
    assert f"demo: SEG_M2F_GrapheneL@{versions['SEG_M2F_GrapheneL']} (was unpinned)" in out
    assert pins.stage_settings(cdk_json, "dev").apps["demo"].pinned_models == tuple(stage_models(cdk_json))
    # Everything else in cdk.json is untouched (other stages, feature flags, defaults).
    before, after = json.loads((PROJECT / "cdk.json").read_text()), json.loads(cdk_json.read_text())
    after["context"]["model-delivery"]["stages"]["dev"].pop("apps")
    assert after == before

    code, out, err = run("check", "--stage", "dev", "--bucket", bucket, "--cdk-json", str(cdk_json))
    assert code == 0 and err == ""
    assert out.count(": present") == len(SERVED)


def test_a_new_latest_moves_the_pin_on_the_next_lock(s3, bucket, tmp_path, cdk_json):
    for name in SERVED:
        publish(s3, bucket, tmp_path, name, b"v1")
    run("lock", "--bucket", bucket, "--cdk-json", str(cdk_json))
    old = dict(spec.split("@") for spec in stage_models(cdk_json))
    new = publish(s3, bucket, tmp_path, "paddleocr", b"v2")

    code, out, _ = run("lock", "--bucket", bucket, "--cdk-json", str(cdk_json))

    assert code == 0 and f"demo: paddleocr@{new} (was {old['paddleocr']})" in out
    assert f"demo: SEG_M2F_GrapheneL@{old['SEG_M2F_GrapheneL']} (unchanged)" in out


def test_lock_refuses_when_a_served_model_was_never_published_and_writes_nothing(s3, bucket, tmp_path, cdk_json):
    for name in SERVED[:-1]:
        publish(s3, bucket, tmp_path, name, b"x")
    original = cdk_json.read_text()

    code, _, err = run("lock", "--bucket", bucket, "--cdk-json", str(cdk_json))

    assert code == 1
    assert err.startswith("pins: error: no LATEST for paddleocr in s3://") and err.count("\n") == 1
    assert 'make seed STAGE=dev SEED_ARGS="--only paddleocr"' in err
    assert cdk_json.read_text() == original


def test_check_names_every_pin_missing_from_the_bucket(s3, bucket, tmp_path, cdk_json):
    present = publish(s3, bucket, tmp_path, "paddleocr", b"x")
    set_models(cdk_json, {"demo": [f"paddleocr@{present}", "SEG_M2F_GrapheneL@0123456789abcdef", "CLS_AMM_GrapheneL"]})

    code, out, err = run("check", "--bucket", bucket, "--cdk-json", str(cdk_json))

    assert code == 1
    assert err.splitlines() == [f"pins: error: demo: SEG_M2F_GrapheneL@0123456789abcdef is not in s3://{bucket}/"
                                "models/: tasks would fail to start; publish or seed it, or pin a version "
                                "`modelsync list` shows"]
    assert f"demo: paddleocr@{present}: present" in out
    assert "demo: CLS_AMM_GrapheneL: not pinned, follows LATEST at each task start" in out


def test_check_without_pins_needs_no_aws(cdk_json):
    assert run("check", "--cdk-json", str(cdk_json)) == (0, "stage dev pins no model versions: nothing to check\n", "")


def test_the_bucket_comes_from_the_service_stacks_outputs(s3, bucket, tmp_path, cdk_json):
    for name in SERVED:
        publish(s3, bucket, tmp_path, name, b"x")
    cloudformation = boto3.client("cloudformation", region_name="eu-west-1", aws_access_key_id="x",
                                  aws_secret_access_key="x")
    with Stubber(cloudformation) as stub:
        stub.add_response("describe_stacks", {"Stacks": [{
            "StackName": "ModelDelivery-dev-Service", "CreationTime": "2026-11-24T09:00:00Z",
            "StackStatus": "UPDATE_COMPLETE",
            "Outputs": [{"OutputKey": "ModelsBucketName", "OutputValue": bucket}]}]},
            {"StackName": "ModelDelivery-dev-Service"})
        code, _, err = run("lock", "--cdk-json", str(cdk_json), cloudformation=cloudformation)
        stub.assert_no_pending_responses()
    assert code == 0, err
    assert len(stage_models(cdk_json)) == len(SERVED)


def test_an_invalid_pin_in_cdk_json_is_a_one_line_settings_error(cdk_json):
    set_models(cdk_json, {"demo": ["paddleocr@../../x"]})
    code, _, err = run("check", "--cdk-json", str(cdk_json))
    assert code == 2 and err.startswith(
        "pins: error: setting 'apps.demo.models' = 'paddleocr@../../x' is not allowed")


def test_pins_work_per_app_and_on_every_app_by_default(s3, bucket, tmp_path, cdk_json):
    """Two apps of one stage: `lock` pins both unless --app names one; each keeps its own list."""
    versions = {name: publish(s3, bucket, tmp_path, name, name.encode()) for name in SERVED}
    set_models(cdk_json, {"seg": ["SEG_M2F_GrapheneL"], "ocr": ["paddleocr"]})

    code, out, err = run("lock", "--app", "ocr", "--bucket", bucket, "--cdk-json", str(cdk_json))
    assert code == 0, err
    assert stage_models(cdk_json, app="ocr") == [f"paddleocr@{versions['paddleocr']}"]
    assert stage_models(cdk_json, app="seg") == ["SEG_M2F_GrapheneL"]  # another app: untouched
    assert "seg:" not in out

    code, out, err = run("lock", "--bucket", bucket, "--cdk-json", str(cdk_json))
    assert code == 0, err
    assert stage_models(cdk_json, app="seg") == [f"SEG_M2F_GrapheneL@{versions['SEG_M2F_GrapheneL']}"]
    code, out, err = run("check", "--bucket", bucket, "--cdk-json", str(cdk_json))
    assert code == 0 and out.count(": present") == 2 and "seg: " in out and "ocr: " in out

    code, _, err = run("check", "--app", "nope", "--bucket", bucket, "--cdk-json", str(cdk_json))
    assert code == 2 and err == "pins: error: --app 'nope' is not an app of stage dev: use one of seg, ocr\n"
