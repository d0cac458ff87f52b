"""Where a Lambda's code is: lambdas/<folder> of a checkout (or an editable install), else the copy a wheel
ships as model_delivery/<folder>_code (pyproject.toml maps the one onto the other)."""

from __future__ import annotations

import importlib.resources
from pathlib import Path


def lambda_code_dir(folder: str) -> Path:
    checkout = Path(__file__).resolve().parent.parent / "lambdas" / folder
    if (checkout / "handler.py").is_file():
        return checkout
    return Path(str(importlib.resources.files("model_delivery") / f"{folder}_code"))
