"""Seeding: fill the bucket (and the EFS mirror) from the model catalog.

catalog (what to seed) -> zenodo / fetch (download, verified) -> extract (safely) -> locate (find
the model folder, check its files) or paddle (prewarm PaddleOCR into a staging cache) -> publish
with the runtime's publish code -> pull into the EFS mirror. `run` orchestrates, `command` is the
`modelsync seed` subcommand.
"""
