"""Give PaddleX a writable cache home whose models are the pulled, read-only PaddleOCR model.

PaddleX reads PADDLE_PDX_CACHE_HOME at import and creates temp/, locks/ and func_ret/ under it
(paddlex 3.7.2: `import paddleocr` with a read-only cache home fails with PermissionError), and it
finds a model at <cache home>/official_models/<model name>. So the app cannot point the cache home
at /models/paddleocr itself. Instead the init step makes a small writable, task-local directory
whose `official_models` entry is a symlink to the version directory <dest>/paddleocr resolves to
(<dest>/.modelsync/versions/paddleocr/<version>/official_models): PaddleX writes its scratch there
and loads the verified files, and /models stays read-only. Linking the resolved version, not the
switchable <dest>/paddleocr link, keeps the app on one version for its lifetime: in efs mode the
seeding task switches /models/paddleocr under running tasks, and PaddleX opens its files one by
one. The init step and the app must mount <dest> at the same path (both /models).
"""

from __future__ import annotations

import os

from .errors import ModelsyncError

PADDLEOCR_MODEL = "paddleocr"  # the catalog entry published from the PaddleOCR prewarm (docs/contracts.md)
OFFICIAL_MODELS = "official_models"


def link_official_models(cache_home: str, dest: str) -> str | None:
    """Point <cache_home>/official_models at official_models of the version <dest>/paddleocr
    resolves to now, atomically.

    Returns the link's target, or None when dest holds no PaddleOCR model (nothing to link)."""
    target = os.path.join(os.path.realpath(os.path.join(dest, PADDLEOCR_MODEL)), OFFICIAL_MODELS)
    if not os.path.isdir(target):
        return None
    link = os.path.join(cache_home, OFFICIAL_MODELS)
    if os.path.isdir(link) and not os.path.islink(link):
        raise ModelsyncError(f"{link} is a real directory, not a link: point --paddlex-cache / "
                             "MODELSYNC_PADDLEX_CACHE at an empty directory that only modelsync manages")
    try:
        os.makedirs(cache_home, exist_ok=True)
        temp = f"{link}.tmp-{os.getpid()}"
        if os.path.lexists(temp):
            os.unlink(temp)
        os.symlink(target, temp)
        os.replace(temp, link)  # a PaddleX process starting now sees the old link or the new one
    except OSError as exc:
        raise ModelsyncError(f"cannot create the PaddleX cache link {link}: {exc.strerror}: give "
                             "--paddlex-cache / MODELSYNC_PADDLEX_CACHE a writable directory") from None
    return target
