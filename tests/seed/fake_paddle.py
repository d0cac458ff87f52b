"""A stand-in for paddleocr.PaddleOCR that fills the cache the way PaddleX does: it reads
PADDLE_PDX_CACHE_HOME when it runs and writes <cache>/official_models/<model>/ for each model the
given options switch on (the paddleocr 3.7 choice of models)."""

from __future__ import annotations

import os

from tools.paddle_stand_in import PADDLE_MODELS, cache_home, models_for, write_model

__all__ = ["PADDLE_MODELS", "FakePaddleOCR"]


class FakePaddleOCR:
    """Use an instance as the pipeline factory; it records every call and the environment seen."""

    def __init__(self, *, empty: tuple[str, ...] = (), extra: tuple[str, ...] = ()):
        self.calls: list[dict] = []
        self.environ: list[dict] = []
        self.empty, self.extra = empty, extra

    def __call__(self, **kwargs):
        self.calls.append(kwargs)
        self.environ.append({k: v for k, v in os.environ.items() if k.startswith("PADDLE_PDX_")})
        cache = cache_home()
        for name in models_for(kwargs) + list(self.extra):
            write_model(cache, name, empty=name in self.empty)
        (cache / "temp").mkdir(exist_ok=True)
        return object()
