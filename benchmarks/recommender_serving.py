"""GetRecommendations with a recommenderArn against the same with a campaignArn, under wrk.

One fresh ``openpersonalize serve`` (one worker process), one ECOMMERCE Domain dataset group
on the seeded synthetic shop (``openpersonalize.testing.domain.ecommerce``), and two
deployments of the same model: the Recommended-for-you recommender, and a campaign of a
solution with the recipe it runs (aws-user-personalization-v2) in the same group. Exploration
is off in both. `wrk` (Debian's package, a C load generator) sends POST /recommendations
for a cycle of known users, then the server's do-nothing endpoint (GET /health) in the same
run, so the figures are ratios on this machine; wrk and the server share the cores.

    python benchmarks/recommender_serving.py            # print the table
    python benchmarks/recommender_serving.py --write    # also update docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import common
from common import REPO

sys.path.insert(0, str(REPO))

from openpersonalize.testing import domain  # noqa: E402

START, END = "<!-- recommender-serving:start -->", "<!-- recommender-serving:end -->"
SECONDS, CONNECTIONS, THREADS = 10, 4, 2
USERS = 64  # the cycle of users the load asks for


def _wrk(url: str, script: Path | None) -> dict[str, float]:
    return common.run_wrk(url, script, seconds=SECONDS, connections=CONNECTIONS, threads=THREADS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    data = domain.ecommerce(n_users=1000, items_per_category=100)
    with tempfile.TemporaryDirectory(prefix="recommender-serving-") as tmp:
        root = Path(tmp)
        data.write(root / "s3" / "shop")
        server = common.start_server(root / "server", root / "s3")
        try:
            personalize = server.client("personalize")
            group = personalize.create_dataset_group(name="shop", domain=domain.ECOMMERCE)[
                "datasetGroupArn"
            ]
            for kind in ("Interactions", "Items"):
                schema = personalize.create_schema(
                    name=f"shop-{kind}",
                    schema=domain.schema_json(kind, data),
                    domain=domain.ECOMMERCE,
                )["schemaArn"]
                dataset = personalize.create_dataset(
                    name=f"shop-{kind}", datasetGroupArn=group, schemaArn=schema, datasetType=kind
                )["datasetArn"]
                job = personalize.create_dataset_import_job(
                    jobName=f"shop-{kind}",
                    datasetArn=dataset,
                    dataSource={"dataLocation": f"s3://shop/{kind.lower()}.csv"},
                )["datasetImportJobArn"]
                common.wait_active(personalize.describe_dataset_import_job, "datasetImportJob", job)
            no_exploration = {"itemExplorationConfig": {"explorationWeight": "0"}}
            recommender = personalize.create_recommender(
                name="rfy",
                datasetGroupArn=group,
                recipeArn="arn:aws:personalize:::recipe/aws-ecomm-recommended-for-you",
                recommenderConfig=no_exploration,
            )["recommenderArn"]
            solution = common.create_solution(
                personalize, group, "v2", "aws-user-personalization-v2"
            )
            version = common.train_version(personalize, solution)["solutionVersionArn"]
            campaign = personalize.create_campaign(
                name="v2", solutionVersionArn=version, campaignConfig=no_exploration
            )["campaignArn"]
            common.wait_active(personalize.describe_campaign, "campaign", campaign)
            common.wait_active(personalize.describe_recommender, "recommender", recommender)
            users = sorted(data.preferred)[:USERS]
            results = {"GET /health (do-nothing)": _wrk(server.endpoint_url + "/health", None)}
            for label, key, arn in (
                ("GetRecommendations, campaignArn", "campaignArn", campaign),
                ("GetRecommendations, recommenderArn", "recommenderArn", recommender),
            ):
                script = root / f"{key}.lua"
                body = json.dumps({key: arn, "userId": "USER"}).replace('"USER"', '"%s"')
                script.write_text(common.wrk_script(body, users))
                _wrk(server.endpoint_url, script)  # warm: models and histories loaded
                results[label] = _wrk(server.endpoint_url, script)
        finally:
            server.stop()
    health = results["GET /health (do-nothing)"]["rate"]
    lines = [
        "| endpoint | requests/s | share of /health | p50 ms | p99 ms | non-2xx |",
        "|---|---|---|---|---|---|",
    ]
    for label, figures in results.items():
        lines.append(
            f"| {label} | {figures['rate']:,.0f} | {figures['rate'] / health:.1%} | "
            f"{figures['p50']:.2f} | {figures['p99']:.2f} | {figures['errors']:.0f} |"
        )
    campaign_rate = results["GetRecommendations, campaignArn"]["rate"]
    recommender_rate = results["GetRecommendations, recommenderArn"]["rate"]
    verdict = (
        f"recommenderArn serves {recommender_rate / campaign_rate:.2f}x the campaign's rate "
        "(the same hot path, plus the use case's automatic exclusion of purchased items)"
    )
    text = "\n".join(lines)
    print(text)
    print(f"- {verdict}")
    if args.write:
        common.write_report(
            START,
            END,
            "Recommenders on the campaigns' hot path",
            f"`python benchmarks/recommender_serving.py --write`; {common.machine('numpy')}; "
            f"wrk {THREADS} threads, {CONNECTIONS} connections, {SECONDS} s per row, one server "
            f"process; {len(data.interactions):,} interactions, {len(data.items):,} items.",
            text,
            [verdict],
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
