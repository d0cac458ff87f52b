"""The one exception the constructs raise for bad props: one line naming the prop, the value and the fix."""


class ModelDeliveryError(ValueError):
    """A construct was given something it cannot build (a prop, a missing feature flag, a catalog file).
    Apps print it as one line (app.py does, with exit code 2)."""
