"""The recipe catalog: lookups, hyperparameter validation and typing, API shapes."""

from __future__ import annotations

import json
import re
from typing import Any

import botocore.session
import pytest
from botocore.model import Shape
from botocore.parsers import JSONParser
from botocore.validate import ParamValidator

from openpersonalize.errors import InvalidInputException, ResourceNotFoundException
from openpersonalize.recipes import catalog
from openpersonalize.recipes.als import ALSModel
from openpersonalize.recipes.catalog import (
    RECIPES,
    check_hyperparameters,
    get_recipe,
    model_class,
    recipe_by_algorithm,
    recipe_by_feature_transformation,
    resolve_hyperparameters,
)
from openpersonalize.recipes.popularity import PopularityModel

UP = RECIPES["aws-user-personalization"]
SIMS = RECIPES["aws-sims"]
# The recipes of spec §6, legacy ones included.
SPEC_RECIPES = {
    "aws-user-personalization-v2": "USER_PERSONALIZATION",
    "aws-user-personalization": "USER_PERSONALIZATION",
    "aws-personalized-ranking-v2": "PERSONALIZED_RANKING",
    "aws-personalized-ranking": "PERSONALIZED_RANKING",
    "aws-popularity-count": "USER_PERSONALIZATION",
    "aws-trending-now": "USER_PERSONALIZATION",
    "aws-similar-items": "RELATED_ITEMS",
    "aws-sims": "RELATED_ITEMS",
    "aws-semantic-similarity": "RELATED_ITEMS",
    "aws-item-affinity": "USER_SEGMENTATION",
    "aws-item-attribute-affinity": "USER_SEGMENTATION",
    "aws-next-best-action": "PERSONALIZED_ACTIONS",
    "aws-hrnn": "USER_PERSONALIZATION",
    "aws-hrnn-metadata": "USER_PERSONALIZATION",
    "aws-hrnn-coldstart": "USER_PERSONALIZATION",
}


def ranges(
    integer: list[dict[str, Any]] | None = None,
    continuous: list[dict[str, Any]] | None = None,
    categorical: list[dict[str, Any]] | None = None,
) -> dict[str, list[dict[str, Any]]]:
    return {
        "integerHyperParameterRanges": integer or [],
        "continuousHyperParameterRanges": continuous or [],
        "categoricalHyperParameterRanges": categorical or [],
    }


def refused(*args: Any, **kwargs: Any) -> str:
    with pytest.raises(InvalidInputException) as caught:
        check_hyperparameters(*args, **kwargs)
    return caught.value.message


# -- lookups --------------------------------------------------------------------------------------


def test_every_spec_recipe_is_listed_with_its_type() -> None:
    custom = {name: r.recipe_type for name, r in RECIPES.items() if r.use_case is None}
    assert custom == SPEC_RECIPES


def test_the_ten_use_cases_run_on_real_models() -> None:
    use_cases = {name: r for name, r in RECIPES.items() if r.use_case is not None}
    assert {name: r.domain for name, r in use_cases.items()} == {
        **dict.fromkeys(
            (
                "aws-vod-top-picks",
                "aws-vod-because-you-watched-x",
                "aws-vod-more-like-x",
                "aws-vod-most-popular",
                "aws-vod-trending-now",
            ),
            "VIDEO_ON_DEMAND",
        ),
        **dict.fromkeys(
            (
                "aws-ecomm-recommended-for-you",
                "aws-ecomm-customers-who-viewed-x-also-viewed",
                "aws-ecomm-frequently-bought-together",
                "aws-ecomm-popular-items-by-views",
                "aws-ecomm-popular-items-by-purchases",
            ),
            "ECOMMERCE",
        ),
    }
    for recipe in use_cases.values():
        assert model_class(recipe) is not None  # every one trains
        # Use cases describe the algorithm they run with the custom recipe that owns it.
        assert recipe_by_algorithm(recipe.algorithm_arn).use_case is None
    assert [r.name for r in use_cases.values() if r.explores] == [
        "aws-vod-top-picks",
        "aws-ecomm-recommended-for-you",
    ]
    with pytest.raises(InvalidInputException, match="CreateRecommender"):
        catalog.solution_recipe(RECIPES["aws-vod-top-picks"].arn)


