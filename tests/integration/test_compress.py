"""`raytune-llm compress` on a real run's LoRA pick: the pick exported (merged) first, then int8, 50% head and 50%
magnitude pruning (each with a recovery fine-tune through the training loop) and a distilled one-layer student;
every variant a folder that plain transformers reloads in a fresh process, reproducing the eval predictions
compress reported, and the table written beside them and into the run for the report. Then `compress --search`: a
real Tune search over the settings on a real local Ray, its Pareto front and pick."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from transformers import AutoModelForSequenceClassification

from raytune_llm.cli.main import main
from tests.conftest import tiny_experiment

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

VARIANTS = ["original", "int8", "prune-heads-50", "prune-heads-50-recovered", "prune-magnitude-50",
            "prune-magnitude-50-recovered", "distill-1L"]

REPRODUCE = r"""
import json, sys, datasets, torch
from transformers import AutoModelForSequenceClassification, DataCollatorWithPadding, AutoTokenizer, pipeline
data_path, batch_size, folders = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
rows = datasets.load_from_disk(data_path)["eval"]
feats = [{k: rows[i][k] for k in ("input_ids", "attention_mask", "token_type_ids") if k in rows.column_names}
         for i in range(len(rows))]
got = {}
for folder in folders:
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    collate, preds = DataCollatorWithPadding(AutoTokenizer.from_pretrained(folder), return_tensors="pt"), []
    with torch.inference_mode():
        for i in range(0, len(feats), batch_size):
            preds += model(**collate(feats[i:i + batch_size])).logits.argmax(-1).tolist()
    label = pipeline("text-classification", model=folder, tokenizer=folder)("a wonderful film")[0]["label"]
    got[folder] = {"preds": preds, "label": label}
