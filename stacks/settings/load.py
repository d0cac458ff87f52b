"""The settings of one stage: cdk.json's `model-delivery` blocks, then `-c` overrides, checked section by section.

Precedence (last wins): the `defaults` block, the chosen stage's block (`-c stage=NAME`, default `dev`), then
`-c KEY=VALUE` on the command line. Stage-level keys are flat (`-c vpc_id=...`); an app's keys are reached by
path: `-c apps.ocr.desired_count=3`, `-c apps.ocr.alarms.pull_seconds=600`, or a whole block as JSON
(`-c 'apps={"ocr": {...}}'`). Blocks merge app by app and key by key. Values from `-c` arrive as strings and are
parsed by the setting's type (lists comma separated or JSON, maps as JSON). Every problem is one SettingsError
line naming the setting, the bad value and what is allowed.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from model_delivery.catalog import DEFAULT_CATALOG, Catalog, load_catalog
from model_delivery.delivery import delivery_layout
from model_delivery.modes import MODES
from model_delivery.seeding import seed_fingerprint
from model_delivery.specs import check_pins, names_of
from stacks.errors import SettingsError
from stacks.naming import app_id
from stacks.settings.schema import Section, fail, where
from stacks.settings.sections import (
    DEMO_APP,
    AppSettings,
    DeployAccessSettings,
    ImageSettings,
    MonitoringSettings,
    NetworkSettings,
    SeedingSettings,
    StageSettings,
    StoreSettings,
    certificate_place,
    check_app_name,
)

CONTEXT_KEY = "model-delivery"
DEFAULT_STAGE = "dev"
APPS = "apps"
STAGE_SECTIONS: dict[str, type[Section]] = {
    "stage": StageSettings,
    "network": NetworkSettings,
    "store": StoreSettings,
    "image": ImageSettings,
    "seeding": SeedingSettings,
    "monitoring": MonitoringSettings,
    "deploy_access": DeployAccessSettings,
}
FLAT_KEYS = {name: section for section, cls in STAGE_SECTIONS.items() for name in cls.setting_names()}
# Flat keys of earlier releases that now belong to an app: old key -> its path in the app's block.
MOVED_TO_APP = {
    "app_image": "image",
    "app_command": "command",
    "app_port": "port",
    "app_health_path": "health_path",
    "app_health_command": "health_command",
    "app_environment": "environment",
    "app_layout": "layout",
    "app_models_path": "view_path",
    "app_writable_paths": "writable_paths",
    "app_stop_timeout_seconds": "stop_timeout_seconds",
    "app_start_seconds": "start_seconds",
    "service_models": "models",
    "service_cpu": "cpu",
    "service_memory_mib": "memory_mib",
    "ephemeral_storage_gib": "ephemeral_storage_gib",
    "desired_count": "desired_count",
    "min_capacity": "min_capacity",
    "max_capacity": "max_capacity",
    "target_cpu_percent": "target_cpu_percent",
    "delivery_mode": "delivery_mode",
    "ingress": "ingress",
    "certificate_arn": "certificate_arn",
    "ingress_cidrs": "ingress_cidrs",
    "alarm_tasks_below_desired_minutes": "alarms.tasks_below_desired_minutes",
    "alarm_pull_seconds": "alarms.pull_seconds",
    "alarm_http_5xx_count": "alarms.http_5xx_count",
    "alarm_unhealthy_targets_minutes": "alarms.unhealthy_targets_minutes",
}
MOVED_TO_STAGE = {"alarm_efs_io_limit_percent", "alarm_efs_throughput_percent"}  # unchanged keys, listed for docs
_APP_PATH = re.compile(r"^apps\.(?P<app>[^.]+)\.(?P<key>[^.]+)(?:\.(?P<sub>[^.]+))?$")


@dataclass(frozen=True)
class Settings:
    """One stage's settings: a section per concern, the apps by name, and what the catalog decides."""

    stage: StageSettings
    network: NetworkSettings
    store: StoreSettings
    image: ImageSettings
    seeding: SeedingSettings
    monitoring: MonitoringSettings
    deploy_access: DeployAccessSettings
    apps: Mapping[str, AppSettings]
    seeded_models: tuple[str, ...]  # every app's models plus seed_models (or the catalog's enabled entries)
    catalog_names: tuple[str, ...]
    catalog_sha256: str

    @property
    def mirror_pins(self) -> tuple[str, ...]:
        """Every pinned NAME@VERSION of every app: kept in the EFS mirror beside LATEST."""
        return tuple(dict.fromkeys(spec for app in self.apps.values() for spec in app.pinned_models))

    @property
    def reads_mirror(self) -> bool:
        return any(MODES[app.delivery_mode].uses_mirror for app in self.apps.values())

    @property
    def seed_fingerprint(self) -> str:
        """Changes whenever the catalog file or the seed selection changes (drives seed_on_deploy); with
        image_source=ecr also when the image tag changes, since the image carries the catalog it seeds."""
        image = self.image.image_tag if self.image.image_source == "ecr" else ""
        return seed_fingerprint(self.catalog_sha256, self.seeded_models, image)


