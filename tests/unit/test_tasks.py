"""The tasks beyond sequence classification: their metrics, their data preparation, and the bare training loop
on each (tiny BERT for regression and NER, tiny Llama for causal LM with every PEFT method)."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest

from raytune_llm.core.errors import UserError
from raytune_llm.runs.tokenise import tokenise
from raytune_llm.schema import DataConfig, ExperimentConfig, ModelConfig, TrainConfig
from raytune_llm.tasks.causal_lm import IGNORE, extract_answer
from raytune_llm.tasks.regression import pearson, spearman
from raytune_llm.tasks.token_classification import entities, entity_scores
from raytune_llm.training.bare import BareSession
from raytune_llm.training.loop import run
from raytune_llm.training.spec import RunSpec

# ---------------------------------------------------------------- metrics

def test_bio_entities_follow_conlleval() -> None:
    tags = ["B-PER", "I-PER", "O", "I-LOC", "I-LOC", "B-ORG", "B-ORG", "I-PER"]
    assert entities(tags) == {("PER", 0, 1), ("LOC", 3, 4), ("ORG", 5, 5), ("ORG", 6, 6), ("PER", 7, 7)}


def test_entity_scores_count_whole_entities_only() -> None:
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    pred = [["B-PER", "O", "O", "B-LOC"], ["B-ORG", "O"]]  # the PER span is cut short: not a match
    s = entity_scores(pred, gold)
    assert s["precision"] == pytest.approx(2 / 3) and s["recall"] == pytest.approx(2 / 3)
    assert s["f1"] == pytest.approx(2 / 3) and s["accuracy"] == pytest.approx(5 / 6)
    assert s["f1_LOC"] == 1.0 and s["f1_PER"] == 0.0
    all_o = entity_scores([["O"] * 4, ["O"] * 2], gold)
    assert all_o["f1"] == 0.0  # the trivial tagger: the NER chance level


def test_correlations_match_their_definitions() -> None:
    rng = random.Random(0)
    x = [rng.random() for _ in range(50)]
    y = [2 * v + rng.random() * 0.1 for v in x]
    mx, my = sum(x) / 50, sum(y) / 50
    cov = sum((a - mx) * (b - my) for a, b in zip(x, y))
    expected = cov / math.sqrt(sum((a - mx) ** 2 for a in x) * sum((b - my) ** 2 for b in y))
    assert pearson(x, y) == pytest.approx(expected)
    assert spearman([1, 2, 3, 4], [10, 20, 30, 1000]) == pytest.approx(1.0)  # monotone, not linear
    assert spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(0.9486833, rel=1e-6)  # ties share ranks
    assert pearson([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]) == 0.0  # a constant predictor


def test_answers_are_extracted_and_normalised() -> None:
    assert extract_answer("so 3 + 4 = 7.\n#### 1,234.", r"####\s*(\S+)") == "1234"
    assert extract_answer("no marker", r"####\s*(\S+)") is None
    assert extract_answer("  Paris. ", None) == "paris"


# ---------------------------------------------------------------- data

def test_ner_labels_sit_on_the_first_subword_of_each_word(tiny_bert: Path, ner_dir: Path, tmp_path: Path) -> None:
    import datasets
    from transformers import AutoTokenizer

    p = tokenise(DataConfig(source=str(ner_dir), text_column="tokens", label_column="ner_tags"),
                 ModelConfig(name="x", max_length=32), str(tiny_bert), tmp_path / "d", 0, "token_classification")
    assert p.label_names[:3] == ["O", "B-PER", "I-PER"] and p.chance_metric == "eval_f1"
    ds = datasets.load_from_disk(str(p.path))["train"]
    tok = AutoTokenizer.from_pretrained(str(tiny_bert))
    row = ds[0]
    words = tok.convert_ids_to_tokens(row["input_ids"])
    labelled = [(w, y) for w, y in zip(words, row["labels"]) if y != IGNORE]
    assert [y for _, y in labelled] == [1, 2, 0, 0, 3, 0, 5, 0]  # one label per word, in order
    assert row["labels"][0] == IGNORE and row["labels"][-1] == IGNORE  # [CLS], [SEP]
    assert any(w.startswith("##") for w in words)  # some word was split, and only its first piece is labelled
    assert all(not w.startswith("##") for w, _ in labelled)


def test_ner_needs_bio_tags(tiny_bert: Path, ner_dir: Path, tmp_path: Path) -> None:
    cfg = DataConfig(source=str(ner_dir), text_column="tokens", label_column="ner_tags",
                     labels=["PER", "ORG", "LOC", "X", "Y", "Z", "W"])
    with pytest.raises(UserError, match="exactly one tag without a B-/I- prefix"):
        tokenise(cfg, ModelConfig(name="x", max_length=32), str(tiny_bert), tmp_path / "d", 0, "token_classification")


def test_causal_lm_masks_the_prompt_and_holds_out_eval(tiny_llama: Path, instruct_dir: Path, tmp_path: Path) -> None:
    import datasets
    from transformers import AutoTokenizer

    cfg = DataConfig(source=str(instruct_dir), label_column="output", prompt_template="Q: {instruction}\nA: ",
                     answer_column="final_answer", eval_split="validation", eval_holdout=8, test_split=None)
    p = tokenise(cfg, ModelConfig(name="x", max_length=64), str(tiny_llama), tmp_path / "d", 0, "causal_lm")
    assert p.sizes == {"train": 40, "eval": 8} and p.chance_metric == ""
    tok = AutoTokenizer.from_pretrained(str(tiny_llama))
    row = datasets.load_from_disk(str(p.path))["eval"][0]
    n = row["prompt_length"]
    assert set(row["labels"][:n]) == {IGNORE} and IGNORE not in row["labels"][n:]
    assert tok.decode(row["input_ids"][:n]).startswith("Q: What is ")
    response = tok.decode(row["labels"][n:])
    assert response.endswith(tok.eos_token) and f"#### {row['answer']}" in response
    train_cols = datasets.load_from_disk(str(p.path))["train"].column_names
    assert "answer" not in train_cols  # evaluation-only columns never reach the training batches


def test_regression_rejects_non_numeric_targets(tiny_bert: Path, sentiment_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="regression needs finite numbers"):
        tokenise(DataConfig(source=str(sentiment_dir)), ModelConfig(name="x", max_length=16), str(tiny_bert),
                 tmp_path / "d", 0, "regression")


def test_each_task_has_its_default_objective_and_known_metrics() -> None:
    def cfg(task: str, **search: str) -> ExperimentConfig:
        return ExperimentConfig.model_validate({"task": task, "model": {"name": "m"}, "data": {"source": "d"},
                                                "search": search})

    assert (cfg("regression").search.metric, cfg("regression").search.mode) == ("eval_pearson", "max")
    assert cfg("token_classification").search.metric == "eval_f1"
    assert (cfg("causal_lm").search.metric, cfg("causal_lm").search.mode) == ("eval_loss", "min")
    assert cfg("causal_lm", metric="eval_exact_match").search.mode == "max"
    with pytest.raises(ValueError, match="'eval_accuracy' is not reported by task causal_lm"):
        cfg("causal_lm", metric="eval_accuracy")


# ---------------------------------------------------------------- the bare loop on each task

def _spec(model: Path, p: object, task: str, metric: str, mode: str, **train: object) -> RunSpec:
    t = TrainConfig.model_validate({"max_steps": 4, "eval_every": 2, "batch_size": 8, "eval_batch_size": 8,
                                    "optimizer": {"lr": 1e-3}, **train})
    return RunSpec(model_path=str(model), tokenizer_path=str(model), data_path=str(p.path),
                   label_names=p.label_names, train=t.model_dump(mode="json"), metric=metric, mode=mode,
                   stability={"chance_level": {"enabled": False}}, task=task,
                   generation={"eval_samples": 4, "max_new_tokens": 6, "answer_pattern": r"####\s*(\S+)"})


def test_regression_trains_and_reports_correlations(tiny_bert: Path, pairs_dir: Path, tmp_path: Path) -> None:
    cfg = DataConfig(source=str(pairs_dir), text_pair_column="text_pair")
    p = tokenise(cfg, ModelConfig(name="x", max_length=32), str(tiny_bert), tmp_path / "d", 0, "regression")
    session = BareSession(tmp_path / "out")
    last = run(_spec(tiny_bert, p, "regression", "eval_pearson", "max"), session)
    assert last["step"] == 4 and -1 <= last["eval_pearson"] <= 1 and last["eval_mse"] == last["eval_loss"]
    preds = json.loads((session.checkpoints[-1] / "eval_predictions.json").read_text())
    assert len(preds) == p.sizes["eval"] and all(isinstance(v, float) for v in preds)


def test_ner_trains_and_reports_entity_f1(tiny_bert: Path, ner_dir: Path, tmp_path: Path) -> None:
    cfg = DataConfig(source=str(ner_dir), text_column="tokens", label_column="ner_tags")
    p = tokenise(cfg, ModelConfig(name="x", max_length=32), str(tiny_bert), tmp_path / "d", 0, "token_classification")
    session = BareSession(tmp_path / "out")
    last = run(_spec(tiny_bert, p, "token_classification", "eval_f1", "max", peft={"method": "lora"}), session)
    assert {"eval_f1", "eval_precision", "eval_recall", "eval_accuracy"} <= set(last)
    preds = json.loads((session.checkpoints[-1] / "eval_predictions.json").read_text())
    assert [len(s) for s in preds] == [8] * p.sizes["eval"]  # one tag per word of each sentence


@pytest.mark.parametrize("method", ["full", "lora", "prompt_tuning", "prefix_tuning"])
def test_causal_lm_trains_with_every_peft_method(method: str, tiny_llama: Path, instruct_dir: Path,
                                                 tmp_path: Path) -> None:
    cfg = DataConfig(source=str(instruct_dir), label_column="output", prompt_template="Q: {instruction}\nA: ",
                     answer_column="final_answer", eval_holdout=8, test_split=None)
    p = tokenise(cfg, ModelConfig(name="x", max_length=64), str(tiny_llama), tmp_path / "d", 0, "causal_lm")
    session = BareSession(tmp_path / "out")
    peft = {"method": method, "prompt_tuning": {"num_virtual_tokens": 4}, "prefix_tuning": {"num_virtual_tokens": 4}}
    last = run(_spec(tiny_llama, p, "causal_lm", "eval_loss", "min", peft=peft, optimizer={"lr": 1e-2}), session)
    losses = [r["eval_loss"] for r in session.reports]
    assert last["step"] == 4 and math.isfinite(last["eval_loss"])
    assert last["eval_perplexity"] == pytest.approx(math.exp(last["eval_loss"]))
    assert 0.0 <= last["eval_exact_match"] <= 1.0  # 4 eval rows answered by generation
    assert 0.0 <= last["eval_bleu"] <= 1.0 and 0.0 <= last["eval_rouge_l"] <= 1.0  # their text vs the responses
    if method in ("full", "lora"):  # enough capacity to fit the response tokens within 4 steps
        assert losses[-1] < losses[0]
    saved = {f.name for f in (session.checkpoints[-1] / "model").iterdir()}
    assert ("model.safetensors" if method == "full" else "adapter_model.safetensors") in saved
    preds = json.loads((session.checkpoints[-1] / "eval_predictions.json").read_text())
    assert len(preds) == 8 and all(isinstance(v, list) for v in preds[4:])  # teacher-forced choices after row 4
    assert all(set(v) == {"text", "answer"} for v in preds[:4])  # generated text, and the answer found in it


def test_text_overlap_scores_generated_text_against_references() -> None:
    from raytune_llm.tasks.causal_lm import text_overlap

    refs = ["the answer is 42 because six times seven", "paris is the capital of france"]
    assert text_overlap(refs, refs) == {"bleu": pytest.approx(1.0), "rouge_l": pytest.approx(1.0)}
    assert text_overlap(["zebra quantum", "violet moon"], refs) == {"bleu": 0.0, "rouge_l": 0.0}
    partly = text_overlap(["the answer is 41 because", "paris is the capital"], refs)
    assert 0.0 < partly["bleu"] < 1.0 and 0.0 < partly["rouge_l"] < 1.0


def test_generative_classification_scores_each_verbaliser(tiny_llama: Path, sentiment_dir: Path,
                                                          tmp_path: Path) -> None:
    import datasets

    cfg = DataConfig(source=str(sentiment_dir), labels=["neg", "pos"], verbalizer=[" bad", " good"],
                     prompt_template="Review: {text}\nSentiment:")
    p = tokenise(cfg, ModelConfig(name="x", max_length=32), str(tiny_llama), tmp_path / "d", 0,
                 "generative_classification")
    assert p.chance_metric == "eval_mcc" and p.chance_value == 0.0
    row = datasets.load_from_disk(str(p.path))["eval"][0]
    n = row["prompt_length"]
    assert row["labels"][n:] == row["choices"][row["class_id"]] and set(row["labels"][:n]) == {IGNORE}
    session = BareSession(tmp_path / "out")
    spec = _spec(tiny_llama, p, "generative_classification", "eval_accuracy", "max", peft={"method": "lora"},
                 max_steps=6, eval_every=3, optimizer={"lr": 1e-2})
    last = run(spec, session)
    assert {"eval_accuracy", "eval_macro_f1", "eval_loss"} <= set(last)
    preds = json.loads((session.checkpoints[-1] / "eval_predictions.json").read_text())
    assert len(preds) == p.sizes["eval"] and set(preds) <= {0, 1}  # always a valid label


@pytest.mark.parametrize("method", ["full", "lora"])
def test_regression_head_starts_at_the_mean_target(method: str, tiny_bert: Path) -> None:
    import datasets
    import torch

    from raytune_llm.models.build import build_model
    from raytune_llm.tasks import get_task

    train = TrainConfig.model_validate({"peft": {"method": method}})
    model = build_model(str(tiny_bert), [], train, str(tiny_bert), "regression")
    get_task("regression").init_head(model, datasets.Dataset.from_dict({"labels": [1.0, 2.0, 6.0]}))
    enc = {"input_ids": torch.tensor([[101, 2000, 102]]), "attention_mask": torch.ones(1, 3, dtype=torch.long)}
    with torch.no_grad():
        out = model(**enc).logits.item()
    # The head's weights are small at initialisation, so the first prediction sits near the mean target (3).
    assert abs(out - 3.0) < 1.0
