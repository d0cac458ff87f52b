"""The one exception the CDK app turns into a one-line error (app.py prints it, exits 2)."""


class SettingsError(Exception):
    """A deployment setting or the model catalog is invalid; the message names key, value and fix."""
