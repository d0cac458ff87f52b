"""The app's view of its models (setting `app_layout`), checked at synth the way the library checks it
(every served model placeable, by the runtime's own layouts), reported as this app's settings."""

from __future__ import annotations

from model_delivery.specs import names_of
from modelsync.errors import ModelsyncError
from modelsync.layouts import Layout, load_layouts
from stacks.errors import SettingsError
from stacks.settings import Settings


def app_layout(settings: Settings) -> Layout:
    """The layout the init container builds the view with; SettingsError (one line) when it cannot."""
    try:  # the rule ModelDelivery applies too, reported as this app's setting
        layout = load_layouts().get(settings.app_layout)
    except ModelsyncError as exc:
        raise SettingsError(f"setting 'app_layout' = {settings.app_layout!r} is not allowed: {exc}") from None
    try:
        layout.check(names_of(settings.served_models))
    except ModelsyncError as exc:
        raise SettingsError(
            f"setting 'app_layout' = {settings.app_layout!r} does not fit the served models: {exc} "
            "(or choose service_models the layout can place)"
        ) from None
    clash = sorted(set(layout.app_environment(settings.app_models_path)) & set(settings.app_environment))
    if clash:
        raise SettingsError(
            f"setting 'app_environment' sets {', '.join(clash)}, which layout "
            f"{settings.app_layout!r} sets to app_models_path ({settings.app_models_path}): "
            "remove it from app_environment or change app_models_path"
        )
    return layout