print(json.dumps(got))
"""


@pytest.fixture(scope="module")
def compressed(ray_session: None, tiny_bert: Path, sentiment_dir: Path,
               tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("compress")
    cfg = tiny_experiment(tiny_bert, sentiment_dir, tmp / "runs", **{
        "train.peft.method": "lora", "train.optimizer.lr": 5e-3, "search.num_trials": 1,
        "search.metric": "eval_accuracy", "search.mode": "max",
        "search.space": {"optimizer.lr": {"type": "float", "low": 1e-3, "high": 5e-3, "log": True}},
    })
    path = tmp / "exp.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["search", str(path)]) == 0
    run_dir, out = tmp / "runs" / "t", tmp / "compressed"
    assert main(["compress", "--run", str(run_dir), "--out", str(out), "--recovery-steps", "4",
                 "--distill-steps", "6", "--rounds", "1", "--timing-rows", "4"]) == 0
    return run_dir, out


def test_every_variant_is_measured_side_by_side_and_recorded_for_the_report(compressed: tuple[Path, Path]) -> None:
    run_dir, out = compressed
    summary = json.loads((out / "compression.json").read_text())
    rows = {r["variant"]: r for r in summary["variants"]}
    assert list(rows) == VARIANTS
    original = rows["original"]
    for name, r in rows.items():
        assert (out / name / "compression.json").is_file() and "failed" not in r
        assert set(r["eval"]) >= {"eval_accuracy", "eval_loss"} and "test_accuracy" in r["test"]
        assert r["delta"]["eval_accuracy"] == pytest.approx(r["eval"]["eval_accuracy"]
                                                            - original["eval"]["eval_accuracy"])
        assert r["latency_ms_median"] > 0 and r["latency_ms_p95"] >= r["latency_ms_median"]
        assert r["ratio_to_original"]["size"] == pytest.approx(r["size_bytes"] / original["size_bytes"])
    assert rows["original"]["delta"]["eval_accuracy"] == 0
    assert rows["int8"]["size_bytes"] < original["size_bytes"]
    assert rows["distill-1L"]["parameters"] < original["parameters"]
    assert rows["prune-heads-50"]["heads_pruned"] == 2  # of tiny_bert's 2 x 2 heads, one a layer
    zeros = original["nonzero_parameters"] - rows["prune-magnitude-50"]["nonzero_parameters"]
    assert zeros == rows["prune-magnitude-50"]["weights_zeroed"]
    # the recovery trained the rest with the pruned weights held at zero (biases and norms, never pruned, train)
    for pruned in ("prune-magnitude-50", "prune-heads-50"):
        before, after = (AutoModelForSequenceClassification.from_pretrained(out / name)
                         for name in (pruned, f"{pruned}-recovered"))
        weights = [n for n, p in before.named_parameters() if n.endswith("weight") and p.ndim == 2
                   and ".layer." in n]
        b, a = dict(before.named_parameters()), dict(after.named_parameters())
        assert all(torch.equal(b[n] == 0, a[n] == 0) for n in weights)
        assert any(not torch.equal(b[n], a[n]) for n in weights)
    assert rows["prune-magnitude-50-recovered"]["training"]["step"] == 4
    assert rows["distill-1L"]["training"]["step"] == 6
    assert rows["distill-1L"]["temperature"] == 2.0 and rows["distill-1L"]["alpha"] == 0.5
    (recorded,) = (run_dir / "compression").glob("*.json")
    assert json.loads(recorded.read_text())["variants"] == json.loads(json.dumps(summary["variants"]))


def reproduce(data_path: str, folders: list[Path]) -> dict[str, dict]:
    """Each folder loaded with plain transformers in one fresh process: its eval predictions and a pipeline label."""
    done = subprocess.run([sys.executable, "-c", REPRODUCE, data_path, "16", *map(str, folders)],
                          capture_output=True, text=True, check=True, timeout=300)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_each_variant_reloads_with_plain_transformers_and_reproduces_its_predictions(
        compressed: tuple[Path, Path]) -> None:
    run_dir, out = compressed
    info = json.loads((run_dir / "raytune_llm.json").read_text())
    got = reproduce(info["data_path"], [out / v for v in VARIANTS])
    for variant in VARIANTS:
        assert got[str(out / variant)]["preds"] == json.loads((out / variant / "eval_predictions.json").read_text())
        assert got[str(out / variant)]["label"] in ("neg", "pos")


def test_a_method_that_does_not_apply_is_refused_in_one_line(compressed: tuple[Path, Path], tmp_path: Path,
                                                             capsys: pytest.CaptureFixture) -> None:
    _, out = compressed
    assert main(["compress", str(out.parent / "compressed-export"), "--out", str(tmp_path / "x"),
                 "--methods", "int8,fp4", "--head-ratio", "1.5"]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "unknown 'fp4'" in err and "--head-ratio 1.5" in err
    # a student depth the teacher cannot give: refused before any variant is built
    assert main(["compress", str(out.parent / "compressed-export"), "--out", str(tmp_path / "y"),
                 "--methods", "int8,distill", "--student-layers", "2"]) != 0
    err = capsys.readouterr().err.strip()
    assert err.splitlines()[-1].endswith("--student-layers 2: between 1 and 1 (the teacher has 2)")
    assert not (tmp_path / "y" / "int8").exists()


def test_the_report_shows_the_compressed_variants(compressed: tuple[Path, Path], tmp_path: Path) -> None:
    run_dir, _ = compressed
    assert main(["report", str(run_dir), "--out", str(tmp_path / "report")]) == 0
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    assert [row[0] for row in summary["compression"]["rows"]] == VARIANTS
    assert summary["compression"]["header"][1] == "test_accuracy"
    assert (tmp_path / "report" / summary["figures"]["compression"]).is_file()
    assert "Compressed variants" in (tmp_path / "report" / "index.html").read_text()


def test_compress_search_keeps_the_pareto_front_and_picks_by_its_rule(compressed: tuple[Path, Path],
                                                                      tmp_path: Path) -> None:
    from raytune_llm.results.choice import dominates
    from raytune_llm.search.compress_search import pick

    run_dir, out = compressed
    searched = tmp_path / "searched"
    assert main(["compress", str(out.parent / "compressed-export"), "--out", str(searched), "--search",
                 "--trials", "4", "--methods", "int8,prune-magnitude", "--objective", "size", "--recovery-steps",
                 "2", "--rounds", "1", "--timing-rows", "4", "--pick", "smallest-within:0.5"]) == 0
    found = json.loads((searched / "search.json").read_text())
    trials = found["trials"]
    assert len(trials) == 4 and found["objectives"] == ["eval_accuracy", "size_mb"]
    # compress's own settings first, one per method; then the searcher's proposals, inside the space
    assert trials[0]["params"] == {"method": "int8", "scheme": "dynamic"} and trials[0]["start"]
    assert trials[1]["params"] == {"method": "prune-magnitude", "ratio": 0.5, "recovery": True}
    for t in trials:
        p = t["params"]
        assert p["method"] in ("int8", "prune-magnitude") and t["healthy"]
        assert 0.1 <= p.get("ratio", 0.5) <= 0.8 and p.get("scheme", "dynamic") in ("dynamic", "weight-only")
    objectives = [("eval_accuracy", "max"), ("size_mb", "min")]
    on_front = [t for t in trials if f"{t['variant']}-{t['trial_id']}" in found["front"]]
    assert on_front and all(not dominates(o["result"], t["result"], objectives) for t in on_front for o in trials)
    assert all(any(dominates(o["result"], t["result"], objectives) for o in trials)
               for t in trials if t not in on_front)
    # the front measured again side by side with the original; the pick by the stated rule; each folder loads
    summary = json.loads((searched / "compression.json").read_text())
    assert [r["variant"] for r in summary["variants"]] == ["original", *found["front"]]
    chosen = pick(summary["variants"], "eval_accuracy", "max", "smallest-within:0.5")
    assert found["pick"] == chosen["variant"]
    info = json.loads((run_dir / "raytune_llm.json").read_text())
    got = reproduce(info["data_path"], [searched / found["pick"]])[str(searched / found["pick"])]
    assert got["preds"] == json.loads((searched / found["pick"] / "eval_predictions.json").read_text())
    assert not (searched / ".trials").exists()
