"""The predefined recipes as data: one source for every fact about them.

Each recipe names its algorithm, its feature transformation and the specs of its
hyperparameters (kind, default, allowed range, default HPO range, whether HPO may
tune it, whether it is a featurization parameter). CreateSolution validation,
ListRecipes / DescribeRecipe / DescribeAlgorithm / DescribeFeatureTransformation,
HPO and training all read these specs and nothing else.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from openpersonalize.errors import InvalidInputException, ResourceNotFoundException

if TYPE_CHECKING:
    from openpersonalize.recipes.base import Model

__all__ = [
    "HPO_RESOURCE_DEFAULTS",
    "RECIPES",
    "HyperParameter",
    "Recipe",
    "UseCase",
    "check_hyperparameters",
    "convert",
    "describe_algorithm",
    "describe_feature_transformation",
    "describe_recipe",
    "get_recipe",
    "model_class",
    "recipe_by_algorithm",
    "recipe_by_feature_transformation",
    "recipe_summary",
    "resolve_hyperparameters",
    "solution_recipe",
    "search_space",
]

INTEGER, CONTINUOUS, CATEGORICAL = "integer", "continuous", "categorical"
_ARN_PREFIX = "arn:aws:personalize:::"
_STATUS = "ACTIVE"
#: hpoResourceConfig defaults, shown as DescribeAlgorithm's defaultResourceConfig.
HPO_RESOURCE_DEFAULTS: Mapping[str, str] = {
    "maxNumberOfTrainingJobs": "20",
    "maxParallelTrainingJobs": "5",
}
# Where each kind of HPO range arrives in solutionConfig.hpoConfig.algorithmHyperParameterRanges.
_RANGE_LISTS = {
    INTEGER: "integerHyperParameterRanges",
    CONTINUOUS: "continuousHyperParameterRanges",
    CATEGORICAL: "categoricalHyperParameterRanges",
}


@dataclass(frozen=True)
class HyperParameter:
    """One hyperparameter's spec; values travel as strings, the way the service takes them."""

    name: str
    kind: str  # INTEGER | CONTINUOUS | CATEGORICAL
    default: str  # as the service shows it
    min_value: float | None = None  # allowed range, inclusive; None = unbounded
    max_value: float | None = None
    values: tuple[str, ...] = ()  # the allowed values of a categorical parameter
    tunable: bool = False  # isTunable: HPO may search it
    hpo_min: float | None = None  # default HPO range; None = the allowed range
    hpo_max: float | None = None
    feature: bool = False  # a featureTransformationParameter, not an algorithmHyperParameter

    @property
    def is_boolean(self) -> bool:
        return self.kind == CATEGORICAL and set(self.values) == {"true", "false"}

    @property
    def hpo_range(self) -> tuple[float | None, float | None]:
        """The range DescribeAlgorithm reports and HPO searches when not told otherwise."""
        low = self.hpo_min if self.hpo_min is not None else self.min_value
        high = self.hpo_max if self.hpo_max is not None else self.max_value
        return low, high

    def parse(self, value: object, where: str) -> int | float | bool | str:
        """`value` (a string on the wire) as a Python value; InvalidInputException if refused."""
        text = str(value).strip()
        if self.kind == CATEGORICAL:
            try:
                allowed = self.canonical(text)
            except InvalidInputException as refused:
                raise InvalidInputException(f"{where}: {refused.message}") from None
            return allowed == "true" if self.is_boolean else allowed
        number: int | float
        try:
            number = int(text) if self.kind == INTEGER else float(text)
        except ValueError:
            raise InvalidInputException(
                f"{where}: {self.name}={value!r} is not {_article(self.kind)} {self.kind} value."
            ) from None
        if not math.isfinite(number):
            raise InvalidInputException(f"{where}: {self.name}={value!r} is not a finite number.")
        self.check_range(number, where)
        return number

    def canonical(self, value: object) -> str:
        """A categorical value in the spelling the spec lists (matched case-insensitively)."""
        text = str(value).strip().lower()
        for allowed in self.values:
            if text == allowed.lower():
                return allowed
        raise InvalidInputException(
            f"{self.name}={value!r} is not one of: {', '.join(self.values)}."
        )

    def check_range(self, number: float, where: str) -> None:
        if (self.min_value is not None and number < self.min_value) or (
            self.max_value is not None and number > self.max_value
        ):
            raise InvalidInputException(
                f"{where}: {self.name}={_show(number)} is outside the allowed range "
                f"{self.describe_range()}."
            )

    def describe_range(self) -> str:
        low = "-inf" if self.min_value is None else _show(self.min_value)
        high = "inf" if self.max_value is None else _show(self.max_value)
        return f"[{low}, {high}]"


