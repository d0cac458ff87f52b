"""Operator tools run from a workstation against a deployed stack (see docs/operations-seed.md)."""
