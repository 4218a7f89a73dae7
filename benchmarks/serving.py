"""Serving speed: GetRecommendations through boto3 over HTTP, with and without a filter.

Per catalog a fresh ``openpersonalize serve`` (``workers=1``, so no idle training
workers compete) with the CSVs under its local S3 root; Interactions and Items
imported via boto3, aws-user-personalization trained (performAutoTraining=False),
a campaign deployed with ``explorationWeight "0"`` and an item filter
``INCLUDE ItemID WHERE Items.<genre column> IN ($GENRE)`` created.

Catalogs: MovieLens ml-latest-small (ratings.csv as USER_ID,ITEM_ID,TIMESTAMP,
EVENT_VALUE; movies.csv as Items with TITLE textual and GENRES categorical,
'|'-separated), filtered to "Comedy"; and a generated catalog of 100k items
(``write_interactions_csv(path, 2_000_000, n_items=100_000, seed=0)`` plus an Items
CSV with a categorical GENRE of 10 values g0..g9), filtered to "g3".

The load comes from client *processes* (``multiprocessing``, spawn), each with its
own boto3 personalize-runtime client and one request in flight at a time, over a
seeded shuffle of known user IDs (default numResults, 25). Every process first
sends a few warm-up requests; then all start together and send requests for a
fixed duration. requests/s counts the requests completed inside that window;
p50/p99 are client-side latencies (boto3 call to parsed response). Server CPU
ms/req is the server process's user+system CPU over the window per request. The
clients and the server share the same cores.

The targets are judged on the boto3 runs. The same load is also sent by "raw
HTTP" clients (``http.client`` keep-alive, the same POST /recommendations JSON
body boto3 sends, unsigned since the server needs no authentication on loopback),
whose client CPU per request is a fraction of boto3's: those rows show what the
server itself can serve on the cores the clients leave it.

    python benchmarks/serving.py            # print the Markdown tables and targets
    python benchmarks/serving.py --write    # also update docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import common
from common import DATASETS, DOC, REPO

START, END = "<!-- serving:start -->", "<!-- serving:end -->"


def machine() -> str:
    return common.machine("numpy", "pyarrow", "boto3", "uvicorn")


def write_doc(text: str) -> None:
    common.write_section(START, END, text)


BUCKET = "bench"
RECIPE_NAME = "aws-user-personalization"

ML_LATEST_SMALL = "ml-latest-small"
GENERATED_100K = "generated 100k items"
GENERATED_ROWS = 2_000_000
GENERATED_ITEMS = 100_000
GENERATED_GENRES = 10

NO_FILTER, WITH_FILTER = "no filter", "filter"
HEALTH = "GET /health (do-nothing)"
BOTO3, RAW_HTTP, WRK = "boto3", "raw HTTP", "wrk"
# wrk (a C load generator: its CPU per request is tiny) against the server's own ceiling.
WRK_CONNECTIONS = (4, 16)
WRK_SECONDS = 10
TARGET_WRK_RPS = {
    ML_LATEST_SMALL: {NO_FILTER: 4000.0, WITH_FILTER: 3000.0},
    GENERATED_100K: {NO_FILTER: 2000.0},
}
TARGET_WRK_P99_MS = {ML_LATEST_SMALL: 10.0, GENERATED_100K: 20.0}
TARGET_WRK_SHARE_OF_HEALTH = 0.20  # ml-latest-small without a filter
# Targets on the 2-core reference machine, per catalog.
TARGET_RPS = {NO_FILTER: 1000.0, WITH_FILTER: 500.0}
TARGET_P99_MS = 20.0  # without a filter, at the concurrency that reaches TARGET_RPS

MAX_USERS = 5000  # distinct known users the clients cycle through
WARMUP_REQUESTS = 5  # per client process and configuration, not measured

ITEMS_MOVIES = {
    "type": "record",
    "name": "Items",
    "namespace": "com.amazonaws.personalize.schema",
    "fields": [
        {"name": "ITEM_ID", "type": "string"},
        {"name": "TITLE", "type": "string", "textual": True},
        {"name": "GENRES", "type": ["null", "string"], "categorical": True},
    ],
    "version": "1.0",
}
ITEMS_GENERATED = {
    "type": "record",
    "name": "Items",
    "namespace": "com.amazonaws.personalize.schema",
    "fields": [
        {"name": "ITEM_ID", "type": "string"},
        {"name": "GENRE", "type": "string", "categorical": True},
    ],
    "version": "1.0",
}


@dataclass
class Catalog:
    """One catalog, ready to import from the local S3 root."""

    label: str
    interactions_key: str
    interactions_schema: str
    items_key: str
    items_schema: str
    filter_expression: str
    filter_values: dict[str, str]
    rows: int = 0
    users: int = 0
    items: int = 0
    user_ids: list[str] = field(default_factory=list)


@dataclass
class Point:
    """One configuration at one concurrency, with one kind of client."""

    client: str
    configuration: str
    concurrency: int
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int
    server_cpu_ms: float  # server process CPU per request over the window
    client_cpu_ms: float  # all client processes' CPU per request over the window

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0


@dataclass
class Result:
    catalog: Catalog
    train_seconds: float = float("nan")
    points: list[Point] = field(default_factory=list)

    def runs(self, client: str, configuration: str) -> list[Point]:
        return [p for p in self.points if p.client == client and p.configuration == configuration]

    def best(self, client: str, configuration: str) -> Point | None:
        points = self.runs(client, configuration)
        return max(points, key=lambda p: p.rps) if points else None

    def at(self, client: str, configuration: str, concurrency: int) -> Point | None:
        for p in self.runs(client, configuration):
            if p.concurrency == concurrency:
                return p
        return None


# ---------------------------------------------------------------- preparing data


def prepare(root: Path, labels: list[str]) -> tuple[list[Catalog], list[str]]:
    """Write every available catalog under ``root/BUCKET`` (not timed); also the skipped."""
    bucket = root / BUCKET
    bucket.mkdir(parents=True, exist_ok=True)
    catalogs: list[Catalog] = []
    skipped: list[str] = []

    if ML_LATEST_SMALL in labels:
        ratings = DATASETS / "ml-latest-small" / "ratings.csv"
        movies = DATASETS / "ml-latest-small" / "movies.csv"
        if ratings.is_file() and movies.is_file():
            catalog = Catalog(
                ML_LATEST_SMALL,
                "ml-latest-small.csv",
                json.dumps(common.INTERACTIONS_RATINGS),
                "ml-latest-small-items.csv",
                json.dumps(ITEMS_MOVIES),
                "INCLUDE ItemID WHERE Items.GENRES IN ($GENRE)",
                {"GENRE": '"Comedy"'},
            )
            common.convert_ratings(ratings, bucket / catalog.interactions_key)
            _convert_movies(movies, bucket / catalog.items_key)
            _describe(bucket / catalog.interactions_key, catalog)
            catalogs.append(catalog)
        else:
            print(f"skipping {ML_LATEST_SMALL}: {ratings} or {movies} not found", file=sys.stderr)
            skipped.append(ML_LATEST_SMALL)

    if GENERATED_100K in labels:
        from openpersonalize.testing.synthetic import (
            INTERACTIONS_SCHEMA_JSON,
            write_interactions_csv,
        )

        catalog = Catalog(
            GENERATED_100K,
            "generated-100k.csv",
            INTERACTIONS_SCHEMA_JSON,
            "generated-100k-items.csv",
            json.dumps(ITEMS_GENERATED),
            "INCLUDE ItemID WHERE Items.GENRE IN ($GENRE)",
            {"GENRE": '"g3"'},
        )
        started = time.perf_counter()
        write_interactions_csv(
            bucket / catalog.interactions_key, GENERATED_ROWS, n_items=GENERATED_ITEMS, seed=0
        )
        _generated_items(bucket / catalog.items_key)
        print(
            f"generated {GENERATED_ROWS:,} rows in {time.perf_counter() - started:.1f} s",
            file=sys.stderr,
        )
        _describe(bucket / catalog.interactions_key, catalog)
        catalogs.append(catalog)
    return catalogs, skipped


def _convert_movies(source: Path, dest: Path) -> None:
    """movieId,title,genres -> ITEM_ID,TITLE,GENRES (titles quoted where needed)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    table = pacsv.read_csv(source)
    table = pa.table(
        {
            "ITEM_ID": table["movieId"].cast(pa.string()),
            "TITLE": table["title"].cast(pa.string()),
            "GENRES": table["genres"].cast(pa.string()),
        }
    )
    with open(dest, "wb") as out:
        out.write(b"ITEM_ID,TITLE,GENRES\n")
        pacsv.write_csv(table, out, pacsv.WriteOptions(include_header=False))


