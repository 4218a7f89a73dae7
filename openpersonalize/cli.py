"""Command-line entry points: `openpersonalize serve` and `openpersonalize quickstart`."""

from __future__ import annotations

import argparse
import dataclasses
import ipaddress
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
        "--data-dir",
        type=Path,
        metavar="DIR",
        help="keep the server's data here (default: a temporary folder, removed at the end)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        overrides = {key: value for key, value in vars(args).items() if key != "command"}
        return serve(Settings.from_env(**overrides))
    if args.command == "quickstart":
        from openpersonalize import quickstart

        return quickstart.main(movielens=args.movielens, data_dir=args.data_dir)
    return 1


if __name__ == "__main__":
    sys.exit(main())
