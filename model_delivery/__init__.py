"""model_delivery: CDK constructs that deliver verified ML model files to ECS Fargate tasks.

    ModelStore      the KMS key, the models bucket (source of truth, with access logs) and, optionally,
                    the EFS mirror, plus the read and publish policies of the models prefix
    ModelDelivery   attach model delivery to any Fargate task definition and its app container: the
                    init container (modelsync image), volumes, the app's view of its models, IAM
    ModelSeeding    the one-shot seeding task with the Lambda that starts it (and an optional auto-seed)
    ModelDeliveryAlarms     alarms on an encrypted SNS topic (tasks below desired, init failures, pull time,
                            seed runner, EFS limits, load balancer), and every seed's result sent to it
    ModelDeliveryDashboard  the stage's CloudWatch dashboard, from the same metrics

Every construct checks its props when it is created and raises ModelDeliveryError with one line naming
the prop and the fix. The runtime they deploy is the modelsync package (container/ in the repository).
"""

from model_delivery.contract import IMAGE_USER, MODELS_PREFIX, STORE_PATH, VIEW_PATH
from model_delivery.dashboard import ModelDeliveryDashboard
from model_delivery.delivery import MODES, ModelDelivery
from model_delivery.errors import ModelDeliveryError
from model_delivery.flags import REQUIRED_FEATURE_FLAGS
from model_delivery.monitoring import AlarmThresholds, LoadBalancing, ModelDeliveryAlarms
from model_delivery.seeding import AutoSeed, ModelSeeding, SeedingTask, SeedRunner, seed_fingerprint
from model_delivery.store import MirrorOptions, ModelStore

__version__ = "0.2.0"

__all__ = [
    "IMAGE_USER",
    "MODELS_PREFIX",
    "MODES",
    "REQUIRED_FEATURE_FLAGS",
    "STORE_PATH",
    "VIEW_PATH",
    "AlarmThresholds",
    "AutoSeed",
    "LoadBalancing",
    "MirrorOptions",
    "ModelDelivery",
    "ModelDeliveryAlarms",
    "ModelDeliveryDashboard",
    "ModelDeliveryError",
    "ModelSeeding",
    "ModelStore",
    "SeedRunner",
    "SeedingTask",
    "seed_fingerprint",
]
