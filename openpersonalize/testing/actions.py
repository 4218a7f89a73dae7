"""Seeded synthetic data for next best action, with a known answer.

Users fall into two taste groups: group 0 interacts mostly with the items of genre 0,
group 1 with those of genre 1. Each group has one best action, taken far more often by its
users than any other action; a third action ("newsletter") is moderately popular with
everyone, so it is the most taken action overall while being nobody's best. A model that
reads users' item histories ranks each group's best action first; the "most taken action"
baseline offers everyone the newsletter.

Action interactions are exposures: each user is shown random actions and takes each with
its ground-truth propensity (TAKEN), else declines it (NOT_TAKEN or VIEWED). Event types are
written in the guide's several spellings, as real data has them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from openpersonalize.data.schema import parse_schema
from openpersonalize.data.training_data import load_training_data
from openpersonalize.recipes.next_best_action import ActionData, build_action_data

__all__ = [
    "ACTIONS_SCHEMA_JSON",
    "ACTION_INTERACTIONS_SCHEMA_JSON",
    "ActionScenario",
    "action_data",
    "ITEM_INTERACTIONS_SCHEMA_JSON",
    "generate",
]

START = 1_700_000_000  # the first item interaction (epoch seconds)
DAY = 86_400
GROUPS = 2
ITEMS_PER_GENRE = 30
ITEM_EVENTS_PER_USER = 15
IN_GENRE_SHARE = 0.85  # a user's item events within their group's genre

#: (ACTION_ID, CATEGORY, VALUE, REPEAT_FREQUENCY or None)
ACTIONS: tuple[tuple[str, str, int, int | None], ...] = (
    ("loyalty-program", "membership", 5, None),
    ("premium-upgrade", "membership", 9, None),
    ("newsletter", "engagement", 2, None),
    ("gift-card", "purchase", 6, None),
    ("survey", "engagement", 1, None),
    ("app-install", "engagement", 4, None),
)
BEST_ACTION = {0: "loyalty-program", 1: "premium-upgrade"}
BEST_PROPENSITY = 0.75
NEWSLETTER_PROPENSITY = 0.45
OTHER_PROPENSITY = 0.08

# Spellings the guide uses; the service reads them all as TAKEN / NOT_TAKEN / VIEWED.
_TAKEN_SPELLINGS = ("Taken", "TAKEN", "taken")
_DECLINED_SPELLINGS = ("Not Taken", "NOT_TAKEN", "Not taken", "Viewed", "VIEWED")

ITEM_INTERACTIONS_SCHEMA_JSON = json.dumps(
    {
        "type": "record",
        "name": "Interactions",
        "namespace": "com.amazonaws.personalize.schema",
        "fields": [
            {"name": "USER_ID", "type": "string"},
            {"name": "ITEM_ID", "type": "string"},
            {"name": "TIMESTAMP", "type": "long"},
        ],
        "version": "1.0",
    }
)
ACTIONS_SCHEMA_JSON = json.dumps(
    {
        "type": "record",
        "name": "Actions",
        "namespace": "com.amazonaws.personalize.schema",
        "fields": [
            {"name": "ACTION_ID", "type": "string"},
            {"name": "CATEGORY", "type": "string", "categorical": True},
            {"name": "VALUE", "type": ["null", "long"]},
            {"name": "REPEAT_FREQUENCY", "type": ["null", "long"]},
            {"name": "EXPIRATION_TIMESTAMP", "type": ["null", "long"]},
        ],
        "version": "1.0",
    }
)
ACTION_INTERACTIONS_SCHEMA_JSON = json.dumps(
    {
        "type": "record",
        "name": "ActionInteractions",
        "namespace": "com.amazonaws.personalize.schema",
        "fields": [
            {"name": "USER_ID", "type": "string"},
            {"name": "ACTION_ID", "type": "string"},
            {"name": "TIMESTAMP", "type": "long"},
            {"name": "EVENT_TYPE", "type": "string"},
        ],
        "version": "1.0",
    }
)


@dataclass
class ActionScenario:
    """The generated data and its ground truth."""

    users: list[str]
    group: dict[str, int]  # user -> taste group
    interactions: list[tuple[str, str, int]]  # (USER_ID, ITEM_ID, TIMESTAMP)
    action_interactions: list[tuple[str, str, int, str]]  # (USER_ID, ACTION_ID, TIMESTAMP, TYPE)
    held_out: list[str] = field(default_factory=list)  # users without action interactions
    actions: tuple[tuple[str, str, int, int | None], ...] = ACTIONS
    # Per action ID, written into the Actions file (epoch seconds; None: never expires).
    expiration: dict[str, int | None] = field(default_factory=dict)

    @property
    def newest(self) -> int:
        """The newest timestamp of any interaction."""
        stamps = [t for _, _, t in self.interactions] + [
            t for _, _, t, _ in self.action_interactions
        ]
        return max(stamps)

    def propensity(self, user: str, action: str) -> float:
        """The probability that `user` takes `action` when offered it."""
        if action == BEST_ACTION[self.group[user]]:
            return BEST_PROPENSITY
        if action == "newsletter":
            return NEWSLETTER_PROPENSITY
        return OTHER_PROPENSITY

    def best_action(self, user: str) -> str:
        return BEST_ACTION[self.group[user]]

    def tables(self) -> dict[str, pa.Table]:
        """The three datasets as Arrow tables in the schemas' column order, by dataset type."""
        users, items, stamps = zip(*self.interactions, strict=True)
        rows = [(a, c, v, r, self.expiration.get(a)) for a, c, v, r in self.actions]
        ids, categories, values, repeats, expirations = zip(*rows, strict=True)
        tables = {
            "Interactions": pa.table(
                {"USER_ID": users, "ITEM_ID": items, "TIMESTAMP": pa.array(stamps, pa.int64())}
            ),
            "Actions": pa.table(
                {
                    "ACTION_ID": ids,
                    "CATEGORY": categories,
                    "VALUE": pa.array(values, pa.int64()),
                    "REPEAT_FREQUENCY": pa.array(repeats, pa.int64()),
                    "EXPIRATION_TIMESTAMP": pa.array(expirations, pa.int64()),
                }
            ),
        }
        if self.action_interactions:
            a_users, a_ids, a_stamps, kinds = zip(*self.action_interactions, strict=True)
            columns = (a_users, a_ids, pa.array(a_stamps, pa.int64()), kinds)
        else:
            columns = ([], [], pa.array([], pa.int64()), [])
        tables["Action_Interactions"] = pa.table(
            dict(zip(("USER_ID", "ACTION_ID", "TIMESTAMP", "EVENT_TYPE"), columns, strict=True)),
            schema=pa.schema(
                [
                    ("USER_ID", pa.string()),
                    ("ACTION_ID", pa.string()),
                    ("TIMESTAMP", pa.int64()),
                    ("EVENT_TYPE", pa.string()),
                ]
            ),
        )
        return tables

    def interactions_csv(self) -> str:
        rows = ["USER_ID,ITEM_ID,TIMESTAMP"] + [f"{u},{i},{t}" for u, i, t in self.interactions]
        return "\n".join(rows) + "\n"

    def actions_csv(self) -> str:
        rows = ["ACTION_ID,CATEGORY,VALUE,REPEAT_FREQUENCY,EXPIRATION_TIMESTAMP"]
        for action, category, value, repeat in self.actions:
            expires = self.expiration.get(action)
            rows.append(
                f"{action},{category},{value},{'' if repeat is None else repeat},"
                f"{'' if expires is None else expires}"
            )
        return "\n".join(rows) + "\n"

    def action_interactions_csv(self) -> str:
        rows = ["USER_ID,ACTION_ID,TIMESTAMP,EVENT_TYPE"] + [
            f"{u},{a},{t},{e}" for u, a, t, e in self.action_interactions
        ]
        return "\n".join(rows) + "\n"