def _generated_items(dest: Path) -> None:
    """ITEM_ID i0..i99999 (the IDs write_interactions_csv uses), GENRE g0..g9 at random."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv

    rng = np.random.default_rng(1)
    numbers = pc.cast(pa.array(np.arange(GENERATED_ITEMS)), pa.string())
    genres = pc.cast(pa.array(rng.integers(0, GENERATED_GENRES, GENERATED_ITEMS)), pa.string())
    table = pa.table(
        {
            "ITEM_ID": pc.binary_join_element_wise("i", numbers, ""),
            "GENRE": pc.binary_join_element_wise("g", genres, ""),
        }
    )
    with open(dest, "wb") as out:
        out.write(b"ITEM_ID,GENRE\n")
        pacsv.write_csv(table, out, pacsv.WriteOptions(include_header=False, quoting_style="none"))


def _describe(path: Path, catalog: Catalog) -> None:
    """Counts, and a seeded sample of known user IDs for the clients."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv

    table = pacsv.read_csv(
        path,
        convert_options=pacsv.ConvertOptions(
            column_types={"USER_ID": pa.string(), "ITEM_ID": pa.string()},
            include_columns=["USER_ID", "ITEM_ID"],
        ),
    )
    users = pc.unique(table["USER_ID"]).to_pylist()
    catalog.rows = table.num_rows
    catalog.users = len(users)
    catalog.items = len(pc.unique(table["ITEM_ID"]))
    rng = np.random.default_rng(0)
    order = rng.permutation(len(users))[:MAX_USERS]
    catalog.user_ids = [users[i] for i in order]


