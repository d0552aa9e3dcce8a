"""Population-based training (Jaderberg et al. 2017): every `perturbation_interval` evaluation rounds a trial in
the bottom `quantile_fraction` of the population copies the latest checkpoint (weights, optimizer state, step) of
one in the top fraction and continues with that trial's hyperparameters perturbed (x0.8 or x1.2, or drawn anew
with `resample_probability`). The population is `search.num_trials` trials drawn at random from the space (PBT
replaces the searcher), and each runs its full budget: PBT spends compute on schedules, not on stopping trials.

A trial continues from another's checkpoint through Tune, so PBT needs the in-process executor (one worker per
trial). Only settings that can change in the middle of a run are perturbed (`MUTABLE`); the others of the space
(PEFT method, batch size, ...) are drawn once per trial and kept.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from raytune_llm.core.errors import Problem
from raytune_llm.core.protocols import Experiment
from raytune_llm.schedulers.base import Scheduler, schedulers

# Settings a running trial can take over from a checkpoint made under other values: the optimizer's and the
# loss's hyperparameters (applied to the restored optimizer, raytune_llm.training.loop) and dropout (the model is
# rebuilt with the new rates before the weights are loaded).
MUTABLE = ("optimizer.lr", "optimizer.weight_decay", "optimizer.beta1", "optimizer.beta2", "optimizer.eps",
           "grad_clip", "label_smoothing", "l2sp", "fgm_epsilon", "dropout.hidden", "dropout.attention",
           "dropout.classifier")


class InRange:
    """PBT's explore step, made to keep every perturbed value inside its param's range (Tune's `custom_explore_fn`).
    Ray multiplies a value by 0.8 or 1.2 without bounds: optimizer.beta2 0.999 became 1.199, which the schema refuses
    inside the trial (it then ended `error`), dropout could pass 1, and a learning rate leave the user's space. Each
    value is clipped to its range (the space's bounds are valid settings: `validate` checks them), put back on its
    step, and an int stays an int. A module-level class: Tune pickles the scheduler with the search."""

    def __init__(self, space: dict[str, Any]) -> None:
        self.ranges = {name: (p.low, p.high, p.type == "int", getattr(p, "step", None))
                       for name, p in space.items() if p.type != "categorical"}

    def __call__(self, config: dict[str, Any]) -> dict[str, Any]:
        for name, (low, high, is_int, step) in self.ranges.items():
            if name not in config:
                continue
            value = min(max(config[name], low), high)
            if step:
                value = min(low + round((value - low) / step) * step, high)
            config[name] = round(value) if is_int else float(value)
        return config


def mutation(param: Any) -> Any:
    """How PBT perturbs a param: a categorical shifts to a neighbouring choice (a list, which Ray steps through);
    a range is multiplied by 0.8 / 1.2 or drawn anew (a Tune domain; kept in range by `InRange`)."""
    return list(param.choices) if param.type == "categorical" else tune_domain(param)


def tune_domain(param: Any) -> Any:
    """A space param as a Ray Tune distribution (no `when:`/`by:`: PBT samples each param on its own)."""
    from ray import tune

    if param.type == "categorical":
        return tune.choice(param.choices)
    if param.type == "float":
        if param.step:
            return (tune.qloguniform if param.log else tune.quniform)(param.low, param.high, param.step)
        return (tune.loguniform if param.log else tune.uniform)(param.low, param.high)
    if param.log:
        return tune.lograndint(param.low, param.high + 1)
    return tune.qrandint(param.low, param.high, param.step)


@schedulers.register("pbt")
class PBTScheduler(Scheduler):
    name: Literal["pbt"] = "pbt"
    perturbation_interval: int = Field(2, ge=1, description="eval rounds between a trial's exploit/explore steps")
    quantile_fraction: float = Field(0.25, gt=0, le=0.5, description="share of the population copied from / to")
    resample_probability: float = Field(0.25, ge=0, le=1, description="chance a perturbed value is drawn anew")
    mutate: list[str] | None = Field(None, description="params of search.space that PBT perturbs; default: every "
                                     "one of them that can change mid-run")
    synch: bool = Field(False, description="wait for the whole population at each perturbation (reproducible, "
                        "slower: the fastest trials idle) instead of perturbing each trial as it gets there")
    uses_searcher: ClassVar[bool] = False  # the population is drawn at random; PBT then steers it

    def mutated(self, space: dict[str, Any]) -> list[str]:
        return list(self.mutate) if self.mutate is not None else [name for name in space if name in MUTABLE]

    def build(self, max_t: int, space: dict[str, Any] | None = None) -> Any:
        from ray.tune.schedulers import PopulationBasedTraining, TrialScheduler

        class UntilTheLastReport(PopulationBasedTraining):
            # Tune's PBT also exploits at a trial's last report: the trial would then take over another's final
            # checkpoint with nothing left to train, and keep new hyperparameters its results never ran with.
            def on_trial_result(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> str:
                if result.get("step") is not None and result.get("step") == result.get("total_steps"):
                    return TrialScheduler.CONTINUE
                return super().on_trial_result(tune_controller, trial, result)

            # Tune's PBT copies the checkpoint it recorded at the donor's last perturbation, but the donor's
            # checkpoint manager keeps only its `keep_checkpoints` best by score and its latest: reports since then
            # can have deleted it, and the exploiting trial would fail to restore. The donor's latest checkpoint,
            # which Tune always keeps, is then what is copied (the same trial's weights, a little further on).
            def _exploit(self, tune_controller: Any, trial: Any, trial_to_clone: Any) -> None:
                donor = self._trial_state[trial_to_clone]
                if not checkpoint_exists(donor.last_checkpoint):
                    latest = trial_to_clone.run_metadata.checkpoint_manager.latest_checkpoint_result
                    if latest is None or not checkpoint_exists(latest.checkpoint):
                        return  # nothing of the donor to copy: this trial goes on as it is
                    donor.last_checkpoint, donor.last_result = latest.checkpoint, latest.metrics
                super()._exploit(tune_controller, trial, trial_to_clone)

        space = space or {}
        return UntilTheLastReport(
            time_attr="training_iteration", perturbation_interval=self.perturbation_interval,
            quantile_fraction=self.quantile_fraction, resample_probability=self.resample_probability,
            hyperparam_mutations={name: mutation(space[name]) for name in self.mutated(space) if name in space},
            custom_explore_fn=InRange({name: space[name] for name in self.mutated(space) if name in space}),
            synch=self.synch,
        )

    def problems(self, cfg: Experiment) -> list[Problem]:
        """Each reason this PBT cannot run on the experiment's space and executor."""
        space, out = cfg.search.space, []
        if cfg.search.start == "portfolio":
            out.append(Problem("search.start", "pbt draws its population at random and steers it itself, with no "
                               "recipe first; remove search.start or use another scheduler"))
        if not cfg.resources.in_process:
            out.append(Problem("search.scheduler", "pbt continues trials from each other's checkpoints, which needs "
                               "the in-process executor: set resources.num_workers: 1 and resources.executor: auto "
                               "(or tune)"))
        for name, param in space.items():
            if param.when or getattr(param, "by", None):
                out.append(Problem(f"search.space.{name}", "pbt draws each param on its own: remove `when:` and "
                                   "`by:` (or use another scheduler)"))
        for name in self.mutate or []:
            if name not in space:
                out.append(Problem("search.scheduler.mutate", f"{name!r} is not a param of search.space"))
            elif name not in MUTABLE:
                out.append(Problem("search.scheduler.mutate", f"{name!r} cannot change in the middle of a run; "
                                   f"perturbable: {', '.join(MUTABLE)}"))
        if not self.mutated(dict(space)):
            out.append(Problem("search.space", f"pbt has nothing to perturb: add one of {', '.join(MUTABLE)} to the "
                               "space (e.g. optimizer.lr)"))
        return out


def checkpoint_exists(checkpoint: Any) -> bool:
    """Whether a Tune checkpoint is still in its storage (local or cloud: its own pyarrow filesystem)."""
    if checkpoint is None:
        return False
    from pyarrow.fs import FileType

    return checkpoint.filesystem.get_file_info(checkpoint.path).type != FileType.NotFound


def population(search: Any, concurrent: int) -> tuple[Any, dict[str, Any]]:
    """What proposes PBT's population: `search.points_to_evaluate` first, then random draws from the space (seeded
    by the searcher's seed), as Tune's basic variant generator and Tune's form of the space."""
    from ray.tune.search import BasicVariantGenerator

    # Tune ignores max_concurrent_trials for a generator: it is told here.
    generator = BasicVariantGenerator(points_to_evaluate=[dict(p) for p in search.points_to_evaluate] or None,
                                      random_state=getattr(search.searcher, "seed", None), max_concurrent=concurrent)
    return generator, {name: tune_domain(param) for name, param in search.space.items()}
