"""The exception the CDK app turns into a one-line error (app.py prints it, exits 2)."""

from model_delivery.errors import ModelDeliveryError


class SettingsError(ModelDeliveryError):
    """A deployment setting, the model catalog, or a file the app builds from (container/Dockerfile) is
    invalid or missing; the message names it and the fix. The constructs' own ModelDeliveryError (a bad
    prop) is printed the same way."""
