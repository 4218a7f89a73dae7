"""`openpersonalize quickstart` end to end: the real command in a subprocess, as a user runs it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from openpersonalize.quickstart import choose_demo, load_movielens, synthetic_shop

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
ML_LATEST_SMALL = SHARED_DATASETS / "ml-latest-small"
ML_100K = SHARED_DATASETS / "ml-100k"


def quickstart(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "openpersonalize.cli", "quickstart", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def changed_count(output: str) -> int:
    match = re.search(r"changed: (\d+) of (\d+) recommendations are new", output)
    assert match, output
    return int(match.group(1))


def recommendation_lines(output: str, heading: str) -> list[str]:
    """The ranked lines (`  1. item ...`) printed after `heading`, up to the next blank line."""
    section = output.split(heading, 1)[1]
    lines = []
    for line in section.splitlines()[1:]:
        if not line.strip():
            break
        if re.match(r"^  [ +]\s*\d+\. ", line):
            lines.append(line)
    return lines


def test_synthetic_data_has_the_promised_shape() -> None:
    data = synthetic_shop()
    per_user: dict[str, int] = {}
    for user, *_ in data.interactions:
        per_user[user] = per_user.get(user, 0) + 1
    assert len(data.interactions) >= 1000
    assert sum(count >= 2 for count in per_user.values()) >= 25
    assert {len(item.categories) for item in data.items.values()} == {1}
    assert synthetic_shop().interactions == data.interactions  # seeded
    demo = choose_demo(data)
    assert demo.favourite != demo.other and len(demo.clicks) == data.clicks
    assert all(demo.other in data.items[item].categories for item in demo.clicks)


def test_quickstart_with_synthetic_data(tmp_path: Path) -> None:
    result = quickstart("--data-dir", str(tmp_path / "kept"))
    output = result.stdout
    assert result.returncode == 0, output + result.stderr
    assert "GetSolutionMetrics" in output
    assert re.search(r"precision_at_10\s+0\.\d{4}", output), output
    assert re.search(r"normalized_discounted_cumulative_gain_at_10\s+0\.\d{4}", output)
    before = recommendation_lines(output, "GetRecommendations for user")
    assert len(before) == 10
    assert all(re.search(r"\[(books|music|games|garden|kitchen|sports)\]", x) for x in before)
    filtered = recommendation_lines(output, "recommendations without category")
    favourite = re.search(r"without category '(\w+)'", output).group(1)  # type: ignore[union-attr]
    assert filtered and not any(f"[{favourite}]" in line for line in filtered)
    assert "PutEvents" in output
    after = recommendation_lines(output, "recommendations now")
    assert len(after) == 10 and after != before
    assert changed_count(output) > 0
    assert sum(line.startswith("  +") for line in after) == changed_count(output)
    assert "the server is stopped" in output
    assert (tmp_path / "kept" / "server" / "metadata.db").exists()  # --data-dir keeps it


def test_quickstart_refuses_a_folder_without_movielens(tmp_path: Path) -> None:
    (tmp_path / "ratings.csv").write_text("userId,movieId,rating,timestamp\n")
    result = quickstart("--movielens", str(tmp_path), timeout=60)
    assert result.returncode == 2
    assert "neither ml-latest-small" in result.stderr and "ratings.csv" in result.stderr
    result = quickstart("--movielens", str(tmp_path / "missing"), timeout=60)
    assert result.returncode == 2 and "is not a directory" in result.stderr


@pytest.mark.skipif(not ML_100K.is_dir(), reason=f"ML-100K not present at {ML_100K}")
def test_ml_100k_is_detected_and_read() -> None:
    data = load_movielens(ML_100K)
    assert data.label == "MovieLens ML-100K"
    assert len(data.interactions) == 100_000 and len(data.items) == 1682
    assert data.items["1"].title == "Toy Story (1995)"
    assert data.items["1"].categories == ("Animation", "Children's", "Comedy")


@pytest.mark.skipif(
    not ML_LATEST_SMALL.is_dir(), reason=f"ml-latest-small not present at {ML_LATEST_SMALL}"
)
def test_quickstart_with_movielens() -> None:
    result = quickstart("--movielens", str(ML_LATEST_SMALL))
    output = result.stdout
    assert result.returncode == 0, output + result.stderr
    assert "MovieLens ml-latest-small: 100,836 interactions" in output
    assert re.search(r"precision_at_10\s+0\.\d{4}", output), output
    before = recommendation_lines(output, "GetRecommendations for user")
    assert len(before) == 10
    # titles (with their year) and genres beside each recommended movie
    assert all(re.search(r"\(\d{4}\)\s+\[[A-Z]", line) for line in before), before
    after = recommendation_lines(output, "recommendations now")
    assert len(after) == 10 and changed_count(output) > 0


@pytest.mark.parametrize("domain_name", ["ECOMMERCE", "VIDEO_ON_DEMAND"])
def test_domain_quickstart_runs_the_recommender_workflow(domain_name: str) -> None:
    result = quickstart("--domain", domain_name, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    output = result.stdout
    assert f"CreateDatasetGroup(domain={domain_name})" in output
    assert output.count(" ACTIVE") >= 7  # two imports and five recommenders
    share = re.search(r"(\d+)/(\d+) are '", output)
    assert share and int(share.group(1)) >= 6, output  # the personalized list leans as the user
    moved = re.search(r"'[^']+': (\d+) -> (\d+) of \d+; \S+ \(\w+ just now\) is left out", output)
    assert moved and int(moved.group(2)) > int(moved.group(1)), output


def test_domain_quickstart_refuses_movielens_for_ecommerce(tmp_path: Path) -> None:
    result = quickstart("--domain", "ECOMMERCE", "--movielens", str(tmp_path))
    assert result.returncode == 2 and "VIDEO_ON_DEMAND" in result.stderr


@pytest.mark.skipif(not ML_100K.is_dir(), reason="ML-100K is not in ../shared/datasets")
def test_domain_quickstart_on_movielens() -> None:
    result = quickstart("--domain", "VIDEO_ON_DEMAND", "--movielens", str(ML_100K), timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "aws-vod-top-picks" in result.stdout and "left out" in result.stdout
