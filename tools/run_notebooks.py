#!/usr/bin/env python
"""Run notebooks from aws-samples/amazon-personalize-samples, unchanged, against openpersonalize.

    python tools/run_notebooks.py --samples /path/to/amazon-personalize-samples [NOTEBOOK ...]

NOTEBOOK paths are relative to the samples checkout (the notebooks that must run are the
default). The runner starts moto's server (S3, IAM, STS, SSM, CloudFormation) and a fresh
`openpersonalize serve`, both on free loopback ports with their data in a temporary folder,
points every AWS client in the kernel at them through the AWS_ENDPOINT_URL_* variables,
creates what the samples' CloudFormation templates would (buckets, a role, SSM parameters, a
stack), executes each notebook's code cells in order in one IPython kernel, stops both servers
by pid, and writes cells run / total and the first failure per notebook to
docs/compatibility.md (rows of notebooks not run this time are kept).

The notebooks' sources are read from the checkout and never changed. What the runner does to
the kernel (and nothing else) is listed in ENVIRONMENT below and in docs/compatibility.md:
shell lines (`!wget`, `!pip`, `!unzip`, `!aws s3 ...`) are handled by a replacement of
IPython's `system` that supplies downloads from local copies (--datasets, --retail-demo-store),
skips package installs, emulates `aws s3` through boto3 and runs plain local file commands
(mkdir, rm, cp, head ...); `time.sleep` is shortened; a SageMaker notebook's metadata file is
supplied; pandas' removed `DataFrame.append` is restored.

The kernel imports this same file (kernel_install) from an IPython startup script, so
everything above the "runner" section uses the standard library only.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, NamedTuple

ACCOUNT_ID = "123456789012"  # moto's account: STS, IAM role ARNs and our ARNs agree
REGION = "us-east-1"
KERNEL_CONFIG_VARIABLE = "OPENPERSONALIZE_NOTEBOOK_KERNEL"
SAGEMAKER_METADATA = "/opt/ml/metadata/resource-metadata.json"

# What the kernel environment changes, with why; written to docs/compatibility.md.
ENVIRONMENT = [
    (
        "AWS endpoints",
        "`AWS_ENDPOINT_URL` and `AWS_ENDPOINT_URL_S3` / `_IAM` / `_STS` / `_SSM` / "
        "`_CLOUDFORMATION` point at moto's server; `AWS_ENDPOINT_URL_PERSONALIZE` / "
        "`_PERSONALIZE_RUNTIME` / `_PERSONALIZE_EVENTS` at openpersonalize. Credentials are "
        "dummies, the region is us-east-1, no AWS config file is read.",
    ),
    (
        "Provisioned resources",
        "what the samples' CloudFormation templates create before a notebook runs: for "
        "getting_started, an S3 bucket, an IAM role for Personalize and the SSM parameters "
        "`/cloudformation/personalize-s3-bucket` and `/cloudformation/personalize-iam-role-arn`; "
        "for automatic_context, the stack `personalize-auto-context-stack` (its bucket and its "
        "two SSM parameters, under the template's logical ids).",
    ),
    (
        "Downloads",
        "`!wget` / `!curl` of MovieLens (ml-100k, ml-latest-small), of the Retail Demo Store "
        "CSVs and of retail-demo-store's helper script are answered from local copies "
        "(`--datasets`, `--retail-demo-store`); a file already there is overwritten, and "
        "`!unzip` extracts with Python's zipfile. With `--stand-in`, the downloads of a notebook "
        "that needs data (user_segmentation's Amazon review files, batch_recommendations' "
        "HetRec Last.fm zip) get made-up files of the same format. A URL without a local copy "
        "fails as a failed download would and is listed.",
    ),
    (
        "Other shell lines",
        "`!pip`, `%pip`, `!conda` are skipped (the packages come from the `notebooks` extra); "
        "`!aws s3 rm|cp|mb|rb|ls` run through boto3 against moto; local file commands "
        "(mkdir, rm, cp, mv, head, cat, ls ...) run in the notebook's folder, `pygmentize` "
        "prints the file; anything else is skipped and listed.",
    ),
    (
        "time.sleep",
        "scaled by `--sleep-scale` (1/60) and capped at `--sleep-cap` (1 s) in the kernel's "
        "main thread: a one-minute poll waits a second, since training here takes seconds.",
    ),
    (
        "Random seeds",
        "`random` and `numpy.random` are seeded (0) when the kernel starts, so the random "
        "user or sample a notebook picks is the same from run to run.",
    ),
    (
        "SageMaker metadata",
        f"`open('{SAGEMAKER_METADATA}')` (how several notebooks find their region) reads a "
        "file naming a us-east-1 notebook instance.",
    ),
    (
        "pandas",
        "pandas 2 removed `DataFrame.append` (trending_now calls it); the kernel restores it "
        "as `pd.concat`. Nothing to do with Personalize.",
    ),
    (
        "s3:// paths",
        "pandas reads and writes `s3://` paths (user_segmentation's `pd.read_json` of a batch "
        "segment job's output) through fsspec's `s3` filesystem, s3fs, which cannot be "
        "installed beside this boto3 (aiobotocore pins an older botocore); the kernel "
        "registers a small one on boto3, against moto. Nothing to do with Personalize.",
    ),
    (
        "Faker",
        "the `notebooks` extra pins Faker < 20: Faker 20 made `unix_time()` return a float, "
        "and automatic_context writes it into TIMESTAMP and CREATION_TIMESTAMP, which its "
        "schema declares `long` (the import then fails on `1788502488.97`).",
    ),
    (
        "Working folder",
        "each notebook runs in a copy of its folder in the samples checkout; notebooks of one "
        "folder share it, and `%store` shares one IPython profile, as on one SageMaker "
        "instance.",
    ),
]

# Notebook inputs that cannot be had here (AWS's own storage, downloads with no local copy).
UNAVAILABLE: dict[str, list[str]] = {
    "next_steps/core_use_cases/user_segmentation/user_segmentation_example.ipynb": [
        "http://jmcauley.ucsd.edu/data/amazon_v2/categoryFiles/Grocery_and_Gourmet_Food.json.gz "
        "and metaFiles2/meta_Grocery_and_Gourmet_Food.json.gz (Amazon review data, 2018; not "
        "in ../shared/datasets)",
    ],
    "next_steps/core_use_cases/batch_recommendations/"
    "user_personalization_batch_recommendations_example.ipynb": [
        "http://files.grouplens.org/datasets/hetrec2011/hetrec2011-lastfm-2k.zip (HetRec 2011 "
        "Last.fm; not in ../shared/datasets)",
    ],
    "next_steps/core_use_cases/user_personalization/user-personalization-with-exploration.ipynb": [
        "s3://personalize-cli-json-models/sample-dataset/interactions-sample.csv "
        "(interactions with an IMPRESSION column)",
        "s3://personalize-cli-json-models/sample-dataset/items-with-creation-timestamp-sample.csv "
        "(items with GENRES and creation_timestamp)",
    ],
}

EXPLORATION = (
    "next_steps/core_use_cases/user_personalization/user-personalization-with-exploration.ipynb"
)


class StandIn(NamedTuple):
    """Made-up inputs for a notebook whose real data cannot be had (--stand-in)."""

    s3: dict[str, dict[str, bytes]]  # bucket -> key -> bytes, put into moto before it runs
    downloads: dict[str, bytes]  # host/path of a URL it downloads -> what the download gets


def exploration_stand_in(datasets: Path) -> StandIn:
    """--stand-in: made-up versions of the exploration notebook's two S3 objects, from ml-100k
    (the columns the notebook reads; the originals' contents are unknown).
    """
    import calendar
    import csv
    import io
    import random

    rng = random.Random(0)
    source = datasets / "ml-100k"
    genres = [line.split("|")[0] for line in (source / "u.genre").read_text().splitlines() if line]
    items = io.StringIO()
    writer = csv.writer(items)
    writer.writerow(["ITEM_ID", "GENRES", "creation_timestamp"])
    catalog = []
    months = {name: number for number, name in enumerate(calendar.month_abbr) if name}
    for line in (source / "u.item").read_text(encoding="latin-1").splitlines():
        fields = line.split("|")
        flags = [genres[i] for i, flag in enumerate(fields[5:24]) if flag == "1"]
        released = fields[2]  # 01-Jan-1995, or empty
        created = 788918400
        if released:
            day, month, year = released.split("-")
            created = calendar.timegm((int(year), months[month], int(day), 0, 0, 0))
        writer.writerow([fields[0], "|".join(flags) or "unknown", created])
        catalog.append(fields[0])
    interactions = io.StringIO()
    writer = csv.writer(interactions)
    writer.writerow(["USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE", "IMPRESSION"])
    for line in (source / "u.data").read_text().splitlines():
        user, item, rating, timestamp = line.split("\t")
        shown = [item, *rng.sample(catalog, 4)]
        rng.shuffle(shown)
        event = "click" if int(rating) >= 4 else "view"
        writer.writerow([user, item, timestamp, event, "|".join(shown)])
    prefix = "sample-dataset/"
    objects = {
        prefix + "interactions-sample.csv": interactions.getvalue().encode(),
        prefix + "items-with-creation-timestamp-sample.csv": items.getvalue().encode(),
    }
    return StandIn(s3={"personalize-cli-json-models": objects}, downloads={})


SEGMENTATION = "next_steps/core_use_cases/user_segmentation/user_segmentation_example.ipynb"
# The grocery aisles of the made-up catalogue: the first three (and the brands Starbucks and
# Jelly Belly) are the values the notebook's attribute queries ask for.
GROCERY_AISLES = [
    ("Candy & Chocolate", ["Jelly Belly"]),
    ("Coffee, Tea & Cocoa", ["Starbucks"]),
    ("Dried Vegetables", []),
    ("Snack Foods", []),
    ("Breakfast Foods", []),
    ("Herbs, Spices & Seasonings", []),
    ("Pasta & Noodles", []),
    ("Baking Supplies", []),
    ("Sauces & Dips", []),
    ("Beverages", []),
    ("Canned & Jarred Food", []),
    ("Nuts & Seeds", []),
]
# Item ids the notebook asks about by name (cells 45 and 50): given to popular made-up items.
GROCERY_NAMED_ITEMS = [
    "0853347867", "1888861118", "1888861614", "B0000CEUSQ", "B0000CNU3F",
    "B0000DBN1H", "B0000DG5CD", "B0000TA3SK", "B0001AVSRI", "B0005YXXDC",
]  # fmt: skip


def _gzip_lines(records: list[dict[str, Any]]) -> bytes:
    import gzip

    text = "".join(json.dumps(record) + "\n" for record in records)
    return gzip.compress(text.encode(), mtime=0)  # mtime 0: the same bytes every run


def grocery_stand_in(datasets: Path) -> StandIn:
    """--stand-in: made-up versions of the two Amazon review files (2018 format, JSON lines,
    gzip) user_segmentation downloads, with the fields it reads. Planted structure: every shopper
    has a home aisle and a second one, and buys there 7 and 1.5 times in 10 (popular items more
    often), so the users an item's segment should hold are that aisle's shoppers.
    """
    import calendar
    import random

    rng = random.Random(0)
    items: list[dict[str, Any]] = []
    aisle_items: list[list[str]] = []
    named = iter(GROCERY_NAMED_ITEMS)
    serial = 0
    for number, (aisle, known_brands) in enumerate(GROCERY_AISLES):
        brands = known_brands + [f"Made-up Maker {number:02d}{letter}" for letter in "ABCDE"]
        shelf: list[str] = []
        for rank in range(120):
            serial += 1
            # The named ids go to each aisle's best sellers, so every one has shoppers.
            item_id = next(named, None) if rank < 1 else None
            item_id = item_id or f"SYN{serial:07d}"
            shelf.append(item_id)
            categories = ["Grocery & Gourmet Food", aisle]
            if rng.random() < 0.5:
                categories.append(f"{aisle} - made-up shelf {rng.randint(1, 3)}")
            if rng.random() < 0.02:  # the notebook drops categories of 38+ characters
                categories.append("A made-up category name far too long to be kept as one")
            price = f"${rng.uniform(1.5, 40):.2f}"
            if rng.random() < 0.1:
                price = ""
            elif rng.random() < 0.05:
                price = f"${rng.uniform(1, 5):.2f} - ${rng.uniform(5, 20):.2f}"  # a range: no price
            description = [
                f"<p>Made-up {aisle.lower()} product {serial} for openpersonalize's stand-in "
                "data.</p>",
                f"<b>Not a real product.</b> Pack of {rng.randint(1, 12)}.<br>",
            ][: rng.randint(0, 2)]
            record: dict[str, Any] = {
                "category": categories,
                "description": description,
                "title": f"Stand-in {aisle} item {serial:04d}",
                "brand": rng.choice(brands) if rng.random() < 0.95 else "",
                "feature": [],
                "rank": f"{rng.randint(1000, 900000):,} in Grocery & Gourmet Food (",
                "main_cat": rng.choices(
                    ["Grocery", "Amazon Home", "Health & Personal Care"], [18, 1, 1]
                )[0],
                "price": price,
                "asin": item_id,
            }
            if rng.random() < 0.02 and item_id not in GROCERY_NAMED_ITEMS:
                record["title"] = None  # items without a title: dropped by the notebook
            if rng.random() < 0.01:  # a duplicate entry, which the notebook drops (keeps the last)
                items.append(dict(record, title="Stand-in duplicate entry"))
            items.append(record)
        aisle_items.append(shelf)
    every_item = [item for shelf in aisle_items for item in shelf]
    popularity = [1 / (rank + 1) ** 0.8 for rank in range(120)]  # within an aisle

    reviews: list[dict[str, Any]] = []
    start = calendar.timegm((2018, 1, 1, 0, 0, 0))
    end = calendar.timegm((2018, 11, 1, 0, 0, 0))
    for number in range(3000):
        user = f"SHOPPER{number:05d}"
        home, second = rng.sample(range(len(GROCERY_AISLES)), 2)
        for _ in range(rng.randint(4, 30)):
            draw = rng.random()
            if draw < 0.7:
                item = rng.choices(aisle_items[home], popularity)[0]
            elif draw < 0.85:
                item = rng.choices(aisle_items[second], popularity)[0]
            else:
                item = rng.choice(every_item)
            when = rng.randrange(start, end) // 86400 * 86400  # review dates have no time
            reviews.append(
                {
                    "overall": float(rng.randint(1, 5)),
                    "verified": rng.random() < 0.9,
                    "reviewTime": time.strftime("%m %d, %Y", time.gmtime(when)),
                    "reviewerID": user,
                    "asin": item,
                    "reviewerName": f"Made-up shopper {number}",
                    "reviewText": "A made-up review.",
                    "summary": "Stand-in",
                    "unixReviewTime": when,
                }
            )
    rng.shuffle(reviews)
    host = "jmcauley.ucsd.edu/data/amazon_v2/"
    return StandIn(
        s3={},
        downloads={
            host + "categoryFiles/Grocery_and_Gourmet_Food.json.gz": _gzip_lines(reviews),
            host + "metaFiles2/meta_Grocery_and_Gourmet_Food.json.gz": _gzip_lines(items),
        },
    )


BATCH = (
    "next_steps/core_use_cases/batch_recommendations/"
    "user_personalization_batch_recommendations_example.ipynb"
)


def lastfm_stand_in(datasets: Path) -> StandIn:
    """--stand-in: a made-up hetrec2011-lastfm-2k.zip for batch_recommendations: the HetRec
    2011 files (tab-separated, a header line, at the archive's root) with their columns.
    Planted structure: every artist has a genre, every listener one or two favourite genres,
    and 17 in 20 of a listener's artists (more often the genre's popular ones) are from those.
    """
    import io
    import random
    import zipfile

    rng = random.Random(0)
    genres = 20
    artist_genre = {artist: rng.randrange(genres) for artist in range(1, 2001)}
    by_genre: list[list[int]] = [[] for _ in range(genres)]
    for artist, genre in artist_genre.items():
        by_genre[genre].append(artist)
    every_artist = list(artist_genre)

    artists = ["id\tname\turl\tpictureURL"]
    for artist in every_artist:
        artists.append(
            f"{artist}\tStand-in Artist {artist:04d}\thttp://example.invalid/artist/{artist}"
            f"\thttp://example.invalid/picture/{artist}.jpg"
        )
    tags = ["tagID\ttagValue"] + [f"{g + 1}\tmade-up genre {g + 1}" for g in range(genres)]
    tags += [f"{genres + 1}\tmade-up mood tag", f"{genres + 2}\tmade-up era tag"]
    listens = ["userID\tartistID\tweight"]
    tagged = ["userID\tartistID\ttagID\ttimestamp"]
    start_ms = 1122854400000  # 2005-08-01
    end_ms = 1304208000000  # 2011-05-01
    for user in range(2, 802):
        favourites = rng.sample(range(genres), rng.choice([1, 2]))
        chosen: set[int] = set()
        wanted = rng.randint(20, 50)
        while len(chosen) < wanted:
            if rng.random() < 0.85:
                shelf = by_genre[rng.choice(favourites)]
                chosen.add(shelf[min(int(rng.expovariate(1 / 15)), len(shelf) - 1)])
            else:
                chosen.add(rng.choice(every_artist))
        for artist in sorted(chosen):
            listens.append(f"{user}\t{artist}\t{int(rng.paretovariate(1.2) * 50)}")
        moment = rng.randrange(start_ms, end_ms - 86400000 * 400)
        for artist in rng.sample(sorted(chosen), len(chosen) * 3 // 4):
            moment += rng.randrange(3600000, 86400000 * 10)  # a listener tags over time
            first = artist_genre[artist] + 1
            labels = [first] + rng.sample([genres + 1, genres + 2], rng.randint(0, 2))
            for tag in labels:
                tagged.append(f"{user}\t{artist}\t{tag}\t{moment}")
    files = {
        "readme.txt": "Made-up stand-in for the HetRec 2011 Last.fm 2K files, generated by "
        "openpersonalize's tools/run_notebooks.py --stand-in. Not real listening data.\n",
        "artists.dat": "\n".join(artists) + "\n",
        "tags.dat": "\n".join(tags) + "\n",
        "user_artists.dat": "\n".join(listens) + "\n",
        "user_taggedartists-timestamps.dat": "\n".join(tagged) + "\n",
    }
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
        for name, text in files.items():
            entry = zipfile.ZipInfo(name, (2011, 5, 1, 0, 0, 0))  # the same bytes every run
            zipped.writestr(entry, text, compress_type=zipfile.ZIP_DEFLATED)
    url = "files.grouplens.org/datasets/hetrec2011/hetrec2011-lastfm-2k.zip"
    return StandIn(s3={}, downloads={url: archive.getvalue()})


STAND_INS = {
    EXPLORATION: exploration_stand_in,
    SEGMENTATION: grocery_stand_in,
    BATCH: lastfm_stand_in,
}

# Notebook-level fixes, applied to the cell's source in memory before it runs: only for faults
# that have nothing to do with Personalize. (notebook, code cell number, old text, new text, why)
PATCHES: list[tuple[str, int, str, str, str]] = [
    (
        "getting_started/notebooks/2.View_Campaign_And_Interactions.ipynb",
        6,
        "items.loc[movie_id]",
        "items.iloc[movie_id]",
        "get_movie_title looks ITEM_ID - 1 up by label in a frame indexed by ITEM_ID, so a "
        "recommendation of item 1 raises KeyError: 0 and every other title is the previous "
        "movie's; notebook 1's same function uses .iloc (by position), as here",
    ),
    (
        SEGMENTATION,
        6,
        "popular_category['index']",
        "popular_category['CATEGORY']",
        "pandas 2 names the column that `value_counts().reset_index()` makes of the index "
        "after the Series (`CATEGORY`), where pandas 1 named it `index`",
    ),
]

# Cells that fail against AWS too, by the notebook's own design (a demonstrated mistake,
# placeholders to fill in by hand): counted as run, listed apart. (notebook, code cells,
# exception, why)
FAILS_ON_AWS: list[tuple[str, tuple[int, ...], str, str]] = [
    (
        BATCH,
        (8,),
        "ValueError",
        "the notebook's own Oops: `datetime.utcfromtimestamp` of a millisecond timestamp "
        "(years past 9999); the next cells divide by 1000",
    ),
    (
        BATCH,
        (48, 50, 52, 54),
        "InvalidInputException",
        "clean-up cells with the placeholder ARN `INSERT ARN HERE`, to be filled in by hand",
    ),
    (
        BATCH,
        (56, 58),
        "NoSuchEntityException",
        "IAM clean-up cells with the placeholder role `INSERT ROLE NAME HERE`",
    ),
    (
        BATCH,
        (57,),
        "ParamValidationError",
        "IAM clean-up cell with the placeholder policy ARN `INSERT ARN HERE` (boto3 rejects it "
        "before sending)",
    ),
]

DEFAULT_NOTEBOOKS = [
    "getting_started/notebooks/1.Building_Your_First_Campaign.ipynb",
    "getting_started/notebooks/2.View_Campaign_And_Interactions.ipynb",
    "next_steps/core_use_cases/objective_optimization/objective-optimization.ipynb",
    "next_steps/core_use_cases/trending_now/trending_now_example.ipynb",
    "next_steps/core_use_cases/filters/promotions/Promotions.ipynb",
    "next_steps/core_use_cases/updating_datasets/update-datasets-user-personalization-example.ipynb",
    "next_steps/core_use_cases/updating_datasets/update-item-dataset-schema-example.ipynb",
    "next_steps/core_use_cases/user_personalization/user-personalization-with-exploration.ipynb",
    "next_steps/core_use_cases/automatic_context/notebooks/1.Building_Personalize_Campaign.ipynb",
    "getting_started/notebooks_managed_domains/Building_Your_First_Recommender_Ecommerce.ipynb",
    "getting_started/notebooks_managed_domains/"
    "Building_Your_First_Recommender_Video_On_Demand.ipynb",
    "next_steps/core_use_cases/user_segmentation/user_segmentation_example.ipynb",
    "next_steps/core_use_cases/batch_recommendations/"
    "user_personalization_batch_recommendations_example.ipynb",
]


# --------------------------------------------------------------------------------------------
# Kernel side: installed into the notebook's IPython kernel by a startup script.
# --------------------------------------------------------------------------------------------


class _Kernel:
    """Hooks for one notebook's kernel, configured by the JSON file the runner wrote."""

    LOCAL_COMMANDS = {
        "mkdir", "rm", "cp", "mv", "head", "tail", "cat", "ls", "echo", "wc", "touch",
        "pwd", "gunzip", "gzip", "sort", "tar", "rmdir",
    }  # fmt: skip
    OPERATORS = {"&&", "||", ";", "|", ">", ">>", "<", "&"}

    def __init__(self, shell: Any, config: dict[str, Any]) -> None:
        self.shell = shell
        self.config = config
        self.downloads: dict[str, str] = config.get("downloads", {})
        self.stand_in_downloads: dict[str, str] = config.get("stand_in_downloads", {})
        self.github: dict[str, str] = config.get("github", {})

    # -- record what happened, for the runner's report ------------------------------------
    def record(self, kind: str, line: str, detail: str = "") -> None:
        entry = {"kind": kind, "line": line, "detail": detail}
        with open(self.config["log"], "a", encoding="utf-8") as log:
            log.write(json.dumps(entry) + "\n")

    # -- reproducible random picks ------------------------------------------------------
    def install_seed(self) -> None:
        import random

        random.seed(0)
        try:
            import numpy

            numpy.random.seed(0)
        except ImportError:
            pass

    # -- time.sleep -------------------------------------------------------------------------
    def install_sleep(self) -> None:
        real_sleep = time.sleep
        scale = float(self.config.get("sleep_scale", 1 / 60))
        cap = float(self.config.get("sleep_cap", 1.0))

        def sleep(seconds: float) -> None:
            if seconds > 0 and threading.current_thread() is threading.main_thread():
                seconds = min(seconds, cap, seconds * scale)
            real_sleep(seconds)

        time.sleep = sleep

    # -- open() of files that only exist on a SageMaker notebook instance ------------------
    def install_open(self) -> None:
        import builtins

        redirects = dict(self.config.get("redirects", {}))

        def wrap(original: Any) -> Any:
            def open_(file: Any, *args: Any, **kwargs: Any) -> Any:
                if isinstance(file, (str, os.PathLike)) and os.fspath(file) in redirects:
                    file = redirects[os.fspath(file)]
                return original(file, *args, **kwargs)

            return open_

        self.shell.user_ns["open"] = wrap(self.shell.user_ns.get("open", builtins.open))
        builtins.open = wrap(builtins.open)

    # -- pandas API removed since the notebooks were written ------------------------------
    def install_pandas(self) -> None:
        try:
            import pandas as pd
        except ImportError:
            return
        if hasattr(pd.DataFrame, "append"):
            return

        def append(
            self: Any,
            other: Any,
            ignore_index: bool = False,
            verify_integrity: bool = False,
            sort: bool = False,
        ) -> Any:
            if isinstance(other, (pd.Series, dict)):
                other = pd.DataFrame([other])
                ignore_index = True if isinstance(other, dict) else ignore_index
            frames = list(other) if isinstance(other, (list, tuple)) else [other]
            return pd.concat(
                [self, *frames],
                ignore_index=ignore_index,
                verify_integrity=verify_integrity,
                sort=sort,
            )

        pd.DataFrame.append = append

    # -- s3:// paths in pandas (read_json, read_csv, to_csv ...) -------------------------
    def install_s3_paths(self) -> None:
        """pandas opens s3:// through fsspec's "s3" filesystem, s3fs, which cannot be installed
        beside this boto3 (its aiobotocore pins an older botocore): a small one on boto3."""
        import importlib.util
        import io

        if importlib.util.find_spec("s3fs") is not None:
            return
        try:
            import fsspec
            from fsspec.spec import AbstractFileSystem
        except ImportError:
            return

        class Upload(io.BytesIO):
            def __init__(self, bucket: str, key: str) -> None:
                super().__init__()
                self.bucket, self.key = bucket, key

            def close(self) -> None:
                if not self.closed:
                    import boto3

                    boto3.client("s3").put_object(
                        Bucket=self.bucket, Key=self.key, Body=self.getvalue()
                    )
                super().close()

        class BotoS3(AbstractFileSystem):  # type: ignore[misc]
            protocol = ("s3", "s3a")

            def _open(self, path: str, mode: str = "rb", **kwargs: Any) -> Any:
                import boto3

                bucket, _, key = self._strip_protocol(path).partition("/")
                if "r" in mode:
                    body = boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"]
                    return io.BytesIO(body.read())
                return Upload(bucket, key)

        fsspec.register_implementation("s3", BotoS3, clobber=True)
        fsspec.register_implementation("s3a", BotoS3, clobber=True)

    # -- shell lines ------------------------------------------------------------------------
    def install_shell(self) -> None:
        kernel = self

        def system(cmd: str) -> None:
            expanded = kernel.shell.var_expand(cmd, depth=1)
            kernel.shell.user_ns["_exit_code"] = kernel.run_line(expanded)

        self.shell.system = system
        self.shell.system_piped = system

        def skipped_magic(line: str, name: str) -> None:
            kernel.record("skipped", f"%{name} {line}", "package install")
            print(f"[openpersonalize runner] skipped %{name} {line}")

        for name in ("pip", "conda", "mamba"):
            self.shell.register_magic_function(
                lambda line, _n=name: skipped_magic(line, _n), "line", name
            )

    def run_line(self, line: str) -> int:
        try:
            lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
            lexer.whitespace_split = True
            tokens = list(lexer)
        except ValueError as exc:
            self.record("skipped", line, f"unparsable: {exc}")
            print(f"[openpersonalize runner] skipped (unparsable): {line}")
            return 0
        cwd = Path.cwd()
        status = 0
        segment: list[str] = []
        joiner = ";"
        for token in [*tokens, ";"]:
            if token in ("&&", "||", ";"):
                if segment:
                    run = (
                        joiner == ";"
                        or (joiner == "&&" and status == 0)
                        or (joiner == "||" and status != 0)
                    )
                    if run:
                        status, cwd = self.run_segment(segment, cwd, line)
                segment, joiner = [], token
            else:
                segment.append(token)
        return status

    def run_segment(self, words: list[str], cwd: Path, line: str) -> tuple[int, Path]:
        command = words[0]
        name = os.path.basename(command)
        if name == "cd":
            target = cwd / (words[1] if len(words) > 1 else str(Path.home()))
            return (0, target.resolve()) if target.is_dir() else (1, cwd)
        if name in ("sudo", "env") and len(words) > 1:
            return self.run_segment(words[1:], cwd, line)
        if name in ("pip", "pip3", "conda", "mamba", "apt-get", "yum") or (
            name.startswith("python") and words[1:3] == ["-m", "pip"]
        ):
            self.record("skipped", line, "package install")
            print(f"[openpersonalize runner] skipped: {' '.join(words)}")
            return 0, cwd
        if name in ("wget", "curl"):
            return self.download(name, words[1:], cwd, line), cwd
        if name == "unzip":
            return self.unzip(words[1:], cwd, line), cwd
        if name == "aws":
            return self.aws(words[1:], cwd, line), cwd
        if name == "pygmentize":
            files = [w for w in words[1:] if not w.startswith("-")]
            for file in files:
                print((cwd / file).read_text(errors="replace"))
            return 0, cwd
        if name in self.LOCAL_COMMANDS:
            text = " ".join(w if w in self.OPERATORS else shlex.quote(w) for w in words)
            done = subprocess.run(text, shell=True, cwd=cwd, capture_output=True, text=True)
            sys.stdout.write(done.stdout)
            sys.stderr.write(done.stderr)
            return done.returncode, cwd
        self.record("skipped", line, f"unsupported command {name}")
        print(f"[openpersonalize runner] skipped (unsupported): {' '.join(words)}")
        return 0, cwd

    def local_copy(self, url: str) -> tuple[Path | None, str]:
        """A local file with what `url` serves, or None and why not."""
        key = url.split("://", 1)[-1].split("?", 1)[0]
        if key in self.stand_in_downloads:
            return Path(self.stand_in_downloads[key]), "made-up stand-in data, --stand-in"
        if key in self.downloads:
            return Path(self.downloads[key]), "local copy"
        prefix = "raw.githubusercontent.com/"
        if key.startswith(prefix):
            parts = key[len(prefix) :].split("/", 3)
            if len(parts) == 4:
                repo, commit, path = f"{parts[0]}/{parts[1]}", parts[2], parts[3]
                if repo in self.github:
                    shown = subprocess.run(
                        ["git", "-C", self.github[repo], "show", f"{commit}:{path}"],
                        capture_output=True,
                    )
                    if shown.returncode == 0:
                        target = Path(self.config["scratch"]) / commit / path
                        target.parent.mkdir(parents=True, exist_ok=True)
                        target.write_bytes(shown.stdout)
                        return target, f"{repo}@{commit[:8]} from a local clone"
                    return None, f"{commit}:{path} not in the local clone of {repo}"
                return None, f"no local clone of {repo} (--retail-demo-store)"
        return None, "no local copy"

    def download(self, tool: str, args: list[str], cwd: Path, line: str) -> int:
        url, output, directory, to_stdout = None, None, cwd, tool == "curl"
        index = 0
        while index < len(args):
            arg = args[index]
            if tool == "wget" and arg in ("-O", "--output-document") and index + 1 < len(args):
                output, index = args[index + 1], index + 2
                continue
            if tool == "wget" and arg in ("-P", "--directory-prefix") and index + 1 < len(args):
                directory, index = cwd / args[index + 1], index + 2
                continue
            if tool == "curl" and arg in ("-o", "--output") and index + 1 < len(args):
                output, to_stdout, index = args[index + 1], False, index + 2
                continue
            if tool == "curl" and arg in ("-O", "--remote-name"):
                to_stdout, index = False, index + 1
                continue
            if not arg.startswith("-"):
                url = arg
            index += 1
        if url is None:
            self.record("skipped", line, "no URL")
            return 1
        source, how = self.local_copy(url)
        if source is None:
            self.record("missing", line, f"{url}: {how}")
            print(f"[openpersonalize runner] {url}: {how}; the download fails", file=sys.stderr)
            return 1 if tool == "curl" else 8
        if to_stdout and output is None:
            sys.stdout.write(source.read_text(errors="replace"))
            self.record("supplied", line, f"{url} ({how})")
            return 0
        name = output or os.path.basename(url.split("?", 1)[0]) or "index.html"
        target = (cwd / name) if output else (directory / name)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        self.record("supplied", line, f"{url} ({how})")
        print(f"[openpersonalize runner] {url} -> {target.name} ({how})")
        return 0

    def unzip(self, args: list[str], cwd: Path, line: str) -> int:
        import zipfile

        archive, destination, index = None, cwd, 0
        while index < len(args):
            arg = args[index]
            if arg == "-d" and index + 1 < len(args):
                destination, index = cwd / args[index + 1], index + 2
                continue
            if not arg.startswith("-") and archive is None:
                archive = cwd / arg
            index += 1
        if archive is None or not archive.exists():
            print(f"unzip: cannot find {archive}", file=sys.stderr)
            return 9
        with zipfile.ZipFile(archive) as zipped:
            zipped.extractall(destination)
            print(f"Archive:  {archive.name} ({len(zipped.namelist())} files)")
        return 0

    def aws(self, args: list[str], cwd: Path, line: str) -> int:
        import boto3

        if len(args) < 2 or args[0] != "s3":
            self.record("skipped", line, "aws CLI other than s3")
            print(f"[openpersonalize runner] skipped (aws CLI): {' '.join(args)}")
            return 0
        s3 = boto3.client("s3")
        verb = args[1]
        flags = {a for a in args[2:] if a.startswith("--")}
        paths = [a for a in args[2:] if not a.startswith("--")]

        def split(uri: str) -> tuple[str, str]:
            bucket, _, key = uri[len("s3://") :].partition("/")
            return bucket, key

        def keys(bucket: str, prefix: str) -> list[str]:
            found = []
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                found += [item["Key"] for item in page.get("Contents", [])]
            return found

        if verb == "rm" and paths and paths[0].startswith("s3://"):
            bucket, key = split(paths[0])
            for name in keys(bucket, key) if "--recursive" in flags else [key]:
                s3.delete_object(Bucket=bucket, Key=name)
                print(f"delete: s3://{bucket}/{name}")
        elif verb == "cp" and len(paths) == 2:
            source, target = paths
            if source.startswith("s3://") and not target.startswith("s3://"):
                bucket, key = split(source)
                destination = cwd / target
                if destination.is_dir() or target.endswith("/"):
                    destination = destination / os.path.basename(key)
                s3.download_file(bucket, key, str(destination))
            elif target.startswith("s3://"):
                bucket, key = split(target)
                local = cwd / source
                files = (
                    sorted(p for p in local.rglob("*") if p.is_file())
                    if local.is_dir()
                    else [local]
                )
                for file in files:
                    name = key
                    if local.is_dir():
                        name = key.rstrip("/") + "/" + file.relative_to(local).as_posix()
                    elif not key or key.endswith("/"):
                        name = key + file.name
                    s3.upload_file(str(file), bucket, name.lstrip("/"))
                    print(f"upload: {file.name} to s3://{bucket}/{name}")
        elif verb == "mb" and paths:
            s3.create_bucket(Bucket=split(paths[0])[0])
        elif verb == "rb" and paths:
            bucket = split(paths[0])[0]
            if "--force" in flags:
                for name in keys(bucket, ""):
                    s3.delete_object(Bucket=bucket, Key=name)
            s3.delete_bucket(Bucket=bucket)
        elif verb == "ls":
            if paths:
                bucket, key = split(paths[0])
                for name in keys(bucket, key):
                    print(name)
            else:
                for bucket in s3.list_buckets()["Buckets"]:
                    print(bucket["Name"])
        else:
            self.record("skipped", line, f"aws s3 {verb} not emulated")
            print(f"[openpersonalize runner] skipped (aws s3 {verb})")
            return 0
        self.record("emulated", line, "aws s3 through boto3")
        return 0


def kernel_install(shell: Any) -> None:
    """Called by the kernel's startup script: install every hook."""
    with open(os.environ[KERNEL_CONFIG_VARIABLE], encoding="utf-8") as file:
        kernel = _Kernel(shell, json.load(file))
    kernel.install_seed()
    kernel.install_sleep()
    kernel.install_open()
    kernel.install_pandas()
    kernel.install_s3_paths()
    kernel.install_shell()


# --------------------------------------------------------------------------------------------
# Runner side.
# --------------------------------------------------------------------------------------------

REPO_ROOT = Path(__file__).resolve().parent.parent

STARTUP_SCRIPT = """\
import sys as _op_sys
_op_sys.path.append({tools!r})
import run_notebooks as _op_runner
_op_sys.path.remove({tools!r})
_op_runner.kernel_install(get_ipython())
del _op_sys, _op_runner
"""

AUTO_CONTEXT_STACK = {  # the resources automatic_context's notebooks look up in its stack
    "AWSTemplateFormatVersion": "2010-09-09",
    "Resources": {
        "PersonalizeAutoContextBucket": {"Type": "AWS::S3::Bucket"},
        "SSMParameterStoreCampaignEndpointArn": {
            "Type": "AWS::SSM::Parameter",
            "Properties": {
                "Name": "/personalize/endpoints/automatic-context-demo-arn",
                "Type": "String",
                "Value": "default-value",
            },
        },
        "SSMParameterStoreFilterArn": {
            "Type": "AWS::SSM::Parameter",
            "Properties": {
                "Name": "/personalize/filters/automatic-context-demo-filter-arn",
                "Type": "String",
                "Value": "default-value",
            },
        },
    },
}

PERSONALIZE_TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "personalize.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}


class Moto:
    """moto's server as a child process on a free loopback port; stopped by its pid."""

    def __init__(self, folder: Path) -> None:
        from openpersonalize.testing.server import free_port

        self.folder = folder
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> Moto:
        import boto3

        self.folder.mkdir(parents=True, exist_ok=True)
        environment = dict(os.environ, MOTO_IAM_LOAD_MANAGED_POLICIES="true")
        with open(self.folder / "moto.log", "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=environment,
            )
        probe = boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                probe.list_buckets()
                return self
            except Exception:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.stop()
                    raise RuntimeError(f"moto's server did not start; see {self.folder}") from None
                time.sleep(0.2)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


def aws_environment(moto_url: str, server_url: str, root: Path) -> dict[str, str]:
    """The kernel's AWS variables: moto for everything but Personalize, which is ours."""
    (root / "aws").mkdir(exist_ok=True)
    (root / "aws" / "config").write_text("")
    (root / "aws" / "credentials").write_text("")
    environment = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_CONFIG_FILE": str(root / "aws" / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(root / "aws" / "credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_ENDPOINT_URL": moto_url,
    }
    for service in ("S3", "IAM", "STS", "SSM", "CLOUDFORMATION"):
        environment[f"AWS_ENDPOINT_URL_{service}"] = moto_url
    for service in ("PERSONALIZE", "PERSONALIZE_RUNTIME", "PERSONALIZE_EVENTS"):
        environment[f"AWS_ENDPOINT_URL_{service}"] = server_url
    return environment


