"""Which objects under models/ each publishing step writes, as IAM resource patterns, made from the runtime's own key
functions (docs/contracts.md, "Bucket layout"), so the policies and the code that writes the keys cannot drift.

    stage (the seeding task: archives, PaddleX)   models/*/*/files/*, models/*/*/manifest.json, models/*/STAGED
    sign  (the signing task: holds kms:Sign)       models/*/*/manifest.json.sig, models/*/*/model.sig, models/*/LATEST
                                                   and deletes models/*/STAGED

    version (files, manifest: created once, never overwritten; the bucket policy requires If-None-Match)

In an IAM pattern `*` also matches `/`; none of the stage patterns can match a signature or LATEST key (those never
contain `/files/` and do not end in `manifest.json` or `STAGED`).
"""

from __future__ import annotations

from model_delivery.contract import MODELS_PREFIX
from modelsync.manifest import file_key, latest_key, manifest_key
from modelsync.oms import bundle_key
from modelsync.signing import signature_key
from modelsync.staging import staged_key

ANY = "*"
STAGE_KEYS = (
    file_key(MODELS_PREFIX, ANY, ANY, ANY),
    manifest_key(MODELS_PREFIX, ANY, ANY),
    staged_key(MODELS_PREFIX, ANY),
)
SIGN_KEYS = (
    signature_key(MODELS_PREFIX, ANY, ANY),
    bundle_key(MODELS_PREFIX, ANY, ANY),
    latest_key(MODELS_PREFIX, ANY),
)
STAGED_KEYS = (staged_key(MODELS_PREFIX, ANY),)
# A version's content: created once, never overwritten (its files and manifest; signatures and LATEST move).
VERSION_KEYS = (file_key(MODELS_PREFIX, ANY, ANY, ANY), manifest_key(MODELS_PREFIX, ANY, ANY))