def test_arns_follow_the_service_form() -> None:
    assert UP.arn == "arn:aws:personalize:::recipe/aws-user-personalization"
    assert UP.algorithm_arn == "arn:aws:personalize:::algorithm/aws-user-personalization"
    assert SIMS.feature_transformation_arn == "arn:aws:personalize:::feature-transformation/sims"
    assert RECIPES["aws-user-personalization-v2"].feature_transformation_arn is None
    trending = RECIPES["aws-trending-now"]
    assert trending.algorithm_arn == "arn:aws:personalize:::algorithm/aws-trending-now-custom"


def test_lookups_by_arn() -> None:
    for recipe in RECIPES.values():
        assert get_recipe(recipe.arn) is recipe
        if recipe.use_case is not None:
            continue
        assert recipe_by_algorithm(recipe.algorithm_arn) is recipe
        if recipe.feature_transformation_arn:
            owner = recipe_by_feature_transformation(recipe.feature_transformation_arn)
            assert owner.feature_transformation == recipe.feature_transformation
    # sims is shared by aws-sims and aws-popularity-count; aws-sims defines its parameters.
    assert recipe_by_feature_transformation(SIMS.feature_transformation_arn or "") is SIMS


@pytest.mark.parametrize(
    "lookup, arn",
    [
        (get_recipe, "arn:aws:personalize:::recipe/aws-nope"),
        (get_recipe, "arn:aws:personalize:us-east-1:000000000000:solution/aws-sims"),
        (recipe_by_algorithm, "arn:aws:personalize:::algorithm/aws-nope"),
        (recipe_by_feature_transformation, "arn:aws:personalize:::feature-transformation/nope"),
    ],
)
def test_unknown_arns_are_not_found(lookup: Any, arn: str) -> None:
    with pytest.raises(ResourceNotFoundException) as caught:
        lookup(arn)
    assert arn in caught.value.message


def test_model_classes() -> None:
    assert model_class(UP) is ALSModel
    assert model_class(RECIPES["aws-popularity-count"]) is PopularityModel
    trainable = {name for name, r in RECIPES.items() if r.model and not r.use_case}
    assert trainable == {
        "aws-user-personalization",
        "aws-popularity-count",
        "aws-personalized-ranking",
        "aws-sims",
        "aws-similar-items",
        "aws-semantic-similarity",
        "aws-trending-now",
        "aws-user-personalization-v2",
        "aws-personalized-ranking-v2",
        "aws-hrnn",
        "aws-hrnn-metadata",
        "aws-hrnn-coldstart",
        "aws-item-affinity",
        "aws-item-attribute-affinity",
        "aws-next-best-action",
    }
    for recipe in RECIPES.values():
        if recipe.model is None:
            assert recipe.missing
            with pytest.raises(InvalidInputException) as caught:
                model_class(recipe)
            message = caught.value.message
            assert message == f"recipe {recipe.name} cannot be trained yet: {recipe.missing}"


def test_models_take_their_recipes_hyperparameters_as_constructor_arguments() -> None:
    for recipe in RECIPES.values():
        if recipe.model is None:
            continue
        cls = model_class(recipe)
        assert {p.name for p in recipe.hyperparameters} <= set(cls.param_names())
        model = cls(**resolve_hyperparameters(recipe, None, None))
        for spec in recipe.hyperparameters:
            assert str(getattr(model, spec.name)).lower() == spec.default.lower()


