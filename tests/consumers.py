"""The real consumers' discovery code, step by step as they run it, for the views the tests build.

MaskTerial: server.py / maskterial/utils/inference_server_utils.py at commit 9a5998c (github Jaluus/MaskTerial).
"""

from __future__ import annotations

import os


def maskterial_check_available_models(models_dir: str) -> list[str]:
    """MaskTerial's discovery (server.py / inference_server_utils.py at 9a5998c), step by step: listdir of
    the model types, listdir of each type, entries kept where isdir (which follows links), named TYPE-NAME."""
    found = []
    for model_type in os.listdir(models_dir):
        for model_name in os.listdir(os.path.join(models_dir, model_type)):  # a plain file here would crash it
            if os.path.isdir(os.path.join(models_dir, model_type, model_name)):
                found.append(f"{model_type}-{model_name}")
    return sorted(found)


def maskterial_construct_model_path(category_dir: str, model: str) -> str:
    model_type, model_folder = model.split("-", 1)  # at the first '-'
    return os.path.join(category_dir, model_type, model_folder)
