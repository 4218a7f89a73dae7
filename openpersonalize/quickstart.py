"""`openpersonalize quickstart`: the whole Amazon Personalize workflow, end to end, in a minute.

It starts a real server (`openpersonalize serve`, as a child process on a free loopback
port, with its data in a temporary directory or in ``--data-dir``) and drives it through
boto3 exactly as an application would: dataset group, schemas, datasets, import jobs
(``s3://`` locations read from a local S3 root), a solution (aws-user-personalization),
a solution version, its metrics, a campaign, a filter, recommendations for one user, and
an event tracker whose PutEvents change that user's next recommendations.

The data is a seeded synthetic shop by default (users in taste groups preferring item
categories), or, with ``--movielens DIR``, a local copy of MovieLens ML-100K (``u.data``,
``u.item``) or ml-latest-small (``ratings.csv``, ``movies.csv``). MovieLens is read only
from ``DIR``: its licence forbids commercial use, so it never ships with this package.
"""

from __future__ import annotations

import csv
import math
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import numpy as np

__all__ = ["QuickstartError", "QuickstartData", "load_movielens", "main", "run", "synthetic_shop"]

RECIPE_ARN = "arn:aws:personalize:::recipe/aws-user-personalization"
BUCKET = "quickstart"
NUM_RESULTS = 10