PERSONALIZED, RELATED, POPULAR, TRENDING = "personalized", "related", "popular", "trending"


@dataclass(frozen=True)
class UseCase:
    """What a domain use case (a recommender's recipe) needs and does, as the guide lists it.

    The model is the recipe's; this says which events it learns from, which IDs a request
    must give, and which of the user's items it leaves out before any filter runs.
    """

    domain: str  # ECOMMERCE | VIDEO_ON_DEMAND
    style: str  # PERSONALIZED | RELATED | POPULAR | TRENDING
    event_type: str | None  # trains on these events only, and needs >= 1000 of them
    excluded_event_type: str | None = None  # the user's items with these events are left out
    user_required: bool = True  # False: userId only when a filter reads the user
    needs_items: bool = False  # trains on the Items dataset too, which must exist
    # The model's settings for this use case ("the use case's best configuration"), where
    # they differ from the model's defaults; users cannot change them.
    hyperparameters: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Recipe:
    """A predefined recipe: algorithm, feature transformation, hyperparameter specs, model."""

    name: str
    recipe_type: str
    description: str
    algorithm: str
    feature_transformation: str | None
    hyperparameters: tuple[HyperParameter, ...]
    model: str | None  # "module:Class" of its Model; None = not trainable yet
    missing: str = ""  # for model None: what is missing, shown in the error
    use_case: UseCase | None = None  # set for the domain use cases that recommenders use

    @property
    def domain(self) -> str | None:
        return self.use_case.domain if self.use_case else None

    @property
    def explores(self) -> bool:
        """Mixes new (cold) items into the list, as itemExplorationConfig says."""
        if self.use_case is not None:
            return self.use_case.style == PERSONALIZED
        return self.name in ("aws-user-personalization", "aws-user-personalization-v2")

    @property
    def arn(self) -> str:
        return f"{_ARN_PREFIX}recipe/{self.name}"

    @property
    def algorithm_arn(self) -> str:
        return f"{_ARN_PREFIX}algorithm/{self.algorithm}"

    @property
    def feature_transformation_arn(self) -> str | None:
        if self.feature_transformation is None:
            return None
        return f"{_ARN_PREFIX}feature-transformation/{self.feature_transformation}"

    @property
    def algorithm_parameters(self) -> tuple[HyperParameter, ...]:
        return tuple(p for p in self.hyperparameters if not p.feature)

    @property
    def feature_parameters(self) -> tuple[HyperParameter, ...]:
        return tuple(p for p in self.hyperparameters if p.feature)

    @property
    def tunable_parameters(self) -> tuple[HyperParameter, ...]:
        return tuple(p for p in self.hyperparameters if p.tunable)

    def parameter(self, name: str) -> HyperParameter | None:
        return next((p for p in self.hyperparameters if p.name == name), None)


# -- the specs (spec §6.1) --------------------------------------------------------------------


def _integer(
    name: str, default: int, low: int | None, high: int | None, **kw: Any
) -> HyperParameter:
    return HyperParameter(name, INTEGER, str(default), low, high, **kw)


def _continuous(
    name: str, default: float, low: float | None, high: float | None, **kw: Any
) -> HyperParameter:
    return HyperParameter(name, CONTINUOUS, str(default), low, high, **kw)


def _boolean(name: str, default: bool, **kw: Any) -> HyperParameter:
    return HyperParameter(name, CATEGORICAL, str(default).lower(), values=("true", "false"), **kw)


def _history_percentiles(low: float, high: float) -> tuple[HyperParameter, ...]:
    return (
        _continuous("min_user_history_length_percentile", low, 0.0, 1.0, feature=True),
        _continuous("max_user_history_length_percentile", high, 0.0, 1.0, feature=True),
    )