def moto_client(environment: dict[str, str], service: str) -> Any:
    import boto3

    return boto3.client(
        service,
        endpoint_url=environment["AWS_ENDPOINT_URL"],
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def provision(environment: dict[str, str]) -> None:
    """Create in moto what the samples' CloudFormation templates create for their notebooks."""

    def client(service: str) -> Any:
        return moto_client(environment, service)

    # getting_started/personalize_getting_started.yaml: bucket, role, SSM parameters.
    bucket = f"personalize-getting-started-{ACCOUNT_ID}"
    client("s3").create_bucket(Bucket=bucket)
    iam = client("iam")
    role = iam.create_role(
        RoleName="PersonalizeGettingStartedRole",
        AssumeRolePolicyDocument=json.dumps(PERSONALIZE_TRUST),
    )["Role"]["Arn"]
    for policy in (
        "arn:aws:iam::aws:policy/service-role/AmazonPersonalizeFullAccess",
        "arn:aws:iam::aws:policy/AmazonS3FullAccess",
    ):
        iam.attach_role_policy(RoleName="PersonalizeGettingStartedRole", PolicyArn=policy)
    ssm = client("ssm")
    ssm.put_parameter(Name="/cloudformation/personalize-s3-bucket", Value=bucket, Type="String")
    ssm.put_parameter(Name="/cloudformation/personalize-iam-role-arn", Value=role, Type="String")
    # automatic_context/templates: the stack the notebooks read their bucket and parameters from.
    client("cloudformation").create_stack(
        StackName="personalize-auto-context-stack", TemplateBody=json.dumps(AUTO_CONTEXT_STACK)
    )


def prepare_downloads(datasets: Path, folder: Path) -> tuple[dict[str, str], list[str]]:
    """Local files for the URLs the notebooks download (host/path -> file), and what's missing."""
    import gzip
    import zipfile

    folder.mkdir(parents=True, exist_ok=True)
    downloads: dict[str, str] = {}
    missing: list[str] = []
    movielens = "files.grouplens.org/datasets/movielens/"
    for name in ("ml-100k", "ml-latest-small"):
        source = datasets / name
        if not source.is_dir():
            missing.append(f"{movielens}{name}.zip: no {source}")
            continue
        archive = folder / f"{name}.zip"
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zipped:
            for file in sorted(source.iterdir()):
                if file.name == "SOURCE.md" or not file.is_file():
                    continue
                if file.name == "splits.zip":  # GroupLens ships these loose in ml-100k/
                    with zipfile.ZipFile(file) as splits:
                        for member in splits.namelist():
                            zipped.writestr(f"{name}/{member}", splits.read(member))
                    continue
                zipped.write(file, f"{name}/{file.name}")
        downloads[f"{movielens}{name}.zip"] = str(archive)
    retail = datasets / "retail-demo-store"
    for name in ("interactions.csv", "items.csv", "users.csv"):
        url = f"code.retaildemostore.retail.aws.dev/csvs/{name}"
        plain, packed = retail / name, retail / f"{name}.gz"
        if plain.exists():
            downloads[url] = str(plain)
        elif packed.exists():
            target = folder / "retail-demo-store" / name
            target.parent.mkdir(exist_ok=True)
            with gzip.open(packed, "rb") as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)
            downloads[url] = str(target)
        else:
            missing.append(f"{url}: no {plain}")
    return downloads, missing


