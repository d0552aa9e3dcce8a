"""The report as one self-contained HTML file: inline CSS, figures embedded as data URIs, no script, and no
address outside the file (the page opens offline, from a mail attachment or an artifact store)."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, Segoe UI, Roboto, sans-serif; margin: 0; color: #1d1d1f;
       background: #f6f7f9; }
main { max-width: 1060px; margin: 0 auto; padding: 24px; }
section { background: #fff; border-radius: 8px; padding: 16px 20px; margin: 16px 0;
          box-shadow: 0 1px 3px rgba(0,0,0,.08); }
h1 { font-size: 22px; margin: 8px 0 0; } h2 { font-size: 17px; margin: 0 0 10px; }
.muted { color: #666; } img { max-width: 100%; height: auto; display: block; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; }
.card { flex: 1 1 160px; background: #f2f4f8; border-radius: 6px; padding: 10px 12px; }
.card b { display: block; font-size: 20px; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid #e5e5e5; }
th { background: #fafafa; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
code, pre { font: 12px/1.4 ui-monospace, SFMono-Regular, Menlo, monospace; }
pre { background: #f2f4f8; padding: 10px; border-radius: 6px; white-space: pre-wrap; word-break: break-all; }
"""


def _e(value: Any) -> str:
    return html.escape(str(value))


def _num(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.2f} h" if seconds >= 360 else f"{seconds:.0f} s"


def _figure(figures: dict[str, Path], name: str, alt: str) -> str:
    data = base64.b64encode(figures[name].read_bytes()).decode()
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{data}">'


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(
        f'<td class="num">{_e(_num(c))}</td>' if isinstance(c, (int, float)) else f"<td>{_e(c)}</td>" for c in row)
        + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _verdict(s: dict[str, Any]) -> str:
    best = s["best"]
    if best is None:
        headline = "no trial produced a usable score"
    else:
        spread = ""
        if s["robust_best"]:
            r = s["robust_best"]
            spread = f" &middot; over seeds {_num(r['mean'])} &plusmn; {_num(r['std'])} (min {_num(r['min'])})"
        kind = " (no healthy trial: the best of the failed ones)" if best["fallback"] else ""
        headline = (f"best {_e(s['metric'])} <b>{_num(best['value'])}</b> by trial {_e(best['trial_id'])}"
                    f"{kind}{spread}")
        if gain := s.get("over_default_recipe"):
            headline += f" &middot; {_e(gain['line'])}"
    c = s["compute"]
    cards = [("trials", s["trials"]), ("compute", _hours(c["total"])),
             ("on failed trials", f"{c['failed_share']:.0%}")]
    cards += [(g, n) for g, n in s["groups"].items() if n]
    card_html = "".join(f'<div class="card"><b>{_e(v)}</b>{_e(k)}</div>' for k, v in cards)
    details = []
    if s["scheduler_stops_by_rounds"]:
        details.append("stopped by the scheduler after " + ", ".join(
            f"{r} round(s): {n}" for r, n in s["scheduler_stops_by_rounds"].items()))
    if s["errors"]:
        details.append("errors: " + "; ".join(f"{e['trial_id']}: {e['error']}" for e in s["errors"][:5]))
    detail_html = "".join(f"<li>{_e(d)}</li>" for d in details)
    reasons = s["guard_stop_reasons"]
    rows = [[f"stopped by the guard as {r}", n, "failed" if reasons.get(r, {}).get("failure", True) else
             "healthy, kept its score", reasons.get(r, {}).get("advice", "")]
            for r, n in s["guard_stops_by_reason"].items()]
    if chance := s.get("ended_at_chance"):
        share = chance["compute"] / c["total"] if c["total"] else 0.0
        who = ", ".join(f"{n} by {k}" for k, n in chance["stopped_by"].items())
        rows.append(["ended at chance level", chance["trials"], f"failed (learnt nothing; {share:.0%} of the compute; "
                     f"ended {who})", chance["advice"]])
    stops = _table(["trials that", "trials", "verdict", "to change that"], rows) if rows else ""
    return (f'<section id="verdict"><h2>Verdict</h2><p>{headline}</p><div class="cards">{card_html}</div>'
            f"<ul>{detail_html}</ul>{stops}</section>")