def _sequence(hidden_dimension: int) -> tuple[HyperParameter, ...]:
    """The parameters of the HRNN family (HRNN, User-Personalization, Personalized-Ranking)."""
    return (
        _integer("hidden_dimension", hidden_dimension, 32, 256, tunable=True),
        _integer("bptt", 32, 2, 32, tunable=True),
        _boolean("recency_mask", True, tunable=True),
        *_history_percentiles(0.0, 0.99),
    )


_RECENCY_BIAS = (_boolean("apply_recency_bias", True),)
_NOT_YET = "its algorithm ({}) is not implemented yet"
_USER_PERSONALIZATION = "USER_PERSONALIZATION"
_RELATED_ITEMS = "RELATED_ITEMS"
_PERSONALIZED_RANKING = "PERSONALIZED_RANKING"
_USER_SEGMENTATION = "USER_SEGMENTATION"

_ALL: tuple[Recipe, ...] = (
    Recipe(
        "aws-user-personalization-v2",
        _USER_PERSONALIZATION,
        "Transformer-based recommendations for each user from their interaction history, "
        "scaling to millions of items.",
        "aws-user-personalization-v2",
        None,
        _RECENCY_BIAS,
        "openpersonalize.recipes.sasrec:SASRecModel",
    ),
    Recipe(
        "aws-user-personalization",
        _USER_PERSONALIZATION,
        "Personalized recommendations for each user from their interaction history, "
        "weighting recent events more and exploring new items.",
        "aws-user-personalization",
        # The docs name no feature transformation for this recipe, but it takes the percentile
        # featurization parameters of the HRNN recipes it succeeds, so it shares theirs.
        "JSON-percentile-filtering",
        _sequence(149),
        "openpersonalize.recipes.als:ALSModel",
    ),
    Recipe(
        "aws-personalized-ranking-v2",
        _PERSONALIZED_RANKING,
        "Transformer-based re-ranking of a given list of items for a user.",
        "aws-personalized-ranking-v2",
        None,
        _RECENCY_BIAS,
        "openpersonalize.recipes.sasrec:SASRecModel",
    ),
    Recipe(
        "aws-personalized-ranking",
        _PERSONALIZED_RANKING,
        "Re-ranks a given list of items for a user by how likely the user is to interact "
        "with each.",
        "aws-personalized-ranking",
        "JSON-percentile-filtering",
        _sequence(149),
        # The same implicit-feedback model as aws-user-personalization, asked to rank a list.
        "openpersonalize.recipes.als:ALSModel",
    ),
    Recipe(
        "aws-popularity-count",
        # The docs file it under POPULAR_ITEMS; DescribeRecipe reports USER_PERSONALIZATION.
        _USER_PERSONALIZATION,
        "The items with the most events across all users, the same list for everyone.",
        "aws-popularity-count",
        "sims",
        (),
        "openpersonalize.recipes.popularity:PopularityModel",
    ),
    Recipe(
        "aws-trending-now",
        # The service documents no recipeType for it; like Popularity-Count it answers
        # GetRecommendations without a user.
        _USER_PERSONALIZATION,
        "The items whose popularity grows fastest, recomputed at the trend discovery frequency.",
        "aws-trending-now-custom",
        None,
        (
            HyperParameter(
                "trend_discovery_frequency",
                CATEGORICAL,
                "2 hours",
                values=("30 minutes", "1 hour", "2 hours", "3 hours", "1 day"),
                feature=True,
            ),
        ),
        "openpersonalize.recipes.trending:TrendingNowModel",
    ),
    Recipe(
        "aws-similar-items",
        _RELATED_ITEMS,
        "Items similar to a given item, from co-occurrence in histories and item metadata.",
        "aws-similar-items",
        None,
        (
            _continuous("popularity_discount_factor", 0.0, 0.0, 1.0),
            _integer("item_id_hidden_dim", 100, 30, 200, tunable=True),
            _integer("item_metadata_hidden_dim", 100, 30, 200, tunable=True),
        ),
        "openpersonalize.recipes.similar_items:SimilarItemsModel",
    ),
    Recipe(
        "aws-sims",
        _RELATED_ITEMS,
        "Items that users who interacted with a given item also interacted with "
        "(item-to-item collaborative filtering).",
        "aws-sims",
        "sims",
        (
            _continuous("popularity_discount_factor", 0.5, 0.0, 1.0, tunable=True),
            _integer("min_cointeraction_count", 3, 0, 10, tunable=True),
            *_history_percentiles(0.005, 0.995),
            _continuous("min_item_interaction_count_percentile", 0.01, 0.0, 1.0, feature=True),
            _continuous("max_item_interaction_count_percentile", 0.9, 0.0, 1.0, feature=True),
        ),
        "openpersonalize.recipes.sims:SimsModel",
    ),
    Recipe(
        "aws-semantic-similarity",
        _RELATED_ITEMS,
        "Items whose name and description are closest to a given item's, by a lexical text "
        "model (TF-IDF + LSA, not a neural text embedding), re-ranked by the campaign's "
        "FRESHNESS and POPULARITY ranking influence.",
        "aws-semantic-similarity",
        "aws-semantic-similarity",
        (),
        "openpersonalize.recipes.semantic_similarity:SemanticSimilarityModel",
    ),
    Recipe(
        "aws-item-affinity",
        _USER_SEGMENTATION,
        "Segments of users most likely to interact with given items (batch segment jobs).",
        "aws-item-affinity",
        "item-affinity",
        # The docs state no HPO tunability; it is the same parameter as in the sequence
        # recipes, where it is tunable.
        (_integer("hidden_dimension", 149, 32, 256, tunable=True),),
        # Users ranked by their calibrated implicit-ALS probability of taking the item next.
        "openpersonalize.recipes.item_affinity:ItemAffinityModel",
    ),
    Recipe(
        "aws-item-attribute-affinity",
        _USER_SEGMENTATION,
        "Segments of users most likely to interact with items that have given attribute "
        "values (batch segment jobs).",
        "aws-item-attribute-affinity",
        "item-attribute-affinity",
        (_integer("hidden_dimension", 149, 32, 256, tunable=True),),
        # Users ranked by their calibrated implicit-ALS probability of taking one of the
        # items with the attributes next.
        "openpersonalize.recipes.item_affinity:ItemAffinityModel",
    ),
    Recipe(
        "aws-next-best-action",
        "PERSONALIZED_ACTIONS",
        "The actions each user is most likely to take next.",
        "aws-next-best-action",
        None,
        (_integer("action_optimization_period", 14, 7, 28, feature=True),),
        # A logistic propensity model over users' item-history factors and action features.
        "openpersonalize.recipes.next_best_action:NextBestActionModel",
    ),
    Recipe(
        "aws-hrnn",
        _USER_PERSONALIZATION,
        "Legacy: hierarchical recurrent network over each user's interaction history.",
        "aws-hrnn",
        "JSON-percentile-filtering",
        _sequence(43),
        "openpersonalize.recipes.hrnn:HRNNModel",
    ),
    Recipe(
        "aws-hrnn-metadata",
        _USER_PERSONALIZATION,
        "Legacy: hierarchical recurrent network with user and item metadata features.",
        "aws-hrnn-metadata",
        "featurize_metadata",
        _sequence(43),
        "openpersonalize.recipes.hrnn:HRNNMetadataModel",
    ),
    Recipe(
        "aws-hrnn-coldstart",
        _USER_PERSONALIZATION,
        "Legacy: hierarchical recurrent network that also recommends new (cold) items.",
        "aws-hrnn-coldstart",
        "featurize_coldstart",
        (
            *_sequence(149)[:3],
            _integer("cold_start_max_interactions", 15, 1, None, feature=True),
            _continuous("cold_start_max_duration", 5.0, 0.0, None, feature=True),
            HyperParameter(
                "cold_start_relative_from",
                CATEGORICAL,
                "latestItem",
                values=("currentTime", "latestItem"),
                feature=True,
            ),
            *_history_percentiles(0.0, 0.99),
        ),
        "openpersonalize.recipes.hrnn:HRNNColdstartModel",
    ),
)