# ------------------------------------------------------------------ client processes


def _client_main(connection: Any) -> None:
    """One client process: one client per kind and endpoint, one request in flight at a time.

    Commands: ("prepare", options) -> warm up, answer "ready"; ("go", start_at,
    seconds) -> measure, answer the figures; ("stop",) -> exit.
    """
    clients: dict[tuple[str, str], Any] = {}
    options: dict[str, Any] = {}
    send: Any = None
    while True:
        command = connection.recv()
        if command[0] == "stop":
            return
        if command[0] == "prepare":
            options = command[1]
            key = (options["client"], options["endpoint_url"])
            if key not in clients:
                clients[key] = _new_client(*key)
            elif options["client"] == RAW_HTTP:
                clients[key].close()  # a fresh connection: the port may be a new server's
            send = _sender(options["client"], clients[key], dict(options["request"]))
            users = options["users"]
            try:
                for i in range(WARMUP_REQUESTS):
                    send(users[i % len(users)])
            except Exception as error:
                connection.send(f"warm-up failed: {error!r}"[:500])
                continue
            connection.send("ready")
            continue
        _, start_at, seconds = command
        users = options["users"]
        offset = options["offset"]
        latencies: list[float] = []
        errors: list[str] = []
        completed = 0
        end_at = start_at + seconds
        while time.time() < start_at:
            time.sleep(0.0005)
        cpu_start = time.process_time()
        i = offset
        while time.time() < end_at:
            started = time.perf_counter()
            try:
                send(users[i % len(users)])
            except Exception as error:  # counted and reported, the run goes on
                errors.append(repr(error)[:300])
            latencies.append(time.perf_counter() - started)
            if time.time() <= end_at:
                completed += 1
            i += 1
        cpu = time.process_time() - cpu_start
        connection.send(
            {"latencies": latencies, "completed": completed, "errors": errors, "cpu": cpu}
        )


def _new_client(kind: str, endpoint_url: str) -> Any:
    if kind == BOTO3:
        import boto3
        from botocore.config import Config

        return boto3.client(
            "personalize-runtime",
            endpoint_url=endpoint_url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=Config(retries={"max_attempts": 0}, connect_timeout=5, read_timeout=60),
        )
    import http.client
    import urllib.parse

    address = urllib.parse.urlsplit(endpoint_url)
    return http.client.HTTPConnection(address.hostname, address.port, timeout=60)


