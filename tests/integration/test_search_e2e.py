"""A real search: local Ray, Optuna TPE, ASHA, trials as 2-worker DDP TorchTrainer jobs on a tiny BERT."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from raytune_llm.cli.main import main
from raytune_llm.results.trials import load_trials, outcome_counts
from tests.conftest import tiny_experiment

pytestmark = [pytest.mark.integration, pytest.mark.timeout(480)]

RELOAD = """
import json, sys
import pandas as pd, torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
out, data = sys.argv[1], sys.argv[2]
tok = AutoTokenizer.from_pretrained(out + "/model")
model = AutoModelForSequenceClassification.from_pretrained(out + "/model").eval()
texts = pd.read_parquet(data + "/validation.parquet")["text"].tolist()
with torch.no_grad():
    enc = tok(texts, truncation=True, max_length=16, padding=True, return_tensors="pt")
    preds = model(**enc).logits.argmax(-1).tolist()
print(json.dumps({"preds": preds, "labels": model.config.id2label}))
"""


def assert_checkpoints_bounded(trials: list, folder_of: Callable[[Any], Path]) -> str:
    """Disk stays bounded: best + last checkpoint per finished trial; none for early-stopped trials unless best.
    Returns the best trial's id. `folder_of(trial)`: where that trial's checkpoint_* folders are."""
    best_id = min(trials, key=lambda t: t.best_row("eval_loss", "min")["eval_loss"]).trial_id
    for t in trials:
        kept = [p for p in folder_of(t).glob("checkpoint_*") if p.is_dir()]
        if t.outcome == "early-stopped" and t.trial_id != best_id:
            assert kept == [], t.trial_id
        else:
            assert 1 <= len(kept) <= 2, (t.trial_id, kept)
    return best_id


def test_search_stops_a_trial_and_exports_a_model_that_reloads(
    ray_session: None, tiny_bert: Path, sentiment_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "hf_TESTSECRETTOKEN0123456789"
    monkeypatch.setenv("HF_TOKEN", secret)
    cfg = tiny_experiment(
        tiny_bert, sentiment_dir, tmp_path / "runs",
        **{
            "train.max_steps": 8, "train.eval_every": 2, "resources.num_workers": 2,
            "search.num_trials": 4, "search.max_concurrent_trials": 1,
            "search.space": {"optimizer.lr": {"type": "categorical", "choices": [3.0e-3, 1.0e-7]},
                             "peft.method": {"type": "categorical", "choices": ["full", "lora"]}},
            "search.scheduler": {"name": "asha", "grace_period": 1, "reduction_factor": 2},
        },
    )
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["search", str(path)]) == 0

    run_dir = tmp_path / "runs" / "t"
    trials = load_trials(run_dir)
    counts = outcome_counts(trials)
    assert len(trials) == 4 and sum(counts.values()) == 4
    assert counts.get("done", 0) >= 1
    assert counts.get("early-stopped", 0) >= 1, counts  # ASHA cut at least one trial short
    for t in trials:  # every report was all-reduced over both DDP workers and is finite
        assert all(r["eval_loss"] < 1e6 for r in t.rows)

    assert_checkpoints_bounded(trials, lambda t: run_dir / "train" / t.trial_id)  # Train trials: under train/
    # Rank 0 staged each checkpoint in its trial's Train folder and moved it where Train recorded it (no copy):
    # nothing staged is left, and every kept checkpoint is whole.
    assert not list(run_dir.glob("train/*/rtl-ckpt-*"))
    for ckpt in (p for p in (run_dir / "train").glob("*/checkpoint_*") if p.is_dir()):
        assert {p.name for p in ckpt.iterdir()} >= {"model", "trainer_state.pt", "eval_predictions.json",
                                                   "metrics.json"}, ckpt

    out = tmp_path / "best"
    assert main(["export", str(run_dir), "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["eval_prediction_mismatches"] == 0
    best = yaml.safe_load((out / "best_config.yaml").read_text())
    assert best["search"]["space"] == {}
    assert best["train"]["optimizer"]["lr"] == metrics["params"]["optimizer.lr"]

    # A fresh process with plain transformers, from raw text, predicts what the trial predicted.
    proc = subprocess.run([sys.executable, "-c", RELOAD, str(out), str(sentiment_dir)],
                          capture_output=True, text=True, timeout=120, check=True)
    reloaded = json.loads(proc.stdout.strip().splitlines()[-1])
    trial_preds = json.loads((out / "trial_eval_predictions.json").read_text())
    assert reloaded["preds"] == trial_preds
    assert reloaded["labels"] == {"0": "neg", "1": "pos"}

    # Credentials from the environment never land in what we write.
    for folder in (run_dir, out):
        for f in folder.rglob("*"):
            if f.is_file() and f.stat().st_size < 5_000_000:
                assert secret.encode() not in f.read_bytes(), f
    assert not list(out.rglob("*.bin")) and not list(out.rglob("*.pt"))  # safetensors only


def test_fsdp_trials_on_ray_train_search_and_export(ray_session: None, tiny_bert: Path, sentiment_dir: Path,
                                                     tmp_path: Path) -> None:
    """resources.strategy: fsdp through the real stack: two-worker Ray Train trials shard the model, checkpoint the
    gathered model, and export reloads it with the trial's own predictions."""
    cfg = tiny_experiment(tiny_bert, sentiment_dir, tmp_path / "runs",
                          **{"train.max_steps": 4, "train.eval_every": 2, "resources.num_workers": 2,
                             "resources.strategy": "fsdp", "search.num_trials": 1,
                             "search.scheduler": {"name": "fifo"}})
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["search", str(path)]) == 0
    trials = load_trials(tmp_path / "runs" / "t")
    assert [t.outcome for t in trials] == ["done"]
    assert all(r["strategy"] == "fsdp" for t in trials for r in t.rows)
    out = tmp_path / "best"
    assert main(["export", str(tmp_path / "runs" / "t"), "--out", str(out)]) == 0
    assert json.loads((out / "metrics.json").read_text())["eval_prediction_mismatches"] == 0
