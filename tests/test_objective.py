"""optimizationObjective on an attribute below zero: a negated cost is minimized."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from openpersonalize.recipes.objective import Objective


def test_negated_cost_lifts_the_cheapest_items() -> None:
    # ROYALTY negated, as the objective-optimization sample does to pay the least royalties.
    items = pa.table({"ROYALTY": [-0.1, -0.05, 0.0, None]})
    scores = np.array([[3.0, 2.0, 1.0, 0.5]], dtype=np.float32)
    boost = Objective.from_metadata(items, "ROYALTY", "HIGH").boost
    assert boost[2] > boost[1] > boost[0]  # free beats cheap beats dear
    assert boost[3] == boost[0]  # missing counts as the lowest value
    off = Objective.from_metadata(items, "ROYALTY", "OFF").adjust(scores)
    np.testing.assert_array_equal(off, scores)
    high = Objective.from_metadata(items, "ROYALTY", "HIGH").adjust(scores)[0]
    assert high[2] - high[0] > (scores[0, 2] - scores[0, 0]) / scores[0].std()


def test_positive_attribute_unchanged_by_the_sign_handling() -> None:
    items = pa.table({"PRICE": [1.0, 1.0, 100.0, None]})
    objective = Objective.from_metadata(items, "PRICE", "MEDIUM")
    logged = np.log1p(np.array([1.0, 1.0, 100.0, 0.0]))
    expected = 0.6 * (logged - logged.mean()) / logged.std()
    np.testing.assert_allclose(objective.boost, expected, rtol=1e-6)
    np.testing.assert_array_equal(objective.rewards, [1.0, 1.0, 100.0, 0.0])