def server_failures(environment: dict[str, str]) -> list[str]:
    """Every resource on our server that ended CREATE FAILED, with its failureReason."""
    import boto3

    personalize = boto3.client(
        "personalize",
        endpoint_url=environment["AWS_ENDPOINT_URL_PERSONALIZE"],
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    found: list[str] = []

    def note(kind: str, arn: str, describe: Any, envelope: str, key: str) -> None:
        try:
            item = describe(**{key: arn})[envelope]
        except Exception as exc:  # deleted meanwhile
            found.append(f"{kind} {arn}: describe failed: {exc}")
            return
        found.append(f"{kind} `{arn.split(':', 5)[-1]}`: {item.get('failureReason', '?')}")

    try:
        groups = personalize.list_dataset_groups(maxResults=100)["datasetGroups"]
        for group in groups:
            arn = group["datasetGroupArn"]
            for solution in personalize.list_solutions(datasetGroupArn=arn, maxResults=100)[
                "solutions"
            ]:
                versions = personalize.list_solution_versions(
                    solutionArn=solution["solutionArn"], maxResults=100
                )["solutionVersions"]
                for version in versions:
                    if version["status"] == "CREATE FAILED":
                        note(
                            "solution version",
                            version["solutionVersionArn"],
                            personalize.describe_solution_version,
                            "solutionVersion",
                            "solutionVersionArn",
                        )
                for campaign in personalize.list_campaigns(
                    solutionArn=solution["solutionArn"], maxResults=100
                )["campaigns"]:
                    if campaign["status"] == "CREATE FAILED":
                        note(
                            "campaign",
                            campaign["campaignArn"],
                            personalize.describe_campaign,
                            "campaign",
                            "campaignArn",
                        )
            for item in personalize.list_filters(datasetGroupArn=arn, maxResults=100)["Filters"]:
                if item["status"] == "CREATE FAILED":
                    note(
                        "filter",
                        item["filterArn"],
                        personalize.describe_filter,
                        "filter",
                        "filterArn",
                    )
        for job in personalize.list_dataset_import_jobs(maxResults=100)["datasetImportJobs"]:
            if job["status"] == "CREATE FAILED":
                note(
                    "import job",
                    job["datasetImportJobArn"],
                    personalize.describe_dataset_import_job,
                    "datasetImportJob",
                    "datasetImportJobArn",
                )
        for job in personalize.list_batch_inference_jobs(maxResults=100)["batchInferenceJobs"]:
            if job["status"] == "CREATE FAILED":
                note(
                    "batch inference job",
                    job["batchInferenceJobArn"],
                    personalize.describe_batch_inference_job,
                    "batchInferenceJob",
                    "batchInferenceJobArn",
                )
    except Exception as exc:
        found.append(f"(listing failed resources stopped: {type(exc).__name__}: {exc})")
    return found


def one_line(text: str, limit: int = 300) -> str:
    import re

    text = re.sub(r"\x1b\[[0-9;]*m", "", text or "")
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def run_notebook(
    relative: str,
    samples: Path,
    root: Path,
    environment: dict[str, str],
    kernel_config: dict[str, Any],
    args: Any,
) -> dict[str, Any]:
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    result: dict[str, Any] = {
        "notebook": relative,
        "status": "failed",
        "failures": [],
        "shell": [],
        "server": [],
    }
    source = samples / relative
    if not source.exists():
        result.update(status="not found", total=0, run=0)
        return result
    notebook = nbformat.read(source, as_version=4)
    cells = [
        (index, cell)
        for index, cell in enumerate(notebook.cells)
        if cell.cell_type == "code" and cell.source.strip()
    ]
    result.update(total=len(cells), run=0, notes=[])
    stand_in_downloads: dict[str, str] = {}  # host/path -> made-up file, for this notebook
    if relative in UNAVAILABLE:
        result.update(status="needs data", needs=UNAVAILABLE[relative])
        if not (args.stand_in and relative in STAND_INS):
            return result
        stand_in = STAND_INS[relative](args.datasets.resolve())
        s3 = moto_client(environment, "s3")
        for bucket, objects in stand_in.s3.items():
            s3.create_bucket(Bucket=bucket)
            for key, body in objects.items():
                s3.put_object(Bucket=bucket, Key=key, Body=body)
        for url, body in stand_in.downloads.items():
            file = root / "stand-in" / url
            file.parent.mkdir(parents=True, exist_ok=True)
            file.write_bytes(body)
            stand_in_downloads[url] = str(file)
        result["stand_in"] = {"run": 0, "failures": []}
    for name, number, old, new, why in PATCHES:
        if name != relative:
            continue
        cell = cells[number - 1][1] if number <= len(cells) else None
        if cell is not None and old in cell.source:
            cell.source = cell.source.replace(old, new)
            result["notes"].append(f"fixed in cell {number}: `{old}` -> `{new}`: {why}")
        else:
            result["notes"].append(f"fix for cell {number} no longer applies (`{old}` not found)")

    folder = root / "work" / Path(relative).parent
    if not folder.exists():
        shutil.copytree(source.parent, folder)
    log = root / "logs" / (Path(relative).stem + ".jsonl")
    log.parent.mkdir(exist_ok=True)
    log.write_text("")
    config = dict(kernel_config, log=str(log), stand_in_downloads=stand_in_downloads)
    config_path = root / "logs" / (Path(relative).stem + ".json")
    config_path.write_text(json.dumps(config))
    kernel_environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("AWS_", "OPENPERSONALIZE_", "JPY_", "MPLBACKEND"))
    }
    kernel_environment.update(environment)
    kernel_environment.update(
        {
            KERNEL_CONFIG_VARIABLE: str(config_path),
            "IPYTHONDIR": str(root / "ipython"),
            "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""),
            "PYTHONDONTWRITEBYTECODE": "1",
        }
    )
    client = NotebookClient(
        notebook,
        timeout=args.cell_timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(folder)}},
        allow_errors=False,
    )
    outcome = result.get("stand_in", result)  # where cells run and failures are counted
    fails_on_aws = {
        (cell, exception): why
        for name, numbers, exception, why in FAILS_ON_AWS
        if name == relative
        for cell in numbers
    }
    started = time.monotonic()
    server_log = root / "server" / "server.log"
    log_offset = server_log.stat().st_size if server_log.exists() else 0
    try:
        with client.setup_kernel(env=kernel_environment):
            for number, (index, cell) in enumerate(cells, 1):
                first = cell.source.strip().splitlines()[0][:70]
                print(f"  [{number}/{len(cells)}] {first}", flush=True)
                try:
                    client.execute_cell(cell, index)
                    if not outcome["failures"]:
                        outcome["run"] = number
                except CellExecutionError as error:
                    failure = {
                        "cell": number,
                        "exception": error.ename,
                        "message": one_line(error.evalue),
                    }
                    why = fails_on_aws.get((number, error.ename))
                    if why is not None:  # the notebook's own doing: counted as run
                        outcome.setdefault("fails_on_aws", []).append(dict(failure, why=why))
                        if not outcome["failures"]:
                            outcome["run"] = number
                        print(f"    failed, as on AWS: {error.ename}: {why}", flush=True)
                        continue
                    outcome["failures"].append(failure)
                    print(f"    FAILED: {error.ename}: {failure['message']}", flush=True)
                    if not args.keep_going:
                        break
                except Exception as error:  # timeout, dead kernel
                    failure = {
                        "cell": number,
                        "exception": type(error).__name__,
                        "message": one_line(str(error)),
                    }
                    outcome["failures"].append(failure)
                    print(f"    FAILED: {failure['exception']}: {failure['message']}", flush=True)
                    break
    finally:
        executed = root / "executed" / relative
        executed.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(notebook, executed)
    result["seconds"] = round(time.monotonic() - started)
    if not result["failures"] and "stand_in" not in result:
        result["status"] = "passed"
    entries = [json.loads(line) for line in log.read_text().splitlines() if line]
    result["shell"] = [
        {"kind": e["kind"], "line": e["line"], "detail": e["detail"]}
        for e in entries
        if e["kind"] in ("missing", "skipped") and e["detail"] != "package install"
    ]
    result["supplied"] = sorted({e["detail"] for e in entries if e["kind"] == "supplied"})
    result["server"] = server_failures(environment)
    if server_log.exists():
        with open(server_log, "rb") as file:
            file.seek(log_offset)
            tail = file.read().decode(errors="replace")
        tracebacks = tail.count("Traceback (most recent call last)")
        if tracebacks:
            result["server"].append(f"server log: {tracebacks} traceback(s); see {server_log}")
    return result


