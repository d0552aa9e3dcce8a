"""Every task end to end: a real search on local Ray (Optuna + ASHA, trials as Ray Train jobs), export, and a fresh
process that reloads the export with plain transformers/peft and reproduces the trial's eval predictions."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from raytune_llm.cli.main import main
from raytune_llm.results.trials import load_trials
from tests.conftest import tiny_experiment

pytestmark = [pytest.mark.integration, pytest.mark.timeout(480)]

RELOAD_REGRESSION = """
import json, sys
import pandas as pd, torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
out, data = sys.argv[1], sys.argv[2]
tok = AutoTokenizer.from_pretrained(out + "/model")
model = AutoModelForSequenceClassification.from_pretrained(out + "/model").eval()
df = pd.read_parquet(data + "/validation.parquet")
with torch.no_grad():
    enc = tok(df["text"].tolist(), df["text_pair"].tolist(), truncation=True, max_length=32, padding=True,
              return_tensors="pt")
    print(json.dumps(model(**enc).logits.squeeze(-1).tolist()))
"""

RELOAD_NER = """
import json, sys
import pandas as pd, torch
from peft import PeftModel
from transformers import AutoModelForTokenClassification, AutoTokenizer
out, data, base = sys.argv[1], sys.argv[2], sys.argv[3]
tok = AutoTokenizer.from_pretrained(out + "/adapter")
labels = json.load(open(out + "/labels.json"))
# The tiny base has a 2-label sequence head; the adapter brings its own 7-tag token head (modules_to_save).
model = AutoModelForTokenClassification.from_pretrained(base, num_labels=len(labels), ignore_mismatched_sizes=True)
model = PeftModel.from_pretrained(model, out + "/adapter").eval()
preds = []
with torch.no_grad():
    for words in pd.read_parquet(data + "/validation.parquet")["tokens"]:
        enc = tok(list(words), is_split_into_words=True, truncation=True, max_length=32, return_tensors="pt")
        tags = model(**enc).logits[0].argmax(-1).tolist()
        ids, seen = enc.word_ids(0), set()
        preds.append([t for t, w in zip(tags, ids) if w is not None and not (w in seen or seen.add(w))])
print(json.dumps(preds))
"""

RELOAD_CAUSAL = """
import json, os, sys
import datasets, torch
from peft import PeftModel
from transformers import AutoModelForCausalLM
out, prepared, base = sys.argv[1], sys.argv[2], sys.argv[3]
if os.path.isdir(out + "/model"):  # full fine-tuning, or LoRA exported with --merge
    model = AutoModelForCausalLM.from_pretrained(out + "/model").eval()
else:  # prompt or prefix tuning: base + adapter
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), out + "/adapter").eval()
preds = []
with torch.no_grad():
    for row in datasets.load_from_disk(prepared)["eval"]:
        ids, labels = torch.tensor([row["input_ids"]]), torch.tensor(row["labels"])
        logits = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits[0]
        choices = logits[-len(row["labels"]):].argmax(-1)[:-1]  # prompt tuning prepends virtual tokens
        preds.append(choices[labels[1:] != -100].tolist())
