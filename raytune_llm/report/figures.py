"""The report's plots, one function per figure, each written as a PNG with a stable name (matplotlib, headless).

Every figure must stay readable and fast at thousands of trials: curves are drawn as one LineCollection per group,
the best few in front and in colour, the rest faint.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before pyplot: no display, no GUI toolkit

import matplotlib.pyplot as plt
from matplotlib.collections import LineCollection

from raytune_llm.report.collect import GROUPS, RunView, TrialView

COLOURS = {"done": "#2a9d4b", "stopped by scheduler": "#3b75c4", "stopped by guard": "#8f6ac9",
           "ended at chance": "#e08b2d", "failed by guard": "#d2462f", "error": "#333333", "not ended": "#b0b0b0"}
TOP_K = 5  # trials highlighted in the learning curves
DPI = 100


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def _legend(ax: plt.Axes, groups: list[str]) -> None:
    handles = [plt.Line2D([], [], color=COLOURS[g], lw=2, label=g) for g in GROUPS if g in groups]
    if handles:
        ax.legend(handles=handles, fontsize=8, loc="best", framealpha=0.8)


def compute_by_outcome(run: RunView, path: Path) -> Path:
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.2))
    by_group = run.compute_by("group")
    groups = [g for g in GROUPS if by_group.get(g)]
    left.barh(groups, [by_group[g] / 3600 for g in groups], color=[COLOURS[g] for g in groups])
    left.set_xlabel("worker-hours")
    left.set_title("compute by outcome")
    left.invert_yaxis()
    method_key = "peft.method" if any("peft.method" in t.params for t in run.trials) else None
    if method_key:
        by_method = run.compute_by(method_key)
        names = sorted(by_method)
        right.barh(names, [by_method[n] / 3600 for n in names], color="#6c8ebf")
        right.set_title("compute by PEFT method")
        right.invert_yaxis()
    else:
        right.text(0.5, 0.5, "peft.method was not searched", ha="center", va="center", transform=right.transAxes)
        right.set_title("compute by PEFT method")
    right.set_xlabel("worker-hours")
    return _save(fig, path)


def best_so_far(runs: list[RunView], path: Path) -> Path:
    """Best healthy value against compute; with several runs, each overlaid, and their median with the band between
    the lowest and highest when there are three or more (seeds of one search)."""
    fig, ax = plt.subplots(figsize=(10, 3.8))
    curves = []
    for i, run in enumerate(runs):
        line = run.timeline()
        xs = [x / 3600 for x, _, _, _ in line]
        ys = [y if y is not None else math.nan for _, y, _, _ in line]
        curves.append((xs, ys))
        ax.step(xs, ys, where="post", lw=1.8 if len(runs) == 1 else 1.0, alpha=1 if len(runs) == 1 else 0.6,
                label=run.name if len(runs) > 1 else "best so far", color=None if len(runs) > 1 else "#222222")
        if i == 0:  # each trial's end, by outcome, on the first run
            for x, _, t, last in line:
                if last:
                    value = t.evals[-1][1] if t.evals else None
                    if value is not None:
                        ax.scatter([x / 3600], [value], s=14, color=COLOURS[t.group], zorder=3, alpha=0.8)
    if len(runs) >= 3:
        top = max(c[0][-1] for c in curves if c[0])
        grid = [top * k / 200 for k in range(201)]
        at = [[_value_at(xs, ys, g) for g in grid] for xs, ys in curves]
        med, low, high = [], [], []
        for column in zip(*at, strict=True):
            finite = sorted(v for v in column if not math.isnan(v))
            med.append(finite[len(finite) // 2] if finite else math.nan)
            low.append(finite[0] if finite else math.nan)
            high.append(finite[-1] if finite else math.nan)
        ax.plot(grid, med, color="black", lw=2.2, label="median")
        ax.fill_between(grid, low, high, color="grey", alpha=0.2, label="min-max")
    ax.set_xlabel("compute spent (worker-hours)")
    ax.set_ylabel(runs[0].metric)
    ax.set_title(f"best {runs[0].metric} so far ({runs[0].mode}); dots: trials' last evaluations by outcome")
    ax.legend(fontsize=8, loc="best")
    return _save(fig, path)


def _value_at(xs: list[float], ys: list[float], x: float) -> float:
    value = math.nan
    for xi, yi in zip(xs, ys, strict=True):
        if xi > x:
            break
        value = yi
    return value


def _curves(ax: plt.Axes, trials: list[TrialView], points: Callable[[TrialView], list[tuple[int, float]]],
            highlight: set[str]) -> None:
    for group in GROUPS:
        segs = [points(t) for t in trials if t.group == group and t.trial_id not in highlight and len(points(t))]
        if segs:
            faint = 0.5 if len(trials) <= 30 else max(0.04, 15 / len(trials))
            ax.add_collection(LineCollection(segs, colors=COLOURS[group], linewidths=0.8, alpha=faint))
    # Each trial's last point: a trial stopped after one evaluation has no line, only this mark.
    for group in GROUPS:
        ends = [points(t)[-1] for t in trials if t.group == group and t.trial_id not in highlight and points(t)]
        if ends:
            xs, ys = zip(*ends, strict=True)
            ax.scatter(xs, ys, s=10, color=COLOURS[group], alpha=0.6 if len(trials) <= 30 else 0.2, lw=0)
    for t in trials:
        if t.trial_id in highlight and points(t):
            xs, ys = zip(*points(t), strict=True)
            ax.plot(xs, ys, color=COLOURS[t.group], lw=2.2, alpha=1.0, marker="o", ms=3)
            ax.annotate(t.trial_id, (xs[-1], ys[-1]), fontsize=7, xytext=(3, 0), textcoords="offset points")
    ax.ticklabel_format(axis="y", useOffset=False)
    ax.autoscale()


def top_trials(run: RunView, k: int = TOP_K) -> list[TrialView]:
    scored = [t for t in run.trials if t.best is not None]
    return sorted(scored, key=lambda t: t.best, reverse=run.mode == "max")[:k]


def learning_curves(run: RunView, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(10, 4.2))
    top = {t.trial_id for t in top_trials(run)}
    _curves(ax, run.trials, lambda t: t.evals, top)
    if run.chance is not None:
        ax.axhline(run.chance, color="#d2462f", ls="--", lw=1, label="chance level")
    for rung in run.rungs:
        ax.axvline(rung * run.eval_every, color="#3b75c4", ls=":", lw=0.8)
    ax.set_xlabel("optimizer step" + (" (dotted: the scheduler's rungs)" if run.rungs else ""))
    ax.set_ylabel(run.metric)
    ax.set_title(f"learning curves of {len(run.trials)} trials (top {len(top)} in bold)")
    _legend(ax, [t.group for t in run.trials])
    return _save(fig, path)


def stability(run: RunView, path: Path, window: int = 60) -> Path:
    """Train loss and gradient norm of the guard-stopped trials over the last `window` steps before their stop."""
    fig, (loss_ax, grad_ax) = plt.subplots(1, 2, figsize=(10, 3.4))
    stopped = [t for t in run.trials if t.group in ("failed by guard", "stopped by guard")]
    for ax, points, label in ((loss_ax, lambda t: t.losses, "train loss"),
                              (grad_ax, lambda t: t.grad_norms, "gradient norm")):
        segs = []
        for t in stopped:
            pts = points(t)
            if pts:
                end = pts[-1][0]
                segs.append([(s - end, v if label == "train loss" else max(v, 1e-12)) for s, v in pts
                             if s > end - window])
        if segs:
            colours = [COLOURS[t.group] for t in stopped if points(t)]
            ax.add_collection(LineCollection(segs, colors=colours, linewidths=1, alpha=0.7))
            ax.autoscale()
            if label == "gradient norm":
                ax.set_yscale("log")
        else:
            ax.text(0.5, 0.5, "no trial was stopped by the guard", ha="center", va="center", transform=ax.transAxes)
        ax.axvline(0, color="black", lw=0.8)
        ax.set_xlabel("steps before the stop")
        ax.set_title(label)
    return _save(fig, path)


def failure_map(run: RunView, path: Path) -> Path:
    """The learning rate against each other numeric param, coloured by outcome."""
    lr = next((p for p in run.space if p.endswith("lr")), None)
    others = [p for p in run.space if p != lr and any(isinstance(t.params.get(p), (int, float, str))
                                                      for t in run.trials)][:4]
    panels = max(1, len(others))
    fig, axes = plt.subplots(1, panels, figsize=(min(10, 3.4 * panels), 3.2), squeeze=False)
    many = len(run.trials) > 100
    alpha, size = (max(0.15, 75 / len(run.trials)), 8) if many else (0.75, 16)
    jitter = random.Random(0)
    for ax, other in zip(axes[0], others or [None], strict=True):
        names = sorted({str(t.params[other]) for t in run.trials if other in t.params
                        and isinstance(t.params[other], str)}) if other else []
        for group in GROUPS:
            pts = [(t.params.get(lr), t.params.get(other) if other else 0) for t in run.trials
                   if t.group == group and t.params.get(lr) is not None and (other is None or other in t.params)]
            if pts:
                xs, ys = zip(*pts, strict=True)
                if names:  # categories as rows, spread a little so that points do not hide each other
                    ys = [names.index(str(y)) + jitter.uniform(-0.3, 0.3) for y in ys]
                ax.scatter(xs, ys, s=size, color=COLOURS[group], alpha=alpha, label=group, lw=0)
        if names:
            ax.set_yticks(range(len(names)), names)
        if lr:
            ax.set_xscale("log")
            ax.set_xlabel(lr)
        ax.set_ylabel(other or "")
    axes[0][0].set_title("outcome by params")
    _legend(axes[0][-1], [t.group for t in run.trials])
    return _save(fig, path)


def importance(scores: dict[str, float], failing: dict[str, float], path: Path) -> Path:
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.0))
    for ax, values, title in ((axes[0], scores, "importance for the score"),
                              (axes[1], failing, "importance for failing")):
        if values:
            names = list(values)[::-1]
            ax.barh(names, [values[n] for n in names], color="#6c8ebf")
        else:
            ax.text(0.5, 0.5, "too few trials to tell", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(title)
    return _save(fig, path)


def parallel_coordinates(run: RunView, path: Path, k: int = 10) -> Path:
    """The best k trials' params, each axis scaled to the range the trials span (log for learning rates)."""
    fig, ax = plt.subplots(figsize=(10, 3.4))
    best = top_trials(run, k)
    axes = [p for p in run.space if any(p in t.params for t in best)] + [run.metric]
    for t in best:
        ys = [_scaled(run, axis, t) for axis in axes]
        ax.plot(range(len(axes)), ys, marker="o", color=COLOURS[t.group], alpha=0.8, lw=1.5)
    ax.set_xticks(range(len(axes)), axes, rotation=15, fontsize=8)
    ax.set_yticks([0, 1], ["lowest", "highest"])
    for i, axis in enumerate(axes):  # the real values at each axis' ends
        low, high = _extremes(run, axis)
        ax.annotate(low, (i, 0), xytext=(4, -12), textcoords="offset points", fontsize=7, color="#555555")
        ax.annotate(high, (i, 1), xytext=(4, 6), textcoords="offset points", fontsize=7, color="#555555")
    ax.set_ylim(-0.15, 1.15)
    ax.set_title(f"the best {len(best)} trials (each axis: lowest to highest value among them)")
    return _save(fig, path)


