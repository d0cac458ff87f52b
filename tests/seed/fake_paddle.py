"""A stand-in for paddleocr.PaddleOCR that fills the cache the way PaddleX does: it reads
PADDLE_PDX_CACHE_HOME when it runs and writes <cache>/official_models/<model>/ for each model the
given options switch on (the paddleocr 3.7 choice of models)."""

from __future__ import annotations

import os
from pathlib import Path

PADDLE_MODELS = ("PP-LCNet_x1_0_doc_ori", "UVDoc", "PP-OCRv6_medium_det", "PP-LCNet_x1_0_textline_ori",
                 "PP-OCRv6_medium_rec")


def models_for(options: dict) -> list[str]:
    chosen = []
    if options.get("use_doc_orientation_classify", True):
        chosen.append("PP-LCNet_x1_0_doc_ori")
    if options.get("use_doc_unwarping", True):
        chosen.append("UVDoc")
    chosen.append("PP-OCRv6_medium_det")
    if options.get("use_textline_orientation", True):
        chosen.append("PP-LCNet_x1_0_textline_ori")
    chosen.append("PP-OCRv6_medium_rec")
    return chosen


class FakePaddleOCR:
    """Use an instance as the pipeline factory; it records every call and the environment seen."""

    def __init__(self, *, empty: tuple[str, ...] = (), extra: tuple[str, ...] = ()):
        self.calls: list[dict] = []
        self.environ: list[dict] = []
        self.empty, self.extra = empty, extra

    def __call__(self, **kwargs):
        self.calls.append(kwargs)
        self.environ.append({k: v for k, v in os.environ.items() if k.startswith("PADDLE_PDX_")})
        cache = Path(os.environ.get("PADDLE_PDX_CACHE_HOME", Path.home() / ".paddlex"))
        for name in models_for(kwargs) + list(self.extra):
            folder = cache / "official_models" / name
            folder.mkdir(parents=True, exist_ok=True)
            if name in self.empty:
                continue
            (folder / "inference.yml").write_text(f"Global:\n  model_name: {name}\n")
            (folder / "inference.json").write_text('{"program": "%s"}' % name)
            (folder / "inference.pdiparams").write_bytes(name.encode() * 64)
        (cache / "temp").mkdir(exist_ok=True)
        return object()
