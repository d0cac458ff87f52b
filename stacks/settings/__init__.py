"""Deployment settings: typed sections built from cdk.json context, a named stage and `-c` overrides.

schema.py    how a setting is declared (its doc, what it allows, the rule that checks it)
sections.py  the sections: stage, network, store, images, seeding, monitoring, deploy access, one per app
load.py      cdk.json blocks and `-c` overrides merged, checked, with what the catalog decides
reference.py docs/settings.md, generated from the sections (`make docs`; a test fails on drift)
"""

from stacks.settings.load import APPS, CONTEXT_KEY, DEFAULT_STAGE, Settings, load_settings
from stacks.settings.sections import (
    DEMO_APP,
    AppAlarmSettings,
    AppSettings,
    DeployAccessSettings,
    ImageSettings,
    MonitoringSettings,
    NetworkSettings,
    SeedingSettings,
    StageSettings,
    StoreSettings,
)

__all__ = [
    "APPS",
    "CONTEXT_KEY",
    "DEFAULT_STAGE",
    "DEMO_APP",
    "AppAlarmSettings",
    "AppSettings",
    "DeployAccessSettings",
    "ImageSettings",
    "MonitoringSettings",
    "NetworkSettings",
    "SeedingSettings",
    "Settings",
    "StageSettings",
    "StoreSettings",
    "load_settings",
]