# --------------------------------------------------------------------------------------------
# docs/compatibility.md
# --------------------------------------------------------------------------------------------

RESULTS_MARK = "<!-- results: "
# Errors of a cell that only uses what a failed earlier cell should have set.
CONSEQUENCES = {"NameError", "ParamValidationError", "UsageError"}

DOC_HEAD = """\
# Compatibility: the amazon-personalize-samples notebooks

Generated by `tools/run_notebooks.py`; edit the runner, not this file. Each notebook from
[aws-samples/amazon-personalize-samples](https://github.com/aws-samples/amazon-personalize-samples)
runs unchanged, cell by cell in one IPython kernel, against a fresh `openpersonalize serve`
per folder (a folder's notebooks build on each other), with S3, IAM, STS, SSM and
CloudFormation served by moto. *Cells run* counts the code cells that ran without an error
before the first failure; a cell that fails against AWS too, by the notebook's own design
(a demonstrated mistake, a placeholder ARN to fill in by hand), counts as run and is listed
under its notebook. A notebook whose data cannot be had here (AWS's own storage, downloads
not in `../shared/datasets`) is listed with what it needs and not run.

## Reproduce

```sh
.venv/bin/pip install -e '.[notebooks]'
git clone https://github.com/aws-samples/amazon-personalize-samples /tmp/personalize-samples
git clone https://github.com/aws-samples/retail-demo-store /tmp/retail-demo-store  # a helper
.venv/bin/python tools/run_notebooks.py --samples /tmp/personalize-samples \\
    --retail-demo-store /tmp/retail-demo-store --keep-going --stand-in  # [NOTEBOOK ...]
```

Data comes from `../shared/datasets` (`--datasets`): MovieLens ml-100k and ml-latest-small,
and the Retail Demo Store CSVs. `--keep-going` runs the cells after a failure too (every
failure is then listed below); `--stand-in` runs a notebook whose data cannot be had on
made-up data of the same files, formats and columns, generated with a fixed seed and a planted
structure (reported beside it, never counted as run);
`--work-dir DIR` keeps the executed notebooks, the servers' logs and each notebook's folder.
Each run takes a few minutes on two cores.

## Metric attribution figures without CloudWatch

The service sends metric attribution figures to Amazon CloudWatch, which cannot be reached
from here. They go to the attribution's S3 folder (`metricsOutputConfig.s3DataDestination`)
instead: `AggregatedAttributionMetrics - BULK - <epoch seconds>.csv` once an import job with
`publishAttributionMetricsToS3` has its data in (that import's events), and
`AggregatedAttributionMetrics - PUT - <epoch seconds>.csv` every few seconds (the PutEvents
events received since the file before; a window's figure is the sum over the files).
`openpersonalize metric-attribution-report ARN [--data-dir DIR] [--json]` prints every figure,
per metric, attribution source and 15-minute window, from the server's data.
"""