def load_settings(
    context: Mapping[str, Any], *, environ: Mapping[str, str] | None = None, catalog_path: Path = DEFAULT_CATALOG
) -> Settings:
    """Build and check the settings from the App's context (`app.node.get_all_context()`)."""
    environ = os.environ if environ is None else environ
    config = context.get(CONTEXT_KEY)
    if not isinstance(config, dict) or not isinstance(config.get("stages"), dict):
        raise SettingsError(
            f"cdk.json context needs a '{CONTEXT_KEY}' object with 'defaults' and 'stages'; "
            "restore it from the repository"
        )
    stages = config["stages"]
    stage = context.get("stage") or DEFAULT_STAGE
    if stage not in stages:
        raise SettingsError(
            f"setting 'stage' = {stage!r} is not allowed: use one of {', '.join(sorted(stages))} "
            f"(stages are defined under '{CONTEXT_KEY}.stages' in cdk.json)"
        )
    values: dict[str, Any] = {}
    for origin, block in (("defaults", config.get("defaults", {})), (f"stages.{stage}", stages[stage])):
        if not isinstance(block, dict):
            raise SettingsError(f"'{CONTEXT_KEY}.{origin}' in cdk.json must be an object of settings")
        _refuse_moved(block, f"in '{CONTEXT_KEY}.{origin}'", cli=False)
        for key, value in block.items():
            _merge(values, key, value, f"'{CONTEXT_KEY}.{origin}'")
    _apply_overrides(values, context)
    values["account"] = values.get("account") or environ.get("CDK_DEFAULT_ACCOUNT") or ""
    values["region"] = values.get("region") or environ.get("CDK_DEFAULT_REGION") or ""
    return _build(stage, values, load_catalog(catalog_path))


def _merge(values: dict[str, Any], key: str, value: Any, origin: str) -> None:
    if key == APPS:
        apps = values.setdefault(APPS, {})
        if not isinstance(value, dict):
            fail(f"setting '{APPS}' in {origin}", value, 'an object of app blocks, e.g. {"ocr": {"layout": "paddlex"}}')
        for name, block in value.items():
            if not isinstance(block, dict):
                fail(f"setting 'apps.{name}'", block, "an object of the app's settings (docs/settings.md)")
            app = apps.setdefault(name, {})
            for app_key, app_value in block.items():
                if isinstance(app_value, dict) and isinstance(app.get(app_key), dict) and app_key == "alarms":
                    app[app_key] = {**app[app_key], **app_value}
                else:
                    app[app_key] = app_value
    elif key in FLAT_KEYS:
        values[key] = value
    else:
        raise SettingsError(
            f"unknown setting {key!r} in {origin}: allowed are {', '.join([*FLAT_KEYS, APPS])} (docs/settings.md)"
        )


