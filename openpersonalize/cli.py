"""Command-line entry points: `openpersonalize serve | quickstart | metrics | trials |
metric-attribution-report`."""

from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import json
import logging
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
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
    processes = settings.http_process_count
    logging.getLogger("openpersonalize").info(
        "serving Amazon Personalize API on http://%s:%s (data in %s, %d HTTP processes, "
        "%d job workers%s)",
        settings.host,
        settings.port,
        settings.data_dir.resolve(),
        processes,
        settings.workers,
        ", SigV4 required" if settings.auth_required else ", no authentication",
    )
    if processes > 1:
        from openpersonalize.wire import processes as http_processes

        http_processes.export_settings(settings)
        pool.start()
        try:
            uvicorn.run(
                http_processes.APP_FACTORY,
                factory=True,
                workers=processes,
                host=settings.host,
                port=settings.port,
                log_level="warning",
                access_log=False,  # a log call per request costs 3% of a recommendation
            )
        finally:
            pool.stop()
        return 0
    # One BLAS thread: a request's matrix-vector product is small, and spinning helper
    # threads would take the cores from the requests (training runs in other processes).
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")
    app = create_app(context, on_startup=[pool.start], on_shutdown=[pool.stop])
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning", access_log=False)
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
    report_parser = commands.add_parser(
        "metric-attribution-report",
        help="a metric attribution's figures per metric, source and 15-minute window (what "
        "the service sends CloudWatch, which this server cannot reach)",
    )
    report_parser.add_argument("metric_attribution_arn", metavar="METRIC_ATTRIBUTION_ARN")
    report_parser.add_argument("--data-dir", default=None, help="(env OPENPERSONALIZE_DATA_DIR)")
    report_parser.add_argument(
        "--database-url", default=None, help="(env OPENPERSONALIZE_DATABASE_URL)"
    )
    report_parser.add_argument(
        "--json", action="store_true", help="print the figures as JSON (windows in epoch seconds)"
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


def show_attribution_report(settings: Settings, arn: str, *, as_json: bool = False) -> int:
    from openpersonalize.context import Context
    from openpersonalize.errors import ServiceError
    from openpersonalize.resources import metric_attributions

    try:
        figures = metric_attributions.report(Context.open(settings), arn)
    except ServiceError as error:
        print(f"openpersonalize: {error.message}", file=sys.stderr)
        return 1
    if as_json:
        print(json.dumps([dataclasses.asdict(figure) for figure in figures], indent=2))
        return 0
    if not figures:
        print("no figures yet: no data of the metrics' event types arrived since it was created")
        return 0
    metric_width = max(len(figure.metric_name) for figure in figures)
    source_width = max(len(figure.source) for figure in figures)
    print(f"{'metric':<{metric_width}}  {'source':<{source_width}}  {'window (UTC)':<20}  value")
    for figure in figures:
        window = datetime.fromtimestamp(figure.window, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        print(
            f"{figure.metric_name:<{metric_width}}  {figure.source:<{source_width}}  "
            f"{window:<20}  {figure.value:.12g}"
        )
    return 0


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
    if args.command == "metric-attribution-report":
        settings = Settings.from_env(data_dir=args.data_dir, database_url=args.database_url)
        return show_attribution_report(settings, args.metric_attribution_arn, as_json=args.json)
    return 1


if __name__ == "__main__":
    sys.exit(main())
