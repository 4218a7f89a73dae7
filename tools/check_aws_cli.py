"""Drive a fresh openpersonalize server through the AWS CLI v2, as a shell script would.

    .venv/bin/python tools/check_aws_cli.py [--aws PATH] [--keep DIR]

Every step is one `aws personalize ...`, `aws personalize-runtime ...` or
`aws personalize-events ...` subprocess (or a poll made of them) with
``--endpoint-url``, ``--region us-east-1`` and ``--output json``, dummy
credentials in the environment, and the JSON it prints parsed as a script
would parse it. The server is `openpersonalize serve` on a free loopback port
with a temporary data directory; it checks the CLI's SigV4 signatures (it is
started with the same dummy keys) and reads ``s3://`` locations from a local
S3 root (``--s3-local-root``), where this script writes seeded synthetic CSV
files: users in taste groups, click and purchase events, an Items dataset with
a GENRE field and a Users dataset with a MEMBERSHIP field.

The workflow: recipes and their algorithms, schemas, datasets, imports, two
solutions (a version asked for right after each CreateSolution), metrics,
campaigns, recommendations and rankings, the guide's Interactions filters
(INCLUDE / EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("*")) and an
Items filter with a placeholder, PutEvents right after CreateEventTracker,
PutItems / PutUsers, tags, UpdateCampaign with a retrained version, a batch
inference job, error cases, pagination both ways (--max-items /
--starting-token and --max-results / --next-token), and the deletes.

Each step prints one line (number, command, OK/FAIL, seconds). The first
failure prints the command, its exit status, stdout and stderr and the tail
of the server's log, and the script exits 1; 2 when the CLI is missing. The
server is stopped (by its pid) in every case. Assertions never depend on the
wall clock; the only time limits are hang guards.

The AWS CLI is not installed by this script. On Debian 12:
``apt-get install -y awscli`` (Debian 12 ships aws-cli 2.9.19).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import re
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from openpersonalize.testing.server import ServerProcess

REGION = "us-east-1"
ACCESS_KEY = "AKIDCLICHECK"  # dummy keys: the server is started with the same pair
SECRET_KEY = "cli-check-secret"
ROLE = "arn:aws:iam::000000000000:role/PersonalizeRole"
BUCKET = "cli-check"
UP = "arn:aws:personalize:::recipe/aws-user-personalization"
RANKING = "arn:aws:personalize:::recipe/aws-personalized-ranking"
INSTALL_HINT = "apt-get install -y awscli"  # Debian 12 ships the AWS CLI v2 (2.9.19)

CALL_TIMEOUT = 120.0  # hang guard for one CLI call
WAIT_TIMEOUT = 600.0  # hang guard for one poll (training on a shared machine)
POLL_SECONDS = 0.5

GENRES = ("comedy", "drama", "horror", "action", "romance", "scifi")
ITEMS_PER_GENRE = 15
N_USERS = 60


# -- failures and the CLI -------------------------------------------------------------------------


class CheckFailed(Exception):
    """A step's call failed or its answer was not what the service gives."""