def _use_case(
    name: str,
    description: str,
    model_recipe: str,
    use_case: UseCase,
    model: str | None = None,
) -> Recipe:
    """A domain use case on the model of one of the recipes above (or its own `model`)."""
    base = next(recipe for recipe in _ALL if recipe.name == model_recipe)
    recipe_type = _RELATED_ITEMS if use_case.style == RELATED else _USER_PERSONALIZATION
    return Recipe(
        name,
        recipe_type,
        description,
        base.algorithm,
        None,
        (),
        model or base.model,
        use_case=use_case,
    )


_ECOMMERCE, _VOD = "ECOMMERCE", "VIDEO_ON_DEMAND"
# aws-sims for "also watched / also viewed": no user or item is left out of the counts (the
# recipe's defaults drop the top 10 % of items, which are what viewers go on to watch), which
# doubles the next-item hit rate on ml-latest-small (benchmarks/use_cases.py).
_CO_VIEWS: Mapping[str, Any] = {
    "min_user_history_length_percentile": 0.0,
    "max_user_history_length_percentile": 1.0,
    "max_item_interaction_count_percentile": 1.0,
}
# The ten use cases; the guide's table of what each returns, needs and leaves out (spec §2.3).
_USE_CASES: tuple[Recipe, ...] = (
    _use_case(
        "aws-vod-top-picks",
        "Top picks for you: personalized videos for a user, updated with their latest events.",
        "aws-user-personalization-v2",
        UseCase(_VOD, PERSONALIZED, None, excluded_event_type="Watch"),
    ),
    _use_case(
        "aws-vod-because-you-watched-x",
        "Because you watched X: videos that other users who watched a given video also watched.",
        "aws-sims",
        UseCase(_VOD, RELATED, "Watch", excluded_event_type="Watch", hyperparameters=_CO_VIEWS),
    ),
    _use_case(
        "aws-vod-more-like-x",
        "More like X: videos similar to a given video, from who watched what and the videos' "
        "metadata.",
        "aws-similar-items",
        UseCase(_VOD, RELATED, None, excluded_event_type="Watch", needs_items=True),
    ),
    _use_case(
        "aws-vod-most-popular",
        "Most popular: the videos watched most.",
        "aws-popularity-count",
        UseCase(_VOD, POPULAR, "Watch"),
    ),
    _use_case(
        "aws-vod-trending-now",
        "Trending now: the videos whose popularity grows fastest, found again every 2 hours.",
        "aws-trending-now",
        UseCase(_VOD, TRENDING, None, user_required=False),
    ),
    _use_case(
        "aws-ecomm-recommended-for-you",
        "Recommended for you: personalized items for a user, updated with their latest events.",
        "aws-user-personalization-v2",
        UseCase(_ECOMMERCE, PERSONALIZED, None, excluded_event_type="Purchase"),
    ),
    _use_case(
        "aws-ecomm-customers-who-viewed-x-also-viewed",
        "Customers who viewed X also viewed: items that viewers of a given item also viewed.",
        "aws-sims",
        UseCase(
            _ECOMMERCE, RELATED, "View", excluded_event_type="Purchase", hyperparameters=_CO_VIEWS
        ),
    ),
    _use_case(
        "aws-ecomm-frequently-bought-together",
        "Frequently bought together: items bought in the same basket as a given item.",
        "aws-sims",
        UseCase(_ECOMMERCE, RELATED, "Purchase", user_required=False),
        model="openpersonalize.recipes.baskets:BasketModel",
    ),
    _use_case(
        "aws-ecomm-popular-items-by-views",
        "Most viewed: the items viewed most.",
        "aws-popularity-count",
        UseCase(_ECOMMERCE, POPULAR, "View"),
    ),
    _use_case(
        "aws-ecomm-popular-items-by-purchases",
        "Best sellers: the items bought most.",
        "aws-popularity-count",
        UseCase(_ECOMMERCE, POPULAR, "Purchase"),
    ),
)

