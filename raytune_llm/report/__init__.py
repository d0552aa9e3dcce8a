"""`raytune-llm report`: one offline HTML page about a finished (or running) search, with its numbers as JSON
and its trials as CSV. Ray-free: it reads the run folder only.

    collect.py     the run folder -> RunView / TrialView (outcomes from raytune_llm.core.outcomes)
    summary.py     every number the page shows (summary.json) and trials.csv
    importance.py  Optuna's importance evaluator, for the score and for failing
    figures.py     the plots (matplotlib, headless), one PNG each with a stable name
    page.py        the self-contained index.html
    compression.py the pick's compressed variants (after `raytune-llm compress`)
"""

from __future__ import annotations

import json
from pathlib import Path

FIGURES = ("compute", "best_so_far", "learning_curves", "stability", "failure_map", "importance", "parallel",
           "best_trial")


def build_report(run: str | Path, out: Path, compare: list[str] | None = None) -> Path:
    """Writes out/index.html, out/figures/*.png, out/summary.json and out/trials.csv; returns index.html."""
    from raytune_llm.report import figures as fig
    from raytune_llm.report.collect import load_run
    from raytune_llm.report.page import render
    from raytune_llm.report.summary import summarise, write_trials_csv

    view = load_run(run)
    others = [load_run(c) for c in compare or []]
    figure_dir = out / "figures"
    figure_dir.mkdir(parents=True, exist_ok=True)
    summary = summarise(view)
    summary["compare"] = [{"run": str(o.run_dir), "name": o.name, "best": o.choice.score(o.metric)
                           if o.choice else None} for o in others]
    paths = {name: figure_dir / f"{name}.png" for name in FIGURES}
    fig.compute_by_outcome(view, paths["compute"])
    fig.best_so_far([view, *others], paths["best_so_far"])
    fig.learning_curves(view, paths["learning_curves"])
    fig.stability(view, paths["stability"])
    fig.failure_map(view, paths["failure_map"])
    fig.importance(summary["importance"]["score"], summary["importance"]["failing"], paths["importance"])
    fig.parallel_coordinates(view, paths["parallel"])
    best = view.best_trial
    if best is not None:
        fig.best_card(view, best, paths["best_trial"])
    else:
        del paths["best_trial"]
    from raytune_llm.report import compression

    if (comp := compression.latest(view.run_dir)) is not None:  # the pick's compressed variants, when made
        paths["compression"] = compression.figure(comp, figure_dir / "compression.png")
        header, table = compression.rows(comp)
        summary["compression"] = {"source": comp["source"], "out": comp.get("out"), "header": header, "rows": table,
                                  "variants": comp["variants"]}
    summary["figures"] = {name: str(p.relative_to(out)) for name, p in paths.items()}
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    write_trials_csv(view, out / "trials.csv")
    page = out / "index.html"
    page.write_text(render(summary, paths, view.robust, [o.name for o in others]))
    return page
