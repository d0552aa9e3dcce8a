"""`train.augment`: label-preserving edits of the train split's rows, made on the fly as batches are drawn.

The rows are already tokenised (runs.tokenise), so the edits work on token ids, a word being a word-initial token
and its continuations (WordPiece's `##`, SentencePiece's `▁` and byte-level BPE's `Ġ` tell which tokens start
one). Special tokens stay where they are; each segment of a pair is edited on its own and keeps its token type.

- EDA (Wei & Zou 2019), `n = max(1, alpha * words)` per segment: `swap` n random pairs of words; `delete` each word
  with probability alpha (one always stays); `insert` a synonym of a random word at a random place, n times;
  `synonym` n random one-token words replaced by one of their synonyms. `eda` picks one of the four per row.
- `cutoff` (Shen et al. 2020): a random span of alpha of a row's tokens masked out (attention mask 0; a token
  task's labels there ignored).
- Synonyms, offline and for any language the tokenizer covers: a word's nearest whole words (one-token,
  alphabetic vocabulary entries) by cosine similarity of the pretrained model's input embeddings, for the words
  the train split holds; computed once per process and data (in-process trials share it).

A row is edited with probability `probability`, its edit seeded by (train.seed, the epoch, the row), so a resumed
run draws the same rows as an uninterrupted one and nothing is stored beyond the batch being collated.
Token classification takes only the edits that keep each tag on its word (synonym, cutoff); causal LM none
(its targets are its own tokens): both refused by the task's checks (tasks/).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import torch

from raytune_llm.core import process_cache
from raytune_llm.schema import TrainConfig

EDA = ("swap", "delete", "insert", "synonym")
IGNORE = -100
_MARKS = ("▁", "Ġ")  # SentencePiece, byte-level BPE: the mark of a word-initial token


def word_starts(tokenizer: Any) -> list[bool]:
    """Per token id: whether it starts a word (WordPiece: it is not a `##` continuation; SentencePiece and
    byte-level BPE: it carries its word-initial mark; else every token is a word)."""
    tokens = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    tokens = [t or "" for t in tokens]
    if sum(t.startswith("##") for t in tokens) > 0.05 * len(tokens):
        return [not t.startswith("##") for t in tokens]
    for mark in _MARKS:
        if sum(t.startswith(mark) for t in tokens) > 0.2 * len(tokens):
            return [t.startswith(mark) for t in tokens]
    return [True] * len(tokens)


def whole_words(tokenizer: Any, starts: list[bool]) -> list[int]:
    """Token ids that are a whole word alone: word-initial, alphabetic, two letters or more, not special."""
    special = set(tokenizer.all_special_ids)
    tokens = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    return [i for i, t in enumerate(tokens) if t and starts[i] and i not in special
            and len(w := t.lstrip("".join(_MARKS))) >= 2 and w.isalpha()]


def nearest_words(embeddings: torch.Tensor, queries: list[int], candidates: list[int], k: int) -> dict[int, list[int]]:
    """Each query id's k nearest candidate ids by cosine similarity of their embedding rows (itself excluded)."""
    if not queries or len(candidates) < 2:
        return {}
    table = torch.nn.functional.normalize(embeddings.detach().float().cpu(), dim=-1)
    cand = torch.tensor(candidates)
    out: dict[int, list[int]] = {}
    for start in range(0, len(queries), 2048):  # bounded memory: 2048 x candidates similarities at a time
        q = torch.tensor(queries[start:start + 2048])
        sims = table[q] @ table[cand].T
        sims[cand.unsqueeze(0) == q.unsqueeze(1)] = -2.0
        top = sims.topk(min(k, len(candidates) - 1), dim=-1).indices
        out.update({int(i): cand[row].tolist() for i, row in zip(q, top)})
    return out


def synonym_table(tokenizer: Any, embeddings: torch.Tensor, rows: Any, k: int) -> dict[int, list[int]]:
    """Synonyms of every one-token whole word the rows hold."""
    starts = word_starts(tokenizer)
    candidates = whole_words(tokenizer, starts)
    present = {int(i) for ids in rows["input_ids"] for i in ids}
    return nearest_words(embeddings, sorted(present.intersection(candidates)), candidates, k)


