"""Model names and `NAME@VERSION` specs as props: the runtime's own rules (modelsync.config), checked at
construction, one line naming the prop."""

from __future__ import annotations

from collections.abc import Sequence

from model_delivery.errors import ModelDeliveryError
from modelsync.config import NAME_RE, VERSION_RE


def check_model_names(names: Sequence[str], where: str) -> None:
    for name in names:
        if not isinstance(name, str) or not NAME_RE.fullmatch(name):
            raise ModelDeliveryError(
                f"{where} = {name!r} is not allowed: a model name uses letters, digits, '.', '_' "
                "or '-' (starting with a letter or digit, at most 128 characters)"
            )


def check_pins(specs: Sequence[str], where: str, *, pinned_only: bool = False) -> None:
    """`NAME` or `NAME@VERSION` (only the latter with pinned_only), each model once."""
    names = []
    for spec in specs:
        name, sep, version = spec.partition("@") if isinstance(spec, str) else (spec, "", "")
        check_model_names([name], where)
        if (sep or pinned_only) and not (VERSION_RE.fullmatch(version) and ".." not in version):
            raise ModelDeliveryError(
                f"{where} = {spec!r} is not allowed: use {'' if pinned_only else 'NAME or '}"
                "NAME@VERSION with a version as `modelsync list` shows it (letters, digits, "
                "'.', '_', '-')"
            )
        names.append(name)
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ModelDeliveryError(
            f"{where} names {', '.join(twice)} more than once: each model once (one version per model and task)"
        )


def names_of(specs: Sequence[str]) -> list[str]:
    return [spec.partition("@")[0] for spec in specs]
