"""Which params mattered, by Optuna's own importance evaluator (PED-ANOVA, conditional params included), once for
the score and once for failing. The trials are rebuilt as an in-memory Optuna study; each param's distribution is
the range the trials span (log scale for a float range over two decades or more)."""

from __future__ import annotations

import math
import re
import warnings
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from raytune_llm.core.outcomes import is_finite
from raytune_llm.report.collect import RunView

MIN_TRIALS = 4  # fewer, and no evaluator can tell one param from another
THIN = re.compile(r"regimes for parameter `([^`]+)` have less than")  # PED-ANOVA's small-sample warning


def _distributions(rows: list[dict[str, Any]]) -> dict[str, BaseDistribution]:
    values: dict[str, list[Any]] = {}
    for params in rows:
        for k, v in params.items():
            values.setdefault(k, []).append(v)
    out: dict[str, BaseDistribution] = {}
    for name, seen in values.items():
        if all(isinstance(v, int) and not isinstance(v, bool) for v in seen):
            low, high = min(seen), max(seen)
            if low < high:
                out[name] = IntDistribution(low, high)
        elif all(is_finite(v) for v in seen):
            low, high = float(min(seen)), float(max(seen))
            if low < high:
                out[name] = FloatDistribution(low, high, log=low > 0 and high / low >= 100)
        elif len({str(v) for v in seen}) > 1:
            out[name] = CategoricalDistribution(sorted({str(v) for v in seen}))
    return out


def _importances(points: list[tuple[dict[str, Any], float]], direction: str) -> tuple[dict[str, float], str]:
    if len(points) < MIN_TRIALS:
        return {}, f"needs {MIN_TRIALS} trials, has {len(points)}"
    dists = _distributions([p for p, _ in points])
    if not dists:
        return {}, "no param varied between the trials"
    if len({v for _, v in points}) < 2:
        return {}, "every trial has the same value"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction=direction)
    for params, value in points:
        kept = {k: (str(v) if isinstance(dists[k], CategoricalDistribution) else v)
                for k, v in params.items() if k in dists}
        study.add_trial(optuna.trial.create_trial(params=kept, distributions={k: dists[k] for k in kept},
                                                  value=value))
    # The evaluator's caveats (e.g. a param value seen in fewer than 2 trials) belong on the page beside the
    # figures they qualify, not on the terminal of whoever made the report.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            found = optuna.importance.get_param_importances(study)
        except (ValueError, RuntimeError, ZeroDivisionError) as exc:  # e.g. too few trials in the top quantile
            return {}, f"Optuna could not evaluate importances: {exc}"
    thin = sorted({m.group(1) for w in caught if (m := THIN.search(str(w.message)))})
    note = (f"uncertain for {', '.join(thin)}: some of their values were tried in fewer than 2 trials"
            if thin else "; ".join(dict.fromkeys(str(w.message) for w in caught)))
    return {k: float(v) for k, v in found.items() if math.isfinite(v)}, note


def for_score(run: RunView) -> tuple[dict[str, float], str]:
    """Importance of each param for the best healthy score; failed trials are left out (they have none)."""
    points = [(t.params, t.best) for t in run.trials if t.best is not None]
    return _importances(points, "maximize" if run.mode == "max" else "minimize")


def for_failing(run: RunView) -> tuple[dict[str, float], str]:
    """Importance of each param for ending failed (guard or error) rather than healthy."""
    ended = [t for t in run.trials if t.group != "not ended"]
    points = [(t.params, 1.0 if t.record.failed else 0.0) for t in ended]
    return _importances(points, "maximize")
