"""The one exception the CDK app turns into a one-line error (app.py prints it, exits 2)."""


class SettingsError(Exception):
    """A deployment setting, the model catalog, or a file the app builds from (container/Dockerfile,
    lambdas/seed_runner/handler.py) is invalid or missing; the message names it and the fix."""
