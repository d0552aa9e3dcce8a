"""How a trial says which recipe it started from: a portfolio start's trials carry the recipe's name in their Tune
config under RECIPE_KEY (not a setting: applying params skips it, a trial's record keeps it apart from its params).
The default recipe's trial is the search's yardstick: no scheduler stops it, and the pick is reported against it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

RECIPE_KEY = "recipe"
DEFAULT_RECIPE = "default"


def recipe_of(config: Mapping[str, Any] | None) -> str | None:
    value = (config or {}).get(RECIPE_KEY)
    return str(value) if value is not None else None


def is_yardstick(config: Mapping[str, Any] | None) -> bool:
    """Whether a trial (by its Tune config) runs the default recipe, which runs to its full budget."""
    return recipe_of(config) == DEFAULT_RECIPE
