"""Names the constructs and the modelsync image must agree on (docs/contracts.md): one place each."""

IMAGE_UID = "10001"  # uid and gid of the modelsync image's user; the EFS access point creates /models as it
IMAGE_USER = f"{IMAGE_UID}:{IMAGE_UID}"
MODELS_PREFIX = "models/"  # everything in the bucket lives under this prefix
STORE_PATH = "/models"  # the model store in every container: task volume (s3 mode) or the EFS mirror (efs mode)
# Where the init container builds the app's view: the modelsync image declares it a VOLUME owned by its user,
# so the task-local volume starts writable for it (the app mounts the same volume where it looks for models).
VIEW_PATH = "/var/lib/modelsync/view"
SCRATCH_PATH = "/tmp"  # every container gets a writable /tmp (the root file systems are read-only)