def _sender(kind: str, client: Any, request: dict[str, Any]) -> Any:
    """A function sending one GetRecommendations for a user and parsing the answer."""
    if kind == BOTO3:

        def send_boto3(user: str) -> None:
            client.get_recommendations(userId=user, **request)

        return send_boto3
    headers = {"Content-Type": "application/json"}

    def send_http(user: str) -> None:
        try:
            client.request(
                "POST", "/recommendations", json.dumps({**request, "userId": user}), headers
            )
            response = client.getresponse()
            body = response.read()
        except Exception:
            client.close()  # reconnects on the next request
            raise
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}: {body[:200]!r}")
        json.loads(body)

    return send_http


class Fleet:
    """A fixed set of client processes, reused across configurations."""

    def __init__(self, size: int) -> None:
        context = mp.get_context("spawn")
        self.connections = []
        self.processes = []
        for _ in range(size):
            parent, child = context.Pipe()
            process = context.Process(target=_client_main, args=(child,), daemon=True)
            process.start()
            self.connections.append(parent)
            self.processes.append(process)

    def run(
        self,
        client: str,
        concurrency: int,
        endpoint_url: str,
        request: dict[str, Any],
        users: list[str],
        seconds: float,
        server_pid: int,
    ) -> dict[str, Any]:
        active = self.connections[:concurrency]
        for n, connection in enumerate(active):
            offset = n * len(users) // concurrency
            connection.send(
                (
                    "prepare",
                    {
                        "client": client,
                        "endpoint_url": endpoint_url,
                        "request": request,
                        "users": users,
                        "offset": offset,
                    },
                )
            )
        for connection in active:
            answer = connection.recv()
            if answer != "ready":
                raise SystemExit(f"a client process failed to warm up: {answer}")
        start_at = time.time() + 0.3
        for connection in active:
            connection.send(("go", start_at, seconds))
        while time.time() < start_at:
            time.sleep(0.0005)
        cpu_before = _process_cpu_seconds(server_pid)
        time.sleep(max(0.0, start_at + seconds - time.time()))
        cpu_after = _process_cpu_seconds(server_pid)
        answers = [connection.recv() for connection in active]
        return {
            "latencies": [x for a in answers for x in a["latencies"]],
            "completed": sum(a["completed"] for a in answers),
            "errors": [e for a in answers for e in a["errors"]],
            "client_cpu": sum(a["cpu"] for a in answers),
            "server_cpu": cpu_after - cpu_before,
        }

    def stop(self) -> None:
        for connection in self.connections:
            try:
                connection.send(("stop",))
            except OSError:
                pass
        for process in self.processes:
            process.join(5)
            if process.is_alive():
                process.terminate()
                process.join()


def _process_cpu_seconds(pid: int) -> float:
    """utime + stime of the server: its process and every process under it (the HTTP
    processes sharing its port, the job workers), all threads, from /proc."""
    total = 0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # fields 14 and 15 of stat(5)
            for task in Path(f"/proc/{current}/task").iterdir():
                pending += [int(child) for child in (task / "children").read_text().split()]
        except OSError:
            continue  # a process that ended meanwhile
    return total / os.sysconf("SC_CLK_TCK")


# ------------------------------------------------------------------------ measuring