class QuickstartError(Exception):
    """A problem the user can act on: printed as one message, exit status 1 (2 for bad input)."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


# -- data -----------------------------------------------------------------------------------------


@dataclass
class Item:
    title: str | None
    categories: tuple[str, ...]


@dataclass
class QuickstartData:
    """What the quickstart imports: interactions, an item catalog, and how to talk about it."""

    label: str
    attribute: str  # the categorical Items column: CATEGORY or GENRES
    noun: str  # "category" or "genre"
    # (USER_ID, ITEM_ID, TIMESTAMP, EVENT_TYPE, EVENT_VALUE or None)
    interactions: list[tuple[str, str, int, str, float | None]]
    items: dict[str, Item]
    clicks: int = 6  # how many clicks the PutEvents step sends

    @property
    def has_titles(self) -> bool:
        return any(item.title for item in self.items.values())


SHOP_CATEGORIES = ("books", "music", "games", "garden", "kitchen", "sports")


def synthetic_shop(
    seed: int = 7, n_users: int = 90, items_per_category: int = 20
) -> QuickstartData:
    """A seeded shop: each user prefers one category (85% of their events), item popularity
    falls off within a category, and activity varies from 4 to 40 events per user."""
    rng = np.random.default_rng(seed)
    items: dict[str, Item] = {}
    by_category: dict[str, list[str]] = {}
    for category in SHOP_CATEGORIES:
        ids = [f"{category}-{n:02d}" for n in range(1, items_per_category + 1)]
        by_category[category] = ids
        for item_id in ids:
            items[item_id] = Item(None, (category,))
    everything = list(items)
    # popularity within a list of n: rank floor(n * u**2) (a few hits, a long tail)
    rows: list[tuple[str, str, int, str, float | None]] = []
    start = 1_700_000_000
    for user in range(n_users):
        user_id = f"user-{user + 1:03d}"
        taste = by_category[SHOP_CATEGORIES[user % len(SHOP_CATEGORIES)]]
        for step in range(int(rng.integers(4, 41))):
            pool = taste if rng.random() < 0.85 else everything
            item_id = pool[min(int(len(pool) * rng.random() ** 2), len(pool) - 1)]
            timestamp = start + user * 10_000 + step * 60
            if rng.random() < 0.1:
                rows.append((user_id, item_id, timestamp, "purchase", float(rng.integers(5, 60))))
            else:
                rows.append((user_id, item_id, timestamp, "click", None))
    return QuickstartData("synthetic shop (seeded)", "CATEGORY", "category", rows, items)


# ML-100K's genre flags in u.item, in order (u.genre lists the same when it is there).
ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance",
    "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip


def load_movielens(directory: Path) -> QuickstartData:
    """ML-100K (u.data + u.item) or ml-latest-small (ratings.csv + movies.csv) from `directory`."""
    directory = Path(directory)
    if not directory.is_dir():
        raise QuickstartError(f"--movielens: {directory} is not a directory", status=2)
    if (directory / "ratings.csv").is_file() and (directory / "movies.csv").is_file():
        return _ml_latest(directory)
    if (directory / "u.data").is_file() and (directory / "u.item").is_file():
        return _ml_100k(directory)
    present = ", ".join(sorted(p.name for p in directory.iterdir())[:12]) or "nothing"
    raise QuickstartError(
        f"--movielens: {directory} holds neither ml-latest-small (ratings.csv and movies.csv) "
        f"nor ML-100K (u.data and u.item); found: {present}",
        status=2,
    )


def _ml_latest(directory: Path) -> QuickstartData:
    items: dict[str, Item] = {}
    try:
        with (directory / "movies.csv").open(newline="", encoding="utf-8") as movies:
            for row in csv.DictReader(movies):
                genres = row["genres"]
                listed = () if genres == "(no genres listed)" else tuple(genres.split("|"))
                items[row["movieId"]] = Item(row["title"], listed)
        rows: list[tuple[str, str, int, str, float | None]] = []
        with (directory / "ratings.csv").open(newline="", encoding="utf-8") as ratings:
            for row in csv.DictReader(ratings):
                rows.append(
                    (
                        row["userId"],
                        row["movieId"],
                        int(row["timestamp"]),
                        "rating",
                        float(row["rating"]),
                    )
                )
    except (KeyError, ValueError, UnicodeDecodeError) as error:
        raise QuickstartError(
            f"--movielens: cannot read {directory}: {error!r}", status=2
        ) from None
    return QuickstartData("MovieLens ml-latest-small", "GENRES", "genre", rows, items, clicks=10)


def _ml_100k(directory: Path) -> QuickstartData:
    genres = ML100K_GENRES
    if (directory / "u.genre").is_file():
        listed = [
            line.split("|")[0]
            for line in (directory / "u.genre").read_text(encoding="latin-1").splitlines()
            if "|" in line
        ]
        genres = tuple(listed) or genres
    items: dict[str, Item] = {}
    rows: list[tuple[str, str, int, str, float | None]] = []
    try:
        for line in (directory / "u.item").read_text(encoding="latin-1").splitlines():
            if not line.strip():
                continue
            parts = line.split("|")
            flags = parts[-len(genres) :]
            chosen = tuple(g for g, flag in zip(genres, flags, strict=True) if flag == "1")
            items[parts[0]] = Item(parts[1], tuple(g for g in chosen if g != "unknown"))
        for line in (directory / "u.data").read_text(encoding="latin-1").splitlines():
            if line.strip():
                user, item, rating, timestamp = line.split("\t")
                rows.append((user, item, int(timestamp), "rating", float(rating)))
    except ValueError as error:
        raise QuickstartError(f"--movielens: cannot read {directory}: {error}", status=2) from None
    return QuickstartData("MovieLens ML-100K", "GENRES", "genre", rows, items, clicks=10)


def write_csvs(data: QuickstartData, folder: Path) -> None:
    """interactions.csv and items.csv, with headers named after the schemas' fields."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "interactions.csv").open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE", "EVENT_VALUE"])
        for user, item, timestamp, event_type, value in data.interactions:
            writer.writerow([user, item, timestamp, event_type, "" if value is None else value])
    with (folder / "items.csv").open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out, lineterminator="\n")
        titles = data.has_titles
        writer.writerow(["ITEM_ID", *(["TITLE"] if titles else []), data.attribute])
        for item_id, item in data.items.items():
            title = [item.title or ""] if titles else []
            writer.writerow([item_id, *title, "|".join(item.categories)])


def interactions_schema() -> str:
    from openpersonalize.testing.synthetic import INTERACTIONS_SCHEMA_JSON

    return INTERACTIONS_SCHEMA_JSON  # USER_ID, ITEM_ID, TIMESTAMP, EVENT_TYPE, EVENT_VALUE


def items_schema(data: QuickstartData) -> str:
    import json

    fields: list[dict[str, Any]] = [{"name": "ITEM_ID", "type": "string"}]
    if data.has_titles:
        fields.append({"name": "TITLE", "type": "string"})
    fields.append({"name": data.attribute, "type": ["null", "string"], "categorical": True})
    return json.dumps(
        {
            "type": "record",
            "name": "Items",
            "namespace": "com.amazonaws.personalize.schema",
            "fields": fields,
            "version": "1.0",
        }
    )