print(json.dumps(preds))
"""


def _search_and_export(cfg: dict, tmp_path: Path, *export_args: str) -> tuple[Path, Path, dict]:
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["search", str(path)]) == 0
    run_dir = tmp_path / "runs" / "t"
    trials = load_trials(run_dir)
    assert trials and all(t.status == "TERMINATED" for t in trials)
    out = tmp_path / "best"
    assert main(["export", str(run_dir), "--out", str(out), *export_args]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["eval_prediction_mismatches"] == 0
    return run_dir, out, metrics


def _reload(script: str, *args: str) -> list:
    proc = subprocess.run([sys.executable, "-c", script, *map(str, args)], capture_output=True, text=True,
                          timeout=180, env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_regression_search_export_reload(ray_session: None, tiny_bert: Path, pairs_dir: Path,
                                         tmp_path: Path) -> None:
    cfg = tiny_experiment(tiny_bert, pairs_dir, tmp_path / "runs", **{
        "task": "regression", "search.metric": None, "search.mode": None, "model.max_length": 32,
        "data.text_pair_column": "text_pair", "data.test_split": None, "data.labels": None,
        "search.space": {"optimizer.lr": {"type": "float", "low": 1e-4, "high": 1e-3, "log": True}},
    })
    _, out, metrics = _search_and_export(cfg, tmp_path)
    assert metrics["objective"] == {"metric": "eval_pearson", "mode": "max"}
    trial_preds = json.loads((out / "trial_eval_predictions.json").read_text())
    reloaded = _reload(RELOAD_REGRESSION, out, pairs_dir)
    assert reloaded == pytest.approx(trial_preds, rel=1e-4, abs=1e-4)


def test_ner_search_export_reload(ray_session: None, tiny_bert: Path, ner_dir: Path, tmp_path: Path) -> None:
    cfg = tiny_experiment(tiny_bert, ner_dir, tmp_path / "runs", **{
        "task": "token_classification", "search.metric": None, "search.mode": None, "model.max_length": 32,
        "data.text_column": "tokens", "data.label_column": "ner_tags", "data.test_split": None, "data.labels": None,
        "train.peft.method": "lora", "resources.num_workers": 2,
        "search.space": {"optimizer.lr": {"type": "float", "low": 1e-3, "high": 1e-2, "log": True}},
    })
    _, out, metrics = _search_and_export(cfg, tmp_path)
    assert metrics["objective"]["metric"] == "eval_f1" and "eval_f1_PER" in metrics["exported_eval"]
    trial_preds = json.loads((out / "trial_eval_predictions.json").read_text())
    assert _reload(RELOAD_NER, out, ner_dir, tiny_bert) == trial_preds


def test_causal_lm_search_export_reload(ray_session: None, tiny_llama: Path, instruct_dir: Path,
                                        tmp_path: Path) -> None:
    cfg = tiny_experiment(tiny_llama, instruct_dir, tmp_path / "runs", **{
        "task": "causal_lm", "search.metric": None, "search.mode": None, "model.max_length": 64,
        "data.label_column": "output", "data.prompt_template": "Q: {instruction}\nA: ", "data.labels": None,
        "data.answer_column": "final_answer", "data.eval_holdout": 6, "data.test_split": None,
        "generation": {"eval_samples": 2, "max_new_tokens": 4, "answer_pattern": r"####\s*(\S+)"},
        "search.num_trials": 3,
        "search.space": {"peft.method": {"type": "categorical", "choices": ["lora", "prompt_tuning", "prefix_tuning"]},
                         "optimizer.lr": {"type": "float", "low": 1e-3, "high": 1e-2, "log": True}},
        "train.peft.prompt_tuning": {"num_virtual_tokens": 4}, "train.peft.prefix_tuning": {"num_virtual_tokens": 4},
        "search.searcher.n_startup_trials": 3,
        "run.prune_stopped": False,  # every trial keeps a checkpoint: the test exports a non-best one too
    })
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["search", str(path)]) == 0
    run_dir = tmp_path / "runs" / "t"
    trials = load_trials(run_dir)
    assert all(t.status == "TERMINATED" and "eval_perplexity" in t.last for t in trials)
    assert len({t.params["peft.method"] for t in trials}) >= 2  # the PEFT method itself was searched
    out = tmp_path / "best"
    # --no-refit: the eval split was held out of train (a refit, the default then, trains on it: no self-check)
    assert main(["export", str(run_dir), "--out", str(out), "--merge", "--no-refit"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["eval_prediction_mismatches"] == 0 and "eval_exact_match" in metrics["exported_eval"]
    # And a prompt- or prefix-tuning trial by id: an adapter that plain peft reloads on the base model.
    virtual = next(t for t in trials if t.params["peft.method"] != "lora" and t.best_row("eval_loss", "min"))
    out_virtual = tmp_path / "virtual"
    assert main(["export", str(run_dir), "--trial", virtual.trial_id, "--out", str(out_virtual),
                 "--no-refit"]) == 0
    for folder in (out, out_virtual):
        assert json.loads((folder / "metrics.json").read_text())["eval_prediction_mismatches"] == 0
        trial_preds = json.loads((folder / "trial_eval_predictions.json").read_text())
        reloaded = _reload(RELOAD_CAUSAL, folder, run_dir / "prepared" / "data", tiny_llama)
        assert reloaded[2:] == trial_preds[2:]  # rows 0-1 hold generated answers; the rest teacher-forced choices


RELOAD_GENERATIVE = """
import json, sys
import datasets, torch
from transformers import AutoModelForCausalLM
out, prepared = sys.argv[1], sys.argv[2]
model = AutoModelForCausalLM.from_pretrained(out + "/model").eval()
preds = []
with torch.no_grad():
    for row in datasets.load_from_disk(prepared)["eval"]:
        prompt, scores = row["input_ids"][: row["prompt_length"]], []
        for choice in row["choices"]:  # log-likelihood of each label's verbaliser after the prompt
            ids = torch.tensor([prompt + choice])
            logp = torch.log_softmax(model(input_ids=ids).logits[0, :-1], -1)
            scores.append(sum(logp[len(prompt) - 1 + i, t].item() for i, t in enumerate(choice)))
        preds.append(max(range(len(scores)), key=scores.__getitem__))
print(json.dumps(preds))
"""


def test_generative_classification_search_export_reload(ray_session: None, tiny_llama: Path, sentiment_dir: Path,
                                                        tmp_path: Path) -> None:
    cfg = tiny_experiment(tiny_llama, sentiment_dir, tmp_path / "runs", **{
        "task": "generative_classification", "search.metric": None, "search.mode": None, "model.max_length": 32,
        "data.verbalizer": [" bad", " good"], "data.prompt_template": "Review: {text}\nSentiment:",
        "train.peft.method": "lora",
        "search.space": {"optimizer.lr": {"type": "float", "low": 1e-3, "high": 1e-2, "log": True}},
    })
    run_dir, out, metrics = _search_and_export(cfg, tmp_path, "--merge")
    assert metrics["objective"] == {"metric": "eval_accuracy", "mode": "max"} and "test" in metrics
    trial_preds = json.loads((out / "trial_eval_predictions.json").read_text())
    assert _reload(RELOAD_GENERATIVE, out, run_dir / "prepared" / "data") == trial_preds
