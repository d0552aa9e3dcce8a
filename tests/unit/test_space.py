"""Search-space semantics: inclusive bounds, `when:` conditions, and applying sampled values."""

from __future__ import annotations

import optuna
import pytest

from raytune_llm.schema import CategoricalParam, FloatParam, IntParam, TrainConfig
from raytune_llm.schema.space import apply_params, sampling_order, settable_paths, suggest

optuna.logging.set_verbosity(optuna.logging.WARNING)

SPACE = {
    "peft.lora.r": IntParam(type="int", low=4, high=6, when={"peft.method": "lora"}),
    "peft.method": CategoricalParam(type="categorical", choices=["full", "lora"]),
    "optimizer.lr": FloatParam(type="float", low=1e-5, high=1e-3, log=True),
    "schedule.warmup_ratio": FloatParam(type="float", low=0.0, high=0.2, step=0.1),
}


def sample_many(n: int = 200) -> list[dict]:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    out = []
    for _ in range(n):
        trial = study.ask()
        out.append(suggest(trial, SPACE))
        study.tell(trial, 0.0)
    return out


def test_parents_are_sampled_before_children() -> None:
    order = sampling_order(SPACE)
    assert order.index("peft.method") < order.index("peft.lora.r")


def test_bounds_are_inclusive_and_conditions_hold() -> None:
    samples = sample_many()
    ranks = {s["peft.lora.r"] for s in samples if "peft.lora.r" in s}
    assert ranks == {4, 5, 6}  # both ends reachable
    assert {s["schedule.warmup_ratio"] for s in samples} == {0.0, 0.1, 0.2}
    assert all(1e-5 <= s["optimizer.lr"] <= 1e-3 for s in samples)
    assert all(("peft.lora.r" in s) == (s["peft.method"] == "lora") for s in samples)


def test_apply_params_writes_values_and_validates() -> None:
    train = apply_params(TrainConfig(), {"optimizer.lr": 3e-4, "peft.method": "lora", "peft.lora.r": 5})
    assert train.optimizer.lr == 3e-4 and train.peft.method.value == "lora" and train.peft.lora.r == 5
    assert TrainConfig().peft.lora.r == 8  # the base config is untouched
    with pytest.raises(ValueError):
        apply_params(TrainConfig(), {"peft.lora.r": 0})


def test_settable_paths_cover_nested_settings() -> None:
    paths = settable_paths()
    for p in ("optimizer.lr", "schedule.warmup_ratio", "peft.lora.r", "dropout.hidden", "grad_clip"):
        assert p in paths