def generate(
    seed: int = 0,
    n_users: int = 300,
    exposures_per_user: int = 12,
    held_out_share: float = 0.0,
) -> ActionScenario:
    """A scenario of `n_users` users; a `held_out_share` of them (every k-th user, of both
    groups) gets item interactions but no action interactions, to measure on."""
    rng = np.random.default_rng(seed)
    users = [f"user-{n:04d}" for n in range(n_users)]
    group = {user: n % GROUPS for n, user in enumerate(users)}
    every = int(round(1 / held_out_share)) if held_out_share > 0 else 0
    held_out = [u for n, u in enumerate(users) if every and n % every == every - 1]
    held = set(held_out)

    interactions: list[tuple[str, str, int]] = []
    for n, user in enumerate(users):
        for event in range(ITEM_EVENTS_PER_USER):
            genre = group[user] if rng.random() < IN_GENRE_SHARE else int(rng.integers(GROUPS))
            item = f"g{genre}-item-{int(rng.integers(ITEMS_PER_GENRE)):02d}"
            stamp = START + (n * ITEM_EVENTS_PER_USER + event) * 60
            interactions.append((user, item, stamp))

    # Action exposures follow the item history, over the next four weeks.
    action_start = max(t for _, _, t in interactions) + DAY
    scenario = ActionScenario(users, group, interactions, [], held_out)
    action_ids = [a for a, _, _, _ in ACTIONS]
    for user in users:
        if user in held:
            continue
        for _ in range(exposures_per_user):
            action = action_ids[int(rng.integers(len(action_ids)))]
            stamp = action_start + int(rng.integers(28 * DAY))
            if rng.random() < scenario.propensity(user, action):
                kind = _TAKEN_SPELLINGS[int(rng.integers(len(_TAKEN_SPELLINGS)))]
            else:
                kind = _DECLINED_SPELLINGS[int(rng.integers(len(_DECLINED_SPELLINGS)))]
            scenario.action_interactions.append((user, action, stamp, kind))
    scenario.action_interactions.sort(key=lambda row: row[2])
    return scenario


def action_data(scenario: ActionScenario) -> ActionData:
    """The scenario as the model trains on it (what training builds from the datasets)."""
    tables = scenario.tables()
    items = load_training_data(
        tables["Interactions"], interactions_schema=parse_schema(ITEM_INTERACTIONS_SCHEMA_JSON)
    )
    return build_action_data(items, tables["Actions"], {"CATEGORY"}, tables["Action_Interactions"])