class Augmenter:
    """Edits one tokenised row (a dict of lists) with the rng it is given."""

    def __init__(self, method: str, alpha: float, probability: float, starts: list[bool], special: set[int],
                 synonyms: dict[int, list[int]], token_labels: bool, max_length: int) -> None:
        self.method, self.alpha, self.probability = method, alpha, probability
        self.starts, self.special, self.synonyms = starts, special, synonyms
        self.token_labels, self.max_length = token_labels, max_length

    def __call__(self, row: dict[str, Any], rng: random.Random) -> dict[str, Any]:
        if rng.random() >= self.probability:
            return row
        method = rng.choice(EDA) if self.method == "eda" else self.method
        if method == "cutoff":
            return self._cutoff(row, rng)
        ids, types = list(row["input_ids"]), row.get("token_type_ids")
        new_ids: list[int] = []
        new_types: list[int] = []
        i = 0
        while i < len(ids):  # special tokens in place; each run of other tokens (a segment) edited alone
            if ids[i] in self.special:
                new_ids.append(ids[i])
                new_types.append(types[i] if types else 0)
                i += 1
                continue
            j = i
            while j < len(ids) and ids[j] not in self.special:
                j += 1
            edited = [t for w in self._edit(self._words(ids[i:j]), method, rng) for t in w]
            new_ids += edited
            new_types += [types[i] if types else 0] * len(edited)
            i = j
        if len(new_ids) > max(self.max_length, len(ids)):  # an insertion past what the model takes: keep the row
            return row
        out = {**row, "input_ids": new_ids, "attention_mask": [1] * len(new_ids)}
        if types is not None:
            out["token_type_ids"] = new_types
        return out

    def _words(self, ids: list[int]) -> list[list[int]]:
        words: list[list[int]] = []
        for t in ids:
            if not words or self.starts[t]:
                words.append([t])
            else:
                words[-1].append(t)
        return words

    def _edit(self, words: list[list[int]], method: str, rng: random.Random) -> list[list[int]]:
        n = max(1, int(self.alpha * len(words)))
        words = list(words)
        if method == "swap" and len(words) > 1:
            for _ in range(n):
                a, b = rng.sample(range(len(words)), 2)
                words[a], words[b] = words[b], words[a]
        elif method == "delete" and len(words) > 1:
            kept = [w for w in words if rng.random() >= self.alpha]
            words = kept or [rng.choice(words)]
        elif method == "synonym":
            able = [i for i, w in enumerate(words) if len(w) == 1 and w[0] in self.synonyms]
            for i in rng.sample(able, min(n, len(able))):
                words[i] = [rng.choice(self.synonyms[words[i][0]])]
        elif method == "insert":
            able = [w[0] for w in words if len(w) == 1 and w[0] in self.synonyms]
            for _ in range(n if able else 0):
                words.insert(rng.randrange(len(words) + 1), [rng.choice(self.synonyms[rng.choice(able)])])
        return words

    def _cutoff(self, row: dict[str, Any], rng: random.Random) -> dict[str, Any]:
        inner = [i for i, t in enumerate(row["input_ids"]) if t not in self.special]
        if not inner:
            return row
        span = max(1, round(self.alpha * len(inner)))
        start = rng.randrange(len(inner) - span + 1)
        cut = set(inner[start:start + span])
        out = {**row, "attention_mask": [0 if i in cut else m for i, m in enumerate(row["attention_mask"])]}
        if self.token_labels:
            out["labels"] = [IGNORE if i in cut else label for i, label in enumerate(row["labels"])]
        return out


class AugmentedRows(torch.utils.data.Dataset):
    """The train split as the loader draws it: row i of epoch e edited with an rng seeded by (seed, e, i)."""

    def __init__(self, rows: Any, edit: Callable[[dict[str, Any], random.Random], dict[str, Any]], seed: int) -> None:
        self.rows, self.edit, self.seed, self.epoch = rows, edit, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.edit(dict(self.rows[i]), random.Random(f"{self.seed}:{self.epoch}:{i}"))


def augmented(train_ds: Any, cfg: TrainConfig, tokenizer: Any, model: Any, data_path: str, token_labels: bool) -> Any:
    """The train split with `train.augment` applied (the split itself when it is off)."""
    a = cfg.augment
    if a.method == "none":
        return train_ds
    synonyms: dict[int, list[int]] = {}
    if a.method in ("eda", "synonym", "insert"):
        embeddings = model.get_input_embeddings().weight
        synonyms = process_cache.shared("synonyms", (data_path, tokenizer.name_or_path, len(tokenizer), a.synonyms),
                                        lambda: synonym_table(tokenizer, embeddings, train_ds, a.synonyms))
    starts = process_cache.shared("word_starts", (tokenizer.name_or_path, len(tokenizer)),
                                  lambda: word_starts(tokenizer))
    longest = process_cache.shared("longest_row", data_path, lambda: max(len(ids) for ids in train_ds["input_ids"]))
    edit = Augmenter(a.method, a.alpha, a.probability, starts, set(tokenizer.all_special_ids), synonyms,
                     token_labels, longest)
    return AugmentedRows(train_ds, edit, cfg.seed)
