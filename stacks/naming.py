"""Names the stacks, the tools and the docs agree on (docs/contracts.md, "Stacks and outputs"). No CDK import:
the operator tools use it without paying for aws_cdk."""


def stack_id(stage: str, part: str) -> str:
    return f"ModelDelivery-{stage}-{part}"


def app_id(name: str) -> str:
    """An app's part of construct ids, logical ids and output names: `ocr` -> `Ocr`, `doc-ocr` -> `DocOcr`."""
    return "".join(part.capitalize() for part in name.split("-"))


def app_output(name: str, what: str) -> str:
    """The service stack's output `what` of app `name`, e.g. AppOcrServiceName."""
    return f"App{app_id(name)}{what}"
