"""The guard-quality replay: recorded curves in, the real guard's verdicts and classifier scores out."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


def load(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


META = {"task": "synthetic", "objective": "eval_macro_f1", "chance_metric": "eval_mcc", "chance_value": 0.0,
        "chance_loss": 0.61, "majority_rate": 0.7, "sizes": {"eval": 300}}
TOTAL = 200


def curve(mcc: list[float], eval_loss: list[float], step_loss: list[float] | None = None,
          grad: list[float] | None = None, lr: float = 1e-4, end: str = "healthy", rank: int = 1) -> dict[str, Any]:
    """A run with 10 evaluations, every 20 steps."""
    n = len(mcc)
    step_loss = step_loss or [eval_loss[min(i // 20, n - 1)] for i in range(20 * n)]
    evals = [{"step": 20 * (i + 1), "eval_mcc": m, "eval_loss": loss, "train_loss": loss,
              "eval_accuracy": 0.7 + max(m, 0) / 4, "eval_macro_f1": 0.41 + max(m, 0) / 2}
             for i, (m, loss) in enumerate(zip(mcc, eval_loss))]
    return {"config": {"optimizer.lr": lr, "schedule.warmup_ratio": 0.0}, "evals": evals, "step_loss": step_loss,
            "step_grad_norm": grad or [1.0] * len(step_loss), "total_steps": TOTAL, "end": end, "rank": rank,
            "diverged": not all(map(math.isfinite, step_loss))}


def runs() -> list[dict[str, Any]]:
    falling = [0.69, 0.66, 0.64, 0.62, 0.60, 0.55, 0.5, 0.45, 0.42, 0.40]
    return [
        curve([0.2, 0.3, 0.4, 0.45, 0.5, 0.5, 0.52, 0.55, 0.55, 0.56], falling, rank=1),  # learns at once
        # The slow starter: at the majority class (MCC 0) for 40% of its budget while its loss falls; ends 2nd.
        curve([0.0, 0.0, 0.0, 0.0, 0.1, 0.2, 0.3, 0.35, 0.4, 0.42], falling, rank=2),
        curve([0.0] * 10, [0.63] * 10, end="failed", rank=3),  # stuck at chance all along
        curve([0.0] * 2, [0.7] * 2, step_loss=[0.7] * 30 + [math.nan] * 10, end="failed", rank=4),  # NaN at step 30
    ]


def test_default_guard_stops_the_failed_runs_early_and_never_the_slow_starter() -> None:
    gq = load("guard_quality")
    stops = [gq.replay(r, META, {}) for r in runs()]
    assert stops[0] == ("", TOTAL) and stops[1] == ("", TOTAL)
    assert stops[2] == ("chance_level", 80)  # at 40%: the first evaluation past 25% with a trend to read
    assert stops[3] == ("non_finite", 30)
    recorded = runs()
    gq.mark_top_half(recorded)
    s = gq.score(recorded, stops)
    assert (s["precision"], s["recall"], s["top_half_stopped"]) == (1.0, 1.0, 0)
    assert s["recall_before_30pct"] == 0.5  # the NaN run at 15%; the stuck run at 40%


def test_the_old_chance_rule_stops_the_slow_starter() -> None:
    gq = load("guard_quality")
    legacy = gq.SETTINGS["old chance rule (accuracy <= majority + 0.02 at 25%)"]
    assert gq.replay(runs()[1], META, legacy)[0] == "chance_level"  # what killed the acceptability search


def test_guard_quality_writes_its_table_as_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    gq = load("guard_quality")
    (tmp_path / "rec").mkdir()
    (tmp_path / "rec" / "synthetic.json").write_text(json.dumps({"meta": META, "runs": runs()}))
    out = tmp_path / "gq.json"
    monkeypatch.setattr("sys.argv", ["guard_quality", "--recordings", str(tmp_path / "rec"), "--out", str(out)])
    gq.main()
    result = json.loads(out.read_text())
    assert result["synthetic"]["default guard"]["stopped"] == 2
    assert result["all tasks"]["default guard"]["top_half_stopped"] == 0
    assert "default guard" in capsys.readouterr().out


def test_recorder_labels_runs_by_how_they_end() -> None:
    rc = load("record_curves")
    recorded = runs()
    for r in recorded:
        r.pop("end"), r.pop("rank")
    rc.label_runs(META, recorded)
    assert [r["end"] for r in recorded] == ["healthy", "healthy", "failed", "failed"]
    assert [r["rank"] for r in recorded] == [1, 2, 3, 4]
