"""train.augment and train.consistency: every edit keeps what it claims to keep (labels, special tokens, segments,
tags on their words), edits are seeded by (seed, epoch, row) and stored nowhere, a resumed run draws the batches an
uninterrupted one draws, the synonyms are the embeddings' nearest whole words (against a brute-force reference),
R-Drop's loss equals a reference computation, two gloo ranks train as one process, and the tasks refuse what they
cannot take."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoTokenizer

from raytune_llm.config import validate_dict
from raytune_llm.core.errors import ConfigError
from raytune_llm.schema import TrainConfig
from raytune_llm.training.augmentation import (
    IGNORE,
    AugmentedRows,
    Augmenter,
    nearest_words,
    whole_words,
    word_starts,
)
from raytune_llm.training.bare import BareSession
from raytune_llm.training.consistency import doubled, rdrop_loss, symmetric_kl
from raytune_llm.training.loop import run
from raytune_llm.training.spec import RunSpec
from tests.conftest import tiny_experiment
from tests.unit.ranks import spawn_two

TEXTS = ["a dull lifeless mess of a film", "brilliant and funny with a superb score", "unwatchable"]


@pytest.fixture(scope="module")
def tok(tiny_bert: Path) -> Any:
    return AutoTokenizer.from_pretrained(str(tiny_bert))


def _augmenter(tok: Any, method: str, synonyms: dict[int, list[int]] | None = None, token_labels: bool = False,
               alpha: float = 0.3) -> Augmenter:
    return Augmenter(method, alpha, 1.0, word_starts(tok), set(tok.all_special_ids), synonyms or {}, token_labels,
                     max_length=64)


def _fake_synonyms(tok: Any) -> dict[int, list[int]]:
    words = whole_words(tok, word_starts(tok))
    pool = words[1000:1010]
    return {i: pool for i in words}


def _words(tok: Any, ids: list[int]) -> list[str]:
    """The row's words as text, special tokens left out."""
    return tok.decode([i for i in ids if i not in tok.all_special_ids]).split()


def test_word_starts_follow_wordpiece_and_whole_words_are_single_tokens(tok: Any) -> None:
    starts = word_starts(tok)
    ids = tok("unwatchable filmmaking")["input_ids"][1:-1]
    assert [starts[i] for i in ids] == [not t.startswith("##") for t in tok.convert_ids_to_tokens(ids)]
    words = whole_words(tok, starts)
    assert all(tok.convert_ids_to_tokens(i).isalpha() for i in words[:200])
    assert tok.convert_tokens_to_ids("film") in words and tok.convert_tokens_to_ids("##able") not in words


@pytest.mark.parametrize("method", ["swap", "delete", "insert", "synonym", "cutoff"])
def test_each_edit_keeps_the_label_the_special_tokens_and_the_segments(tok: Any, method: str) -> None:
    edit = _augmenter(tok, method, _fake_synonyms(tok))
    row = {**tok(TEXTS[0], TEXTS[1]), "labels": 1}
    sep = tok.sep_token_id
    for seed in range(20):
        out = edit(dict(row), random.Random(seed))
        ids = out["input_ids"]
        assert out["labels"] == 1 and ids[0] == tok.cls_token_id and ids[-1] == sep and ids.count(sep) == 2
        second = ids.index(sep) + 1  # the pair's second segment keeps token type 1, the first 0
        assert out["token_type_ids"] == [0] * second + [1] * (len(ids) - second)
        assert len(ids) == len(out["attention_mask"]) <= 64
        before, after = _words(tok, row["input_ids"]), _words(tok, ids)
        if method == "swap":
            assert Counter(after) == Counter(before)
        elif method == "delete":
            it = iter(before)
            assert all(w in it for w in after) and len(after) < len(before)  # an ordered subsequence
        elif method == "cutoff":
            assert ids == row["input_ids"] and 0 in out["attention_mask"]
            assert all(m == 1 for i, m in zip(ids, out["attention_mask"]) if i in tok.all_special_ids)
        elif method == "insert":
            assert len(after) > len(before)
        else:
            assert len(after) == len(before) and after != before


