"""Seeding: fill the bucket (and the EFS mirror) from the model catalog.

catalog (what to seed) -> zenodo / fetch (download, verified) -> extract (safely) -> locate (find
the model folder, check its files) or paddle (prewarm PaddleOCR into a staging cache) -> publish
with the runtime's publish code -> pull into the EFS mirror. `run` orchestrates; the `modelsync seed`
subcommand is modelsync/commands/seed.py.
"""
