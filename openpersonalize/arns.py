"""Build and parse ARNs the way Amazon Personalize forms them."""

from __future__ import annotations

import re
from dataclasses import dataclass

from openpersonalize.errors import InvalidInputException

# Resource types whose ARN is `{type}/{name}` under the account and region.
RESOURCE_TYPES = (
    "dataset-group",
    "schema",
    "dataset",
    "dataset-import-job",
    "dataset-export-job",
    "solution",
    "campaign",
    "event-tracker",
    "filter",
    "batch-inference-job",
    "batch-segment-job",
    "recommender",
    "metric-attribution",
    "data-deletion-job",
)
SERVICE_OWNED = ("recipe", "algorithm", "feature-transformation")

_ARN = re.compile(r"^arn:([a-z\d-]+):personalize:([^:]*):([^:]*):([a-z-]+)/(.+)$")


@dataclass(frozen=True)
class Arn:
    partition: str
    region: str
    account: str
    resource_type: str
    resource: str  # everything after "type/", e.g. "group/INTERACTIONS" for a dataset

    def __str__(self) -> str:
        return (
            f"arn:{self.partition}:personalize:{self.region}:{self.account}:"
            f"{self.resource_type}/{self.resource}"
        )


def build(region: str, account: str, resource_type: str, *parts: str) -> str:
    return str(Arn("aws", region, account, resource_type, "/".join(parts)))


def parse(arn: str, expected_type: str | None = None) -> Arn:
    """Parse an ARN; InvalidInputException when it is not a Personalize ARN of the expected type."""
    match = _ARN.match(arn)
    if not match:
        raise InvalidInputException(f"{arn} is not a valid Amazon Personalize ARN.")
    parsed = Arn(*match.groups())
    if expected_type and parsed.resource_type != expected_type:
        raise InvalidInputException(
            f"{arn} is not a valid {expected_type} ARN "
            f"(expected arn:aws:personalize:<region>:<account>:{expected_type}/...)."
        )
    return parsed