def test_every_spec_is_consistent() -> None:
    for recipe in RECIPES.values():
        names = [p.name for p in recipe.hyperparameters]
        assert len(names) == len(set(names)), recipe.name
        for spec in recipe.hyperparameters:
            assert spec.kind in ("integer", "continuous", "categorical")
            spec.parse(spec.default, "default")  # the default is itself allowed
            assert not (spec.tunable and spec.feature), "featurization parameters are not tuned"
            low, high = spec.hpo_range
            if spec.tunable and spec.kind != "categorical":
                assert low is not None and high is not None and low <= high


# -- validation of fixed values -----------------------------------------------------------------


def test_valid_values_are_accepted() -> None:
    check_hyperparameters(UP, None, None)
    check_hyperparameters(UP, {}, {})
    check_hyperparameters(
        UP,
        {"hidden_dimension": "32", "bptt": " 2 ", "recency_mask": "False"},
        {"min_user_history_length_percentile": "0", "max_user_history_length_percentile": "1.0"},
    )
    check_hyperparameters(SIMS, {"popularity_discount_factor": "0.25"}, None)
    trending = RECIPES["aws-trending-now"]
    check_hyperparameters(trending, None, {"trend_discovery_frequency": "30 minutes"})


def test_unknown_name_is_refused_with_the_recipes_names() -> None:
    message = refused(UP, {"hidden_dim": "64"}, None)
    assert "hidden_dim" in message
    assert "bptt, hidden_dimension, recency_mask" in message
    message = refused(UP, None, {"bptt": "4"})
    assert "bptt" in message and "belongs in algorithmHyperParameters" in message
    message = refused(UP, {"max_user_history_length_percentile": "0.5"}, None)
    assert "max_user_history_length_percentile" in message
    assert "featureTransformationParameters" in message
    message = refused(RECIPES["aws-popularity-count"], {"anything": "1"}, None)
    assert "anything" in message and "none" in message


@pytest.mark.parametrize(
    "algorithm, feature, phrase",
    [
        ({"hidden_dimension": "64.5"}, None, "is not an integer"),
        ({"hidden_dimension": "many"}, None, "is not an integer"),
        ({"hidden_dimension": ""}, None, "is not an integer"),
        ({"hidden_dimension": "31"}, None, "outside the allowed range [32, 256]"),
        ({"hidden_dimension": "257"}, None, "outside the allowed range [32, 256]"),
        ({"bptt": "1"}, None, "outside the allowed range [2, 32]"),
        ({"recency_mask": "yes"}, None, "is not one of: true, false"),
        (None, {"max_user_history_length_percentile": "high"}, "is not a continuous"),
        (None, {"min_user_history_length_percentile": "1.5"}, "outside the allowed range [0, 1]"),
        (None, {"min_user_history_length_percentile": "nan"}, "not a finite number"),
        (None, {"max_user_history_length_percentile": "inf"}, "not a finite number"),
    ],
)
def test_bad_values_are_refused_naming_the_parameter(
    algorithm: dict[str, str] | None, feature: dict[str, str] | None, phrase: str
) -> None:
    message = refused(UP, algorithm, feature)
    (name,) = (algorithm or feature or {}).keys()
    assert name in message and phrase in message


def test_categorical_values_outside_the_list_are_refused() -> None:
    trending = RECIPES["aws-trending-now"]
    message = refused(trending, None, {"trend_discovery_frequency": "2 days"})
    assert "trend_discovery_frequency" in message and "1 day" in message


def test_unbounded_parameters_accept_large_values() -> None:
    coldstart = RECIPES["aws-hrnn-coldstart"]
    check_hyperparameters(coldstart, None, {"cold_start_max_interactions": "100000"})
    message = refused(coldstart, None, {"cold_start_max_interactions": "0"})
    assert "cold_start_max_interactions" in message and "[1, inf]" in message


# -- validation of HPO ranges -------------------------------------------------------------------