def measure(
    root: Path,
    catalog: Catalog,
    work: Path,
    fleet: Fleet,
    concurrencies: list[int],
    seconds: float,
    clients: list[str],
    http_processes: int,
) -> Result:
    """Deploy one catalog on a fresh real server, then load it at each concurrency."""
    import numpy as np

    server = common.start_server(
        work / f"{catalog.interactions_key}.server", root, http_processes=str(http_processes)
    )
    result = Result(catalog)
    try:
        client = server.client("personalize")
        name = common.bench_name(catalog.interactions_key)
        group = common.create_group(client, name)
        for dataset_type, schema_text, key in (
            ("Interactions", catalog.interactions_schema, catalog.interactions_key),
            ("Items", catalog.items_schema, catalog.items_key),
        ):
            dataset_name = f"{name}-{dataset_type}"
            dataset = common.create_dataset(client, group, dataset_name, dataset_type, schema_text)
            common.import_data(client, dataset, dataset_name, f"s3://{BUCKET}/{key}", server.log)

        print(f"  training aws-user-personalization on {catalog.label} ...", file=sys.stderr)
        solution = common.create_solution(client, group, f"{name}-up", RECIPE_NAME)
        started = time.perf_counter()
        version = common.train_version(client, solution, server.log)["solutionVersionArn"]
        result.train_seconds = time.perf_counter() - started
        campaign = client.create_campaign(
            name=f"{name}-campaign",
            solutionVersionArn=version,
            campaignConfig={"itemExplorationConfig": {"explorationWeight": "0"}},
        )["campaignArn"]
        common.wait_active(client.describe_campaign, "campaign", campaign, server.log())
        filter_arn = client.create_filter(
            name=f"{name}-genre", datasetGroupArn=group, filterExpression=catalog.filter_expression
        )["filterArn"]
        common.wait_active(client.describe_filter, "filter", filter_arn)

        requests = {
            NO_FILTER: {"campaignArn": campaign},
            WITH_FILTER: {
                "campaignArn": campaign,
                "filterArn": filter_arn,
                "filterValues": catalog.filter_values,
            },
        }
        runtime = server.client("personalize-runtime")
        for request in requests.values():  # loads the model, the catalog and the filter
            for user in catalog.user_ids[:50]:
                items = runtime.get_recommendations(userId=user, **request)["itemList"]
                if len(items) != 25:
                    raise SystemExit(f"expected 25 recommendations, got {len(items)}: {request}")

        server_pid = server.process.pid  # type: ignore[union-attr]
        if WRK in clients:
            result.points += _wrk_points(server, requests, catalog, work, server_pid)
        runs = [(c, n, r) for c in clients if c != WRK for n, r in requests.items()]
        for client_kind, configuration, request in runs:
            for concurrency in concurrencies:
                figures = fleet.run(
                    client_kind,
                    concurrency,
                    server.endpoint_url,
                    request,
                    catalog.user_ids,
                    seconds,
                    server_pid,
                )
                latencies_ms = np.array(figures["latencies"]) * 1000
                completed = max(figures["completed"], 1)
                point = Point(
                    client_kind,
                    configuration,
                    concurrency,
                    figures["completed"],
                    seconds,
                    float(np.percentile(latencies_ms, 50)) if len(latencies_ms) else float("nan"),
                    float(np.percentile(latencies_ms, 99)) if len(latencies_ms) else float("nan"),
                    len(figures["errors"]),
                    figures["server_cpu"] * 1000 / completed,
                    figures["client_cpu"] * 1000 / completed,
                )
                result.points.append(point)
                print(
                    f"  {catalog.label}, {client_kind}, {configuration}, {concurrency} clients: "
                    f"{point.rps:,.0f} req/s, p50 {point.p50_ms:.1f} ms, p99 {point.p99_ms:.1f} "
                    f"ms, server CPU {point.server_cpu_ms:.2f} ms/req, client CPU "
                    f"{point.client_cpu_ms:.2f} ms/req, {point.errors} errors",
                    file=sys.stderr,
                )
                for error in figures["errors"][:3]:
                    print(f"    error: {error}", file=sys.stderr)
    finally:
        server.stop()
    return result


def _wrk_points(
    server: Any, requests: dict[str, dict[str, Any]], catalog: Catalog, work: Path, pid: int
) -> list[Point]:
    """wrk on GET /health and on each configuration, at each connection count."""
    points = []
    targets: list[tuple[str, Path | None]] = [(HEALTH, None)]
    for configuration, request in requests.items():
        body = json.dumps({**request, "userId": "USER"}).replace('"USER"', '"%s"')
        script = work / f"{catalog.interactions_key}-{configuration.replace(' ', '-')}.lua"
        script.write_text(common.wrk_script(body, catalog.user_ids))
        targets.append((configuration, script))
    for configuration, script in targets:
        url = server.endpoint_url + ("/health" if script is None else "")
        for connections in WRK_CONNECTIONS:
            cpu_before = _process_cpu_seconds(pid)
            figures = common.run_wrk(url, script, seconds=WRK_SECONDS, connections=connections)
            cpu = _process_cpu_seconds(pid) - cpu_before
            requests_done = figures["rate"] * WRK_SECONDS
            point = Point(
                WRK,
                configuration,
                connections,
                int(requests_done),
                float(WRK_SECONDS),
                figures["p50"],
                figures["p99"],
                int(figures["errors"]),
                cpu * 1000 / max(requests_done, 1),
                float("nan"),
            )
            points.append(point)
            print(
                f"  {catalog.label}, wrk, {configuration}, {connections} connections: "
                f"{point.rps:,.0f} req/s, p50 {point.p50_ms:.2f} ms, p99 {point.p99_ms:.2f} ms, "
                f"{point.errors} errors",
                file=sys.stderr,
            )
    return points


