"""The `refit:` section: whether `export` retrains the chosen config on train + eval before exporting it
(raytune_llm.search.refit). Pure pydantic."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from raytune_llm.core.strict import Strict


class RefitConfig(Strict):
    enabled: bool | None = Field(None, description="retrain the pick on train + eval before export; null: on when "
                                 "data.eval_holdout carved the eval split out of train")
    steps: Literal["full", "best"] = Field("full", description="full: the config's whole budget on the larger data; "
                                           "best: the step count the pick peaked at")
    seeds: int = Field(1, ge=1, description="refits with seeds seed, seed+1, ...; the median one is exported")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        # `refit: true` / `refit: false` reads as what a user means by it: on or off, the rest default.
        return {"enabled": value} if isinstance(value, bool) else value

    def applies(self, eval_holdout: int | None) -> bool:
        """Whether export refits: as set, else when the eval split was held out of train (its rows are then
        labelled training data the search only scored on)."""
        return self.enabled if self.enabled is not None else eval_holdout is not None
