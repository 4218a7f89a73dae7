"""The web console's page times on ML-100K, and GetRecommendations with the console in use.

A fresh real server (one HTTP process, two job workers) gets MovieLens ML-100K through the
API: 100,000 ratings as Interactions, u.item as Items (TITLE, GENRES = the first genre),
aws-popularity-count and aws-user-personalization trained, a campaign of the latter, a genre
filter and an event tracker. Then:

1. GetRecommendations through wrk (raw HTTP, 10 s) before any console request: the console
   is not even built in the process yet;
2. each console page, fetched like a browser fetches it (a new connection, the session
   cookie), after 3 warm-up requests, 50 times in a row: p50 / p95 / max milliseconds;
3. the same wrk run again, now that the console is loaded and has answered.

Targets: every page's p95 under 100 ms; GetRecommendations with the console in use within
5 % of before.

    python benchmarks/console.py            # print the table
    python benchmarks/console.py --write    # also update docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

import common
from common import DATASETS

START, END = "<!-- console:start -->", "<!-- console:end -->"
PAGE_TARGET_MS = 100.0
SERVING_TOLERANCE = 0.95
REPEATS, WARMUP = 50, 3
WRK_SECONDS, WRK_CONNECTIONS = 10, 4
ML_100K = DATASETS / "ml-100k"
ITEMS_SCHEMA = {
    "type": "record",
    "name": "Items",
    "namespace": "com.amazonaws.personalize.schema",
    "fields": [
        {"name": "ITEM_ID", "type": "string"},
        {"name": "TITLE", "type": "string", "categorical": True},
        {"name": "GENRES", "type": "string", "categorical": True},
    ],
    "version": "1.0",
}


def write_items(dest: Path) -> None:
    """u.item (Latin-1, '|'-separated, 19 genre flags) -> ITEM_ID,TITLE,GENRES."""
    genres = [
        line.split("|")[0]
        for line in (ML_100K / "u.genre").read_text(encoding="latin-1").splitlines()
        if line
    ]
    rows = ["ITEM_ID,TITLE,GENRES"]
    for line in (ML_100K / "u.item").read_text(encoding="latin-1").splitlines():
        fields = line.split("|")
        flags = fields[5:]
        genre = next((genres[i] for i, flag in enumerate(flags) if flag == "1"), "unknown")
        title = fields[1].replace('"', "'")
        rows.append(f'{fields[0]},"{title}",{genre}')
    dest.write_text("\n".join(rows) + "\n", encoding="utf-8")


def timed_get(port: int, path: str, cookie: str) -> tuple[float, int, str]:
    """One page as a browser asks for it: (milliseconds, status, set-cookie)."""
    started = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    connection.request("GET", path, headers={"Cookie": cookie} if cookie else {})
    response = connection.getresponse()
    response.read()
    connection.close()
    return (
        (time.perf_counter() - started) * 1000,
        response.status,
        response.headers.get("set-cookie", ""),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args(argv)
    if not (ML_100K / "u.data").exists():
        print(f"skipped: {ML_100K} is not there")
        return 0
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        bucket = root / "s3" / "bench"
        bucket.mkdir(parents=True)
        common.convert_ratings(ML_100K / "u.data", bucket / "ratings.csv", tab_separated=True)
        write_items(bucket / "items.csv")
        server = common.start_server(root / "server", root / "s3", workers="2")
        try:
            return run(server, bucket, args.write)
        finally:
            server.stop()


def run(server, bucket: Path, write: bool) -> int:  # type: ignore[no-untyped-def]
    import json
    import os

    load = os.getloadavg()[0]

    client = server.client()
    group = common.create_group(client, "console-ml-100k")
    interactions = common.create_dataset(
        client, group, "console-ratings", "Interactions", json.dumps(common.INTERACTIONS_RATINGS)
    )
    items = common.create_dataset(client, group, "console-items", "Items", json.dumps(ITEMS_SCHEMA))
    common.import_data(
        client, interactions, "console-ratings", "s3://bench/ratings.csv", server.log
    )
    common.import_data(client, items, "console-items", "s3://bench/items.csv", server.log)
    versions = {}
    for recipe in ("aws-popularity-count", "aws-user-personalization"):
        solution = common.create_solution(client, group, f"console-{recipe}", recipe)
        versions[recipe] = common.train_version(client, solution, server.log)["solutionVersionArn"]
    campaign = client.create_campaign(
        name="console-campaign", solutionVersionArn=versions["aws-user-personalization"]
    )["campaignArn"]
    common.wait_active(client.describe_campaign, "campaign", campaign, server.log())
    genre = client.create_filter(
        name="console-genre",
        datasetGroupArn=group,
        filterExpression="INCLUDE ItemID WHERE Items.GENRES IN ($GENRE)",
    )["filterArn"]
    common.wait_active(client.describe_filter, "filter", genre, server.log())
    client.create_event_tracker(name="console-tracker", datasetGroupArn=group)

    script = bucket.parent.parent / "recommendations.lua"
    script.write_text(
        common.wrk_script(
            json.dumps({"campaignArn": campaign, "userId": "%s", "numResults": 25}),
            [str(user) for user in range(1, 944)],
        )
    )
    url = server.endpoint_url + "/recommendations"
    common.run_wrk(url, script, seconds=2, connections=WRK_CONNECTIONS)  # warm-up
    before = common.run_wrk(url, script, seconds=WRK_SECONDS, connections=WRK_CONNECTIONS)

    def page(name: str, **query: str) -> str:
        return f"/console{name}" + (f"?{urlencode(query)}" if query else "")

    pages = [
        ("dataset groups", page("")),
        ("dataset group", page("/group", arn=group)),
        (
            "solution version (metrics chart)",
            page("/version", arn=versions["aws-user-personalization"]),
        ),
        ("campaign", page("/campaign", arn=campaign)),
        ("campaign, try-it for user 42", page("/campaign", arn=campaign, userId="42")),
        (
            "campaign, try-it with genre filter",
            page(
                "/campaign", arn=campaign, userId="42", filterArn=genre, **{"fv.GENRE": '"Comedy"'}
            ),
        ),
    ]
    _, _, set_cookie = timed_get(server.port, page(""), "")
    cookie = set_cookie.split(";", 1)[0]
    lines = ["| page | p50 ms | p95 ms | max ms | bytes |", "|---|---:|---:|---:|---:|"]
    verdicts = []
    worst = 0.0
    for label, path in pages:
        for _ in range(WARMUP):
            _, status, _ = timed_get(server.port, path, cookie)
            assert status == 200, (label, status)
        times = sorted(timed_get(server.port, path, cookie)[0] for _ in range(REPEATS))
        p95 = times[int(0.95 * (len(times) - 1))]
        worst = max(worst, p95)
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        connection.request("GET", path, headers={"Cookie": cookie})
        size = len(connection.getresponse().read())
        connection.close()
        lines.append(
            f"| {label} | {statistics.median(times):.1f} | {p95:.1f} | {times[-1]:.1f} | {size:,} |"
        )
    after = common.run_wrk(url, script, seconds=WRK_SECONDS, connections=WRK_CONNECTIONS)
    lines += [
        "",
        "| GetRecommendations (wrk, raw HTTP) | requests/s | p50 ms | p99 ms | non-2xx |",
        "|---|---:|---:|---:|---:|",
        f"| before any console request | {before['rate']:,.0f} | {before['p50']:.2f} | "
        f"{before['p99']:.2f} | {before['errors']:.0f} |",
        f"| after the console answered | {after['rate']:,.0f} | {after['p50']:.2f} | "
        f"{after['p99']:.2f} | {after['errors']:.0f} |",
    ]
    verdicts.append(
        f"{'met' if worst < PAGE_TARGET_MS else 'MISSED'}: every console page's p95 < "
        f"{PAGE_TARGET_MS:.0f} ms on ML-100K (slowest p95 {worst:.1f} ms)"
    )
    ratio = after["rate"] / before["rate"] if before["rate"] else 0.0
    verdicts.append(
        f"{'met' if ratio >= SERVING_TOLERANCE else 'MISSED'}: GetRecommendations with the "
        f"console in use at {ratio:.1%} of its rate before (target >= {SERVING_TOLERANCE:.0%})"
    )
    text = "\n".join(lines)
    print(text)
    for verdict in verdicts:
        print(f"- {verdict}")
    if write:
        common.write_report(
            START,
            END,
            "Web console page times (ML-100K)",
            f"`python benchmarks/console.py --write`; {common.machine('jinja2')}. One server "
            "process, two job workers, ML-100K (100,000 ratings, 943 users, 1,682 items with "
            "TITLE and GENRES), aws-popularity-count and aws-user-personalization trained, a "
            f"campaign of the latter. Each page fetched {REPEATS} times after {WARMUP} warm-up "
            "requests, one at a time, each on a new connection with the session cookie (as a "
            f"browser asks); wrk {WRK_CONNECTIONS} connections, {WRK_SECONDS} s per row. "
            f"Load average when it started: {load:.1f} (other work on the same cores makes "
            "the wrk rows noisy).",
            text,
            verdicts,
        )
    return 1 if any(v.startswith("MISSED") for v in verdicts) else 0


if __name__ == "__main__":
    sys.exit(main())
