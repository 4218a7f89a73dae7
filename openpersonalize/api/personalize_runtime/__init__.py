"""personalize-runtime (REST-JSON): real-time recommendations from campaigns."""

from __future__ import annotations

from openpersonalize.api import Handler
from openpersonalize.serving import actions, engine

OPERATIONS: dict[str, Handler] = {
    "GetRecommendations": engine.get_recommendations,
    "GetPersonalizedRanking": engine.get_personalized_ranking,
    "GetActionRecommendations": actions.get_action_recommendations,
}