#: Every predefined recipe by name, in the order ListRecipes shows them.
RECIPES: Mapping[str, Recipe] = {recipe.name: recipe for recipe in (*_ALL, *_USE_CASES)}
_BY_ARN = {recipe.arn: recipe for recipe in RECIPES.values()}
# Use cases run the algorithms of the custom recipes; those describe them.
_BY_ALGORITHM = {recipe.algorithm_arn: recipe for recipe in _ALL}


def _feature_transformation_owners() -> dict[str, Recipe]:
    # Several recipes share a transformation (sims: aws-sims and aws-popularity-count); its
    # default parameters are those of the recipe that has the most of them.
    owners: dict[str, Recipe] = {}
    for recipe in _ALL:
        arn = recipe.feature_transformation_arn
        if arn is None:
            continue
        current = owners.get(arn)
        if current is None or len(recipe.feature_parameters) > len(current.feature_parameters):
            owners[arn] = recipe
    return owners


_BY_FEATURE_TRANSFORMATION = _feature_transformation_owners()


# -- lookups ----------------------------------------------------------------------------------


def get_recipe(arn: str) -> Recipe:
    try:
        return _BY_ARN[arn]
    except KeyError:
        raise ResourceNotFoundException(f"Recipe {arn} does not exist.") from None


def solution_recipe(arn: str) -> Recipe:
    """The recipe a solution may use: any but a domain use case, which only recommenders use."""
    recipe = get_recipe(arn)
    if recipe.use_case is not None:
        raise InvalidInputException(
            f"The recipe {arn} is a {recipe.use_case.domain} use case: create a recommender "
            "with it (CreateRecommender) in a Domain dataset group, not a solution."
        )
    return recipe


