"""Next best action: aws-next-best-action against offering everyone the most taken action.

Seeded synthetic data with a known answer (`openpersonalize.testing.actions`): users of two
taste groups, each with a best action (taken with probability 0.75), a newsletter everyone
takes with probability 0.45 (the most taken action overall) and actions nobody much wants
(0.08). A fifth of the users are held out: they have item interactions only, no action
interactions, so the model must place them by their item history. Each policy offers every
held-out user one action; the TAKEN rate is the mean ground-truth propensity of the offered
action (the exact expectation of simulating the offers). The baseline offers everyone the
action with the most TAKEN events in the training data; "oracle" offers each user their
true best action. Target: the model's TAKEN rate beats the baseline's on every data set.

    python benchmarks/next_best_action.py            # print the table
    python benchmarks/next_best_action.py --write    # also update docs/benchmarks.md
"""

from __future__ import annotations

import argparse
import sys
import time

import common
import numpy as np
from common import REPO

sys.path.insert(0, str(REPO))

from openpersonalize.recipes import catalog  # noqa: E402
from openpersonalize.recipes.next_best_action import TAKEN  # noqa: E402
from openpersonalize.testing.actions import action_data, generate  # noqa: E402
from openpersonalize.training.train import build  # noqa: E402

START, END = "<!-- next-best-action:start -->", "<!-- next-best-action:end -->"
# (label, users, exposures per user): a small set, a larger one, and one with sparse offers.
DATA = (("small", 300, 12), ("large", 3000, 12), ("sparse", 3000, 4))
SEEDS = (0, 1, 2)


def run(n_users: int, exposures: int, seed: int) -> dict[str, float]:
    scenario = generate(
        seed=seed, n_users=n_users, exposures_per_user=exposures, held_out_share=0.2
    )
    data = action_data(scenario)
    recipe = catalog.RECIPES["aws-next-best-action"]
    started = time.perf_counter()
    model = build(catalog.model_class(recipe), catalog.resolve_hyperparameters(recipe, None, None))
    model.fit(data)
    seconds = time.perf_counter() - started
    index = {user: code for code, user in enumerate(data.user_ids)}
    users = scenario.held_out
    top = data.action_ids[model.score(np.array([index[u] for u in users])).argmax(axis=1)]
    taken = np.bincount(data.actions[data.kinds == TAKEN], minlength=data.n_actions)
    most_taken = data.action_ids[int(taken.argmax())]
    return {
        "model": float(
            np.mean([scenario.propensity(u, a) for u, a in zip(users, top, strict=True)])
        ),
        "most taken": float(np.mean([scenario.propensity(u, most_taken) for u in users])),
        "oracle": float(np.mean([scenario.propensity(u, scenario.best_action(u)) for u in users])),
        "events": float(len(data.users)),
        "seconds": seconds,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args(argv)
    lines = [
        "| data | users | action interactions | model TAKEN rate | most-taken TAKEN rate "
        "| oracle | fit s |",
        "|---|---|---|---|---|---|---|",
    ]
    verdicts = []
    for label, n_users, exposures in DATA:
        runs = [run(n_users, exposures, seed) for seed in SEEDS]
        mean = {key: float(np.mean([r[key] for r in runs])) for key in runs[0]}
        lines.append(
            f"| {label} | {n_users} | {mean['events']:.0f} | {mean['model']:.3f} | "
            f"{mean['most taken']:.3f} | {mean['oracle']:.3f} | {mean['seconds']:.1f} |"
        )
        worst = min(r["model"] - r["most taken"] for r in runs)
        verdicts.append(
            f"{'met' if worst > 0 else 'MISSED'}: {label}: the model's TAKEN rate beats the "
            f"most-taken baseline on every seed ({', '.join(str(s) for s in SEEDS)}); "
            f"smallest margin {worst:+.3f}"
        )
    text = "\n".join(lines)
    print(text)
    for verdict in verdicts:
        print(f"- {verdict}")
    if args.write:
        common.write_report(
            START,
            END,
            "Next best action (aws-next-best-action)",
            f"`python benchmarks/next_best_action.py --write`; "
            f"{common.machine('numpy', 'scipy', 'implicit')}. Seeded synthetic data with "
            "known propensities; the TAKEN rate of the one action offered to each held-out user "
            f"(a fifth of the users, without action interactions), mean of seeds {SEEDS}.",
            text,
            verdicts,
        )
    return 1 if any(v.startswith("MISSED") for v in verdicts) else 0


if __name__ == "__main__":
    sys.exit(main())