def test_ner_edits_keep_every_tag_on_its_word(tok: Any) -> None:
    enc = tok(["Paris", "is", "lovely", "in", "spring"], is_split_into_words=True)
    labels = [IGNORE if w is None else 1 + (w % 3) for w in enc.word_ids()]
    row = {**enc, "labels": labels}
    for method in ("synonym", "cutoff"):
        edit = _augmenter(tok, method, _fake_synonyms(tok), token_labels=True)
        for seed in range(10):
            out = edit(dict(row), random.Random(seed))
            assert len(out["labels"]) == len(out["input_ids"]) == len(labels)
            if method == "synonym":
                assert out["labels"] == labels
            else:
                cut = [i for i, m in enumerate(out["attention_mask"]) if m == 0]
                assert cut and all(out["labels"][i] == IGNORE for i in cut)
                assert all(out["labels"][i] == labels[i] for i in range(len(labels)) if i not in cut)


def test_edits_are_seeded_by_seed_epoch_and_row_and_stored_nowhere(tok: Any) -> None:
    rows = [{**tok(t), "labels": i} for i, t in enumerate(TEXTS * 4)]
    copy = json.dumps(rows)
    edit = _augmenter(tok, "eda", _fake_synonyms(tok))
    a, b = AugmentedRows(rows, edit, seed=7), AugmentedRows(rows, edit, seed=7)
    epoch0 = [a[i] for i in range(len(rows))]
    assert epoch0 == [b[i] for i in range(len(rows))]  # same seed, epoch and row: the same edit
    a.set_epoch(1)
    assert [a[i] for i in range(len(rows))] != epoch0  # another epoch, other edits
    assert [AugmentedRows(rows, edit, seed=8)[i] for i in range(len(rows))] != epoch0
    assert json.dumps(rows) == copy and set(vars(a)) == {"rows", "edit", "seed", "epoch"}


def test_a_resumed_run_draws_the_batches_an_uninterrupted_one_draws(tok: Any) -> None:
    from raytune_llm.training.batching import train_loader
    from raytune_llm.training.loop import _batches

    rows = [{**tok(t), "labels": i % 2} for i, t in enumerate(TEXTS * 6)]
    cfg = TrainConfig.model_validate({"batch_size": 4, "seed": 3})
    collate = __import__("transformers").DataCollatorWithPadding(tok, return_tensors="pt")

    def loader() -> Any:
        return train_loader(AugmentedRows(rows, _augmenter(tok, "eda", _fake_synonyms(tok)), 3), cfg, 1, 0, collate,
                            "mem")

    whole = _batches(loader(), 0)
    straight = [next(whole) for _ in range(11)]  # 4 batches an epoch: almost three epochs
    resumed = _batches(loader(), 6)
    for want in straight[6:]:
        got = next(resumed)
        assert all(torch.equal(got[k], want[k]) for k in want)


def test_synonyms_are_the_nearest_whole_words_by_cosine_similarity() -> None:
    torch.manual_seed(0)
    emb = torch.randn(50, 8)
    candidates = list(range(10, 50))
    got = nearest_words(emb, [10, 11, 3], candidates, k=3)
    unit = F.normalize(emb, dim=-1)
    for q in (10, 11, 3):
        sims = {c: float(unit[q] @ unit[c]) for c in candidates if c != q}
        assert got[q] == sorted(sims, key=sims.get, reverse=True)[:3]


def test_rdrop_loss_equals_a_reference_computation() -> None:
    torch.manual_seed(0)
    logits, labels = torch.randn(8, 3), torch.randint(0, 3, (4,))
    a, b = logits[:4], logits[4:]
    loss, first = rdrop_loss(logits, labels, 0.7, lambda x: F.cross_entropy(x, labels), False, False)
    kl = 0.5 * (F.kl_div(F.log_softmax(b, -1), F.log_softmax(a, -1), log_target=True, reduction="batchmean")
                + F.kl_div(F.log_softmax(a, -1), F.log_softmax(b, -1), log_target=True, reduction="batchmean"))
    want = 0.5 * (F.cross_entropy(a, labels) + F.cross_entropy(b, labels)) + 0.7 * kl
    assert float(loss) == pytest.approx(float(want), rel=1e-6) and torch.equal(first, a)
    # token level: only labelled tokens count; regression: the squared difference
    tok_logits, tok_labels = torch.randn(4, 5, 3), torch.tensor([[0, 1, IGNORE, IGNORE, 2], [1, 1, 1, IGNORE, 0]])
    ta, tb = tok_logits.chunk(2)
    keep = tok_labels != IGNORE
    ref = 0.5 * (F.kl_div(F.log_softmax(tb[keep], -1), F.log_softmax(ta[keep], -1), log_target=True,
                          reduction="batchmean") + F.kl_div(F.log_softmax(ta[keep], -1), F.log_softmax(tb[keep], -1),
                                                            log_target=True, reduction="batchmean"))
    assert float(symmetric_kl(ta, tb, tok_labels, True)) == pytest.approx(float(ref), rel=1e-6)
    reg = torch.randn(8, 1)
    loss, _ = rdrop_loss(reg, torch.zeros(4), 2.0, lambda x: x.sum() * 0, True, False)
    assert float(loss) == pytest.approx(2.0 * float(F.mse_loss(reg[:4], reg[4:])), rel=1e-6)
    assert torch.equal(doubled({"x": torch.arange(3)})["x"], torch.tensor([0, 1, 2, 0, 1, 2]))


