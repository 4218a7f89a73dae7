"""Dataset export jobs: time and peak memory of exporting a large Interactions dataset.

Per size a generated CSV (`write_interactions_csv`, seeded) is imported through a real server
(one worker). The server is then restarted, so the export runs in a fresh worker process
whose VmHWM (read from /proc after the job) is the export's own peak, the worker's start-up
included. CreateDatasetExportJob (ingestionMode BULK) is timed until DescribeDatasetExportJob,
polled every 0.05 s, reports ACTIVE; the CSV files written are counted afterwards. Target:
20M rows within 4 GiB.

    python benchmarks/export.py            # print the table
    python benchmarks/export.py --write    # also update docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import common
from common import REPO
from import_speed import _short, _vm_hwm_mib, _worker_pids

START, END = "<!-- export:start -->", "<!-- export:end -->"
BUCKET = "bench"
TARGET_RSS_MIB = 4096.0
ROLE = "arn:aws:iam::000000000000:role/PersonalizeRole"


@dataclass
class Figures:
    rows: int
    rows_written: int
    seconds: float
    worker_peak_mib: float


def measure(root: Path, work: Path, n_rows: int) -> Figures:
    from openpersonalize.testing.synthetic import INTERACTIONS_SCHEMA_JSON, write_interactions_csv

    key = f"generated-{n_rows}.csv"
    write_interactions_csv(root / BUCKET / key, n_rows, seed=0)
    server_dir = work / f"server-{n_rows}"
    server = common.start_server(server_dir, root)
    try:
        client = server.client("personalize")
        name = common.bench_name(f"export-{n_rows}")
        group = common.create_group(client, name)
        dataset = common.create_dataset(
            client, group, name, "Interactions", INTERACTIONS_SCHEMA_JSON
        )
        common.import_data(client, dataset, name, f"s3://{BUCKET}/{key}", server.log)
    finally:
        server.stop()
    (root / BUCKET / key).unlink()  # the export's output needs the disk more
    server = common.start_server(server_dir, root)  # a fresh worker: its peak is the export's
    try:
        client = server.client("personalize")
        started = time.perf_counter()
        job = client.create_dataset_export_job(
            jobName=name,
            datasetArn=dataset,
            ingestionMode="BULK",
            roleArn=ROLE,
            jobOutput={"s3DataDestination": {"path": f"s3://{BUCKET}/exports/"}},
        )["datasetExportJobArn"]
        common.wait_active(
            client.describe_dataset_export_job, "datasetExportJob", job, server.log()
        )
        seconds = time.perf_counter() - started
        workers = _worker_pids(server.process.pid)  # type: ignore[union-attr]
        if len(workers) != 1:
            raise SystemExit(f"expected one worker process under the server, found {workers}")
        peak = _vm_hwm_mib(workers[0])
    finally:
        server.stop()
    written = 0
    for part in (root / BUCKET / "exports" / name).glob("part-*.csv"):
        with part.open("rb") as handle:
            written += sum(1 for _ in handle) - 1  # less the header
        part.unlink()
    return Figures(n_rows, written, seconds, peak)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    parser.add_argument("--rows", type=int, nargs="*", default=[1_000_000, 20_000_000])
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO))
    figures = []
    with tempfile.TemporaryDirectory(prefix="export-bench-") as tmp:
        root, work = Path(tmp, "s3"), Path(tmp, "work")
        (root / BUCKET).mkdir(parents=True)
        work.mkdir()
        for n_rows in args.rows:
            print(f"exporting {n_rows:,} rows ...", file=sys.stderr)
            figures.append(measure(root, work, n_rows))
    table = "\n".join(
        [
            "| rows imported | rows exported | create→ACTIVE s | rows/s | worker peak MiB |",
            "|---:|---:|---:|---:|---:|",
            *(
                f"| {_short(f.rows)} | {f.rows_written:,} | {f.seconds:.1f} | "
                f"{f.rows_written / f.seconds:,.0f} | {f.worker_peak_mib:,.0f} |"
                for f in figures
            ),
        ]
    )
    verdicts = [
        f"{'met' if f.worker_peak_mib < TARGET_RSS_MIB else 'MISSED'}: {_short(f.rows)} rows "
        f"exported with a worker peak of {f.worker_peak_mib:,.0f} MiB (target < 4 GiB)"
        for f in figures
        if f.rows >= 20_000_000
    ]
    verdicts += [
        f"{'met' if f.rows_written <= f.rows else 'MISSED'}: {_short(f.rows)}: rows exported "
        f"({f.rows_written:,}) are the imported rows less exact duplicates within a batch"
        for f in figures
    ]
    print(table)
    for verdict in verdicts:
        print(f"- {verdict}")
    if args.write:
        intro = f"`python benchmarks/export.py --write` on {common.machine('pyarrow')}. " + (
            __doc__.split("\n\n")[1].replace("\n", " ")
        )
        common.write_report(START, END, "Dataset export", intro, table, verdicts)
    return 1 if any(v.startswith("MISSED") for v in verdicts) else 0


if __name__ == "__main__":
    sys.exit(main())
