"""Seeded synthetic data for the two domains, with structure the use cases can find.

ECOMMERCE: shoppers each prefer one category; a visit views a few items (mostly of that
category) and buys some of them in the same basket, and an item's *companion* (item 2k and
2k + 1 of a category) is bought with it far more often than chance. VIDEO_ON_DEMAND: viewers
prefer one genre, click videos and watch most of what they click. Both are written with
the domain's reserved column names, so they import into a Domain dataset group unchanged.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["DomainData", "ecommerce", "schema_json", "video_on_demand"]

ECOMMERCE, VIDEO_ON_DEMAND = "ECOMMERCE", "VIDEO_ON_DEMAND"
CATEGORIES = ("books", "music", "games", "garden", "kitchen", "sports")
GENRES = ("Comedy", "Drama", "Action", "Horror", "Documentary", "Animation")
START = 1_700_000_000  # the first event's epoch second; every timestamp follows from the seed


@dataclass
class DomainData:
    """Interactions and Items rows of one domain, and the structure planted in them."""

    domain: str
    interactions: list[tuple[str, str, int, str]]  # USER_ID, ITEM_ID, TIMESTAMP, EVENT_TYPE
    items: list[dict[str, object]]  # one dict per item, keyed by Items column
    preferred: dict[str, str] = field(default_factory=dict)  # user -> category or genre
    group_of: dict[str, str] = field(default_factory=dict)  # item -> category or genre
    companion: dict[str, str] = field(default_factory=dict)  # item -> its bought-with item

    @property
    def item_columns(self) -> list[str]:
        return list(self.items[0])

    def write(self, directory: Path) -> tuple[Path, Path]:
        """interactions.csv and items.csv in `directory`."""
        directory.mkdir(parents=True, exist_ok=True)
        interactions, items = directory / "interactions.csv", directory / "items.csv"
        with interactions.open("w", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(["USER_ID", "ITEM_ID", "TIMESTAMP", "EVENT_TYPE"])
            writer.writerows(self.interactions)
        with items.open("w", newline="") as out:
            dict_writer = csv.DictWriter(out, fieldnames=self.item_columns)
            dict_writer.writeheader()
            dict_writer.writerows(self.items)
        return interactions, items

    def last_timestamp(self) -> int:
        return max(row[2] for row in self.interactions)


def _groups(rng: np.random.Generator, n_users: int, names: tuple[str, ...]) -> list[str]:
    return [names[i] for i in rng.integers(0, len(names), n_users)]


def _pick(rng: np.random.Generator, preferred: list[str], everything: list[str]) -> str:
    """An item of the user's preferred group 85 % of the time, else any item. Popularity falls
    off along each list, so some items are taken far more often than others."""
    pool = preferred if rng.random() < 0.85 else everything
    return pool[min(int(rng.exponential(len(pool) / 4)), len(pool) - 1)]


def ecommerce(
    seed: int = 11, n_users: int = 180, items_per_category: int = 20, visits: int = 4
) -> DomainData:
    """A shop: View and Purchase events, baskets of companions, Items with PRICE and
    CATEGORY_L1."""
    rng = np.random.default_rng(seed)
    data = DomainData(ECOMMERCE, [], [])
    by_category = {
        category: [f"{category}-{n:02d}" for n in range(items_per_category)]
        for category in CATEGORIES
    }
    for category, items in by_category.items():
        for n, item in enumerate(items):
            data.group_of[item] = category
            data.companion[item] = items[n ^ 1]  # 0 <-> 1, 2 <-> 3, ...
            price = round(float(rng.uniform(5, 80)), 2)
            data.items.append({"ITEM_ID": item, "PRICE": price, "CATEGORY_L1": category})
    everything = list(data.group_of)
    for number, category in enumerate(_groups(rng, n_users, CATEGORIES)):
        user = f"shopper-{number:03d}"
        data.preferred[user] = category
        clock = START + int(rng.integers(0, 3 * 86400))
        for _ in range(visits):
            clock += int(rng.integers(1, 5)) * 86400  # visits days apart: separate baskets
            viewed = []
            for _ in range(int(rng.integers(4, 8))):
                item = _pick(rng, by_category[category], everything)
                viewed.append(item)
                clock += int(rng.integers(20, 120))
                data.interactions.append((user, item, clock, "View"))
            for item in dict.fromkeys(viewed[: int(rng.integers(1, 3))]):
                for bought in (item, data.companion[item]) if rng.random() < 0.8 else (item,):
                    clock += int(rng.integers(20, 120))
                    data.interactions.append((user, bought, clock, "Purchase"))
    return data


def video_on_demand(
    seed: int = 12, n_users: int = 160, videos_per_genre: int = 20, sessions: int = 5
) -> DomainData:
    """A streaming service: Click and Watch events, Items with GENRES and
    CREATION_TIMESTAMP."""
    rng = np.random.default_rng(seed)
    data = DomainData(VIDEO_ON_DEMAND, [], [])
    by_genre = {
        genre: [f"{genre.lower()}-{n:02d}" for n in range(videos_per_genre)] for genre in GENRES
    }
    for genre, videos in by_genre.items():
        for video in videos:
            data.group_of[video] = genre
            created = START - int(rng.integers(30, 400)) * 86400
            data.items.append({"ITEM_ID": video, "GENRES": genre, "CREATION_TIMESTAMP": created})
    everything = list(data.group_of)
    for number, genre in enumerate(_groups(rng, n_users, GENRES)):
        user = f"viewer-{number:03d}"
        data.preferred[user] = genre
        clock = START + int(rng.integers(0, 3 * 86400))
        for _ in range(sessions):
            clock += int(rng.integers(1, 4)) * 86400
            for _ in range(int(rng.integers(3, 6))):
                video = _pick(rng, by_genre[genre], everything)
                clock += int(rng.integers(60, 600))
                data.interactions.append((user, video, clock, "Click"))
                if rng.random() < 0.75:
                    clock += int(rng.integers(60, 600))
                    data.interactions.append((user, video, clock, "Watch"))
    return data


def schema_json(dataset: str, data: DomainData) -> str:
    """The Avro schema of one of `data`'s CSV files ("Interactions" or "Items")."""
    if dataset == "Interactions":
        fields: list[dict[str, object]] = [
            {"name": "USER_ID", "type": "string"},
            {"name": "ITEM_ID", "type": "string"},
            {"name": "TIMESTAMP", "type": "long"},
            {"name": "EVENT_TYPE", "type": "string"},
        ]
    elif data.domain == ECOMMERCE:
        fields = [
            {"name": "ITEM_ID", "type": "string"},
            {"name": "PRICE", "type": "float"},
            {"name": "CATEGORY_L1", "type": "string", "categorical": True},
        ]
    else:
        fields = [
            {"name": "ITEM_ID", "type": "string"},
            {"name": "GENRES", "type": "string", "categorical": True},
            {"name": "CREATION_TIMESTAMP", "type": "long"},
        ]
    return json.dumps(
        {
            "type": "record",
            "name": dataset,
            "namespace": "com.amazonaws.personalize.schema",
            "fields": fields,
            "version": "1.0",
        }
    )
