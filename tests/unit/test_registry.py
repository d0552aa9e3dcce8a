"""One style of extension point: every kind of plug-in registers in a checked registry, is checked once when it
registers, and checks itself against an experiment (`problems`), which `validate` collects."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import pytest

from raytune_llm.config import validate_dict
from raytune_llm.config.plugins import plugins_used
from raytune_llm.core.errors import ConfigError, Problem, UserError
from raytune_llm.core.registry import Registry
from raytune_llm.executors import executors
from raytune_llm.models.peft_methods import methods
from raytune_llm.schedulers import schedulers
from raytune_llm.schema import StabilityConfig
from raytune_llm.searchers import Searcher, searchers
from raytune_llm.tasks import Task, tasks
from raytune_llm.tracking import trackers
from raytune_llm.training.stability import Detector, StabilityGuard, Verdict, detectors

REGISTRIES = {"searcher": searchers, "scheduler": schedulers, "tracker": trackers, "executor": executors,
              "stability detector": detectors, "task": tasks, "PEFT method": methods}
BASE = {"model": {"name": "m"}, "data": {"source": "d"}}


def like(registry: Registry[Any]) -> Registry[Any]:
    """An empty registry with the same checks, to try registering into without touching the real one."""
    return Registry(registry.kind, registry.needs, registry.check)


def test_every_kind_registers_the_same_way_with_a_problems_hook() -> None:
    for kind, registry in REGISTRIES.items():
        assert registry.kind == kind and "problems" in registry.needs and registry.names()
        for _, plugin in registry:
            assert callable(plugin.problems)


def test_a_registry_checks_a_plugin_once_when_it_registers() -> None:
    registry: Registry[Any] = Registry("widget")

    class Widget:
        def problems(self, cfg: Any) -> list[Problem]:
            return []

    registry.register("a_widget")(Widget)
    with pytest.raises(ValueError, match="already registered"):
        registry.register("a_widget")(Widget)
    with pytest.raises(ValueError, match="lower case"):
        registry.register("A-Widget")(Widget)
    with pytest.raises(TypeError, match=r"has no problems\(\)"):
        registry.register("mute")(object)
    with pytest.raises(UserError, match=r"unknown widget 'nope'; choose from \['a_widget'\]"):
        registry.get("nope")


def test_each_kind_refuses_a_plugin_its_config_cannot_name() -> None:
    class Mislabelled(Searcher):
        name: Literal["other"] = "other"

    with pytest.raises(TypeError, match="Literal"):
        like(searchers).register("mine")(Mislabelled)

    class NoSection(Detector):
        section = "nope"
        reasons = ("loss_spike",)

    with pytest.raises(TypeError, match=r"no stability.nope section"):
        like(detectors).register("nope")(NoSection)

    class NewReason(Detector):
        reasons = ("gremlins",)

    with pytest.raises(TypeError, match=r"rows of core.stops"):
        like(detectors).register("gremlins")(NewReason)

    class Unknown(Task):
        name = "summarisation"

    with pytest.raises(TypeError, match=r"not a value of schema.Task"):
        like(tasks).register("summarisation")(Unknown)
    with pytest.raises(TypeError, match=r"not a value of resources.executor"):
        like(executors).register("slurm")(executors.get("tune"))
    with pytest.raises(TypeError, match=r"no tracking.comet"):
        like(trackers).register("comet")(trackers.get("wandb"))
    with pytest.raises(TypeError, match=r"not a value of schema.PeftMethod"):
        like(methods).register("ia3")(methods.get("lora"))


def test_validate_asks_every_plugin_the_experiment_uses() -> None:
    space = {"peft.method": {"type": "categorical", "choices": ["full", "lora"]}}
    cfg = validate_dict({**BASE, "search": {"space": space}, "stability": {"plateau": {"enabled": True}}})
    used = {type(p).__name__ if not isinstance(p, type) else p.__name__ for p in plugins_used(cfg)}
    assert {"TPESearcher", "ASHAScheduler", "InProcess", "TensorBoard", "OptunaJournal", "NonFinite", "LossSpike",
            "GradExplosion", "ChanceLevel", "Plateau", "SequenceClassification", "Full", "Lora"} == used


def test_a_new_detector_is_its_module_its_settings_and_its_row(monkeypatch: pytest.MonkeyPatch) -> None:
    """What adding a detector takes: register it; the guard runs it and validate asks it, with no wiring elsewhere.
    (This one has no settings of its own and reuses an existing row of the stop table.)"""

    class LossAboveTen(Detector):
        reasons = ("loss_spike",)
        asked: ClassVar[list[str]] = []

        @classmethod
        def from_config(cls, settings: Any, ctx: Any) -> LossAboveTen:
            return cls()

        @classmethod
        def problems(cls, cfg: Any) -> list[Problem]:
            cls.asked.append(cfg.run.name)
            return [Problem("stability", "a problem only this detector knows of")]

        def check(self, step: int, loss: float, grad_norm: float) -> Verdict:
            return Verdict("loss_spike", "loss above 10") if loss > 10 else Verdict()

    monkeypatch.setitem(detectors._items, "loss_above_ten", LossAboveTen)
    guard = StabilityGuard(StabilityConfig(), warmup_steps=0, total_steps=100, baseline=0.0, mode="max")
    assert guard.check_step(0, 11.0, 1.0).detail == "loss above 10"
    with pytest.raises(ConfigError, match="a problem only this detector knows of"):
        validate_dict(BASE)
    assert LossAboveTen.asked == ["raytune-llm"]
