"""Import speed: CSV -> Parquet time and peak memory per data set, twice.

1. The importer alone: each import runs in a fresh subprocess so its peak RSS is
   its own; the time is measured around ``resolve_data_location`` + ``import_csv``
   only (preparing the CSV and starting Python are not timed).
2. End to end through the real API: a fresh ``openpersonalize serve`` (one worker
   process) per data set, a dataset group, schema and dataset created with boto3,
   then CreateDatasetImportJob is timed until DescribeDatasetImportJob (polled
   every 0.05 s) reports ACTIVE. The worker's VmHWM is read from /proc after the
   job, so it covers that one import (plus the worker's own start-up).

Data sets: MovieLens ml-latest-small ratings, the Retail Demo Store interactions
(read gzipped, as uploaded), and generated files of 1M and 20M rows, all placed
under the server's local S3 root.

    python benchmarks/import_speed.py            # print a Markdown table
    python benchmarks/import_speed.py --write    # also update docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import common
from common import DATASETS, DOC, REPO

START, END = "<!-- import_speed:start -->", "<!-- import_speed:end -->"


def machine() -> str:
    return common.machine("pyarrow")


def write_doc(text: str) -> None:
    common.write_section(START, END, text)


BUCKET = "bench"

# Targets on the 2-core reference machine.
TARGET_1M_SECONDS = 10.0
TARGET_20M_SECONDS = 180.0
TARGET_20M_RSS_MIB = 4096.0


# Matches the file's header: ITEM_ID,USER_ID,EVENT_TYPE,TIMESTAMP,DISCOUNT (Yes/No).
INTERACTIONS_RETAIL = {
    "type": "record",
    "name": "Interactions",
    "namespace": "com.amazonaws.personalize.schema",
    "fields": [
        {"name": "USER_ID", "type": "string"},
        {"name": "ITEM_ID", "type": "string"},
        {"name": "TIMESTAMP", "type": "long"},
        {"name": "EVENT_TYPE", "type": "string"},
        {"name": "DISCOUNT", "type": "string", "categorical": True},
    ],
    "version": "1.0",
}


@dataclass
class Case:
    """One data set, ready to import from the local S3 root."""

    label: str
    key: str  # object key under the benchmark bucket
    schema: str  # Avro schema JSON


@dataclass
class Figures:
    label: str
    rows: int
    seconds: float  # importer alone
    peak_rss_mib: float  # importer subprocess
    api_seconds: float = float("nan")  # CreateDatasetImportJob -> ACTIVE
    worker_peak_rss_mib: float = float("nan")  # the server's worker process


# ---------------------------------------------------------------- preparing data


def prepare(root: Path, generated: list[int]) -> list[Case]:
    """Write every available data set under ``root/BUCKET`` (not timed)."""
    from openpersonalize.testing.synthetic import INTERACTIONS_SCHEMA_JSON, write_interactions_csv

    bucket = root / BUCKET
    bucket.mkdir(parents=True, exist_ok=True)
    cases: list[Case] = []

    ratings = DATASETS / "ml-latest-small" / "ratings.csv"
    if ratings.is_file():
        common.convert_ratings(ratings, bucket / "ml-latest-small.csv")
        cases.append(
            Case(
                "ml-latest-small ratings",
                "ml-latest-small.csv",
                json.dumps(common.INTERACTIONS_RATINGS),
            )
        )
    else:
        print(f"skipping ml-latest-small: {ratings} not found", file=sys.stderr)

    retail = DATASETS / "retail-demo-store" / "interactions.csv.gz"
    if retail.is_file():
        (bucket / "retail-demo-store.csv.gz").symlink_to(retail.resolve())
        cases.append(
            Case(
                "Retail Demo Store interactions (gzip)",
                "retail-demo-store.csv.gz",
                json.dumps(INTERACTIONS_RETAIL),
            )
        )
    else:
        print(f"skipping retail-demo-store: {retail} not found", file=sys.stderr)

    for n in generated:
        started = time.perf_counter()
        write_interactions_csv(bucket / f"generated-{n}.csv", n, seed=0)
        print(f"generated {n:,} rows in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        label = f"generated {_short(n)} rows"
        cases.append(Case(label, f"generated-{n}.csv", INTERACTIONS_SCHEMA_JSON))
    return cases


def _short(n: int) -> str:
    if n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n % 1000 == 0:
        return f"{n // 1000}k"
    return f"{n:,}"


# ------------------------------------------------------------------------ measuring


def measure(root: Path, case: Case, work: Path) -> Figures:
    """Import one data set in a fresh Python process; returns its own figures."""
    schema_path = work / f"{case.key}.schema.json"
    schema_path.write_text(case.schema)
    out_dir = work / f"{case.key}.out"
    command = [sys.executable, str(Path(__file__).resolve()), "--child", str(root)]
    command += [case.key, str(schema_path), str(out_dir)]
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"import of {case.label} failed:\n{done.stdout}\n{done.stderr}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return Figures(case.label, result["rows"], result["seconds"], result["peak_rss_mib"])


def child(root: str, key: str, schema_path: str, out_dir: str) -> None:
    """The measured import (runs in the subprocess); prints one JSON line."""
    from openpersonalize.data.importer import import_csv
    from openpersonalize.data.schema import parse_schema
    from openpersonalize.data.sources import resolve_data_location

    schema = parse_schema(Path(schema_path).read_text())
    started = time.perf_counter()
    sources = resolve_data_location(
        f"s3://{BUCKET}/{key}",
        s3_endpoint_url=None,
        s3_local_root=root,
        scratch_dir=Path(out_dir + ".scratch"),
    )
    result = import_csv(sources, schema, Path(out_dir))
    seconds = time.perf_counter() - started
    peak = _peak_rss_mib()
    print(json.dumps({"rows": result.row_count, "seconds": seconds, "peak_rss_mib": peak}))


def measure_api(root: Path, case: Case, work: Path, figures: Figures) -> None:
    """Import one data set through a fresh real server; fills the API figures in."""
    server = common.start_server(work / f"{case.key}.server", root)
    try:
        client = server.client("personalize")
        name = common.bench_name(case.key)
        group = common.create_group(client, name)
        dataset = common.create_dataset(client, group, name, "Interactions", case.schema)
        started = time.perf_counter()
        common.import_data(client, dataset, name, f"s3://{BUCKET}/{case.key}", server.log)
        seconds = time.perf_counter() - started
        workers = _worker_pids(server.process.pid)  # type: ignore[union-attr]
        if len(workers) != 1:
            raise SystemExit(f"expected one worker process under the server, found {workers}")
        figures.api_seconds = seconds
        figures.worker_peak_rss_mib = _vm_hwm_mib(workers[0])
    finally:
        server.stop()


def _worker_pids(server_pid: int) -> list[int]:
    """The server's job workers: its children started by multiprocessing's spawn_main.

    (Other children, such as multiprocessing's resource tracker, are left out.)
    """
    children: list[int] = []
    for task in Path(f"/proc/{server_pid}/task").iterdir():
        try:
            children += [int(pid) for pid in (task / "children").read_text().split()]
        except OSError:
            continue
    workers = []
    for pid in sorted(set(children)):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in cmdline:
            workers.append(pid)
    return workers


def _vm_hwm_mib(pid: int | str = "self") -> float:
    """VmHWM (peak resident set) of a live process, in MiB."""
    match = re.search(r"VmHWM:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    if match is None:
        raise ValueError(f"no VmHWM for process {pid}")
    return int(match.group(1)) / 1024


def _peak_rss_mib() -> float:
    """This process's peak RSS, interpreter included.

    /proc's VmHWM belongs to this process image alone; Linux carries ru_maxrss
    over exec, so it would report the parent's size at fork when that is larger.
    """
    try:
        return _vm_hwm_mib()
    except (OSError, ValueError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


# ------------------------------------------------------------------------ reporting


def table(figures: list[Figures]) -> str:
    lines = [
        "| data set | rows | importer s | importer peak MiB | API s (create→ACTIVE) "
        "| worker peak MiB | rows/s via API |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for f in figures:
        rate = f.rows / f.api_seconds if f.api_seconds > 0 else float("inf")
        lines.append(
            f"| {f.label} | {f.rows:,} | {f.seconds:.2f} | {f.peak_rss_mib:,.0f} "
            f"| {f.api_seconds:.2f} | {f.worker_peak_rss_mib:,.0f} | {rate:,.0f} |"
        )
    return "\n".join(lines)


def check_targets(figures: list[Figures]) -> list[str]:
    """One line per target that applies: met or missed."""
    verdicts = []
    for f in figures:
        if not f.label.startswith("generated"):
            continue
        runs = [
            ("importer", f.seconds, "peak RSS", f.peak_rss_mib),
            ("API, create→ACTIVE", f.api_seconds, "worker peak RSS", f.worker_peak_rss_mib),
        ]
        for how, seconds, rss_name, rss in runs:
            if f.rows == 1_000_000:
                ok = seconds < TARGET_1M_SECONDS  # False for NaN (not measured)
                verdicts.append(
                    f"{'met' if ok else 'MISSED'}: 1M rows in {seconds:.1f} s ({how}; "
                    f"target < {TARGET_1M_SECONDS:.0f} s)"
                )
            if f.rows == 20_000_000:
                ok = seconds < TARGET_20M_SECONDS and rss < TARGET_20M_RSS_MIB
                verdicts.append(
                    f"{'met' if ok else 'MISSED'}: 20M rows in {seconds:.1f} s, {rss_name} "
                    f"{rss:,.0f} MiB ({how}; target < {TARGET_20M_SECONDS:.0f} s and "
                    f"< {TARGET_20M_RSS_MIB / 1024:.0f} GiB)"
                )
    return verdicts


def section(figures: list[Figures], verdicts: list[str]) -> str:
    body = [
        START,
        "## Import speed (CSV -> Parquet)",
        "",
        "`python benchmarks/import_speed.py --write`. *Importer*: `resolve_data_location` + "
        "`import_csv` per data set, each in a fresh process (peak RSS is that process's, Python "
        "and pyarrow included). *API*: per data set a fresh real server "
        "(`ServerProcess`, `workers=1`, files under its local S3 root); the time runs from "
        "CreateDatasetImportJob until DescribeDatasetImportJob, polled every 0.05 s, reports "
        "ACTIVE (queueing, the worker's pick-up and the swap-in included), and the worker peak "
        "is that worker process's VmHWM read after the job (its idle start-up included). "
        "rows/s is rows / API s. Preparing the CSVs and creating the dataset group, schema and "
        "dataset are not timed.",
        "",
        f"Machine: {machine()}.",
        "",
        table(figures),
        "",
        *[f"- {v}" for v in verdicts],
        END,
    ]
    return "\n".join(body)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    parser.add_argument(
        "--generated",
        type=int,
        nargs="*",
        default=[1_000_000, 20_000_000],
        help="sizes of the generated data sets (rows)",
    )
    parser.add_argument("--child", nargs=4, metavar=("ROOT", "KEY", "SCHEMA", "OUT"))
    args = parser.parse_args(argv)
    if args.child:
        child(*args.child)
        return 0

    sys.path.insert(0, str(REPO))
    figures: list[Figures] = []
    with tempfile.TemporaryDirectory(prefix="import-speed-") as tmp:
        root, work = Path(tmp, "s3"), Path(tmp, "work")
        work.mkdir()
        for case in prepare(root, args.generated):
            print(f"importing {case.label} (importer) ...", file=sys.stderr)
            figures.append(measure(root, case, work))
            shutil.rmtree(work / f"{case.key}.out", ignore_errors=True)
            print(f"importing {case.label} (API) ...", file=sys.stderr)
            measure_api(root, case, work, figures[-1])
            shutil.rmtree(work / f"{case.key}.server", ignore_errors=True)
            print(table(figures[-1:]).splitlines()[-1], file=sys.stderr)
    verdicts = check_targets(figures)
    print(table(figures))
    print()
    for v in verdicts:
        print(f"- {v}")
    if args.write:
        write_doc(section(figures, verdicts))
        print(f"\nwrote {DOC}")
    return 1 if any(v.startswith("MISSED") for v in verdicts) else 0


if __name__ == "__main__":
    sys.exit(main())