def write_doc(path: Path, results: dict[str, dict[str, Any]], meta: dict[str, Any]) -> None:
    order = {name: index for index, name in enumerate(DEFAULT_NOTEBOOKS)}
    names = sorted(results, key=lambda n: (order.get(n, len(order)), n))
    lines = [DOC_HEAD, "## Results", ""]
    lines.append(
        f"Samples at commit `{meta.get('samples_commit', '?')}`; last run {meta.get('date', '?')}"
        + (f" with `{' '.join(meta['flags'])}`." if meta.get("flags") else ".")
    )
    lines += ["", "| notebook | cells run / total | first failure |", "|---|---|---|"]
    for name in names:
        result = results[name]
        if result["status"] == "needs data":
            failure = "not run: needs data (below)"
            cells = f"— / {result['total']}"
            stand_in = result.get("stand_in")
            if stand_in:
                first = stand_in["failures"][0] if stand_in["failures"] else None
                failure += (
                    f"; with made-up stand-in data (`--stand-in`) {stand_in['run']} / "
                    f"{result['total']} ran, "
                    + (
                        f"first failure cell {first['cell']}: `{first['exception']}`: "
                        f"{first['message'].replace('|', '/')}"
                        if first
                        else "to the end"
                    )
                )
        elif result["status"] == "not found":
            failure, cells = "not in the samples checkout", "—"
        elif result["failures"]:
            first = result["failures"][0]
            failure = (
                f"cell {first['cell']}: `{first['exception']}`: "
                f"{first['message'].replace('|', '/')}"
            )
            cells = f"{result['run']} / {result['total']}"
        else:
            failure, cells = "— (ran to the end)", f"{result['run']} / {result['total']}"
        expected = result.get("stand_in", result).get("fails_on_aws", [])
        if expected:
            numbers = ", ".join(str(entry["cell"]) for entry in expected)
            failure += f" (cells {numbers} fail as they would on AWS: below)"
        lines.append(f"| `{name}` | {cells} | {failure} |")
    lines += ["", "## Per notebook", ""]
    for name in names:
        result = results[name]
        lines.append(f"### `{name}`")
        lines.append("")
        if result.get("seconds") is not None:
            what = "stand-in run" if result.get("stand_in") else result["status"]
            lines.append(f"- {what} in {result['seconds']} s")
        for need in result.get("needs", []):
            lines.append(f"- needs {need}; no local copy exists")
        later = [
            ("stand-in run, later", f) for f in result.get("stand_in", {}).get("failures", [])[1:]
        ] + [("later", f) for f in result["failures"][1:]]
        consequences = 0
        for label, failure in later:
            if failure["exception"] in CONSEQUENCES:
                consequences += 1
                continue
            lines.append(
                f"- {label} failure, cell {failure['cell']}: `{failure['exception']}`: "
                f"{failure['message']}"
            )
        if consequences:
            lines.append(
                f"- and {consequences} later failure(s) that follow from earlier ones "
                f"({', '.join(sorted(CONSEQUENCES))}: a name or ARN an earlier cell did not set)"
            )
        for entry in result.get("stand_in", result).get("fails_on_aws", []):
            lines.append(
                f"- cell {entry['cell']} fails as it would on AWS, `{entry['exception']}`: "
                f"{entry['why']}"
            )
        for entry in result.get("shell", []):
            lines.append(f"- shell `{entry['line']}`: {entry['kind']} ({entry['detail']})")
        for detail in result.get("supplied", []):
            lines.append(f"- supplied {detail}")
        for note in result.get("server", []):
            lines.append(f"- server: {note}")
        for note in result.get("notes", []):
            lines.append(f"- {note}")
        lines.append("")
    lines += ["## What the runner changes", ""]
    lines += [
        "The kernel's environment, for every notebook (nothing here concerns Personalize):",
        "",
    ]
    for title, text in ENVIRONMENT:
        lines.append(f"- **{title}**: {text}")
    lines += ["", "Notebook-level fixes, applied to a cell's source in memory before it runs:", ""]
    for name, number, old, new, why in PATCHES:
        lines.append(f"- `{name}`, cell {number}: `{old}` -> `{new}`: {why}.")
    lines += ["", RESULTS_MARK + json.dumps({"meta": meta, "results": results}) + " -->", ""]
    path.write_text("\n".join(lines))