def check_wrk_targets(results: list[Result]) -> list[str]:
    verdicts = []
    for result in results:
        label = result.catalog.label
        health = result.best(WRK, HEALTH)
        for configuration, target in TARGET_WRK_RPS.get(label, {}).items():
            p99_limit = TARGET_WRK_P99_MS[label] if configuration == NO_FILTER else None
            runs = [
                p
                for p in result.runs(WRK, configuration)
                if p.errors == 0 and (p99_limit is None or p.p99_ms < p99_limit)
            ]
            best = max(runs, key=lambda p: p.rps) if runs else result.best(WRK, configuration)
            if best is None:
                verdicts.append(f"MISSED: {label}, {configuration} (wrk): not measured")
                continue
            share = best.rps / health.rps if health and health.rps else float("nan")
            ok = bool(runs) and best.rps >= target
            wanted = f"≥ {target:,.0f} requests/s"
            if p99_limit is not None:
                wanted += f" with p99 < {p99_limit:.0f} ms"
            if label == ML_LATEST_SMALL and configuration == NO_FILTER:
                ok = ok and share >= TARGET_WRK_SHARE_OF_HEALTH
                wanted += f" and ≥ {TARGET_WRK_SHARE_OF_HEALTH:.0%} of /health"
            verdicts.append(
                f"{'met' if ok else 'MISSED'}: {label}, {configuration} (wrk): "
                f"{best.rps:,.0f} requests/s, p99 {best.p99_ms:.2f} ms, {best.errors} errors, "
                f"{share:.1%} of /health ({health.rps if health else float('nan'):,.0f}) at "
                f"{best.concurrency} connections (target {wanted}, 0 errors)"
            )
    return verdicts


