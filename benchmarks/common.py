"""What the benchmark scripts share: paths, the machine description, docs sections."""

from __future__ import annotations

import datetime as dt
import importlib
import json
import os
import platform
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DATASETS = REPO / ".." / "shared" / "datasets"
DOC = REPO / "docs" / "benchmarks.md"

# MovieLens ratings as our benchmarks import them: every rating an interaction.
INTERACTIONS_RATINGS = {
    "type": "record",
    "name": "Interactions",
    "namespace": "com.amazonaws.personalize.schema",
    "fields": [
        {"name": "USER_ID", "type": "string"},
        {"name": "ITEM_ID", "type": "string"},
        {"name": "TIMESTAMP", "type": "long"},
        {"name": "EVENT_VALUE", "type": ["null", "float"]},
    ],
    "version": "1.0",
}


def cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def machine(*libraries: str) -> str:
    """Cores, CPU model, RAM, Python and the given libraries' versions, and the date."""
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = "unknown RAM"
    try:
        match = re.search(r"MemTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text())
        if match:
            ram = f"{int(match.group(1)) / 1024**2:.1f} GiB RAM"
    except OSError:
        pass
    versions = ", ".join(
        f"{name} {importlib.import_module(name).__version__}" for name in libraries
    )
    date = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
    return (
        f"{cores()} cores ({cpu}), {ram}; Python {platform.python_version()}"
        f"{', ' + versions if versions else ''}; {date}"
    )


def write_section(start: str, end: str, text: str) -> None:
    """Replace one script's section of docs/benchmarks.md (append it if missing)."""
    current = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    if start in current and end in current:
        updated = current.split(start, 1)[0] + text + current.split(end, 1)[1]
    else:
        updated = current.rstrip("\n") + "\n\n" + text + "\n"
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(updated)


def write_report(
    start: str, end: str, title: str, intro: str, table: str, verdicts: list[str]
) -> None:
    """Write one script's section: heading, how it was run, its table and its verdicts."""
    bullets = "\n".join(f"- {verdict}" for verdict in verdicts)
    write_section(start, end, f"{start}\n## {title}\n\n{intro}\n\n{table}\n\n{bullets}\n{end}")
    print(f"\nwrote {DOC}")


def require_active(description: dict, log: str = "") -> None:
    if description.get("status") != "ACTIVE":
        raise SystemExit(f"not ACTIVE: {description}\n{log}")


# ------------------------------------------------------------ a real server, driven by boto3


def bench_name(key: str, prefix: str = "bench-") -> str:
    """A resource name (letters, digits, '-') derived from a data set's key."""
    return prefix + re.sub(r"[^a-zA-Z0-9-]", "-", key)[:40]


def start_server(directory: Path, s3_root: Path, **settings: str) -> Any:
    """A fresh `openpersonalize serve` subprocess (one worker unless told) over `s3_root`."""
    from openpersonalize.testing.server import ServerProcess

    env = {"PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    server = ServerProcess(
        directory,
        settings={"s3_local_root": str(s3_root), "workers": "1", **settings},
        environment=env,
    )
    server.start()
    return server


def wait_active(describe: Any, key: str, arn: str, log: str = "", timeout: float = 3600.0) -> dict:
    """Poll a Describe call until the resource settles; exit unless it is ACTIVE."""
    from openpersonalize.testing.server import wait_for_status

    description = wait_for_status(  # polls every 0.05 s
        describe,
        key,
        f"{key}Arn",
        arn,
        statuses=("ACTIVE", "CREATE FAILED", "CREATE STOPPED"),
        timeout=timeout,
    )
    require_active(description, log)
    return description


def create_group(client: Any, name: str) -> str:
    group = client.create_dataset_group(name=name)["datasetGroupArn"]
    wait_active(client.describe_dataset_group, "datasetGroup", group)
    return group


def create_dataset(client: Any, group: str, name: str, dataset_type: str, schema: str) -> str:
    schema_arn = client.create_schema(name=name, schema=schema)["schemaArn"]
    dataset = client.create_dataset(
        name=name, datasetGroupArn=group, schemaArn=schema_arn, datasetType=dataset_type
    )["datasetArn"]
    wait_active(client.describe_dataset, "dataset", dataset)
    return dataset


def import_data(
    client: Any, dataset: str, name: str, location: str, log: Callable[[], str] = str
) -> dict:
    """A FULL import of `location` into `dataset`, waited for; exits unless it is ACTIVE."""
    job = client.create_dataset_import_job(
        jobName=name, datasetArn=dataset, dataSource={"dataLocation": location}, importMode="FULL"
    )["datasetImportJobArn"]
    return wait_active(client.describe_dataset_import_job, "datasetImportJob", job, log())


def create_solution(client: Any, group: str, name: str, recipe: str | None, **extra: Any) -> str:
    """A solution (no automatic training), waited for until ACTIVE."""
    recipe_arg = {"recipeArn": f"arn:aws:personalize:::recipe/{recipe}"} if recipe else {}
    solution = client.create_solution(
        name=name[:63], datasetGroupArn=group, performAutoTraining=False, **recipe_arg, **extra
    )["solutionArn"]
    wait_active(client.describe_solution, "solution", solution)
    return solution


def train_version(client: Any, solution: str, log: Callable[[], str] = str) -> dict:
    """CreateSolutionVersion, waited for; exits unless it ends ACTIVE."""
    arn = client.create_solution_version(solutionArn=solution)["solutionVersionArn"]
    return wait_active(client.describe_solution_version, "solutionVersion", arn, log())


def convert_ratings(source: Path, dest: Path, *, tab_separated: bool = False) -> Any:
    """MovieLens ratings (ratings.csv, or ML-100K's tab-separated u.data) -> a CSV with the
    header USER_ID,ITEM_ID,TIMESTAMP,EVENT_VALUE; returns the converted pyarrow table."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    if tab_separated:  # u.data: user item rating timestamp, no header
        table = pacsv.read_csv(
            source,
            read_options=pacsv.ReadOptions(
                column_names=["userId", "movieId", "rating", "timestamp"]
            ),
            parse_options=pacsv.ParseOptions(delimiter="\t"),
        )
    else:  # ratings.csv: userId,movieId,rating,timestamp
        table = pacsv.read_csv(source)
    table = pa.table(
        {
            "USER_ID": table["userId"].cast(pa.string()),
            "ITEM_ID": table["movieId"].cast(pa.string()),
            "TIMESTAMP": table["timestamp"].cast(pa.int64()),
            "EVENT_VALUE": table["rating"].cast(pa.float64()),
        }
    )
    with open(dest, "wb") as out:
        out.write(b"USER_ID,ITEM_ID,TIMESTAMP,EVENT_VALUE\n")
        pacsv.write_csv(table, out, pacsv.WriteOptions(include_header=False, quoting_style="none"))
    return table


# ------------------------------------------------------------ wrk, a C load generator


def wrk_script(body_template: str, users: list[str]) -> str:
    """A wrk Lua script: POST /recommendations with `body_template` (one %s: the user) for
    each user of the cycle in turn."""
    quoted = ", ".join(json.dumps(user) for user in users)
    return f"""
local users = {{{quoted}}}
local n = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  n = n % #users + 1
  local body = string.format({json.dumps(body_template)}, users[n])
  return wrk.format(nil, "/recommendations", nil, body)
end
"""


def run_wrk(
    url: str, script: Path | None, *, seconds: int, connections: int, threads: int = 2
) -> dict[str, float]:
    """One wrk run: requests/s, p50/p99 ms and non-2xx answers."""
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency"]
    if script is not None:
        command += ["-s", str(script)]
    output = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )

    def percentile(label: str) -> float:
        match = re.search(rf"\s{label}%\s+([\d.]+)(us|ms|s)", output)
        assert match, output
        value, unit = float(match.group(1)), match.group(2)
        return value * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    failed = int(errors.group(1)) if errors else 0
    if socket_errors:
        failed += sum(int(n) for n in socket_errors.groups())
    return {"rate": rate, "p50": percentile("50"), "p99": percentile("99"), "errors": float(failed)}