@dataclass
class Call:
    command: list[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def data(self) -> Any:
        text = self.stdout.strip()
        if not text:
            return {}
        try:
            return json.loads(text)
        except ValueError as error:
            raise CheckFailed(f"stdout is not JSON: {error}") from None


def find_aws(explicit: str | None) -> tuple[str, str] | None:
    """(path, version line) of an AWS CLI v2: --aws, $AWS_CLI, or the first v2 `aws` found."""
    candidates: list[str] = []
    if explicit:
        candidates.append(explicit)
    elif os.environ.get("AWS_CLI"):
        candidates.append(os.environ["AWS_CLI"])
    else:
        for folder in os.environ.get("PATH", "").split(os.pathsep) + ["/usr/bin", "/usr/local/bin"]:
            path = os.path.join(folder, "aws")
            if os.access(path, os.X_OK) and path not in candidates:
                candidates.append(path)
    for path in candidates:
        try:
            reply = subprocess.run(
                [path, "--version"], capture_output=True, text=True, timeout=60, check=False
            )
        except OSError:
            continue
        version = (reply.stdout + reply.stderr).strip()
        if reply.returncode == 0 and version.startswith("aws-cli/2."):
            return path, version
        print(f"skipping {path}: not the AWS CLI v2 ({version or 'no version'})", file=sys.stderr)
    return None


def cli_environment(home: Path) -> dict[str, str]:
    """Dummy credentials and nothing of the caller's AWS setup (profiles, config, endpoints)."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    environment.update(
        {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_CONFIG_FILE": str(home / "config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(home / "credentials"),
            "AWS_PAGER": "",
            "AWS_MAX_ATTEMPTS": "1",  # an error shows as it is, not after retries
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CLI_AUTO_PROMPT": "off",
        }
    )
    return environment


def short(command: str, width: int = 100) -> str:
    """A command as its step line shows it: ARNs without their prefix, long JSON cut."""
    text = re.sub(r"arn:aws:personalize:[a-z0-9-]*:(\d{12})?:", "", command)
    text = re.sub(r"'(\[|\{)[^']{30,}'", lambda m: f"'{m.group(1)}...'", text)
    text = re.sub(r"file://\S*/", "file://", text)
    return text if len(text) <= width else text[: width - 3] + "..."


# -- the step runner ------------------------------------------------------------------------------


@dataclass
class Runner:
    """Runs CLI commands written as a shell script writes them, one numbered step at a time.

    A step stays open after its call returns, so the checks that follow it (``expect``) and
    its ``note`` belong to it; its line is printed when the next step begins or at the end.
    """

    aws: str
    endpoint: str
    environment: dict[str, str]
    server: ServerProcess
    steps: int = 0
    calls: int = 0
    last: Call | None = None
    note: str = ""
    _summary: str | None = None
    _started: float = 0.0
    _ended: float | None = None

    # -- calls ------------------------------------------------------------------------------------

    def run(self, command: str) -> Call:
        """`aws COMMAND --endpoint-url ... --region us-east-1 --output json`, as a shell runs it."""
        argv = [
            self.aws, *shlex.split(command),
            "--endpoint-url", self.endpoint, "--region", REGION, "--output", "json",
        ]  # fmt: skip
        self.calls += 1
        try:
            reply = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                env=self.environment,
                timeout=CALL_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired as error:
            self.last = Call(argv, -1, str(error.stdout or ""), str(error.stderr or ""))
            raise CheckFailed(f"no answer in {CALL_TIMEOUT:.0f}s") from None
        self.last = Call(argv, reply.returncode, reply.stdout, reply.stderr)
        return self.last

    def ok(self, command: str) -> Any:
        """A call that must succeed: its parsed JSON ({} when it prints nothing)."""
        call = self.run(command)
        if call.returncode != 0:
            raise CheckFailed(f"exit status {call.returncode}")
        return call.data

    def error(self, command: str, code: str) -> str:
        """A call that must fail with the service's error `code` (exit status 254): its stderr."""
        call = self.run(command)
        if call.returncode not in (254, 255):
            raise CheckFailed(f"expected {code} (exit status 254), got {call.returncode}")
        if f"({code})" not in call.stderr:
            raise CheckFailed(f"expected {code} in stderr")
        return call.stderr

    # -- steps ------------------------------------------------------------------------------------

    @contextmanager
    def step(self, summary: str) -> Iterator[Runner]:
        self._close()
        self.steps += 1
        self._summary, self._started, self._ended = summary, time.monotonic(), None
        self.last, self.note = None, ""
        yield self
        self._ended = time.monotonic()

    def call(self, command: str) -> Any:
        """One step: one call that must succeed; its JSON."""
        with self.step(short(command)):
            return self.ok(command)

    def fails(self, command: str, code: str) -> str:
        """One step: one call that must fail with `code`; its stderr."""
        with self.step(short(command, 100 - len(code) - 4) + f" -> {code}"):
            stderr = self.error(command, code)
        self.note = f"exit {self.last.returncode if self.last else '?'}"
        return stderr

    def _line(self, verdict: str) -> None:
        if self._summary is None:
            return
        seconds = (self._ended or time.monotonic()) - self._started
        note = f"  {self.note}" if self.note and verdict == "OK" else ""
        print(
            f"{self.steps:3d}  {self._summary:<100} {verdict:<4} {seconds:6.2f}s{note}", flush=True
        )
        self._summary = None

    def _close(self) -> None:
        self._line("OK")

    def finish(self) -> None:
        self._close()

    def fail(self, failure: BaseException) -> None:
        """The open step's FAIL line, then its command, exit status, stdout, stderr, server log."""
        self._line("FAIL")
        print(f"\nstep {self.steps} failed: {failure}", file=sys.stderr)
        if self.last is not None:
            print(f"command: {shlex.join(self.last.command)}", file=sys.stderr)
            print(f"exit status: {self.last.returncode}", file=sys.stderr)
            print(f"stdout:\n{self.last.stdout.rstrip() or '(empty)'}", file=sys.stderr)
            print(f"stderr:\n{self.last.stderr.rstrip() or '(empty)'}", file=sys.stderr)
        log = self.server.log().strip().splitlines()[-25:]
        if log:
            print("last lines of the server's log:\n  " + "\n  ".join(log), file=sys.stderr)

    # -- polls ------------------------------------------------------------------------------------

    def wait(
        self,
        what: str,
        command: str,
        arns: list[str],
        envelope: str,
        status_of: Callable[[dict[str, Any]], Any] | None = None,
    ) -> list[dict[str, Any]]:
        """One step: `command ARN` for each ARN, polled until each is ACTIVE; their descriptions."""
        status_of = status_of or (lambda d: d.get("status"))
        with self.step(f"{command} ... until ACTIVE: {what}"):
            deadline = time.monotonic() + WAIT_TIMEOUT
            final: dict[str, dict[str, Any]] = {}
            polls = 0
            while True:
                for arn in arns:
                    if arn in final:
                        continue
                    described = self.ok(f"{command} {arn}")[envelope]
                    polls += 1
                    status = str(status_of(described))
                    if status == "ACTIVE":
                        final[arn] = described
                    elif "FAILED" in status or "STOPPED" in status:
                        reason = described.get("failureReason", "no failureReason")
                        raise CheckFailed(f"{short(arn)} is {status}: {reason}")
                if len(final) == len(arns):
                    break
                if time.monotonic() > deadline:
                    raise CheckFailed(f"not ACTIVE after {WAIT_TIMEOUT:.0f}s (a hang guard)")
                time.sleep(POLL_SECONDS)
        self.note = f"{polls} polls"
        return [final[arn] for arn in arns]

    def wait_gone(self, what: str, command: str, arns: list[str]) -> None:
        """One step: `command ARN` polled until it answers ResourceNotFoundException for each."""
        with self.step(f"{command} ... until ResourceNotFoundException: {what}"):
            deadline = time.monotonic() + WAIT_TIMEOUT
            pending = list(arns)
            polls = 0
            while pending:
                for arn in list(pending):
                    call = self.run(f"{command} {arn}")
                    polls += 1
                    if call.returncode == 0:
                        status = next(iter(call.data.values()), {}).get("status")
                        if status not in ("DELETE PENDING", "DELETE IN_PROGRESS", "ACTIVE"):
                            raise CheckFailed(f"{short(arn)} is {status} while being deleted")
                    elif "(ResourceNotFoundException)" in call.stderr:
                        pending.remove(arn)
                    else:
                        raise CheckFailed(f"exit status {call.returncode}")
                if pending:
                    if time.monotonic() > deadline:
                        raise CheckFailed(f"still there after {WAIT_TIMEOUT:.0f}s (a hang guard)")
                    time.sleep(POLL_SECONDS)
        self.note = f"{polls} polls"


def expect(condition: object, message: str) -> None:
    """A check on the open step's answer."""
    if not condition:
        raise CheckFailed(message)


# -- data -----------------------------------------------------------------------------------------


@dataclass
class Shop:
    """Seeded synthetic data: each user prefers one genre (85% of their events)."""

    genre_of: dict[str, str]
    interactions: list[tuple[str, str, int, str]]  # USER_ID, ITEM_ID, TIMESTAMP, EVENT_TYPE
    membership: dict[str, str]

    def history(self, user: str, event_type: str | None = None) -> set[str]:
        return {i for u, i, _, t in self.interactions if u == user and event_type in (None, t)}

    def items_of(self, genre: str) -> list[str]:
        return [i for i, g in self.genre_of.items() if g == genre]


def make_shop(seed: int = 11) -> Shop:
    rng = random.Random(seed)
    genre_of = {
        f"{genre}-{n:02d}": genre for genre in GENRES for n in range(1, ITEMS_PER_GENRE + 1)
    }
    everything = list(genre_of)
    rows: list[tuple[str, str, int, str]] = []
    membership: dict[str, str] = {}
    start = 1_700_000_000
    for u in range(N_USERS):
        user = f"u{u + 1:03d}"
        membership[user] = ("gold", "silver", "basic")[u % 3]
        taste = [i for i in everything if genre_of[i] == GENRES[u % len(GENRES)]]
        for n in range(rng.randint(12, 30)):
            pool = taste if rng.random() < 0.85 else everything
            item = pool[min(int(len(pool) * rng.random() ** 2), len(pool) - 1)]
            event_type = "purchase" if rng.random() < 0.15 else "click"
            rows.append((user, item, start + u * 10_000 + n * 60, event_type))
    return Shop(genre_of, rows, membership)


def write_data(shop: Shop, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "interactions.csv").open("w", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE"])
        writer.writerows(shop.interactions)
    with (folder / "items.csv").open("w", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["ITEM_ID", "GENRE"])
        writer.writerows(shop.genre_of.items())
    with (folder / "users.csv").open("w", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["USER_ID", "MEMBERSHIP"])
        writer.writerows(shop.membership.items())


def schema_file(folder: Path, name: str, fields: list[dict[str, Any]]) -> str:
    path = folder / f"{name.lower()}-schema.json"
    document = {
        "type": "record",
        "name": name,
        "namespace": "com.amazonaws.personalize.schema",
        "fields": fields,
        "version": "1.0",
    }
    path.write_text(json.dumps(document, indent=2))
    return f"file://{path}"


SCHEMAS = {
    "Interactions": [
        {"name": "USER_ID", "type": "string"},
        {"name": "ITEM_ID", "type": "string"},
        {"name": "TIMESTAMP", "type": "long"},
        {"name": "EVENT_TYPE", "type": "string"},
    ],
    "Items": [
        {"name": "ITEM_ID", "type": "string"},
        {"name": "GENRE", "type": "string", "categorical": True},
    ],
    "Users": [
        {"name": "USER_ID", "type": "string"},
        {"name": "MEMBERSHIP", "type": "string", "categorical": True},
    ],
}


# -- the workflow ---------------------------------------------------------------------------------


def item_ids(answer: dict[str, Any]) -> list[str]:
    """The item IDs of a GetRecommendations or GetPersonalizedRanking answer, in order."""
    return [e["itemId"] for e in answer.get("itemList", answer.get("personalizedRanking", []))]


def pick_user(shop: Shop) -> str:
    """The first user with a short history and at least two purchases (stable for the seed)."""
    for user in sorted(shop.membership):
        if 10 <= len(shop.history(user)) <= 20 and len(shop.history(user, "purchase")) >= 2:
            return user
    raise CheckFailed("no user with 10-20 items and 2 purchases in the synthetic data")


def genres(shop: Shop, items: list[str]) -> str:
    """`comedy:12 drama:3 ...` for a list of items."""
    counts: dict[str, int] = {}
    for item in items:
        genre = shop.genre_of.get(item, item.rsplit("-", 1)[0])
        counts[genre] = counts.get(genre, 0) + 1
    return " ".join(f"{g}:{n}" for g, n in sorted(counts.items(), key=lambda x: (-x[1], x[0])))


def workflow(r: Runner, shop: Shop, work: Path, s3_root: Path) -> None:
    q = shlex.quote

    # ---- recipes, algorithms, feature transformations; both kinds of pagination on a known list
    every = [x["name"] for x in r.call("personalize list-recipes")["recipes"]]
    r.note = f"{len(every)} recipes"
    with r.step("personalize list-recipes --max-items 5, then --starting-token (the CLI's pages)"):
        page = r.ok("personalize list-recipes --max-items 5")
        expect(len(page["recipes"]) == 5 and page.get("NextToken"), "no NextToken after 5 recipes")
        seen, pages = [x["name"] for x in page["recipes"]], 1
        while page.get("NextToken"):
            page = r.ok(
                f"personalize list-recipes --max-items 5 --starting-token {page['NextToken']}"
            )
            seen += [x["name"] for x in page["recipes"]]
            pages += 1
        expect(seen == every, "the pages of 5 are not the whole list, in order")
        r.note = f"{pages} pages"
    with r.step(
        "personalize list-recipes --max-results 4, then --next-token (the service's pages)"
    ):
        page = r.ok("personalize list-recipes --max-results 4")
        expect(len(page["recipes"]) == 4 and page.get("nextToken"), "no nextToken after 4 recipes")
        seen, pages = [x["name"] for x in page["recipes"]], 1
        while page.get("nextToken"):
            page = r.ok(
                f"personalize list-recipes --max-results 4 --next-token {page['nextToken']}"
            )
            expect(len(page["recipes"]) <= 4, "a page longer than --max-results 4")
            seen += [x["name"] for x in page["recipes"]]
            pages += 1
        expect(seen == every, "the pages of 4 are not the whole list, in order")
        r.note = f"{pages} pages"
    recipe = r.call(f"personalize describe-recipe --recipe-arn {UP}")["recipe"]
    expect(recipe["recipeType"] == "USER_PERSONALIZATION", f"recipeType {recipe['recipeType']}")
    r.note = recipe["recipeType"]
    algorithm = r.call(f"personalize describe-algorithm --algorithm-arn {recipe['algorithmArn']}")
    defaults = algorithm["algorithm"].get("defaultHyperParameters", {})
    expect(defaults, "no defaultHyperParameters")
    r.note = f"{len(defaults)} default hyperparameters"
    transformation = r.call(
        "personalize describe-feature-transformation "
        f"--feature-transformation-arn {recipe['featureTransformationArn']}"
    )["featureTransformation"]
    r.note = transformation.get("name", "")
    ranking = r.call(f"personalize describe-recipe --recipe-arn {RANKING}")["recipe"]
    expect(ranking["recipeType"] == "PERSONALIZED_RANKING", f"recipeType {ranking['recipeType']}")
    r.fails(
        "personalize describe-recipe --recipe-arn arn:aws:personalize:::recipe/aws-no-such-recipe",
        "ResourceNotFoundException",
    )

    # ---- dataset group, schemas (file://), datasets
    group = r.call("personalize create-dataset-group --name cli-check")["datasetGroupArn"]
    r.fails("personalize create-dataset-group --name cli-check", "ResourceAlreadyExistsException")
    r.fails("personalize create-dataset-group --name 'not a valid name!'", "InvalidInputException")
    r.wait("dataset group", "personalize describe-dataset-group --dataset-group-arn", [group],
           "datasetGroup")  # fmt: skip
    schemas: dict[str, str] = {}
    for kind, fields in SCHEMAS.items():
        location = schema_file(work, kind, fields)
        schemas[kind] = r.call(
            f"personalize create-schema --name cli-check-{kind.lower()} --schema {q(location)}"
        )["schemaArn"]
    described = r.call(f"personalize describe-schema --schema-arn {schemas['Items']}")["schema"]
    expect(json.loads(described["schema"])["fields"] == SCHEMAS["Items"], "the schema changed")
    bad = json.dumps({"type": "record", "name": "Interactions", "fields": []})
    r.fails(f"personalize create-schema --name cli-check-bad --schema {q(bad)}",
            "InvalidInputException")  # fmt: skip
    with r.step("personalize list-schemas --max-items 1, then --starting-token"):
        page = r.ok("personalize list-schemas --max-items 1")
        found = [x["schemaArn"] for x in page["schemas"]]
        while page.get("NextToken"):
            page = r.ok(
                f"personalize list-schemas --max-items 1 --starting-token {page['NextToken']}"
            )
            expect(len(page["schemas"]) <= 1, "a page longer than --max-items 1")
            found += [x["schemaArn"] for x in page["schemas"]]
        expect(sorted(found) == sorted(schemas.values()), f"listed {found}")
        r.note = f"{len(found)} schemas, one a page"
    datasets: dict[str, str] = {}
    for kind in SCHEMAS:
        datasets[kind] = r.call(
            f"personalize create-dataset --name cli-check-{kind.lower()} "
            f"--dataset-group-arn {group} --dataset-type {kind} --schema-arn {schemas[kind]}"
        )["datasetArn"]
    with r.step("personalize list-datasets --dataset-group-arn ... --max-results 2, --next-token"):
        listing = f"personalize list-datasets --dataset-group-arn {group} --max-results 2"
        page = r.ok(listing)
        found = [x["datasetArn"] for x in page["datasets"]]
        expect(len(found) == 2 and page.get("nextToken"), "no second page after 2 of 3 datasets")
        page = r.ok(f"{listing} --next-token {page['nextToken']}")
        found += [x["datasetArn"] for x in page["datasets"]]
        expect(sorted(found) == sorted(datasets.values()), f"listed {found}")
        expect("nextToken" not in page, "a nextToken after the last page")
    r.wait("3 datasets", "personalize describe-dataset --dataset-arn", list(datasets.values()),
           "dataset")  # fmt: skip

    # ---- imports from the local S3 root
    write_data(shop, s3_root / BUCKET / "input")
    jobs: dict[str, str] = {}
    for kind in SCHEMAS:
        jobs[kind] = r.call(
            f"personalize create-dataset-import-job --job-name cli-check-{kind.lower()} "
            f"--dataset-arn {datasets[kind]} --role-arn {ROLE} "
            f"--data-source dataLocation=s3://{BUCKET}/input/{kind.lower()}.csv"
        )["datasetImportJobArn"]
    r.wait("3 import jobs", "personalize describe-dataset-import-job --dataset-import-job-arn",
           list(jobs.values()), "datasetImportJob")  # fmt: skip
    listed = r.call(
        f"personalize list-dataset-import-jobs --dataset-arn {datasets['Interactions']}"
    )["datasetImportJobs"]
    expect([x["datasetImportJobArn"] for x in listed] == [jobs["Interactions"]], f"{listed}")

    # ---- two solutions, a version asked for right after each create (no waiting, as scripts do)
    solution = r.call(
        f"personalize create-solution --name cli-check-up --dataset-group-arn {group} "
        f"--recipe-arn {UP}"
    )["solutionArn"]
    version = r.call(f"personalize create-solution-version --solution-arn {solution}")[
        "solutionVersionArn"
    ]
    ranker = r.call(
        f"personalize create-solution --name cli-check-ranking --dataset-group-arn {group} "
        f"--recipe-arn {RANKING}"
    )["solutionArn"]
    ranker_version = r.call(f"personalize create-solution-version --solution-arn {ranker}")[
        "solutionVersionArn"
    ]
    unknown = json.dumps({"algorithmHyperParameters": {"no_such_parameter": "1"}})
    r.fails(
        f"personalize create-solution --name cli-check-bad --dataset-group-arn {group} "
        f"--recipe-arn {UP} --solution-config {q(unknown)}",
        "InvalidInputException",
    )
    r.wait("2 solutions", "personalize describe-solution --solution-arn", [solution, ranker],
           "solution")  # fmt: skip
    r.wait("2 solution versions (training)",
           "personalize describe-solution-version --solution-version-arn",
           [version, ranker_version], "solutionVersion")  # fmt: skip
    listed = r.call(f"personalize list-solutions --dataset-group-arn {group}")["solutions"]
    expect(sorted(x["solutionArn"] for x in listed) == sorted([solution, ranker]), f"{listed}")
    listed = r.call(f"personalize list-solution-versions --solution-arn {solution}")
    expect([x["solutionVersionArn"] for x in listed["solutionVersions"]] == [version], f"{listed}")
    metrics = r.call(f"personalize get-solution-metrics --solution-version-arn {version}")[
        "metrics"
    ]
    expect("normalized_discounted_cumulative_gain_at_10" in metrics, f"metrics {sorted(metrics)}")
    r.note = f"NDCG@10 {metrics['normalized_discounted_cumulative_gain_at_10']:.3f}"

    # ---- campaigns
    config = json.dumps({"itemExplorationConfig": {"explorationWeight": "0"}})
    campaign = r.call(
        f"personalize create-campaign --name cli-check-up --solution-version-arn {version} "
        f"--min-provisioned-tps 1 --campaign-config {q(config)}"
    )["campaignArn"]
    ranking_campaign = r.call(
        "personalize create-campaign --name cli-check-ranking "
        f"--solution-version-arn {ranker_version}"
    )["campaignArn"]
    r.wait("2 campaigns", "personalize describe-campaign --campaign-arn",
           [campaign, ranking_campaign], "campaign")  # fmt: skip
    with r.step("personalize list-campaigns --max-items 1, then --starting-token"):
        page = r.ok("personalize list-campaigns --max-items 1")
        found = [x["campaignArn"] for x in page["campaigns"]]
        expect(page.get("NextToken"), "no NextToken after 1 of 2 campaigns")
        page = r.ok(
            f"personalize list-campaigns --max-items 1 --starting-token {page['NextToken']}"
        )
        found += [x["campaignArn"] for x in page["campaigns"]]
        expect(sorted(found) == sorted([campaign, ranking_campaign]), f"listed {found}")
        expect("NextToken" not in page, "a NextToken after the last campaign")

    # ---- recommendations and rankings for one user
    user = pick_user(shop)
    history = shop.history(user)
    taste = max(GENRES, key=lambda g: (sum(shop.genre_of[i] == g for i in history), g))
    other = min(GENRES, key=lambda g: (sum(shop.genre_of[i] == g for i in history), g))
    recommend = f"personalize-runtime get-recommendations --campaign-arn {campaign}"
    rank = f"personalize-runtime get-personalized-ranking --campaign-arn {ranking_campaign}"
    answer = r.call(f"{recommend} --user-id {user}")
    before = item_ids(answer)
    expect(len(before) == 25, f"{len(before)} items, not the default 25")
    expect(all("score" in e for e in answer["itemList"]), "an item without a score")
    expect(answer.get("recommendationId"), "no recommendationId")
    r.note = f"{user} likes {taste}: {genres(shop, before)}"
    top = item_ids(r.call(f"{recommend} --user-id {user} --num-results 5"))
    expect(top == before[:5], f"the top 5 {top} are not the first 5 of 25 {before[:5]}")
    r.fails(f"{recommend} --user-id {user} --num-results 1000", "InvalidInputException")
    r.fails(
        f"personalize-runtime get-recommendations --campaign-arn {campaign}-gone --user-id {user}",
        "ResourceNotFoundException",
    )
    candidates = shop.items_of(taste)[:5] + shop.items_of(other)[:5]
    order = item_ids(r.call(f"{rank} --user-id {user} --input-list {' '.join(candidates)}"))
    expect(sorted(order) == sorted(candidates), f"ranked {order}, asked {candidates}")
    r.note = f"top 3: {' '.join(order[:3])}"
    r.fails(
        f"personalize-runtime get-recommendations --campaign-arn {ranking_campaign} "
        f"--user-id {user}",
        "InvalidInputException",
    )

    # ---- filters: the guide's Interactions filters, and an Items filter with a placeholder
    expressions = {
        "interacted": 'INCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("*")',
        "unseen": 'EXCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("*")',
        "purchased": 'INCLUDE ItemID WHERE Interactions.EVENT_TYPE IN ("purchase")',
        "genre": "INCLUDE ItemID WHERE Items.GENRE IN ($GENRE)",
    }
    filters: dict[str, str] = {}
    for name, expression in expressions.items():
        filters[name] = r.call(
            f"personalize create-filter --name cli-check-{name} --dataset-group-arn {group} "
            f"--filter-expression {q(expression)}"
        )["filterArn"]
    # "items the user has interacted with", used at once, as the guide's code does
    interacted = item_ids(
        r.call(f"{recommend} --user-id {user} --filter-arn {filters['interacted']}")
    )
    expect(interacted, 'INCLUDE ... Interactions.EVENT_TYPE IN ("*") gave an empty itemList')
    expect(set(interacted) <= history, f"never interacted with: {set(interacted) - history}")
    r.note = f"{len(interacted)} items, all among the user's {len(history)}"
    r.fails(
        f"personalize create-filter --name cli-check-bad --dataset-group-arn {group} "
        f"--filter-expression {q('INCLUDE ItemID WHERE Items.GENRE ==')}",
        "InvalidInputException",
    )
    r.wait("4 filters", "personalize describe-filter --filter-arn", list(filters.values()),
           "filter")  # fmt: skip
    with r.step("personalize list-filters --dataset-group-arn ... --max-results 3, --next-token"):
        listing = f"personalize list-filters --dataset-group-arn {group} --max-results 3"
        page = r.ok(listing)
        found = [x["filterArn"] for x in page["Filters"]]
        expect(len(found) == 3 and page.get("nextToken"), "no second page after 3 of 4 filters")
        page = r.ok(f"{listing} --next-token {page['nextToken']}")
        found += [x["filterArn"] for x in page["Filters"]]
        expect(sorted(found) == sorted(filters.values()), f"listed {found}")
    unseen = item_ids(r.call(f"{recommend} --user-id {user} --filter-arn {filters['unseen']}"))
    expect(len(unseen) == 25, f"{len(unseen)} unseen items, not 25")
    expect(not set(unseen) & history, f"interacted with: {set(unseen) & history}")
    r.note = "25 items, none of the user's"
    purchases = shop.history(user, "purchase")
    bought = item_ids(r.call(f"{recommend} --user-id {user} --filter-arn {filters['purchased']}"))
    expect(bought, 'INCLUDE ... IN ("purchase") gave an empty itemList')
    expect(set(bought) <= purchases, f"not purchased: {set(bought) - purchases}")
    r.note = f"{len(bought)} items, all among the user's {len(purchases)} purchases"
    values = json.dumps({"GENRE": f'"{other}"'})
    picked = item_ids(
        r.call(
            f"{recommend} --user-id {user} --filter-arn {filters['genre']} "
            f"--filter-values {q(values)}"
        )  # fmt: skip
    )
    expect(picked and {shop.genre_of[i] for i in picked} == {other}, genres(shop, picked))
    r.note = genres(shop, picked)
    values = json.dumps({"GENRE": f'"{other}","{taste}"'})
    picked = item_ids(
        r.call(
            f"{recommend} --user-id {user} --filter-arn {filters['genre']} "
            f"--filter-values {q(values)}"
        )  # fmt: skip
    )
    expect(picked and {shop.genre_of[i] for i in picked} <= {other, taste}, genres(shop, picked))
    r.note = genres(shop, picked)
    r.fails(f"{recommend} --user-id {user} --filter-arn {filters['genre']}",
            "InvalidInputException")  # fmt: skip
    ranked = item_ids(
        r.call(
            f"{rank} --user-id {user} --input-list {' '.join(candidates)} "
            f"--filter-arn {filters['unseen']}"
        )  # fmt: skip
    )
    expect(set(ranked) == set(candidates) - history, f"ranked {ranked}")
    r.note = f"{len(ranked)} of the {len(candidates)} are unseen"

    # ---- an event tracker, and PutEvents right after its create
    tracker = r.call(
        f"personalize create-event-tracker --name cli-check --dataset-group-arn {group}"
    )
    clicks = [i for i in shop.items_of(other) if i not in history][:8]
    events = [
        {"eventId": f"e{n}", "eventType": "click", "itemId": item, "sentAt": 1_700_900_000 + n}
        for n, item in enumerate(clicks)
    ]
    r.call(
        f"personalize-events put-events --tracking-id {tracker['trackingId']} --user-id {user} "
        f"--session-id cli-check-session --event-list {q(json.dumps(events))}"
    )
    r.note = f"{len(clicks)} {other} clicks"
    after = item_ids(r.call(f"{recommend} --user-id {user}"))
    expect(after != before, "the recommendations did not change after PutEvents")
    r.note = f"{genres(shop, before)}  ->  {genres(shop, after)}"
    unseen = item_ids(r.call(f"{recommend} --user-id {user} --filter-arn {filters['unseen']}"))
    expect(len(unseen) == 25, f"{len(unseen)} items")
    expect(not set(unseen) & (history | set(clicks)), f"kept {set(unseen) & set(clicks)}")
    r.note = "leaves out the streamed clicks too"
    interacted = item_ids(
        r.call(f"{recommend} --user-id {user} --filter-arn {filters['interacted']}")
    )
    expect(interacted, "INCLUDE gave an empty itemList after PutEvents")
    expect(set(interacted) <= history | set(clicks), f"{set(interacted) - history - set(clicks)}")
    r.note = f"{len(set(interacted) & set(clicks))} of {len(interacted)} are streamed clicks"
    r.wait("event tracker", "personalize describe-event-tracker --event-tracker-arn",
           [tracker["eventTrackerArn"]], "eventTracker")  # fmt: skip
    listed = r.call(f"personalize list-event-trackers --dataset-group-arn {group}")
    expect([x["eventTrackerArn"] for x in listed["eventTrackers"]] == [tracker["eventTrackerArn"]],
           f"{listed}")  # fmt: skip

    # ---- PutItems and PutUsers
    new_item = f"{other}-new"
    items = [{"itemId": new_item, "properties": json.dumps({"genre": other})}]
    r.call(f"personalize-events put-items --dataset-arn {datasets['Items']} "
           f"--items {q(json.dumps(items))}")  # fmt: skip
    ranked = item_ids(r.call(f"{rank} --user-id {user} --input-list {new_item} {' '.join(top)}"))
    expect(sorted(ranked) == sorted([new_item, *top]), f"ranked {ranked}")
    expect(ranked[-1] == new_item, f"the item without training data is not last: {ranked}")
    r.note = "the new item comes last (no interactions in training)"
    users = [{"userId": "newcomer", "properties": json.dumps({"membership": "gold"})}]
    r.call(f"personalize-events put-users --dataset-arn {datasets['Users']} "
           f"--users {q(json.dumps(users))}")  # fmt: skip
    cold = item_ids(r.call(f"{recommend} --user-id newcomer --num-results 10"))
    expect(len(cold) == 10, f"{len(cold)} items for a new user")
    r.note = "10 items for the new user"
    unknown_field = [{"itemId": "x", "properties": json.dumps({"noSuchField": "1"})}]
    r.fails(f"personalize-events put-items --dataset-arn {datasets['Items']} "
            f"--items {q(json.dumps(unknown_field))}", "InvalidInputException")  # fmt: skip

    # ---- tags
    tags = [{"tagKey": "team", "tagValue": "recs"}, {"tagKey": "env", "tagValue": "cli"}]
    r.call(f"personalize tag-resource --resource-arn {campaign} --tags {q(json.dumps(tags))}")
    listed = r.call(f"personalize list-tags-for-resource --resource-arn {campaign}")["tags"]
    expect({t["tagKey"]: t["tagValue"] for t in listed} == {"team": "recs", "env": "cli"}, listed)
    r.call(f"personalize untag-resource --resource-arn {campaign} --tag-keys team")
    listed = r.call(f"personalize list-tags-for-resource --resource-arn {campaign}")["tags"]
    expect([t["tagKey"] for t in listed] == ["env"], f"after untag-resource: {listed}")
    r.fails(f"personalize list-tags-for-resource --resource-arn {campaign}-gone",
            "ResourceNotFoundException")  # fmt: skip

    # ---- retrain with the streamed events (trainingMode UPDATE) and move the campaign to it
    update = r.call(
        f"personalize create-solution-version --solution-arn {solution} --training-mode UPDATE"
    )["solutionVersionArn"]
    r.wait("the UPDATE version", "personalize describe-solution-version --solution-version-arn",
           [update], "solutionVersion")  # fmt: skip
    r.call(f"personalize update-campaign --campaign-arn {campaign} "
           f"--solution-version-arn {update} --min-provisioned-tps 2")  # fmt: skip
    (described,) = r.wait(
        "the campaign update", "personalize describe-campaign --campaign-arn", [campaign],
        "campaign",
        status_of=lambda d: (d.get("latestCampaignUpdate") or d).get("status"),
    )  # fmt: skip
    expect(described["solutionVersionArn"] == update, "the campaign kept its old version")
    expect(described["minProvisionedTPS"] == 2, f"minProvisionedTPS {described}")
    r.note = "serves the UPDATE version at 2 TPS"
    unseen = item_ids(r.call(f"{recommend} --user-id {user} --filter-arn {filters['unseen']}"))
    expect(len(unseen) == 25 and not set(unseen) & (history | set(clicks)), f"{unseen}")
    with r.step(
        f"personalize list-solution-versions --solution-arn {short(solution)} --max-items 1"
    ):
        page = r.ok(f"personalize list-solution-versions --solution-arn {solution} --max-items 1")
        expect(len(page["solutionVersions"]) == 1 and page.get("NextToken"), "no second page")
        page = r.ok(f"personalize list-solution-versions --solution-arn {solution} --max-items 1 "
                    f"--starting-token {page['NextToken']}")  # fmt: skip
        expect(len(page["solutionVersions"]) == 1 and not page.get("NextToken"), f"{page}")

    # ---- batch inference, input and output in the local S3 root
    batch_users = sorted(shop.membership)[:6]
    source = s3_root / BUCKET / "batch" / "users.json"
    source.parent.mkdir(parents=True, exist_ok=True)
    source.write_text("".join(json.dumps({"userId": u}) + "\n" for u in batch_users))
    job_input = json.dumps({"s3DataSource": {"path": f"s3://{BUCKET}/batch/users.json"}})
    job_output = json.dumps({"s3DataDestination": {"path": f"s3://{BUCKET}/out/"}})
    batch = r.call(
        f"personalize create-batch-inference-job --job-name cli-check-batch "
        f"--solution-version-arn {version} --filter-arn {filters['unseen']} --num-results 5 "
        f"--role-arn {ROLE} --job-input {q(job_input)} --job-output {q(job_output)}"
    )["batchInferenceJobArn"]
    r.wait("the batch inference job",
           "personalize describe-batch-inference-job --batch-inference-job-arn", [batch],
           "batchInferenceJob")  # fmt: skip
    with r.step(f"read s3://{BUCKET}/out/users.json.out from the local S3 root"):
        output = s3_root / BUCKET / "out" / "users.json.out"
        expect(output.is_file(), f"no {output}")
        lines = [json.loads(line) for line in output.read_text().splitlines() if line.strip()]
        expect([x["input"]["userId"] for x in lines] == batch_users, "one line per input user")
        for line in lines:
            got = line["output"]["recommendedItems"]
            expect(len(got) == 5, f"{len(got)} items for {line['input']['userId']}")
            expect(not set(got) & shop.history(line["input"]["userId"]), "the filter was ignored")
        r.note = f"{len(lines)} users, 5 unseen items each"
    listed = r.call(f"personalize list-batch-inference-jobs --solution-version-arn {version}")
    expect([x["batchInferenceJobArn"] for x in listed["batchInferenceJobs"]] == [batch], listed)
    listed = r.call("personalize list-dataset-groups")["datasetGroups"]
    expect([x["datasetGroupArn"] for x in listed] == [group], f"{listed}")

    # ---- deletes, each waited for where the next one needs it gone
    r.fails(f"personalize delete-dataset-group --dataset-group-arn {group}",
            "ResourceInUseException")  # fmt: skip
    r.fails(f"personalize delete-solution --solution-arn {solution}", "ResourceInUseException")
    for arn in (campaign, ranking_campaign):
        r.call(f"personalize delete-campaign --campaign-arn {arn}")
    r.wait_gone("2 campaigns", "personalize describe-campaign --campaign-arn",
                [campaign, ranking_campaign])  # fmt: skip
    for arn in filters.values():
        r.call(f"personalize delete-filter --filter-arn {arn}")
    r.call(f"personalize delete-event-tracker --event-tracker-arn {tracker['eventTrackerArn']}")
    for arn in (solution, ranker):
        r.call(f"personalize delete-solution --solution-arn {arn}")
    r.wait_gone("4 filters", "personalize describe-filter --filter-arn", list(filters.values()))
    r.wait_gone("the event tracker", "personalize describe-event-tracker --event-tracker-arn",
                [tracker["eventTrackerArn"]])  # fmt: skip
    r.wait_gone("2 solutions", "personalize describe-solution --solution-arn", [solution, ranker])
    r.fails(f"personalize delete-schema --schema-arn {schemas['Items']}", "ResourceInUseException")
    for arn in datasets.values():
        r.call(f"personalize delete-dataset --dataset-arn {arn}")
    r.wait_gone("3 datasets", "personalize describe-dataset --dataset-arn", list(datasets.values()))
    for arn in schemas.values():
        r.call(f"personalize delete-schema --schema-arn {arn}")
    r.call(f"personalize delete-dataset-group --dataset-group-arn {group}")
    r.wait_gone("the dataset group", "personalize describe-dataset-group --dataset-group-arn",
                [group])  # fmt: skip
    r.fails(f"personalize describe-schema --schema-arn {schemas['Users']}",
            "ResourceNotFoundException")  # fmt: skip
    r.fails(f"personalize describe-solution-version --solution-version-arn {version}",
            "ResourceNotFoundException")  # fmt: skip
    listed = r.call("personalize list-dataset-groups")["datasetGroups"]
    expect(listed == [], f"left: {listed}")
    r.note = "nothing left"


# -- entry point ----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--aws", help="the AWS CLI v2 executable (default: $AWS_CLI, then PATH)")
    parser.add_argument("--keep", type=Path, help="an empty folder to keep the data in")
    options = parser.parse_args(argv)
    found = find_aws(options.aws)
    if found is None:
        print("check_aws_cli: the AWS CLI v2 (`aws`) is missing; install it with:\n"
              f"  {INSTALL_HINT}", file=sys.stderr)  # fmt: skip
        return 2
    aws, version = found
    temporary = None
    if options.keep is None:
        temporary = tempfile.TemporaryDirectory(prefix="openpersonalize-cli-check-")
        root = Path(temporary.name)
    else:
        root = options.keep.resolve()
        if root.exists() and any(root.iterdir()):
            print(f"check_aws_cli: --keep {root} is not empty", file=sys.stderr)
            return 2
    for folder in ("work", "aws", "s3"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    server = ServerProcess(
        root / "server",
        settings={
            "s3_local_root": str(root / "s3"),
            "access_key_id": ACCESS_KEY,
            "secret_access_key": SECRET_KEY,
        },
    )
    runner = Runner(aws, "", cli_environment(root / "aws"), server)
    began = time.monotonic()
    try:
        server.start()
        runner.endpoint = server.endpoint_url
        print(f"{version}\nopenpersonalize serve on {server.endpoint_url}, pid "
              f"{server.process.pid if server.process else '?'}, data in {root}; SigV4 checked, "
              f"s3:// read from {root / 's3'}", flush=True)  # fmt: skip
        workflow(runner, make_shop(), root / "work", root / "s3")
        runner.finish()
    except KeyboardInterrupt:
        print("check_aws_cli: interrupted", file=sys.stderr)
        return 130
    except Exception as failure:  # a failed step, the server not starting, or a bug here
        runner.fail(failure if isinstance(failure, CheckFailed) else CheckFailed(repr(failure)))
        return 1
    finally:
        server.stop()
        if temporary is not None:
            temporary.cleanup()
    print(f"\nall {runner.steps} steps OK ({runner.calls} aws calls) in "
          f"{time.monotonic() - began:.1f}s; the server is stopped", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