def recipe_by_algorithm(arn: str) -> Recipe:
    try:
        return _BY_ALGORITHM[arn]
    except KeyError:
        raise ResourceNotFoundException(f"Algorithm {arn} does not exist.") from None


def recipe_by_feature_transformation(arn: str) -> Recipe:
    try:
        return _BY_FEATURE_TRANSFORMATION[arn]
    except KeyError:
        raise ResourceNotFoundException(f"Feature transformation {arn} does not exist.") from None


def model_class(recipe: Recipe) -> type[Model]:
    """The Model subclass that trains `recipe`; InvalidInputException when there is none yet."""
    if recipe.model is None:
        raise InvalidInputException(f"recipe {recipe.name} cannot be trained yet: {recipe.missing}")
    module_name, _, class_name = recipe.model.partition(":")
    cls: type[Model] = getattr(importlib.import_module(module_name), class_name)
    return cls


# -- validation -------------------------------------------------------------------------------


def check_hyperparameters(
    recipe: Recipe,
    algorithm: Mapping[str, str] | None,
    feature: Mapping[str, str] | None,
    hpo_ranges: Mapping[str, Any] | None = None,
    perform_hpo: bool = False,
) -> None:
    """Refuse, with InvalidInputException naming the parameter, what the recipe does not allow.

    `algorithm` / `feature` are solutionConfig.algorithmHyperParameters /
    featureTransformationParameters; `hpo_ranges` is hpoConfig.algorithmHyperParameterRanges.
    """
    _check_fixed(recipe, algorithm or {}, feature=False)
    _check_fixed(recipe, feature or {}, feature=True)
    if perform_hpo and not recipe.tunable_parameters:
        raise InvalidInputException(
            f"performHPO: recipe {recipe.name} has no tunable hyperparameters."
        )
    if hpo_ranges:
        _check_ranges(recipe, hpo_ranges, set(algorithm or {}))


def _check_fixed(recipe: Recipe, given: Mapping[str, str], *, feature: bool) -> None:
    where = "featureTransformationParameters" if feature else "algorithmHyperParameters"
    other = "algorithmHyperParameters" if feature else "featureTransformationParameters"
    allowed = recipe.feature_parameters if feature else recipe.algorithm_parameters
    for name, value in given.items():
        spec = recipe.parameter(name)
        if spec is None or spec.feature != feature:
            hint = f" ({name} belongs in {other})" if spec is not None else ""
            raise InvalidInputException(
                f"{where}: unknown parameter {name!r} for recipe {recipe.name}{hint}; "
                f"it takes {_names(allowed)}."
            )
        spec.parse(value, where)


