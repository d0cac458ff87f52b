"""What every check is given (the stage's settings, AWS clients, what is deployed) and what it gives back."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import boto3
from botocore.config import Config

from stacks.naming import stack_id
from stacks.settings import Settings
from tools.seed import find_stack, stack_outputs

OK, FAIL, SKIP = "ok", "FAIL", "skip"
DOCKER_TIMEOUT_SECONDS = 30


@dataclass(frozen=True)
class Result:
    status: str  # OK, FAIL or SKIP
    message: str  # what was found; for FAIL the problem and its fix; for SKIP why the check does not apply


def ok(message: str) -> Result:
    return Result(OK, message)


def fail(message: str) -> Result:
    return Result(FAIL, message)


def skip(message: str) -> Result:
    return Result(SKIP, message)


class ClientFactory(Protocol):
    def __call__(self, service: str, region: str | None = None) -> Any: ...


class SessionClients:
    """boto3 clients of one session, each (service, region) made once; region None is the stage's region."""

    def __init__(self, session: boto3.Session) -> None:
        self._session = session
        self._clients: dict[tuple[str, str | None], Any] = {}
        # Standard retries: a throttled Describe* call should not turn into a FAIL line.
        self._config = Config(retries={"mode": "standard"})

    def __call__(self, service: str, region: str | None = None) -> Any:
        key = (service, region)
        if key not in self._clients:
            self._clients[key] = self._session.client(service, region_name=region, config=self._config)
        return self._clients[key]


CommandRunner = Callable[[Sequence[str]], int]


def run_quietly(command: Sequence[str]) -> int:
    """Exit code of a local command whose output nobody needs (`docker info`); FileNotFoundError when absent."""
    return subprocess.run(
        list(command),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=DOCKER_TIMEOUT_SECONDS,
        check=False,
    ).returncode


@dataclass
class Context:
    settings: Settings
    region: str  # where the stage deploys: --region, else the stage's region, else the AWS configuration's
    client: ClientFactory
    s3: Callable[[], Any]  # modelsync's S3 client (AWS_ENDPOINT_URL_S3 applies), made when a check needs it
    run: CommandRunner = run_quietly
    qualifier: str = "hnb659fds"  # the CDK bootstrap qualifier (cdk.json `@aws-cdk/core:bootstrapQualifier`)
    _identity: dict[str, Any] | None = field(default=None, repr=False)
    _outputs: dict[str, dict[str, str] | None] = field(default_factory=dict, repr=False)

    def identity(self) -> dict[str, Any]:
        """sts:GetCallerIdentity, asked once."""
        if self._identity is None:
            self._identity = self.client("sts").get_caller_identity()
        return self._identity

    def account(self) -> str:
        return str(self.identity()["Account"])

    def outputs(self, part: str) -> dict[str, str] | None:
        """The outputs of the stage's stack `part` (Network, Storage, Service); None when it is not deployed.

        A stack without outputs (a first create that rolled back, a change set under review) counts as not
        deployed: the next deploy creates it again."""
        if part not in self._outputs:
            found = find_stack(self.client("cloudformation"), stack_id(self.settings.stage.name, part))
            self._outputs[part] = (stack_outputs(found) or None) if found is not None else None
        return self._outputs[part]