# -- the demo user --------------------------------------------------------------------------------


@dataclass
class Demo:
    """The user the quickstart follows, their favourite and neglected category, and the clicks."""

    user: str
    history: int
    favourite: str
    other: str
    clicks: list[str] = field(default_factory=list)


def choose_demo(data: QuickstartData) -> Demo:
    """A user with a short, focused history; the category they like most relative to everyone;
    a popular category they hardly touch; and its most popular items they have not seen."""
    history: dict[str, set[str]] = {}
    popularity: Counter[str] = Counter()
    for user, item, *_ in data.interactions:
        history.setdefault(user, set()).add(item)
        popularity[item] += 1
    if len(history) < 2:
        raise QuickstartError("the data needs interactions from at least two users", status=2)
    global_share: Counter[str] = Counter()
    for item, count in popularity.items():
        for category in data.items.get(item, Item(None, ())).categories:
            global_share[category] += count
    total = sum(popularity.values())
    share = {category: count / total for category, count in global_share.items()}
    if len(share) < 2:
        raise QuickstartError(f"the items need at least two {data.noun} values", status=2)

    def leaning(items: set[str]) -> dict[str, float]:
        counts: Counter[str] = Counter()
        for item in items:
            counts.update(data.items.get(item, Item(None, ())).categories)
        return {c: counts[c] / len(items) - share[c] for c in share}

    lengths = sorted(len(items) for items in history.values())
    cutoff = max(lengths[len(lengths) // 4], 5)
    candidates = [u for u, items in history.items() if 5 <= len(items) <= cutoff] or list(history)
    # the most focused short history; ties go to the smaller ID, so the choice is stable
    best = max(sorted(candidates), key=lambda u: max(leaning(history[u]).values()))
    lean = leaning(history[best])
    favourite = max(sorted(lean), key=lambda c: lean[c])
    common = sorted(share, key=lambda c: -share[c])[:8]
    other = min((c for c in common if c != favourite), key=lambda c: (lean[c], -share[c]))
    # the most popular unseen items of that category, those in few other categories first
    candidates_of_other = [
        item
        for item, _ in popularity.most_common()
        if item not in history[best]
        and other in data.items.get(item, Item(None, ())).categories
        and favourite not in data.items.get(item, Item(None, ())).categories
    ]
    clicks = sorted(
        candidates_of_other[: data.clicks * 4], key=lambda i: len(data.items[i].categories) > 2
    )[: data.clicks]
    return Demo(best, len(history[best]), favourite, other, clicks)


# -- output ---------------------------------------------------------------------------------------


class Console:
    """Step headings, lines, and a progress bar updated in place (on a terminal) with \\r."""

    BAR = 24

    def __init__(self, out: TextIO, steps: int) -> None:
        self.out = out
        self.steps = steps
        self.step = 0
        self.live = bool(getattr(out, "isatty", lambda: False)())

    def heading(self, text: str) -> None:
        self.step += 1
        self.say(f"\n[{self.step}/{self.steps}] {text}")

    def say(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def bar(self, label: str, elapsed: float, status: str, expected: float, done: bool) -> None:
        if not (self.live or done):
            return
        fraction = 1.0 if done else 1.0 - math.exp(-elapsed / max(expected, 0.1))
        filled = int(round(fraction * self.BAR))
        line = f"  {label:<24} [{'#' * filled}{'.' * (self.BAR - filled)}] {elapsed:5.1f}s {status}"
        end = "\n" if done else ""
        print("\r" + line.ljust(78), end=end, file=self.out, flush=True)


def wait(
    console: Console,
    label: str,
    describe: Callable[[], dict[str, Any]],
    expected: float,
    timeout: float = 600.0,
    done: Sequence[str] = ("ACTIVE",),
    failed: Sequence[str] = ("CREATE FAILED", "CREATE STOPPED"),
) -> dict[str, Any]:
    """Poll `describe` until its status is final, drawing the progress bar; fail clearly."""
    start = time.monotonic()
    while True:
        description = describe()
        status = str(description.get("status", "?"))
        elapsed = time.monotonic() - start
        final = status in done or status in failed
        console.bar(label, elapsed, status, expected, final)
        if status in failed:
            reason = description.get("failureReason", "no reason given")
            raise QuickstartError(f"{label} ended {status}: {reason}")
        if final:
            return description
        if elapsed > timeout:
            console.bar(label, elapsed, status + " (timed out)", expected, True)
            raise QuickstartError(f"{label} still {status} after {timeout:.0f}s")
        time.sleep(0.1 if elapsed < 2 else 0.25)


def wait_imports(console: Console, personalize: Any, jobs: list[tuple[str, str]]) -> None:
    """Wait for each (dataset type, import job ARN) to finish, with its progress bar."""
    for kind, job in jobs:
        wait(
            console,
            f"{kind} import",
            lambda arn=job: personalize.describe_dataset_import_job(datasetImportJobArn=arn)[
                "datasetImportJob"
            ],
            expected=3.0,
        )


def describe_item(data: QuickstartData, item_id: str, metadata: dict[str, str] | None) -> str:
    """`title  [category|category]`, from the recommendation's metadata or the local catalog."""
    item = data.items.get(item_id, Item(None, ()))
    title = (metadata or {}).get("TITLE") or item.title
    raw = (metadata or {}).get(data.attribute)
    categories = raw.split("|") if raw else list(item.categories)
    label = f"{title}  " if title else ""
    return f"{label}[{', '.join(categories) or 'no ' + data.noun}]"


def show_list(
    console: Console,
    data: QuickstartData,
    entries: list[dict[str, Any]],
    marks: dict[str, str] | None = None,
) -> None:
    for rank, entry in enumerate(entries, start=1):
        mark = (marks or {}).get(entry["itemId"], " ")
        text = describe_item(data, entry["itemId"], entry.get("metadata"))
        console.say(f"  {mark}{rank:>2}. {entry['itemId']:<11} {entry['score']:.4f}  {text}")


def share_of(data: QuickstartData, entries: list[dict[str, Any]], category: str) -> int:
    return sum(category in data.items.get(e["itemId"], Item(None, ())).categories for e in entries)


# -- the workflow ---------------------------------------------------------------------------------


STEPS = 10


def run(
    data: QuickstartData,
    *,
    data_dir: Path | None = None,
    out: TextIO | None = None,
) -> int:
    """Run the workflow on `data` against an embedded server; return the exit status."""
    out = out or sys.stdout
    console = Console(out, STEPS)
    began = time.monotonic()
    demo = choose_demo(data)
    users = len({row[0] for row in data.interactions})
    console.say(
        f"openpersonalize quickstart: {data.label}: {len(data.interactions):,} interactions, "
        f"{users:,} users, {len(data.items):,} items"
    )
    run_embedded(
        console,
        data_dir,
        lambda server, s3_root: _workflow(console, server, data, demo, s3_root),
        began,
    )
    return 0


def run_embedded(
    console: Console,
    data_dir: Path | None,
    workflow: Callable[[Any, Path], None],
    began: float,
) -> None:
    """Start an embedded server (its data in a temporary folder, or in `data_dir`), run
    `workflow(server, s3_root)` against it, and stop it; a failure shows the server's log."""
    from openpersonalize.testing.server import ServerProcess

    temporary = None
    if data_dir is None:
        temporary = tempfile.TemporaryDirectory(prefix="openpersonalize-quickstart-")
        root = Path(temporary.name)
    else:
        root = Path(data_dir).resolve()
        root.mkdir(parents=True, exist_ok=True)
    s3_root = root / "s3"
    server = ServerProcess(root / "server", settings={"s3_local_root": str(s3_root)})
    try:
        console.heading("Starting an embedded server")
        started = time.monotonic()
        server.start()
        console.say(
            f"  openpersonalize serve on {server.endpoint_url} (data in {server.data_dir}), "
            f"up in {time.monotonic() - started:.1f}s"
        )
        workflow(server, s3_root)
    except Exception:  # a failed step or call: the server's side of the story helps
        log = server.log().strip().splitlines()[-15:]
        if log:
            console.say("\nlast lines of the server's log:\n  " + "\n  ".join(log))
        raise
    finally:
        server.stop()
        if temporary is not None:
            temporary.cleanup()
    console.say(f"\nDone in {time.monotonic() - began:.1f}s; the server is stopped.")
    if data_dir is not None:
        console.say(
            f"Its data stays in {server.data_dir}: `openpersonalize serve --data-dir "
            f"{server.data_dir} --s3-local-root {s3_root}` serves it again."
        )


def _workflow(
    console: Console, server: Any, data: QuickstartData, demo: Demo, s3_root: Path
) -> None:
    personalize = server.client("personalize")
    runtime = server.client("personalize-runtime")
    events = server.client("personalize-events")
    suffix = uuid.uuid4().hex[:6]  # unique names, so a kept --data-dir can be used again
    name = f"quickstart-{suffix}"

    console.heading("Dataset group")
    group = personalize.create_dataset_group(name=name)["datasetGroupArn"]
    console.say(f"  CreateDatasetGroup -> {group}")
    wait(
        console,
        "dataset group",
        lambda: personalize.describe_dataset_group(datasetGroupArn=group)["datasetGroup"],
        expected=0.5,
    )

    console.heading("Schemas, datasets and import jobs")
    folder = s3_root / BUCKET / suffix
    write_csvs(data, folder)
    console.say(f"  wrote interactions.csv and items.csv to s3://{BUCKET}/{suffix}/ ({s3_root})")
    imports = []
    for kind, text in (("Interactions", interactions_schema()), ("Items", items_schema(data))):
        schema = personalize.create_schema(name=f"{name}-{kind.lower()}", schema=text)["schemaArn"]
        dataset = personalize.create_dataset(
            name=f"{name}-{kind.lower()}",
            datasetGroupArn=group,
            schemaArn=schema,
            datasetType=kind,
        )["datasetArn"]
        wait(
            console,
            f"{kind} dataset",
            lambda arn=dataset: personalize.describe_dataset(datasetArn=arn)["dataset"],
            expected=0.5,
        )
        job = personalize.create_dataset_import_job(
            jobName=f"{name}-{kind.lower()}",
            datasetArn=dataset,
            dataSource={"dataLocation": f"s3://{BUCKET}/{suffix}/{kind.lower()}.csv"},
        )["datasetImportJobArn"]
        imports.append((kind, job))
    wait_imports(console, personalize, imports)

    console.heading("Solution (aws-user-personalization) and solution version")
    solution = personalize.create_solution(
        name=name, datasetGroupArn=group, recipeArn=RECIPE_ARN, performAutoTraining=False
    )["solutionArn"]
    wait(
        console,
        "solution",
        lambda: personalize.describe_solution(solutionArn=solution)["solution"],
        expected=0.5,
    )
    version = personalize.create_solution_version(solutionArn=solution)["solutionVersionArn"]
    console.say(f"  CreateSolutionVersion -> {version}")
    trained = wait(
        console,
        "training",
        lambda: personalize.describe_solution_version(solutionVersionArn=version)[
            "solutionVersion"
        ],
        expected=15.0 if len(data.interactions) > 20_000 else 5.0,
    )
    console.say(
        f"  trainingMode {trained.get('trainingMode')}, "
        f"trainingHours {trained.get('trainingHours', 0):.4f}"
    )

    console.heading("GetSolutionMetrics (newest events of held-out users)")
    metrics = personalize.get_solution_metrics(solutionVersionArn=version)["metrics"]
    for metric in sorted(metrics):
        console.say(f"  {metric:<46} {metrics[metric]:.4f}")

    console.heading("Campaign")
    campaign = personalize.create_campaign(
        name=name,
        solutionVersionArn=version,
        minProvisionedTPS=1,
        campaignConfig={
            "enableMetadataWithRecommendations": True,
            # no exploration of cold items, so the lists below change only through events
            "itemExplorationConfig": {"explorationWeight": "0"},
        },
    )["campaignArn"]
    wait(
        console,
        "campaign",
        lambda: personalize.describe_campaign(campaignArn=campaign)["campaign"],
        expected=2.0,
    )

    columns = ["TITLE", data.attribute] if data.has_titles else [data.attribute]

    def recommend(**fields: Any) -> list[dict[str, Any]]:
        return runtime.get_recommendations(
            campaignArn=campaign,
            userId=demo.user,
            numResults=NUM_RESULTS,
            metadataColumns={"ITEMS": columns},
            **fields,
        )["itemList"]

    console.heading(f"GetRecommendations for user {demo.user}")
    console.say(
        f"  {demo.user} has {demo.history} items in their history, leaning to "
        f"{data.noun} {demo.favourite!r}"
    )
    before = recommend()
    show_list(console, data, before)
    console.say(f"  {share_of(data, before, demo.favourite)}/{len(before)} are {demo.favourite!r}")

    console.heading(f"Filter: EXCLUDE ItemID WHERE Items.{data.attribute} IN (${data.attribute})")
    expression = f"EXCLUDE ItemID WHERE Items.{data.attribute} IN (${data.attribute})"
    filter_arn = personalize.create_filter(
        name=name, datasetGroupArn=group, filterExpression=expression
    )["filterArn"]
    wait(
        console,
        "filter",
        lambda: personalize.describe_filter(filterArn=filter_arn)["filter"],
        expected=0.5,
    )
    filtered = recommend(filterArn=filter_arn, filterValues={data.attribute: f'"{demo.favourite}"'})
    console.say(f"  {demo.user}'s recommendations without {data.noun} {demo.favourite!r}:")
    show_list(console, data, filtered)

    console.heading("Event tracker")
    tracker = personalize.create_event_tracker(name=name, datasetGroupArn=group)
    wait(
        console,
        "event tracker",
        lambda: personalize.describe_event_tracker(eventTrackerArn=tracker["eventTrackerArn"])[
            "eventTracker"
        ],
        expected=0.5,
    )
    console.say(f"  trackingId {tracker['trackingId']}")

    console.heading(f"PutEvents: {demo.user} clicks {len(demo.clicks)} {demo.other!r} items")
    for item in demo.clicks:
        console.say(f"  click {item:<11} {describe_item(data, item, None)}")
    now = datetime.now(UTC)
    events.put_events(
        trackingId=tracker["trackingId"],
        userId=demo.user,
        sessionId=f"quickstart-{suffix}",
        eventList=[
            {"eventId": f"e{n}", "eventType": "click", "itemId": item, "sentAt": now}
            for n, item in enumerate(demo.clicks)
        ],
    )
    after = recommend()
    old = {entry["itemId"] for entry in before}
    new = {entry["itemId"] for entry in after}
    console.say(f"  {demo.user}'s recommendations now (+ new since the clicks):")
    show_list(console, data, after, {item: "+" for item in new - old})
    dropped = [entry["itemId"] for entry in before if entry["itemId"] not in new]
    shift = ", ".join(
        f"{category!r} {share_of(data, before, category)} -> {share_of(data, after, category)}"
        for category in (demo.other, demo.favourite)
    )
    console.say(f"  changed: {len(new - old)} of {len(after)} recommendations are new; {shift}")
    if dropped:
        console.say("  dropped: " + ", ".join(dropped))


# -- command line ---------------------------------------------------------------------------------


def main(movielens: Path | None = None, data_dir: Path | None = None) -> int:
    """`openpersonalize quickstart`: exit 0 on success, 1 on a failed step, 2 on bad input."""

    def steps() -> int:
        data = load_movielens(movielens) if movielens is not None else synthetic_shop()
        check_data_dir(data_dir)
        return run(data, data_dir=data_dir)

    return guarded(steps)


def check_data_dir(data_dir: Path | None) -> None:
    if data_dir is not None and Path(data_dir).exists() and not Path(data_dir).is_dir():
        raise QuickstartError(f"--data-dir: {data_dir} is not a directory", status=2)


def guarded(steps: Callable[[], int]) -> int:
    """Run a quickstart; a failure is one line on stderr and an exit status, no traceback."""
    try:
        return steps()
    except QuickstartError as error:
        print(f"openpersonalize quickstart: error: {error}", file=sys.stderr)
        return error.status
    except KeyboardInterrupt:
        print("openpersonalize quickstart: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # boto3/botocore errors and server start failures
        print(f"openpersonalize quickstart: error: {error}", file=sys.stderr)
        return 1