def _check_ranges(recipe: Recipe, ranges: Mapping[str, Any], fixed: set[str]) -> None:
    where = "hpoConfig.algorithmHyperParameterRanges"
    unknown = set(ranges) - set(_RANGE_LISTS.values())
    if unknown:
        raise InvalidInputException(f"{where}: unknown member {sorted(unknown)[0]!r}.")
    seen: set[str] = set()
    for kind, member in _RANGE_LISTS.items():
        entries = ranges.get(member) or []
        if not isinstance(entries, list):
            raise InvalidInputException(f"{where}.{member} must be a list.")
        for entry in entries:
            name = entry.get("name") if isinstance(entry, Mapping) else None
            if not isinstance(name, str):
                raise InvalidInputException(f"{where}.{member}: every range needs a name.")
            spec = recipe.parameter(name)
            if spec is None or spec.feature or not spec.tunable:
                raise InvalidInputException(
                    f"{where}.{member}: {name!r} is not a tunable hyperparameter of recipe "
                    f"{recipe.name}; tunable: {_names(recipe.tunable_parameters)}."
                )
            if spec.kind != kind:
                raise InvalidInputException(
                    f"{where}.{member}: {name} is {_article(spec.kind)} {spec.kind} "
                    f"hyperparameter; give its range in {where}.{_RANGE_LISTS[spec.kind]}."
                )
            if name in fixed:
                raise InvalidInputException(
                    f"{name} is both fixed in algorithmHyperParameters and searched in {where}; "
                    "give it in only one of them."
                )
            if name in seen:
                raise InvalidInputException(f"{where}: {name} has more than one range.")
            seen.add(name)
            if kind == CATEGORICAL:
                _check_categorical_range(spec, entry, f"{where}.{member}")
            else:
                _check_numeric_range(spec, entry, f"{where}.{member}")


def _check_categorical_range(spec: HyperParameter, entry: Mapping[str, Any], where: str) -> None:
    values = entry.get("values")
    if not isinstance(values, list) or not values:
        raise InvalidInputException(f"{where}: {spec.name} needs a non-empty list of values.")
    for value in values:
        spec.parse(value, where)


def _check_numeric_range(spec: HyperParameter, entry: Mapping[str, Any], where: str) -> None:
    bounds: list[float] = []
    for member in ("minValue", "maxValue"):
        value = entry.get(member)
        integral = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or (spec.kind == INTEGER and not integral)
        ):
            raise InvalidInputException(
                f"{where}: {spec.name} needs {_article(spec.kind)} {spec.kind} {member}, "
                f"got {value!r}."
            )
        bounds.append(value)
    low, high = bounds
    if low > high:
        raise InvalidInputException(
            f"{where}: {spec.name} has minValue {_show(low)} greater than maxValue {_show(high)}."
        )
    spec.check_range(low, where)
    spec.check_range(high, where)


def resolve_hyperparameters(
    recipe: Recipe, algorithm: Mapping[str, str] | None, feature: Mapping[str, str] | None
) -> dict[str, int | float | bool | str]:
    """The recipe's defaults overlaid with the given values, as Python values, keyed by name.

    The names equal the constructor arguments of the recipe's model. Validates first. A use
    case has its own fixed settings.
    """
    if recipe.use_case is not None:
        return dict(recipe.use_case.hyperparameters)
    check_hyperparameters(recipe, algorithm, feature)
    given = {**(algorithm or {}), **(feature or {})}
    return {
        spec.name: spec.parse(given.get(spec.name, spec.default), "hyperparameters")
        for spec in recipe.hyperparameters
    }


def convert(recipe: Recipe, name: str, value: str) -> int | float | bool | str:
    """One hyperparameter's string value as its Python value (e.g. an HPO trial's choice)."""
    spec = recipe.parameter(name)
    if spec is None:
        raise InvalidInputException(
            f"unknown parameter {name!r} for recipe {recipe.name}; "
            f"it takes {_names(recipe.hyperparameters)}."
        )
    return spec.parse(value, "hyperparameters")