def test_valid_hpo_ranges_are_accepted() -> None:
    check_hyperparameters(
        UP,
        None,
        None,
        ranges(
            integer=[
                {"name": "hidden_dimension", "minValue": 32, "maxValue": 256},
                {"name": "bptt", "minValue": 8, "maxValue": 8},
            ],
            categorical=[{"name": "recency_mask", "values": ["true", "false"]}],
        ),
        perform_hpo=True,
    )
    check_hyperparameters(
        SIMS,
        {"min_cointeraction_count": "4"},
        None,
        ranges(continuous=[{"name": "popularity_discount_factor", "minValue": 0, "maxValue": 0.7}]),
        perform_hpo=True,
    )
    check_hyperparameters(UP, None, None, ranges(), perform_hpo=True)  # all lists may be empty


@pytest.mark.parametrize(
    "hpo, name, phrase",
    [
        (ranges(integer=[{"name": "nope", "minValue": 1, "maxValue": 2}]), "nope", "tunable"),
        (
            ranges(
                continuous=[
                    {"name": "max_user_history_length_percentile", "minValue": 0.1, "maxValue": 0.9}
                ]
            ),
            "max_user_history_length_percentile",
            "not a tunable hyperparameter",
        ),
        (
            ranges(continuous=[{"name": "bptt", "minValue": 2, "maxValue": 8}]),
            "bptt",
            "integerHyperParameterRanges",
        ),
        (
            ranges(integer=[{"name": "recency_mask", "minValue": 0, "maxValue": 1}]),
            "recency_mask",
            "categoricalHyperParameterRanges",
        ),
        (
            ranges(integer=[{"name": "bptt", "minValue": 16, "maxValue": 4}]),
            "bptt",
            "minValue 16 greater than maxValue 4",
        ),
        (
            ranges(integer=[{"name": "hidden_dimension", "minValue": 16, "maxValue": 64}]),
            "hidden_dimension",
            "outside the allowed range [32, 256]",
        ),
        (
            ranges(integer=[{"name": "hidden_dimension", "minValue": 64, "maxValue": 512}]),
            "hidden_dimension",
            "outside the allowed range",
        ),
        (
            ranges(integer=[{"name": "bptt", "minValue": 2.5, "maxValue": 8}]),
            "bptt",
            "needs an integer minValue",
        ),
        (
            ranges(integer=[{"name": "bptt", "maxValue": 8}]),
            "bptt",
            "needs an integer minValue",
        ),
        (
            ranges(categorical=[{"name": "recency_mask", "values": ["maybe"]}]),
            "recency_mask",
            "is not one of",
        ),
        (
            ranges(categorical=[{"name": "recency_mask", "values": []}]),
            "recency_mask",
            "non-empty list",
        ),
        (
            ranges(
                integer=[
                    {"name": "bptt", "minValue": 2, "maxValue": 4},
                    {"name": "bptt", "minValue": 8, "maxValue": 16},
                ]
            ),
            "bptt",
            "more than one range",
        ),
    ],
)
def test_bad_hpo_ranges_are_refused_naming_the_parameter(
    hpo: dict[str, Any], name: str, phrase: str
) -> None:
    message = refused(UP, None, None, hpo, perform_hpo=True)
    assert name in message and phrase in message


def test_non_tunable_parameters_cannot_be_ranged() -> None:
    similar = RECIPES["aws-similar-items"]
    hpo = ranges(continuous=[{"name": "popularity_discount_factor", "minValue": 0, "maxValue": 1}])
    message = refused(similar, None, None, hpo, perform_hpo=True)
    assert "popularity_discount_factor" in message
    assert "item_id_hidden_dim, item_metadata_hidden_dim" in message


def test_a_parameter_cannot_be_both_fixed_and_ranged() -> None:
    hpo = ranges(integer=[{"name": "bptt", "minValue": 2, "maxValue": 8}])
    message = refused(UP, {"bptt": "4"}, None, hpo, perform_hpo=True)
    assert "bptt" in message and "both fixed" in message


