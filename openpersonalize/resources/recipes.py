"""The recipe catalog on the wire: ListRecipes, DescribeRecipe, DescribeAlgorithm,
DescribeFeatureTransformation. The facts come from recipes/catalog.py only."""

from __future__ import annotations

from typing import Any

from openpersonalize.context import Context
from openpersonalize.recipes import catalog
from openpersonalize.resources import lifecycle

# When the predefined recipes were published; they are service-owned, not created here.
CATALOG_CREATED = 1_560_000_000.0


def list_recipes(context: Context, request: dict[str, Any]) -> dict[str, Any]:
    if request.get("recipeProvider", "SERVICE") != "SERVICE":
        return {"recipes": []}
    domain = request.get("domain")
    recipes = [
        catalog.recipe_summary(recipe, CATALOG_CREATED)
        for recipe in sorted(catalog.RECIPES.values(), key=lambda r: r.name)
        if domain is None or recipe.domain == domain
    ]
    page, token = lifecycle.paginate(recipes, request, f"recipes|{domain or ''}")
    return {"recipes": page, "nextToken": token}


def describe_recipe(context: Context, request: dict[str, Any]) -> dict[str, Any]:
    recipe = catalog.get_recipe(request["recipeArn"])
    return {"recipe": catalog.describe_recipe(recipe, CATALOG_CREATED)}


def describe_algorithm(context: Context, request: dict[str, Any]) -> dict[str, Any]:
    recipe = catalog.recipe_by_algorithm(request["algorithmArn"])
    return {"algorithm": catalog.describe_algorithm(recipe, CATALOG_CREATED)}


def describe_feature_transformation(context: Context, request: dict[str, Any]) -> dict[str, Any]:
    recipe = catalog.recipe_by_feature_transformation(request["featureTransformationArn"])
    return {
        "featureTransformation": catalog.describe_feature_transformation(recipe, CATALOG_CREATED)
    }