class RankSession(BareSession):
    def __init__(self, rank: int, world: int) -> None:
        super().__init__(None, device="cpu")
        self.rank, self.world_size = rank, world


def _worker(rank: int, port: int, spec: dict[str, Any], out: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    session = RankSession(rank, 2)
    run(RunSpec(**spec), session)
    Path(out, f"rank{rank}.json").write_text(json.dumps(session.reports))
    dist.destroy_process_group()


def test_two_gloo_ranks_with_augmentation_and_rdrop_train_as_one_process(info: Any, tmp_path: Path) -> None:
    """Without dropout the two R-Drop passes agree (the KL is 0), so what differs between one process and two ranks
    would be the doubled batch's loss weighting or which edit a row got on which rank: neither may."""
    train = TrainConfig.model_validate({
        "max_steps": 4, "eval_every": 2, "batch_size": 8, "optimizer": {"lr": 5e-3},
        "dropout": {"hidden": 0.0, "attention": 0.0, "classifier": 0.0},
        "augment": {"method": "eda", "probability": 1.0, "alpha": 0.3}, "consistency": {"alpha": 1.0}})
    spec = RunSpec(model_path=info.model_path, tokenizer_path=info.tokenizer_path, data_path=info.data_path,
                   label_names=info.label_names, train=train.model_dump(mode="json"), metric="eval_accuracy",
                   stability={"chance_level": {"enabled": False}})
    single = BareSession(None, device="cpu")
    run(spec, single)
    plain = BareSession(None, device="cpu")
    run(RunSpec(**{**spec.to_dict(), "train": {**spec.train, "augment": {"method": "none"}}}), plain)
    assert single.reports[-1]["train_loss"] != pytest.approx(plain.reports[-1]["train_loss"], rel=1e-6)
    spawn_two(_worker, spec.to_dict(), str(tmp_path))
    ranks = json.loads((tmp_path / "rank0.json").read_text())
    for one, two in zip(single.reports, ranks):
        assert two["train_loss"] == pytest.approx(one["train_loss"], rel=1e-4)
        assert two["eval_loss"] == pytest.approx(one["eval_loss"], rel=1e-4)


def test_tasks_refuse_the_levers_that_would_change_their_labels(tiny_bert: Path, ner_dir: Path,
                                                                 tmp_path: Path) -> None:
    ner = tiny_experiment(tiny_bert, ner_dir, tmp_path, **{
        "task": "token_classification", "data.text_column": "tokens", "data.label_column": "ner_tags",
        "data.labels": None, "train.augment": {"method": "synonym"}})
    validate_dict(ner)  # synonym replacement keeps every tag on its word
    ner["train"]["augment"] = {"method": "swap"}
    with pytest.raises(ConfigError, match=r"train\.augment\.method: swap: .*tags would no longer sit"):
        validate_dict(ner)
    ner["train"]["augment"] = {"method": "none"}
    ner["search"]["space"] = {"augment.method": {"type": "categorical", "choices": ["none", "cutoff", "eda"]}}
    with pytest.raises(ConfigError, match=r"search\.space\.augment\.method: eda: .*use none or synonym or cutoff"):
        validate_dict(ner)
    lm = tiny_experiment(tiny_bert, ner_dir, tmp_path, **{"task": "causal_lm", "train.consistency": {"alpha": 0.5},
                                                         "train.augment": {"method": "cutoff"}})
    with pytest.raises(ConfigError) as err:
        validate_dict(lm)
    assert "train.consistency.alpha: train.consistency: R-Drop is built for" in str(err.value)
    assert "train.augment.method: cutoff: a causal LM's targets are its own tokens" in str(err.value)
