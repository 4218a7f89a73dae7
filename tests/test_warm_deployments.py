"""Each server process loads what its deployed campaigns need before their first request:
`engine.warm_deployments` finds the ACTIVE campaigns in the metadata store and loads their
models, leaving out the ones that are not ACTIVE any more."""

from __future__ import annotations

from pathlib import Path

from helpers import (
    active_campaign,
    active_dataset,
    active_group,
    run_import,
    schema,
    trained_version,
)
from test_e2e_solutions import interactions_csv

from openpersonalize.config import Settings
from openpersonalize.context import Context
from openpersonalize.serving import engine
from openpersonalize.testing.server import ServerProcess


def test_warming_loads_the_models_of_active_campaigns_only(tmp_path: Path) -> None:
    s3_root = tmp_path / "s3"
    (s3_root / "data").mkdir(parents=True)
    (s3_root / "data" / "interactions.csv").write_text(interactions_csv())
    server = ServerProcess(tmp_path / "server", settings={"s3_local_root": str(s3_root)}).start()
    try:
        personalize = server.client()
        group = active_group(personalize)
        dataset = active_dataset(personalize, group, schema(personalize))
        assert run_import(personalize, dataset, "s3://data/interactions.csv")["status"] == "ACTIVE"
        kept = trained_version(personalize, group, "aws-user-personalization")
        dropped = trained_version(personalize, group, "aws-popularity-count")
        active_campaign(personalize, kept)
        gone = active_campaign(personalize, dropped)
        personalize.delete_campaign(campaignArn=gone)

        # This test process is a server process of its own over the same data.
        context = Context.open(Settings(data_dir=tmp_path / "server", s3_local_root=s3_root))
        assert kept not in engine.MODELS
        assert engine.warm_deployments(context) == 1
        assert kept in engine.MODELS
        assert dropped not in engine.MODELS
    finally:
        server.stop()
