#!/usr/bin/env python3
"""CDK entry point: settings from cdk.json context + `-c` overrides, three stacks, cdk-nag on.

A bad setting stops synth with one line on stderr (no traceback) and exit code 2.
"""

import sys

import aws_cdk as cdk

from model_delivery.errors import ModelDeliveryError
from stacks.assembly import build, enable_nag
from stacks.settings import load_settings


def main() -> int:
    app = cdk.App()
    try:
        settings = load_settings(app.node.get_all_context())
        build(app, settings)
    except ModelDeliveryError as error:  # a bad setting (SettingsError) or a construct's bad prop
        print(f"model-delivery: error: {error}", file=sys.stderr)
        return 2
    enable_nag(app)
    app.synth()
    return 0


if __name__ == "__main__":
    sys.exit(main())
