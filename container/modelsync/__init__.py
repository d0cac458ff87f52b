"""modelsync: deliver ML model files to containers, verified and atomically."""

__version__ = "0.2.0"
