"""model_delivery: CDK constructs that deliver verified ML model files to ECS Fargate tasks.

    ModelStore      the KMS key, the models bucket (source of truth, with access logs) and, optionally,
                    the EFS mirror, plus the read and publish policies of the models prefix
    BucketFileSystem  the bucket's models/ prefix as an S3 Files file system (mode s3files), beside the apps
    ModelDelivery   attach model delivery to any Fargate task definition and its app container: the
                    init container (modelsync image), volumes, the app's view of its models, IAM
    SeedingTask, SigningTask, SeedRunner, AutoSeed   the one-shot seeding task (stages, never signs), the signing
                    task after it (holds the key), the Lambda that starts both, the optional auto-seed on deploy
                    (ModelSeeding composes the four)
    AlarmTopic      the stage's encrypted SNS topic for every alarm and seed result
    TaskNotifier    seed results to the topic, and each app's init failures as a metric
    ModelDeliveryAlarms     one app's service alarms (tasks below desired, init failures, its delivery mode's,
                            its load balancer's)
    ModelStoreAlarms        the alarms on what the apps share (seed runner, notifier, EFS mirror limits)
    ModelDeliveryDashboard  the stage's CloudWatch dashboard: a row per app, and the shared parts

Every construct checks its props when it is created and raises ModelDeliveryError with one line naming
the prop and the fix. The runtime they deploy is the modelsync package (container/ in the repository).
"""

from model_delivery.alarm_topic import AlarmTopic
from model_delivery.bucket_files import BucketFileSystem
from model_delivery.contract import IMAGE_USER, MODELS_PREFIX, STORE_PATH, VIEW_PATH
from model_delivery.dashboard import ModelDeliveryDashboard
from model_delivery.delivery import ModelDelivery
from model_delivery.errors import ModelDeliveryError
from model_delivery.flags import REQUIRED_FEATURE_FLAGS
from model_delivery.metrics import MetricsOptions
from model_delivery.modes import MODES
from model_delivery.monitoring import LoadBalancing, ModelDeliveryAlarms, ModelStoreAlarms
from model_delivery.notifier import TaskNotifier
from model_delivery.seeding import AutoSeed, ModelSeeding, SeedingTask, SeedRunner, seed_fingerprint
from model_delivery.signing_task import SigningTask
from model_delivery.store import MirrorOptions, ModelStore
from model_delivery.thresholds import AlarmThresholds, MirrorAlarmThresholds

__version__ = "0.3.0"

__all__ = [
    "IMAGE_USER",
    "MODELS_PREFIX",
    "MODES",
    "REQUIRED_FEATURE_FLAGS",
    "STORE_PATH",
    "VIEW_PATH",
    "AlarmThresholds",
    "AlarmTopic",
    "AutoSeed",
    "BucketFileSystem",
    "LoadBalancing",
    "MetricsOptions",
    "MirrorAlarmThresholds",
    "MirrorOptions",
    "ModelDelivery",
    "ModelDeliveryAlarms",
    "ModelDeliveryDashboard",
    "ModelDeliveryError",
    "ModelSeeding",
    "ModelStore",
    "ModelStoreAlarms",
    "SeedRunner",
    "SeedingTask",
    "SigningTask",
    "TaskNotifier",
    "seed_fingerprint",
]
