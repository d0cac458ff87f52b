"""Exponential backoff with jitter, for the retries we do ourselves (broken downloads, seed fetches)."""

from __future__ import annotations

import random


def delay(attempt: int, *, first: float, cap: float) -> float:
    """Seconds to wait after failed attempt `attempt` (1, 2, ...): first * 2**(attempt-1), at most cap,
    times a random factor in [0.5, 1] so many workers that failed together do not retry together."""
    return min(cap, first * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)