def _importance_table(s: dict[str, Any]) -> str:
    imp = s["importance"]
    names = list(dict.fromkeys([*imp["score"], *imp["failing"]]))
    if not names:
        return f'<p class="muted">score: {_e(imp["score_note"])}; failing: {_e(imp["failing_note"])}</p>'
    notes = [f"{what}: {imp[what + '_note']}" for what in ("score", "failing") if imp[what + "_note"]]
    caveat = f'<p class="muted">{_e("; ".join(notes))}</p>' if notes else ""
    return _table(["param", "importance for the score", "importance for failing"],
                  [[n, imp["score"].get(n, "-"), imp["failing"].get(n, "-")] for n in names]) + caveat


def _robust(s: dict[str, Any], robust: dict[str, Any] | None) -> str:
    if not robust or not robust.get("configs"):
        return ('<section id="robust"><h2>Robustness over seeds</h2><p class="muted">not measured: run '
                "<code>raytune-llm robust RUN</code> to retrain the best configs with several seeds</p></section>")
    rows = [[c["source_trial"], c["mean"], c["std"], c["min"], f"{c['failed_rate']:.0%}", c["robust_score"],
             " ".join(f"{k}={_num(v)}" for k, v in c["params"].items())] for c in robust["configs"]]
    return ('<section id="robust"><h2>Robustness over seeds</h2>'
            + _table(["trial", "mean", "std", "min", "failed", "score", "params"], rows) + "</section>")


def _compression(s: dict[str, Any], figures: dict[str, Path]) -> str:
    comp = s.get("compression")
    if not comp:
        return ('<section id="compression"><h2>Compressed variants</h2><p class="muted">none: run '
                "<code>raytune-llm compress EXPORT_DIR --out DIR</code> on the exported pick</p></section>")
    return ('<section id="compression"><h2>Compressed variants</h2>'
            f'<p class="muted">of {_e(comp["source"])}, measured side by side in one run; folders in '
            f'{_e(comp.get("out") or "")}</p>'
            + _figure(figures, "compression", "score against size and against CPU latency")
            + _table(comp["header"], comp["rows"]) + "</section>")


def render(s: dict[str, Any], figures: dict[str, Path], robust: dict[str, Any] | None, compare: list[str]) -> str:
    best = s["best"]
    if best:
        params = _table(["param", "value"], [[k, v] for k, v in best["params"].items()])
        card = (f'<section id="best"><h2>Best trial: {_e(best["trial_id"])}</h2>{params}'
                f'{_figure(figures, "best_trial", "curves of the best trial")}'
                f'<p>train it again, alone:</p><pre>{_e(best["rerun"])}</pre>'
                f'<p>or export it: <code>raytune-llm export {_e(s["run"])} --out best-model</code></p></section>')
    else:
        card = '<section id="best"><h2>Best trial</h2><p class="muted">none: no trial scored</p></section>'
    compared = f" compared with {', '.join(_e(c) for c in compare)}" if compare else ""
    sections = [
        _verdict(s),
        '<section id="compute"><h2>Where the compute went</h2>'
        + _figure(figures, "compute", "compute by outcome and by PEFT method") + "</section>",
        f'<section id="progress"><h2>Best so far against compute{compared}</h2>'
        + _figure(figures, "best_so_far", "best score so far against compute") + "</section>",
        '<section id="curves"><h2>Learning curves</h2>'
        + _figure(figures, "learning_curves", "learning curves of every trial") + "</section>",
        '<section id="stability"><h2>Stability: the guard-stopped trials before their stop</h2>'
        + _figure(figures, "stability", "train loss and gradient norm before each guard stop") + "</section>",
        '<section id="failure-map"><h2>Failure map</h2>'
        + _figure(figures, "failure_map", "outcome by learning rate and the other params") + "</section>",
        '<section id="importance"><h2>Parameter importance (Optuna PED-ANOVA)</h2>'
        + _figure(figures, "importance", "parameter importance") + _importance_table(s) + "</section>",
        '<section id="parallel"><h2>The best trials, param by param</h2>'
        + _figure(figures, "parallel", "parallel coordinates of the best trials") + "</section>",
        _robust(s, robust),
        _compression(s, figures),
        card,
    ]
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>raytune-llm report: '
            f'{_e(s["name"])}</title><meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<style>{CSS}</style></head><body><main><h1>raytune-llm report: {_e(s['name'])}</h1>"
            f'<p class="muted">{_e(s["run"])} &middot; {_e(s["metric"])} ({_e(s["mode"])}) &middot; '
            f'every number here is in summary.json; every trial in trials.csv</p>'
            + "".join(sections) + "</main></body></html>")