def test_hpo_needs_a_tunable_parameter() -> None:
    popularity = RECIPES["aws-popularity-count"]
    message = refused(popularity, None, None, None, perform_hpo=True)
    assert "aws-popularity-count" in message
    check_hyperparameters(popularity, None, None, None, perform_hpo=False)


# -- resolution -----------------------------------------------------------------------------------


def test_resolve_types_defaults_and_overrides() -> None:
    defaults = resolve_hyperparameters(UP, None, None)
    assert defaults == {
        "hidden_dimension": 149,
        "bptt": 32,
        "recency_mask": True,
        "min_user_history_length_percentile": 0.0,
        "max_user_history_length_percentile": 0.99,
    }
    assert type(defaults["hidden_dimension"]) is int
    assert type(defaults["recency_mask"]) is bool
    assert type(defaults["max_user_history_length_percentile"]) is float
    given = resolve_hyperparameters(
        UP, {"bptt": "8", "recency_mask": "FALSE"}, {"min_user_history_length_percentile": "0.1"}
    )
    assert given["bptt"] == 8 and given["recency_mask"] is False
    assert given["min_user_history_length_percentile"] == 0.1
    assert given["hidden_dimension"] == 149
    trending = resolve_hyperparameters(RECIPES["aws-trending-now"], None, None)
    assert trending == {"trend_discovery_frequency": "2 hours"}
    assert resolve_hyperparameters(RECIPES["aws-popularity-count"], None, None) == {}


def test_resolve_validates() -> None:
    with pytest.raises(InvalidInputException, match="bptt"):
        resolve_hyperparameters(UP, {"bptt": "100"}, None)


def test_search_space_uses_given_ranges_else_defaults_and_skips_fixed() -> None:
    hpo = ranges(
        integer=[{"name": "hidden_dimension", "minValue": 32, "maxValue": 48}],
        categorical=[{"name": "recency_mask", "values": ["TRUE"]}],
    )
    space = catalog.search_space(UP, hpo, fixed={"bptt"})
    assert space == {
        "hidden_dimension": ("integer", 32, 48),
        "recency_mask": ("categorical", ("true",), None),
    }
    assert catalog.search_space(UP, None) == {
        "hidden_dimension": ("integer", 32, 256),
        "bptt": ("integer", 2, 32),
        "recency_mask": ("categorical", ("true", "false"), None),
    }
    assert catalog.search_space(SIMS, None, fixed={"min_cointeraction_count"}) == {
        "popularity_discount_factor": ("continuous", 0.0, 1.0)
    }
    assert catalog.search_space(RECIPES["aws-popularity-count"], None) == {}


def test_convert_types_one_value() -> None:
    assert catalog.convert(UP, "recency_mask", "false") is False
    assert catalog.convert(UP, "bptt", "16") == 16
    with pytest.raises(InvalidInputException, match="nope"):
        catalog.convert(UP, "nope", "1")
    with pytest.raises(InvalidInputException, match="bptt"):
        catalog.convert(UP, "bptt", "64")


# -- API shapes against botocore's model --------------------------------------------------------

MODEL = botocore.session.get_session().get_service_model("personalize")
CREATED = 1_700_000_000.25


def conforms(operation: str, body: dict[str, Any]) -> dict[str, Any]:
    """Validate `body` against the operation's output shape; return what boto3 would parse."""
    shape = MODEL.operation_model(operation).output_shape
    report = ParamValidator().validate(body, shape)
    assert not report.has_errors(), report.generate_report()
    check_constraints(shape, body, operation)
    parsed = JSONParser().parse(
        {"body": json.dumps(body).encode(), "headers": {}, "status_code": 200}, shape
    )
    parsed.pop("ResponseMetadata", None)
    return parsed