def _apply_overrides(values: dict[str, Any], context: Mapping[str, Any]) -> None:
    """`-c` values: flat stage-level keys, `apps` as JSON, and paths into an app's block."""
    _refuse_moved(context, "on the command line", cli=True)
    for key, value in context.items():
        if key in FLAT_KEYS:
            values[key] = value
        elif key == APPS:
            if isinstance(value, str):
                try:
                    value = json.loads(value)
                except json.JSONDecodeError:
                    fail("setting 'apps'", value, 'a JSON object of app blocks, e.g. {"ocr": {"layout": "paddlex"}}')
            _merge(values, APPS, value, "-c apps")
        elif key.startswith(f"{APPS}."):
            found = _APP_PATH.match(key)
            if not found or (found["sub"] is not None and found["key"] != "alarms"):
                raise SettingsError(
                    f"-c {key} is not a setting: reach an app's setting as -c apps.NAME.KEY=VALUE (e.g. -c "
                    "apps.ocr.desired_count=3) or an app's alarm as -c apps.NAME.alarms.KEY=VALUE"
                )
            block = {found["sub"]: value} if found["sub"] else value
            _merge(values, APPS, {found["app"]: {found["key"]: block}}, "-c")


def _refuse_moved(block: Mapping[str, Any], origin: str, *, cli: bool) -> None:
    """Keys of earlier releases: one line with the equivalent app block (or -c paths)."""
    moved = {key: block[key] for key in MOVED_TO_APP if key in block}
    if not moved:
        return
    first = next(iter(moved))
    if cli:
        instead = " ".join(f"-c {APPS}.{DEMO_APP}.{MOVED_TO_APP[k]}={v}" for k, v in moved.items())
    else:
        app: dict[str, Any] = {}
        for key, value in moved.items():
            path = MOVED_TO_APP[key].split(".")
            target = app if len(path) == 1 else app.setdefault(path[0], {})
            target[path[-1]] = value
        instead = json.dumps({APPS: {DEMO_APP: app}})[1:-1]
    raise SettingsError(
        f"setting {first!r} {origin} now belongs to an app: use {instead} instead (every app has its own "
        "image, models, size and way in; docs/settings.md)"
    )


def _build(stage: str, values: dict[str, Any], catalog: Catalog) -> Settings:
    sections = {
        section: cls.build(
            {k: v for k, v in values.items() if FLAT_KEYS.get(k) == section},
            **({"name": stage} if cls is StageSettings else {}),
        )
        for section, cls in STAGE_SECTIONS.items()
    }
    stage_settings: StageSettings = sections["stage"]  # type: ignore[assignment]
    network: NetworkSettings = sections["network"]  # type: ignore[assignment]
    if network.vpc_id and not (stage_settings.account and stage_settings.region):
        raise SettingsError(
            f"setting 'vpc_id' = {network.vpc_id!r} needs an explicit account and region to look the VPC "
            "up: set 'account' and 'region' for the stage, or export CDK_DEFAULT_ACCOUNT and "
            "CDK_DEFAULT_REGION (the CDK CLI does this when it has credentials)"
        )
    apps = {
        name: AppSettings.build(block, f"{APPS}.{check_app_name(name)}.", name=name)
        for name, block in (values.get(APPS) or {DEMO_APP: {}}).items()
    }
    deploy_access: DeployAccessSettings = sections["deploy_access"]  # type: ignore[assignment]
    _check_provider_account(deploy_access, stage_settings)
    _check_distinct_ids(apps)
    for app in apps.values():
        _check_certificate(app, stage_settings)
    seeding: SeedingSettings = sections["seeding"]  # type: ignore[assignment]
    seeded = _seeded(seeding, apps, catalog)
    apps = {name: _with_catalog(app, seeded, catalog) for name, app in apps.items()}
    _check_seed_storage(seeding, seeded, catalog)
    return Settings(
        stage=stage_settings,
        network=network,
        store=sections["store"],  # type: ignore[arg-type]
        image=sections["image"],  # type: ignore[arg-type]
        seeding=seeding,
        monitoring=sections["monitoring"],  # type: ignore[arg-type]
        deploy_access=deploy_access,
        apps=apps,
        seeded_models=seeded,
        catalog_names=catalog.names,
        catalog_sha256=catalog.sha256,
    )


def _check_provider_account(access: DeployAccessSettings, stage: StageSettings) -> None:
    """A role can only trust an identity provider of its own account."""
    account = access.provider_account
    if account and stage.account and account != stage.account:
        fail(
            "setting 'github_oidc_provider_arn'",
            access.github_oidc_provider_arn,
            f"the provider of the stage's account {stage.account} (a role trusts an OIDC provider of its own "
            "account only), or empty to create it",
        )


