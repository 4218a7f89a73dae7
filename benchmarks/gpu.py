"""aws-user-personalization-v2 training time on the GPU against the CPU of the same machine.

Fits the v2 model (SASRec blended with EASE, default hyperparameters) on a MovieLens data set
twice, each in a fresh process: once with the GPU hidden (``CUDA_VISIBLE_DEVICES=``) and once
with it visible, and reports both fit times and their ratio (target: the GPU at least 5x
faster). Needs a machine with an NVIDIA GPU; elsewhere it says so and writes nothing.

    python benchmarks/gpu.py                    # ml-latest-small; print the figures
    python benchmarks/gpu.py --dataset ml-100k  # the smaller set
    python benchmarks/gpu.py --write            # also update docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import common
from common import DATASETS

START, END = "<!-- gpu:start -->", "<!-- gpu:end -->"
V2 = "arn:aws:personalize:::recipe/aws-user-personalization-v2"
TARGET = 5.0


def load(dataset: str):  # type: ignore[no-untyped-def]
    """The ratings as the InteractionData training builds (every rating an interaction)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pacsv

    from openpersonalize.data.training_data import load_training_data

    if dataset == "ml-100k":
        options = pacsv.ParseOptions(delimiter="\t")
        names = ["userId", "movieId", "rating", "timestamp"]
        table = pacsv.read_csv(
            DATASETS / "ml-100k" / "u.data",
            read_options=pacsv.ReadOptions(column_names=names),
            parse_options=options,
        )
    else:
        table = pacsv.read_csv(DATASETS / dataset / "ratings.csv")
    return load_training_data(
        pa.table(
            {
                "USER_ID": table.column("userId").cast(pa.string()),
                "ITEM_ID": table.column("movieId").cast(pa.string()),
                "TIMESTAMP": np.asarray(table.column("timestamp"), dtype=np.int64),
            }
        )
    )


def fit_once(dataset: str) -> dict[str, object]:
    """One fit in this process, on whatever device torch picks."""
    from openpersonalize.recipes import catalog
    from openpersonalize.recipes.sasrec import torch_device

    data = load(dataset)
    model = catalog.model_class(catalog.get_recipe(V2))()
    started = time.perf_counter()
    model.fit(data)
    seconds = time.perf_counter() - started
    device = torch_device()
    name = "CPU"
    if device.type == "cuda":
        import torch

        name = torch.cuda.get_device_name(device)
    return {"seconds": seconds, "device": name, "events": data.n_events, "items": data.n_items}


def fit_in_child(dataset: str, gpu: bool) -> dict[str, object]:
    environment = dict(os.environ)
    if not gpu:
        environment["CUDA_VISIBLE_DEVICES"] = ""  # torch then sees no GPU
    output = subprocess.run(
        [sys.executable, __file__, "--dataset", dataset, "--fit-once"],
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--dataset", default="ml-latest-small", choices=["ml-latest-small", "ml-100k"]
    )
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    parser.add_argument("--fit-once", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.fit_once:
        print(json.dumps(fit_once(args.dataset)))
        return 0
    import torch

    if not torch.cuda.is_available():
        print("no GPU visible to torch here: nothing to compare, nothing written")
        return 0
    cpu = fit_in_child(args.dataset, gpu=False)
    gpu = fit_in_child(args.dataset, gpu=True)
    ratio = float(cpu["seconds"]) / float(gpu["seconds"])  # type: ignore[arg-type]
    verdict = "met" if ratio >= TARGET else "MISSED"
    text = "\n".join(
        [
            START,
            "## aws-user-personalization-v2 on a GPU",
            "",
            f"`python benchmarks/gpu.py --dataset {args.dataset} --write`: the v2 model "
            f"(default hyperparameters) fit on {args.dataset} ({cpu['events']:,} events, "
            f"{cpu['items']:,} items) in a fresh process, CPU only vs GPU, same machine.",
            "",
            f"Machine: {common.machine('torch')}; GPU: {gpu['device']}.",
            "",
            "| device | fit s |",
            "|---|---:|",
            f"| CPU ({common.cores()} cores) | {float(cpu['seconds']):.1f} |",  # type: ignore[arg-type]
            f"| {gpu['device']} | {float(gpu['seconds']):.1f} |",  # type: ignore[arg-type]
            "",
            f"- {verdict}: the GPU fits {ratio:.1f}x faster (target ≥ {TARGET:.0f}x)",
            END,
        ]
    )
    print(text)
    if args.write:
        common.write_section(START, END, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