def read_previous(path: Path) -> dict[str, dict[str, Any]]:
    if not path.exists():
        return {}
    for line in path.read_text().splitlines():
        if line.startswith(RESULTS_MARK):
            return json.loads(line[len(RESULTS_MARK) : -len(" -->")])["results"]
    return {}


def main(argv: list[str] | None = None) -> int:
    import argparse
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "notebooks",
        nargs="*",
        help="paths relative to --samples (default: the notebooks that must run)",
    )
    parser.add_argument(
        "--samples",
        required=True,
        type=Path,
        help="a checkout of aws-samples/amazon-personalize-samples",
    )
    parser.add_argument(
        "--datasets",
        type=Path,
        default=REPO_ROOT.parent / "shared" / "datasets",
        help="local copies of MovieLens and the Retail Demo Store CSVs",
    )
    parser.add_argument(
        "--retail-demo-store",
        type=Path,
        default=None,
        help="a clone of aws-samples/retail-demo-store (git show serves the "
        "helper the updating_datasets notebooks download)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=REPO_ROOT / "docs" / "compatibility.md",
        help="the report; rows of notebooks not run this time are kept",
    )
    parser.add_argument("--no-write", action="store_true", help="print, do not write --output")
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=None,
        help="keep the servers' data and logs, the executed notebooks and each notebook's "
        "folder here (by default a temporary folder, removed at the end)",
    )
    parser.add_argument("--cell-timeout", type=int, default=900, help="seconds per cell")
    parser.add_argument(
        "--sleep-scale", type=float, default=1 / 60, help="time.sleep(n) waits n x this..."
    )
    parser.add_argument("--sleep-cap", type=float, default=1.0, help="...and at most this")
    parser.add_argument(
        "--stand-in",
        action="store_true",
        help="run a notebook whose data is not to be had on made-up data (reported apart, "
        "never counted as run)",
    )
    parser.add_argument(
        "--keep-going", action="store_true", help="run the cells after a failing one too"
    )
    args = parser.parse_args(argv)

    from openpersonalize.testing.server import ServerProcess

    samples = args.samples.resolve()
    notebooks = args.notebooks or DEFAULT_NOTEBOOKS
    root = (args.work_dir or Path(tempfile.mkdtemp(prefix="op-notebooks-"))).resolve()
    root.mkdir(parents=True, exist_ok=True)
    print(f"working in {root}", flush=True)
    commit = (
        subprocess.run(
            ["git", "-C", str(samples), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
        ).stdout.strip()
        or "?"
    )
    downloads, missing = prepare_downloads(args.datasets.resolve(), root / "downloads")
    for line in missing:
        print(f"no local copy: {line}", flush=True)
    (root / "sagemaker").mkdir(exist_ok=True)
    metadata = root / "sagemaker" / "resource-metadata.json"
    metadata.write_text(
        json.dumps(
            {
                "ResourceArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT_ID}:"
                "notebook-instance/openpersonalize",
                "ResourceName": "openpersonalize",
            }
        )
    )
    ipython = root / "ipython" / "profile_default" / "startup"
    ipython.mkdir(parents=True, exist_ok=True)
    (ipython / "00-openpersonalize.py").write_text(
        STARTUP_SCRIPT.format(tools=str(Path(__file__).resolve().parent))
    )
    kernel_config = {
        "downloads": downloads,
        "github": {"aws-samples/retail-demo-store": str(args.retail_demo_store.resolve())}
        if args.retail_demo_store
        else {},
        "redirects": {SAGEMAKER_METADATA: str(metadata)},
        "sleep_scale": args.sleep_scale,
        "sleep_cap": args.sleep_cap,
        "scratch": str(root / "scratch"),
    }

    results: dict[str, dict[str, Any]] = {}
    moto = Moto(root / "moto").start()
    server = None
    folder = None
    try:
        for relative in notebooks:
            # Notebooks of one folder build on each other (a notebook uses what the previous
            # one created); each folder gets a fresh server, as if cleaned up in between.
            if Path(relative).parent != folder:
                if server is not None:
                    server.stop()
                folder = Path(relative).parent
                server = ServerProcess(
                    root / "server" / str(folder).replace("/", "+"),
                    settings={
                        "account_id": ACCOUNT_ID,
                        "region": REGION,
                        "s3_endpoint_url": moto.url,
                    },
                    environment={
                        "AWS_ACCESS_KEY_ID": "testing",
                        "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": REGION,
                    },
                ).start()
                environment = aws_environment(moto.url, server.endpoint_url, root)
                if not results and relative == notebooks[0]:
                    provision(environment)  # moto's resources: once, shared by every folder
            print(f"{relative}", flush=True)
            result = run_notebook(relative, samples, root, environment, kernel_config, args)
            results[relative] = result
            print(
                f"  -> {result['status']}: {result.get('run')} / {result.get('total')}", flush=True
            )
    finally:
        if server is not None:
            server.stop()
        moto.stop()

    flags = [
        f for f, on in (("--keep-going", args.keep_going), ("--stand-in", args.stand_in)) if on
    ]
    meta = {"samples_commit": commit, "date": time.strftime("%Y-%m-%d"), "flags": flags}
    if args.no_write:
        print(json.dumps(results, indent=2))
    else:
        merged = read_previous(args.output)
        merged.update(results)
        args.output.parent.mkdir(parents=True, exist_ok=True)
        write_doc(args.output, merged, meta)
        print(f"wrote {args.output}")
    if args.work_dir is None:
        shutil.rmtree(root, ignore_errors=True)  # --work-dir keeps it
    return 0 if all(r["status"] == "passed" for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