def _check_distinct_ids(apps: Mapping[str, AppSettings]) -> None:
    seen: dict[str, str] = {}
    for name in apps:
        other = seen.setdefault(app_id(name).lower(), name)
        if other != name:
            raise SettingsError(
                f"apps {other!r} and {name!r} differ only in '-': their resources would get the same names; "
                "rename one of them"
            )


def _check_certificate(app: AppSettings, stage: StageSettings) -> None:
    """A load balancer needs the region at synth, and can only use a certificate of its own account and region."""
    prefix = f"{APPS}.{app.name}."
    if app.ingress != "none" and not stage.region:
        raise SettingsError(
            f"{where(prefix, 'ingress')} = {app.ingress!r} needs a region at synth (load balancer access logs "
            "are delivered by the region's log service): set 'region' for the stage or export CDK_DEFAULT_REGION"
        )
    if not app.certificate_arn:
        return
    region, account = certificate_place(app.certificate_arn)
    if region != stage.region:
        fail(
            where(prefix, "certificate_arn"),
            app.certificate_arn,
            f"a certificate in the stage's region {stage.region} (ACM certificates are regional: a load "
            "balancer can only use one of its own region; request or import it there)",
        )
    if stage.account and account != stage.account:
        fail(
            where(prefix, "certificate_arn"),
            app.certificate_arn,
            f"a certificate of the stage's account {stage.account} (a load balancer cannot use another "
            "account's certificate)",
        )


def _seeded(seeding: SeedingSettings, apps: Mapping[str, AppSettings], catalog: Catalog) -> tuple[str, ...]:
    """seed_models plus every app's models, in that order, each once; when none is named: the enabled entries."""
    _check_known("seed_models", seeding.seed_models, catalog)
    for app in apps.values():
        at = where(f"{APPS}.{app.name}.", "models")
        check_pins(app.models, at)
        _check_known(f"{APPS}.{app.name}.models", names_of(app.models), catalog)
    named = tuple(dict.fromkeys([*seeding.seed_models, *(n for a in apps.values() for n in names_of(a.models))]))
    seeded = named or catalog.enabled_names
    if not seeded:
        fail("setting 'seed_models'", "", f"at least one model: {catalog.path.name} enables none, so name them here")
    return seeded


def _check_known(key: str, names: Any, catalog: Catalog) -> None:
    unknown = [name for name in names if name not in catalog.names]
    if unknown:
        fail(f"setting '{key}'", ",".join(unknown), f"names from {catalog.path.name}: {', '.join(catalog.names)}")


def _with_catalog(app: AppSettings, seeded: tuple[str, ...], catalog: Catalog) -> AppSettings:
    """What the app serves, checked against its layout and its task storage."""
    prefix = f"{APPS}.{app.name}."
    served = app.models or seeded
    layout = delivery_layout(app.layout, served, where(prefix, "layout"))
    clash = sorted(set(layout.app_environment(app.view_path)) & set(app.environment))
    if clash:
        raise SettingsError(
            f"{where(prefix, 'environment')} sets {', '.join(clash)}, which layout {app.layout!r} sets to "
            f"view_path ({app.view_path}): remove it from environment or change view_path"
        )
    copies = MODES[app.delivery_mode].task_storage_copies
    need_gib = math.ceil(copies * sum(catalog.size_mb(name) for name in names_of(served)) / 1024)
    if need_gib > app.ephemeral_storage_gib:
        fail(
            where(prefix, "ephemeral_storage_gib"),
            app.ephemeral_storage_gib,
            f"at least {need_gib} GiB in {app.delivery_mode} mode: {copies} times the served models "
            f"({', '.join(names_of(served))}), by the size estimates in the catalog",
        )
    return replace(app, served_models=tuple(served))


def _check_seed_storage(seeding: SeedingSettings, seeded: tuple[str, ...], catalog: Catalog) -> None:
    # The seeder keeps an archive and its extracted tree on local disk at the same time.
    need = math.ceil(2 * max(catalog.size_mb(name) for name in seeded) / 1024)
    if need > seeding.seed_ephemeral_storage_gib:
        fail(
            "setting 'seed_ephemeral_storage_gib'",
            seeding.seed_ephemeral_storage_gib,
            f"at least {need} GiB: twice the largest seeded archive, by the catalog's size estimates",
        )