def _extremes(run: RunView, axis: str) -> tuple[str, str]:
    values = [t.best if axis == run.metric else t.params.get(axis) for t in top_trials(run, 10)]
    if any(isinstance(v, str) for v in values):
        names = sorted({str(v) for v in values if v is not None})
        return names[0], names[-1]
    nums = [float(v) for v in values if isinstance(v, (int, float))]
    return (f"{min(nums):.3g}", f"{max(nums):.3g}") if nums else ("", "")


def _scaled(run: RunView, axis: str, trial: TrialView) -> float:
    values = [t.best if axis == run.metric else t.params.get(axis) for t in top_trials(run, 10)]
    value = trial.best if axis == run.metric else trial.params.get(axis)
    if isinstance(value, str) or value is None:
        names = sorted({str(v) for v in values if v is not None})
        return names.index(str(value)) / max(1, len(names) - 1) if value is not None else 0.5
    nums = [float(v) for v in values if isinstance(v, (int, float))]
    low, high = min(nums), max(nums)
    if axis.endswith("lr") and low > 0:
        low, high, value = math.log(low), math.log(high), math.log(value)
    return 0.5 if high == low else (float(value) - low) / (high - low)


def best_card(run: RunView, trial: TrialView, path: Path) -> Path:
    fig, (score_ax, loss_ax) = plt.subplots(1, 2, figsize=(10, 3.0))
    if trial.evals:
        score_ax.plot(*zip(*trial.evals, strict=True), marker="o", color=COLOURS[trial.group])
    score_ax.set_title(run.metric)
    if trial.losses:
        loss_ax.plot(*zip(*trial.losses, strict=True), color="#555555", lw=0.8)
    loss_ax.set_title("train loss")
    for ax in (score_ax, loss_ax):
        ax.set_xlabel("optimizer step")
    return _save(fig, path)