# A server that answers every request at once with a canned GetRecommendations reply: what a
# boto3 call costs its client when the server costs nothing.
_NULL_SERVER = """
import http.server, json, sys
reply = json.dumps({"itemList": [{"itemId": str(i), "score": 0.04} for i in range(25)],
                    "recommendationId": "RID-canned"}).encode()
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


def boto3_client_floor(calls: int = 2000) -> float:
    """CPU milliseconds one boto3 GetRecommendations call costs its client (signing, request
    building, parsing), against a server that does no work."""
    import subprocess

    null_server = subprocess.Popen(
        [sys.executable, "-c", _NULL_SERVER], stdout=subprocess.PIPE, text=True
    )
    try:
        port = int(null_server.stdout.readline())  # type: ignore[union-attr]
        client = _new_client(BOTO3, f"http://127.0.0.1:{port}")
        campaign = "arn:aws:personalize:us-east-1:000000000000:campaign/null"
        for _ in range(100):
            client.get_recommendations(campaignArn=campaign, userId="u1")
        started = time.process_time()
        for _ in range(calls):
            client.get_recommendations(campaignArn=campaign, userId="u1")
        return (time.process_time() - started) * 1000 / calls
    finally:
        null_server.kill()
        null_server.wait()


def table(result: Result) -> str:
    catalog = result.catalog
    lines = [
        f"**{catalog.label}**: {catalog.rows:,} interactions, {catalog.users:,} users, "
        f"{catalog.items:,} items; filter `{catalog.filter_expression}` with "
        f"`{json.dumps(catalog.filter_values)}`; requests cycle over "
        f"{len(catalog.user_ids):,} known users (training {result.train_seconds:.1f} s, "
        "not counted)",
        "",
        "| client | configuration | concurrency | requests/s | p50 ms | p99 ms "
        "| server CPU ms/req | client CPU ms/req | errors |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for client in (WRK, BOTO3, RAW_HTTP):
        for configuration in (HEALTH, NO_FILTER, WITH_FILTER):
            best = result.best(client, configuration)
            for p in result.runs(client, configuration):
                mark = " (best)" if p is best else ""
                lines.append(
                    f"| {p.client} | {p.configuration} | {p.concurrency}{mark} | {p.rps:,.0f} "
                    f"| {p.p50_ms:.1f} | {p.p99_ms:.1f} | {p.server_cpu_ms:.2f} "
                    f"| {p.client_cpu_ms:.2f} | {p.errors} |"
                )
    return "\n".join(lines)


def check_targets(
    results: list[Result], skipped: list[str], client_floor_ms: float | None = None
) -> list[str]:
    """Per catalog and configuration (boto3 runs): met, MISSED or not checked; then info."""
    verdicts = []
    for label in skipped:
        verdicts.append(f"not checked: {label} (data set absent)")
    for result in results:
        label = result.catalog.label
        best = result.best(BOTO3, NO_FILTER)
        single = result.at(BOTO3, NO_FILTER, 1)
        if best is None:
            verdicts.append(f"MISSED: {label}, {NO_FILTER}: not measured")
        else:
            fast_enough = [
                p
                for p in result.runs(BOTO3, NO_FILTER)
                if p.rps >= TARGET_RPS[NO_FILTER] and p.p99_ms < TARGET_P99_MS and p.errors == 0
            ]
            ok = bool(fast_enough)
            shown = max(fast_enough, key=lambda p: p.rps) if ok else best
            one = (
                f"; at concurrency 1: {single.rps:,.0f} requests/s, p50 {single.p50_ms:.1f} ms, "
                f"p99 {single.p99_ms:.1f} ms"
                if single
                else ""
            )
            verdicts.append(
                f"{'met' if ok else 'MISSED'}: {label}, {NO_FILTER} (boto3): "
                f"{shown.rps:,.0f} requests/s with p99 {shown.p99_ms:.1f} ms at concurrency "
                f"{shown.concurrency}{one} (target ≥ {TARGET_RPS[NO_FILTER]:,.0f} requests/s "
                f"with p99 < {TARGET_P99_MS:.0f} ms at the same concurrency)"
            )
        best = result.best(BOTO3, WITH_FILTER)
        if best is None:
            verdicts.append(f"MISSED: {label}, {WITH_FILTER}: not measured")
        else:
            ok = best.rps >= TARGET_RPS[WITH_FILTER] and best.errors == 0
            verdicts.append(
                f"{'met' if ok else 'MISSED'}: {label}, {WITH_FILTER} (boto3): "
                f"{best.rps:,.0f} requests/s (p50 {best.p50_ms:.1f} ms, p99 {best.p99_ms:.1f} ms) "
                f"at concurrency {best.concurrency} (target ≥ "
                f"{TARGET_RPS[WITH_FILTER]:,.0f} requests/s)"
            )
    for result in results:
        for configuration in (NO_FILTER, WITH_FILTER):
            raw = result.best(RAW_HTTP, configuration)
            if raw is not None:
                verdicts.append(
                    f"info (not a target): {result.catalog.label}, {configuration}, raw HTTP "
                    f"clients: {raw.rps:,.0f} requests/s (p50 {raw.p50_ms:.1f} ms, p99 "
                    f"{raw.p99_ms:.1f} ms) at concurrency {raw.concurrency}, server CPU "
                    f"{raw.server_cpu_ms:.2f} ms/request"
                )
    if client_floor_ms is not None:
        cores_needed = client_floor_ms * TARGET_RPS[NO_FILTER] / 1000
        verdicts.append(
            f"info (not a target): one boto3 GetRecommendations call costs its client "
            f"{client_floor_ms:.2f} ms CPU against a server that answers at once with a canned "
            f"reply, so {TARGET_RPS[NO_FILTER]:,.0f} requests/s through boto3 need "
            f"{cores_needed:.1f} cores for the clients alone; this machine has {common.cores()}"
        )
    return verdicts


def section(
    results: list[Result],
    verdicts: list[str],
    concurrencies: list[int],
    seconds: float,
    clients: list[str],
) -> str:
    raw = (
        " The same load is also sent by *raw HTTP* clients (`http.client` keep-alive, the same "
        "unsigned POST /recommendations JSON body; the server needs no authentication on "
        "loopback) whose client CPU per request is a fraction of boto3's: those rows show what "
        "the server itself serves on the CPU the clients leave it. The targets are judged on "
        "the boto3 rows."
        if RAW_HTTP in clients
        else ""
    )
    body = [
        START,
        "## Serving speed (GetRecommendations)",
        "",
        "`python benchmarks/serving.py --write`. Per catalog a fresh real server "
        "(`ServerProcess`, `workers=1` job worker, its default of one HTTP process per core "
        "sharing the port, the CSVs under its local S3 root); Interactions and "
        "Items imported through the API, aws-user-personalization trained "
        "(`performAutoTraining=False`, default hyperparameters), a campaign deployed with "
        '`itemExplorationConfig.explorationWeight "0"` and a genre filter created. The load '
        "comes from client processes (multiprocessing, spawn), each with its own boto3 "
        "personalize-runtime client and one request in flight, cycling over a seeded shuffle "
        "of known user IDs (numResults 25). After warm-up requests, every configuration runs "
        f"{seconds:g} s at each concurrency ({', '.join(str(c) for c in concurrencies)} client "
        "processes); *requests/s* counts the requests completed in that window, *p50*/*p99* are "
        "client-side latencies (for boto3 the call with signing and parsing). *Server CPU* is "
        "the server process's user+system CPU over the window per request (all its threads), "
        "*client CPU* the client processes' together. **The clients and the server share the "
        f"same {common.cores()} cores** (nothing else runs), so every millisecond of client CPU is "
        "taken from the server; *(best)* marks the concurrency with the highest throughput."
        + raw
        + (
            f" *wrk* rows: `wrk` (a C load generator) with 2 threads and "
            f"{' / '.join(str(c) for c in WRK_CONNECTIONS)} keep-alive connections for "
            f"{WRK_SECONDS} s, a Lua script cycling over the same users with the same JSON "
            "body, beside wrk on the do-nothing `GET /health` in the same run, so the figures "
            "are also a ratio to what the HTTP stack itself can do here; their server CPU is "
            "every server process's together. The wrk targets are judged on these rows."
            if WRK in clients
            else ""
        )
        + " The "
        "ml-latest-small Items are movies.csv (TITLE textual, GENRES categorical with "
        "'|'-separated values); the generated catalog is "
        f"`write_interactions_csv(path, {GENERATED_ROWS:_}, n_items={GENERATED_ITEMS:_}, "
        f"seed=0)` with an Items CSV of a categorical GENRE (g0..g{GENERATED_GENRES - 1}, "
        "uniform at random). The p99 target is checked at a concurrency that also reaches "
        f"{TARGET_RPS[NO_FILTER]:,.0f} requests/s.",
        "",
        f"Machine: {machine()}.",
        "",
    ]
    for result in results:
        body += [table(result), ""]
    body += [*[f"- {v}" for v in verdicts], END]
    return "\n".join(body)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    parser.add_argument(
        "--concurrency",
        type=int,
        nargs="+",
        default=[1, 4, 8, 16],
        help="client processes per run",
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per run")
    parser.add_argument(
        "--catalogs",
        nargs="+",
        default=[ML_LATEST_SMALL, GENERATED_100K],
        choices=[ML_LATEST_SMALL, GENERATED_100K],
    )
    parser.add_argument(
        "--clients",
        nargs="+",
        default=[WRK, BOTO3, RAW_HTTP],
        choices=[WRK, BOTO3, RAW_HTTP],
        help="kinds of client to measure with (targets are judged on boto3)",
    )
    parser.add_argument(
        "--http-processes",
        type=int,
        default=0,
        help="HTTP server processes (0: one per core, the server's default)",
    )
    args = parser.parse_args(argv)
    if WRK in args.clients and shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk), or leave out --clients wrk")

    sys.path.insert(0, str(REPO))
    results: list[Result] = []
    fleet = Fleet(max(args.concurrency))
    try:
        with tempfile.TemporaryDirectory(prefix="serving-bench-") as tmp:
            root, work = Path(tmp, "s3"), Path(tmp, "work")
            work.mkdir()
            catalogs, skipped = prepare(root, args.catalogs)
            for catalog in catalogs:
                print(f"{catalog.label}: importing, training, deploying ...", file=sys.stderr)
                results.append(
                    measure(
                        root,
                        catalog,
                        work,
                        fleet,
                        args.concurrency,
                        args.seconds,
                        args.clients,
                        args.http_processes,
                    )
                )
    finally:
        fleet.stop()
    client_floor_ms = boto3_client_floor() if BOTO3 in args.clients else None
    verdicts = check_wrk_targets(results) + check_targets(results, skipped, client_floor_ms)
    for result in results:
        print(table(result))
        print()
    for v in verdicts:
        print(f"- {v}")
    if args.write:
        write_doc(section(results, verdicts, args.concurrency, args.seconds, args.clients))
        print(f"\nwrote {DOC}")
    return 1 if any(v.startswith("MISSED") for v in verdicts) else 0


if __name__ == "__main__":
    sys.exit(main())
