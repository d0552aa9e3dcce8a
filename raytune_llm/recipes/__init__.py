"""Recipes: where a search starts and what `init` writes. The library (library.yaml: a default recipe and ranges
per PEFT method and model family, each with its source; portfolio.yaml: the portfolio learnt from recorded runs),
the greedy rule the portfolio is learnt by, and a search's start points clipped into the user's space. Light: YAML
and pydantic only."""

from raytune_llm.recipes.greedy import greedy_portfolio
from raytune_llm.recipes.library import FAMILIES, Family, Library, Range, Recipe, family_of, library
from raytune_llm.recipes.start import clip_into, effective_start, start_points

__all__ = ["FAMILIES", "Family", "Library", "Range", "Recipe", "clip_into", "effective_start", "family_of",
           "greedy_portfolio", "library", "start_points"]