def search_space(
    recipe: Recipe, ranges: Mapping[str, Any] | None, fixed: Collection[str] = ()
) -> dict[str, tuple[str, Any, Any]]:
    """What HPO searches, by name: every tunable hyperparameter not in `fixed`.

    Each is searched over its range in `ranges` (hpoConfig.algorithmHyperParameterRanges,
    already checked by `check_hyperparameters`), else over its default HPO range. Values are
    ``(kind, low, high)`` for integer and continuous parameters and
    ``("categorical", values, None)`` with the allowed spellings of the values.
    """
    given: dict[str, Mapping[str, Any]] = {}
    for member in _RANGE_LISTS.values():
        for entry in (ranges or {}).get(member) or []:
            given[entry["name"]] = entry
    space: dict[str, tuple[str, Any, Any]] = {}
    for spec in recipe.tunable_parameters:
        if spec.name in fixed:
            continue
        entry = given.get(spec.name)
        if spec.kind == CATEGORICAL:
            values = spec.values if entry is None else entry["values"]
            space[spec.name] = (CATEGORICAL, tuple(spec.canonical(v) for v in values), None)
        elif entry is None:
            space[spec.name] = (spec.kind, *spec.hpo_range)
        else:
            space[spec.name] = (spec.kind, entry["minValue"], entry["maxValue"])
    return space


# -- API shapes (members exactly as the botocore output shapes name them) -----------------------


def describe_recipe(recipe: Recipe, created: float) -> dict[str, Any]:
    """The Recipe shape of DescribeRecipe."""
    out: dict[str, Any] = {
        "name": recipe.name,
        "recipeArn": recipe.arn,
        "algorithmArn": recipe.algorithm_arn,
        "status": _STATUS,
        "description": recipe.description,
        "creationDateTime": created,
        "recipeType": recipe.recipe_type,
        "lastUpdatedDateTime": created,
    }
    if recipe.feature_transformation_arn is not None:
        out["featureTransformationArn"] = recipe.feature_transformation_arn
    return out


def recipe_summary(recipe: Recipe, created: float) -> dict[str, Any]:
    """The RecipeSummary shape of ListRecipes."""
    summary = {
        "name": recipe.name,
        "recipeArn": recipe.arn,
        "status": _STATUS,
        "creationDateTime": created,
        "lastUpdatedDateTime": created,
    }
    if recipe.domain is not None:  # only use cases have one
        summary["domain"] = recipe.domain
    return summary


def describe_algorithm(recipe: Recipe, created: float) -> dict[str, Any]:
    """The Algorithm shape of DescribeAlgorithm: the recipe's algorithmHyperParameters."""
    ranges: dict[str, list[dict[str, Any]]] = {member: [] for member in _RANGE_LISTS.values()}
    for spec in recipe.algorithm_parameters:
        entry: dict[str, Any] = {"name": spec.name}
        if spec.kind == CATEGORICAL:
            entry["values"] = list(spec.values)
        else:
            convert = int if spec.kind == INTEGER else float
            low, high = spec.hpo_range
            if low is not None:
                entry["minValue"] = convert(low)
            if high is not None:
                entry["maxValue"] = convert(high)
        entry["isTunable"] = spec.tunable
        ranges[_RANGE_LISTS[spec.kind]].append(entry)
    return {
        "name": recipe.algorithm,
        "algorithmArn": recipe.algorithm_arn,
        "algorithmImage": {
            "name": recipe.algorithm,
            "dockerURI": f"openpersonalize/{recipe.algorithm}",
        },
        "defaultHyperParameters": {p.name: p.default for p in recipe.algorithm_parameters},
        "defaultHyperParameterRanges": ranges,
        "defaultResourceConfig": dict(HPO_RESOURCE_DEFAULTS) if recipe.tunable_parameters else {},
        "trainingInputMode": "File",
        "creationDateTime": created,
        "lastUpdatedDateTime": created,
    }


def describe_feature_transformation(recipe: Recipe, created: float) -> dict[str, Any]:
    """The FeatureTransformation shape: the recipe's featurization parameter defaults."""
    if recipe.feature_transformation is None:
        raise ResourceNotFoundException(f"Recipe {recipe.name} has no feature transformation.")
    return {
        "name": recipe.feature_transformation,
        "featureTransformationArn": recipe.feature_transformation_arn,
        "defaultParameters": {p.name: p.default for p in recipe.feature_parameters},
        "creationDateTime": created,
        "lastUpdatedDateTime": created,
        "status": _STATUS,
    }


def _names(specs: tuple[HyperParameter, ...]) -> str:
    return ", ".join(sorted(p.name for p in specs)) or "none"


def _article(kind: str) -> str:
    return "an" if kind[0] in "aeiou" else "a"


def _show(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else repr(float(number))