def check_constraints(shape: Shape, value: Any, path: str) -> None:
    """What ParamValidator leaves out: max lengths and patterns of strings."""
    if shape.type_name == "structure":
        for name, item in value.items():
            check_constraints(shape.members[name], item, f"{path}.{name}")
    elif shape.type_name == "list":
        assert len(value) <= shape.metadata.get("max", len(value)), path
        for item in value:
            check_constraints(shape.member, item, path)
    elif shape.type_name == "map":
        assert len(value) <= shape.metadata.get("max", len(value)), path
        for key, item in value.items():
            check_constraints(shape.key, key, path)
            check_constraints(shape.value, item, f"{path}[{key}]")
    elif shape.type_name == "string":
        assert len(value) <= shape.metadata.get("max", len(value)), path
        if "pattern" in shape.metadata:
            assert re.match(shape.metadata["pattern"], value), f"{path}={value!r}"
        if "enum" in shape.metadata:
            assert value in shape.metadata["enum"], path


@pytest.mark.parametrize("recipe", list(RECIPES.values()), ids=lambda r: r.name)
def test_describe_shapes_conform_to_botocore(recipe: catalog.Recipe) -> None:
    described = catalog.describe_recipe(recipe, CREATED)
    parsed = conforms("DescribeRecipe", {"recipe": described})["recipe"]
    assert parsed["recipeArn"] == recipe.arn and parsed["status"] == "ACTIVE"
    assert parsed["creationDateTime"].timestamp() == CREATED
    assert ("featureTransformationArn" in parsed) == (recipe.feature_transformation is not None)

    summary = catalog.recipe_summary(recipe, CREATED)
    parsed_list = conforms("ListRecipes", {"recipes": [summary]})["recipes"]
    assert parsed_list[0]["name"] == recipe.name

    algorithm = catalog.describe_algorithm(recipe, CREATED)
    parsed = conforms("DescribeAlgorithm", {"algorithm": algorithm})["algorithm"]
    assert parsed["algorithmArn"] == recipe.algorithm_arn
    assert parsed["trainingInputMode"] == "File"
    assert parsed["defaultHyperParameters"] == {
        p.name: p.default for p in recipe.hyperparameters if not p.feature
    }
    listed = [
        entry["name"]
        for entries in parsed["defaultHyperParameterRanges"].values()
        for entry in entries
    ]
    assert sorted(listed) == sorted(p.name for p in recipe.algorithm_parameters)

    if recipe.feature_transformation is not None:
        owner = recipe_by_feature_transformation(recipe.feature_transformation_arn or "")
        feature = catalog.describe_feature_transformation(owner, CREATED)
        parsed = conforms("DescribeFeatureTransformation", {"featureTransformation": feature})
        assert parsed["featureTransformation"]["name"] == recipe.feature_transformation
    else:
        with pytest.raises(ResourceNotFoundException):
            catalog.describe_feature_transformation(recipe, CREATED)


def test_describe_algorithm_reports_ranges_and_tunability() -> None:
    algorithm = catalog.describe_algorithm(UP, CREATED)
    assert algorithm["defaultHyperParameters"] == {
        "hidden_dimension": "149",
        "bptt": "32",
        "recency_mask": "true",
    }
    integer = algorithm["defaultHyperParameterRanges"]["integerHyperParameterRanges"]
    assert {"name": "bptt", "minValue": 2, "maxValue": 32, "isTunable": True} in integer
    assert algorithm["defaultResourceConfig"] == {
        "maxNumberOfTrainingJobs": "20",
        "maxParallelTrainingJobs": "5",
    }
    similar = catalog.describe_algorithm(RECIPES["aws-similar-items"], CREATED)
    continuous = similar["defaultHyperParameterRanges"]["continuousHyperParameterRanges"]
    assert continuous == [
        {"name": "popularity_discount_factor", "minValue": 0.0, "maxValue": 1.0, "isTunable": False}
    ]
    feature = catalog.describe_feature_transformation(UP, CREATED)
    assert feature["defaultParameters"] == {
        "min_user_history_length_percentile": "0.0",
        "max_user_history_length_percentile": "0.99",
    }
