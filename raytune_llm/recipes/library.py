"""The recipe library as typed data: library.yaml (a default recipe and ranges per PEFT method and model family,
each with its source) and portfolio.yaml (the learnt portfolio). Read once per process and checked against the
`train:` schema when read, so a bad entry fails at the first use, not in a trial."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, model_validator

from raytune_llm.core.strict import Strict
from raytune_llm.schema.space import apply_params
from raytune_llm.schema.train import PeftMethod, TrainConfig

HERE = Path(__file__).parent
Family = Literal["encoder", "decoder"]
FAMILIES: tuple[Family, ...] = ("encoder", "decoder")
# model_type values (a model's config.json) of causal LMs: their family is "decoder" whatever the task.
DECODER_TYPES = frozenset({
    "llama", "mistral", "mixtral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3", "phi", "phi3", "gpt2", "gpt_neox",
    "gptj", "opt", "falcon", "bloom", "olmo", "olmo2", "starcoder2", "stablelm", "smollm3", "granite", "cohere",
})


class Recipe(Strict):
    name: str
    method: PeftMethod
    family: Family = "encoder"
    params: dict[str, Any] = Field(default_factory=dict, description="dotted paths into train:, as search.space")
    source: str = ""
    note: str | None = None
    learnt_on: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _valid_settings(self) -> Recipe:
        apply_params(TrainConfig(), {"peft.method": self.method.value, **self.params})  # raises on a bad value
        return self


class Range(Strict):
    low: float
    high: float
    log: bool = False
    type: Literal["float", "int"] = "float"


class Library(Strict):
    defaults: dict[Family, dict[PeftMethod, Recipe]]
    ranges: dict[str, dict[str, Any]]  # "common" -> {param: Range}; family -> method -> {param: Range}
    portfolio: dict[Family, list[Recipe]]

    def default(self, method: PeftMethod | str, family: Family = "encoder") -> Recipe:
        return self.defaults[family][PeftMethod(method)]

    def method_ranges(self, method: PeftMethod | str, family: Family = "encoder") -> dict[str, Range]:
        table = self.ranges.get(family, {}).get(PeftMethod(method).value, {})
        return {name: Range.model_validate(r) for name, r in table.items()}

    def common_ranges(self) -> dict[str, Range]:
        return {name: Range.model_validate(r) for name, r in self.ranges.get("common", {}).items()}


def _read(name: str) -> dict[str, Any]:
    return yaml.safe_load((HERE / name).read_text()) or {}


@functools.cache
def library() -> Library:
    raw = _read("library.yaml")
    defaults = {family: {method: {"name": "default", "method": method, "family": family, **entry}
                         for method, entry in by_method.items()}
                for family, by_method in raw["defaults"].items()}
    portfolio = {family: [{**entry, "family": family} for entry in entries or []]
                 for family, entries in _read("portfolio.yaml").items()}
    return Library.model_validate({"defaults": defaults, "ranges": raw["ranges"], "portfolio": portfolio})


def family_of(task: str, model_type: str | None = None, architectures: Sequence[str] = ()) -> Family:
    """Which recipes suit a model: a causal LM's (a generative task; a model_type known to be a causal LM; an
    architecture that is one, e.g. Qwen3MoeForCausalLM, whatever its model_type) or an encoder's."""
    if task in ("causal_lm", "generative_classification") or model_type in DECODER_TYPES:
        return "decoder"
    return "decoder" if any(a.endswith("ForCausalLM") for a in architectures) else "encoder"
