"""MLflow: one run per trial under one experiment for the search (Ray's MLflowLoggerCallback), each run tagged with
the trial's outcome and its best value, so that failed and pruned trials can be filtered in the MLflow UI."""

from __future__ import annotations

from typing import Any

from ray.air.integrations.mlflow import MLflowLoggerCallback

from raytune_llm.core.outcomes import BestSoFar, is_failed_outcome, is_finite, outcome


class MLflowTracking(MLflowLoggerCallback):
    def __init__(self, tracking_uri: str, experiment: str, metric: str, mode: str) -> None:
        super().__init__(tracking_uri, experiment_name=experiment, tags={"raytune_llm.metric": metric})
        self.metric, self.mode = metric, mode
        self._best = BestSoFar(metric, mode)

    def log_trial_result(self, iteration: int, trial: Any, result: dict[str, Any]) -> None:
        # Scalars only: per-step traces are lists, and Tune's bookkeeping keys are not metrics.
        scalars = {k: v for k, v in result.items() if is_finite(v) and k not in ("timestamp", "pid", "done")}
        scalars["training_iteration"] = result.get("training_iteration", iteration)
        self._best.add(trial.trial_id, result)
        super().log_trial_result(iteration, trial, scalars)

    def log_trial_end(self, trial: Any, failed: bool = False) -> None:
        run_id = self._trial_runs[trial]
        client = self.mlflow_util._get_client()
        kind = outcome("ERROR" if failed else "TERMINATED", dict(trial.last_result or {}))
        client.set_tag(run_id, "outcome", kind)
        if (best := self._best.get(trial.trial_id)) is not None and not is_failed_outcome(kind):
            client.log_metric(run_id, f"best_{self.metric}", best)
        super().log_trial_end(trial, failed)
