"""TensorBoard: one event folder per trial under RUN/tensorboard, with every reported scalar at its optimizer step,
the per-step train loss and gradient norm (not only the values at evaluations), and, when the trial ends, its
params with its best value and outcome in the HParams view. Tune's own event files hold each report's values at
Tune's iteration count and no HParams of what matters here, hence this one.

Written by the search's driver from the reports Tune already receives: nothing runs in a training step."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ray.tune import Callback

from raytune_llm.core.outcomes import BestSoFar, is_failed_outcome, is_finite, outcome, real_value
from raytune_llm.results.trials import step_trace


def _hparam(value: Any) -> Any:
    return value if isinstance(value, (int, float, str, bool)) else str(value)


class TensorBoardCallback(Callback):
    def __init__(self, folder: str, metric: str, mode: str) -> None:
        self.folder, self.metric, self.mode = folder, metric, mode
        self._writers: dict[str, Any] = {}
        self._best = BestSoFar(metric, mode)

    def __getstate__(self) -> dict[str, Any]:  # Tune pickles its callbacks with the experiment: no open files
        return {**self.__dict__, "_writers": {}}

    def _writer(self, trial: Any) -> Any:
        if trial.trial_id not in self._writers:
            from tensorboardX import SummaryWriter

            self._writers[trial.trial_id] = SummaryWriter(str(Path(self.folder) / trial.trial_id), flush_secs=10)
        return self._writers[trial.trial_id]

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict[str, Any], **info: Any) -> None:
        writer, step = self._writer(trial), int(result.get("step", result.get("training_iteration", 0)))
        for key, value in result.items():
            if is_finite(value) and (key.startswith(("eval_", "real_")) or key in ("train_loss", "grad_norm", "lr",
                                                                                    "samples_per_s")):
                writer.add_scalar(key, value, step)
        for key, name in (("step_losses", "train_loss_per_step"), ("step_grad_norms", "grad_norm_per_step")):
            for at, value in step_trace(result, key):
                writer.add_scalar(name, value, at)
        self._best.add(trial.trial_id, result)

    def _end(self, trial: Any, errored: bool) -> None:
        writer = self._writer(trial)
        last = dict(trial.last_result or {})
        kind = outcome("ERROR" if errored else "TERMINATED", last)
        failed = is_failed_outcome(kind)
        best = self._best.get(trial.trial_id)
        real = real_value(last, self.metric)
        # A value a failed trial does not have is left out, not written as NaN: tensorboardX says "NaN or Inf found
        # in input tensor." on the user's terminal for each, and the HParams view shows a blank either way.
        metrics = {f"hparam/best_{self.metric}": None if failed else best, "hparam/failed": float(failed),
                   f"hparam/last_real_{self.metric}": real}
        writer.add_hparams({k: _hparam(v) for k, v in (trial.evaluated_params or trial.config or {}).items()},
                           {k: v for k, v in metrics.items() if is_finite(v)}, name="hparams")
        writer.close()
        self._writers.pop(trial.trial_id, None)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._end(trial, errored=False)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._end(trial, errored=True)
