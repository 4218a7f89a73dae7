"""Command-line entry points: `openpersonalize serve | quickstart | metrics | trials`."""

from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from openpersonalize.config import Settings


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(settings: Settings) -> int:
    import uvicorn

    from openpersonalize.context import Context
    from openpersonalize.jobs.runner import WorkerPool
    from openpersonalize.wire.app import create_app

    if not settings.auth_required and not _is_loopback(settings.host):
        print(
            f"openpersonalize: refusing to listen on {settings.host} without authentication. "
            "Set --access-key-id and --secret-access-key (or OPENPERSONALIZE_ACCESS_KEY_ID and "
            "OPENPERSONALIZE_SECRET_ACCESS_KEY) so every request must be SigV4-signed, or listen "
            "on 127.0.0.1.",
            file=sys.stderr,
        )
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    context = Context.open(settings)
    try:
        context.blobs.exists("")  # a wrong blob store should stop the server now, not a job later
    except (OSError, ValueError) as error:
        print(f"openpersonalize: blob store {settings.blob_store}: {error}", file=sys.stderr)
        return 2
    pool = WorkerPool(
        dataclasses.asdict(settings), settings.workers, lease_seconds=settings.job_lease_seconds
    )
    app = create_app(context, on_startup=[pool.start], on_shutdown=[pool.stop])
    logging.getLogger("openpersonalize").info(
        "serving Amazon Personalize API on http://%s:%s (data in %s, %d workers%s)",
        settings.host,
        settings.port,
        settings.data_dir.resolve(),
        settings.workers,
        ", SigV4 required" if settings.auth_required else ", no authentication",
    )
    # One BLAS thread: a request's matrix-vector product is small, and spinning helper
    # threads would take the cores from the requests (training runs in other processes).
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="openpersonalize", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve_parser = commands.add_parser(
        "serve", help="run the server (every flag is also an OPENPERSONALIZE_* variable)"
    )
    for setting in dataclasses.fields(Settings):
        flag = "--" + setting.name.replace("_", "-")
        serve_parser.add_argument(
            flag,
            dest=setting.name,
            default=None,
            help=f"(env OPENPERSONALIZE_{setting.name.upper()}; default {setting.default})",
        )
    quickstart_parser = commands.add_parser(
        "quickstart",
        help="run the whole workflow (import, train, metrics, campaign, filter, "
        "recommendations, events) against an embedded server",
    )
    quickstart_parser.add_argument(
        "--movielens",
        type=Path,
        metavar="DIR",
        help="a local MovieLens ML-100K (u.data, u.item) or ml-latest-small (ratings.csv, "
        "movies.csv) folder instead of the seeded synthetic data",
    )
    quickstart_parser.add_argument(
        "--domain",
        choices=("ECOMMERCE", "VIDEO_ON_DEMAND"),
        help="the domain workflow instead: a Domain dataset group and one recommender per "
        "use case (with --movielens only for VIDEO_ON_DEMAND)",
    )
    quickstart_parser.add_argument(
        "--data-dir",
        type=Path,
        metavar="DIR",
        help="keep the server's data here (default: a temporary folder, removed at the end)",
    )
    for name, help_text in (
        ("metrics", "a solution version's offline metrics, with our recall and hit rate"),
        ("trials", "a solution version's HPO trials and AutoML candidates, best first"),
    ):
        reader = commands.add_parser(name, help=help_text)
        reader.add_argument("solution_version_arn", metavar="SOLUTION_VERSION_ARN")
        reader.add_argument("--data-dir", default=None, help="(env OPENPERSONALIZE_DATA_DIR)")
        reader.add_argument(
            "--database-url", default=None, help="(env OPENPERSONALIZE_DATABASE_URL)"
        )
    commands.choices["trials"].add_argument(
        "--json",
        action="store_true",
        help="print the trial records (with metrics, start and end times) as JSON",
    )
    return parser


def _version_attributes(settings: Settings, arn: str) -> dict | None:
    from openpersonalize.context import Context
    from openpersonalize.resources import lifecycle

    context = Context.open(settings)
    with context.database.snapshot() as session:
        row = lifecycle.find(session, arn)
        return None if row is None else {**row.attributes, "status": row.status}


def show_metrics(attributes: dict) -> None:
    metrics = attributes.get("extendedMetrics") or attributes.get("metrics") or {}
    width = max((len(name) for name in metrics), default=10)
    for name in sorted(metrics):
        print(f"{name:<{width}}  {metrics[name]:.4f}")


def show_trials(attributes: dict) -> None:
    trials = sorted(attributes.get("trials") or [], key=lambda trial: -trial["value"])
    if not trials:
        print("no trials: this version was trained without HPO or AutoML")
        return
    print(
        f"{'rank':>4}  {'kind':<6}  {'recipe':<28}  {'metric':<44}  {'value':>7}  "
        f"{'seconds':>7}  hyperparameters"
    )
    for rank, trial in enumerate(trials, start=1):
        recipe = trial["recipeArn"].rsplit("/", 1)[1]
        parameters = ", ".join(f"{k}={v}" for k, v in sorted(trial["hyperparameters"].items()))
        print(
            f"{rank:>4}  {trial['kind']:<6}  {recipe:<28}  {trial['metric']:<44}  "
            f"{trial['value']:>7.4f}  {trial['seconds']:>7.2f}  {parameters}"
        )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        overrides = {key: value for key, value in vars(args).items() if key != "command"}
        try:
            settings = Settings.from_env(**overrides)
        except ValueError as error:  # e.g. an unknown --executor
            print(f"openpersonalize: {error}", file=sys.stderr)
            return 2
        return serve(settings)
    if args.command == "quickstart":
        if args.domain:
            from openpersonalize import quickstart_domain

            return quickstart_domain.main(
                args.domain, movielens=args.movielens, data_dir=args.data_dir
            )
        from openpersonalize import quickstart

        return quickstart.main(movielens=args.movielens, data_dir=args.data_dir)
    if args.command in ("metrics", "trials"):
        settings = Settings.from_env(data_dir=args.data_dir, database_url=args.database_url)
        attributes = _version_attributes(settings, args.solution_version_arn)
        if attributes is None:
            print(
                f"no solution version {args.solution_version_arn} in {settings.data_dir}",
                file=sys.stderr,
            )
            return 1
        if attributes["status"] != "ACTIVE":
            print(f"{args.solution_version_arn} is {attributes['status']}", file=sys.stderr)
            return 1
        if args.command == "metrics":
            show_metrics(attributes)
        elif args.json:
            print(json.dumps(attributes.get("trials") or [], indent=2))
        else:
            show_trials(attributes)
        return 0
    return 1


if __name__ == "__main__":
    sys.exit(main())
