"""What `raytune-llm init` reads off the data: the task (from the columns and their types), the text and label
columns, the label names, the splits, and for a causal LM the prompt and what is generated. Every value comes with
the reason it was chosen, which the drafted YAML carries as a comment; what cannot be told is a one-line UserError
that names the flag which gives it."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from raytune_llm.core.errors import UserError
from raytune_llm.schema import DataConfig
from raytune_llm.sources import builtins
from raytune_llm.sources.data import load_raw, quiet_progress

if TYPE_CHECKING:
    import datasets

# Column names as the common datasets spell them, most telling first.
LABEL_COLUMNS = ("label", "labels", "score", "class")
TEXT_COLUMNS = ("text", "sentence", "sentence1", "premise", "question1", "content", "review", "document")
PAIR_OF = {"text": "text_pair", "sentence1": "sentence2", "premise": "hypothesis", "question1": "question2"}
WORD_COLUMNS = ("tokens", "words")
TAG_COLUMNS = ("ner_tags", "tags", "labels", "label", "ner")
PROMPT_COLUMNS = ("instruction", "prompt", "question", "query")
RESPONSE_COLUMNS = ("output", "response", "completion", "answer", "target")
ANSWER_COLUMNS = ("final_answer", "answer")
EVAL_SPLITS = ("validation", "valid", "dev", "val", "eval")
SAMPLE_ROWS = 500
HOLDOUT_SHARE, HOLDOUT_MAX = 0.1, 1000
GSM8K_ANSWER = r"####\s*(\S+)"


@dataclass
class Setting:
    value: Any
    why: str = ""


@dataclass
class DataDraft:
    task: Setting
    data: dict[str, Setting]  # data: fields in writing order
    train: datasets.Dataset  # the train split as trials see it (the held-out eval rows not yet removed)
    sample: datasets.Dataset  # SAMPLE_ROWS seeded rows of train: lengths are measured on these
    eval_rows: int
    label_names: list[str] | None = None
    metric: Setting | None = None  # only when the task's default objective is a poor fit (imbalanced labels)
    generation: dict[str, Setting] = field(default_factory=dict)

    @property
    def config(self) -> DataConfig:
        return DataConfig(**{k: s.value for k, s in self.data.items()})

    @property
    def train_rows(self) -> int:
        return len(self.train) - (self.data["eval_holdout"].value if "eval_holdout" in self.data else 0)


def kind(feature: Any) -> str:
    """A column's shape: str, int, float, bool, class (a ClassLabel), list[str], list[int] (ids or ClassLabels)."""
    if getattr(feature, "names", None):
        return "class"
    inner = getattr(feature, "feature", None)
    if inner is not None:
        k = kind(inner)
        return {"str": "list[str]", "int": "list[int]", "class": "list[int]"}.get(k, "list")
    dtype = str(getattr(feature, "dtype", ""))
    if dtype in ("string", "large_string"):
        return "str"
    if dtype.startswith(("int", "uint")):
        return "int"
    if dtype.startswith("float") or dtype == "double":
        return "float"
    return "bool" if dtype == "bool" else "other"


def _pick(kinds: dict[str, str], names: tuple[str, ...], allowed: tuple[str, ...]) -> str | None:
    return next((n for n in names if kinds.get(n) in allowed), None)


def _flag_column(kinds: dict[str, str], column: str | None, flag: str) -> str | None:
    if column is not None and column not in kinds:
        raise UserError(f"{flag} {column}: no such column; the data has [{', '.join(kinds)}]")
    return column


def infer_task(kinds: dict[str, str], task: str | None, label: str | None, text: str | None) -> Setting:
    """The task: given, or told by the columns (word lists with tag lists; one label column; instruction and
    output columns)."""
    if task is not None:
        return Setting(task, "--task")
    words = text if kinds.get(text or "") == "list[str]" else _pick(kinds, WORD_COLUMNS, ("list[str]",))
    tags = label if kinds.get(label or "", "").startswith("list") else _pick(kinds, TAG_COLUMNS, ("list[int]",
                                                                                                 "list[str]"))
    if words and tags:
        return Setting("token_classification", f"column {words} holds word lists and {tags} a tag per word")
    label = label or _pick(kinds, LABEL_COLUMNS, ("str", "int", "class", "float"))
    if label and kinds[label] == "float":
        return Setting("regression", f"column {label} holds real numbers")
    if label and kinds[label] in ("str", "int", "class"):
        return Setting("sequence_classification", f"column {label} holds one class per row ({kinds[label]})")
    prompt = _pick(kinds, (text,) if text else PROMPT_COLUMNS, ("str",))
    response = _pick(kinds, (label,) if label else RESPONSE_COLUMNS, ("str",))
    if prompt and response:
        return Setting("causal_lm", f"columns {prompt} and {response}: an instruction and its response")
    raise UserError(f"cannot tell the task from columns [{', '.join(kinds)}]: pass --task")


def _text_columns(kinds: dict[str, str], text: str | None, label: str) -> dict[str, Setting]:
    if text is not None:
        out = {"text_column": Setting(text, "--text-column")}
    elif found := _pick(kinds, TEXT_COLUMNS, ("str",)):
        out = {"text_column": Setting(found, f"the column named {found}")}
    else:
        strings = [c for c, k in kinds.items() if k == "str" and c != label]
        if len(strings) != 1:
            raise UserError(f"no text column among [{', '.join(kinds)}]: pass --text-column")
        out = {"text_column": Setting(strings[0], "the only text column")}
    pair = PAIR_OF.get(out["text_column"].value)
    if pair and kinds.get(pair) == "str":
        out["text_pair_column"] = Setting(pair, "the second text of each pair")
    return out


def _labels_file(source: str) -> list[str] | None:
    """Names in id order from a labels.json next to the data: {"id2label": {...}}, {"label_names": [...]} or a list."""
    path = Path(source).expanduser() / "labels.json"
    if not path.is_file():
        return None
    raw = json.loads(path.read_text())
    if isinstance(raw, dict):
        raw = raw.get("id2label") or raw.get("label_names") or raw.get("labels")
    if isinstance(raw, dict):
        return [str(raw[str(i)]) for i in range(len(raw))]
    return [str(n) for n in raw] if isinstance(raw, list) else None


def _named_by_column(ds: datasets.Dataset, label: str, kinds: dict[str, str], n: int) -> tuple[str, list[str]] | None:
    """A string column that names the int labels one to one (bbc_news' `category` beside `label`)."""
    ids = ds[label]
    for column in (c for c, k in kinds.items() if k == "str" and c != label):
        pairs = set(zip(ids, ds[column]))
        names = dict(pairs)
        if len(pairs) == len(names) == n and len(set(names.values())) == n and set(names) == set(range(n)):
            return column, [names[i] for i in range(n)]
    return None


def class_names(ds: datasets.Dataset, sample: datasets.Dataset, label: str, kinds: dict[str, str], source: str,
                given: list[str] | None) -> Setting:
    if given:
        return Setting(given, "--labels")
    if kinds[label] == "class":
        return Setting(list(ds.features[label].names), "the dataset's ClassLabel names")
    values = set(ds.unique(label))
    if kinds[label] == "str":
        distinct = sorted(str(v) for v in values if v is not None)
        if len(distinct) > 100 and len(distinct) > 0.2 * len(ds):
            raise UserError(f"column {label} has {len(distinct)} distinct strings in {len(ds)} rows: not class "
                            "labels; pass --task causal_lm, or --label-column")
        return Setting(distinct, f"the {len(distinct)} distinct strings of {label}, sorted")
    n = int(max(v for v in values if v is not None)) + 1
    if named := builtins.builtin_labels(source):
        return Setting(named, "the built-in dataset's names")
    if named := _labels_file(source):
        return Setting(named, "labels.json next to the data")
    if found := _named_by_column(sample, label, kinds, n):
        return Setting(found[1], f"column {found[0]} names each id one to one")
    return Setting([f"label_{i}" for i in range(n)], f"ids 0..{n - 1}; no labels.json to name them (--labels)")


def _tag_names(ds: datasets.Dataset, tags: str, kinds: dict[str, str], source: str,
               given: list[str] | None) -> Setting:
    if given:
        return Setting(given, "--labels")
    if kinds[tags] == "list[str]":
        return Setting(sorted({t for row in ds[tags] for t in row}), f"the distinct tags of {tags}, sorted")
    if names := getattr(ds.features[tags].feature, "names", None):
        return Setting(list(names), "the dataset's ClassLabel names")
    if named := _labels_file(source):
        return Setting(named, "labels.json next to the data")
    raise UserError(f"the tag ids of {tags} have no names (no labels.json next to the data): pass --labels "
                    "O,B-PER,I-PER,...")


def _majority(ds: datasets.Dataset, label: str) -> tuple[Any, float]:
    from collections import Counter

    counts = Counter(ds[label])
    value, n = counts.most_common(1)[0]
    return value, n / len(ds)


def read_data(source: str, subset: str | None, task: str | None, label_column: str | None,
              text_column: str | None, labels: list[str] | None) -> DataDraft:
    """Everything the data section and the task can be told from the data; raises UserError for what cannot."""
    try:
        with quiet_progress():
            raw = load_raw(DataConfig(source=source, subset=subset))
    except UserError as exc:  # the loader names the YAML setting; here the flag gives it
        raise UserError(str(exc).replace("data.source: ", "--data: ", 1)) from None
    splits = list(raw)
    data: dict[str, Setting] = {"source": Setting(source)}
    if subset:
        data["subset"] = Setting(subset, "--subset")
    if "train" in raw:
        train_name = "train"
    else:
        train_name = max(splits, key=lambda s: len(raw[s]))
        data["train_split"] = Setting(train_name, f"the largest split; the data has no split named train ({splits})")
    train = raw[train_name]
    kinds = {c: kind(f) for c, f in train.features.items()}
    label_column = _flag_column(kinds, label_column, "--label-column")
    text_column = _flag_column(kinds, text_column, "--text-column")
    chosen = infer_task(kinds, task, label_column, text_column)
    name = chosen.value
    sample = train.shuffle(seed=0).select(range(min(SAMPLE_ROWS, len(train))))
    draft = DataDraft(chosen, data, train, sample, 0)

    if name == "token_classification":
        words = text_column or _pick(kinds, WORD_COLUMNS, ("list[str]",))
        tags = label_column or _pick(kinds, TAG_COLUMNS, ("list[int]", "list[str]"))
        if not words:
            raise UserError(f"no word-list column (tokens, words) among [{', '.join(kinds)}]: pass --text-column")
        if not tags:
            raise UserError(f"no tag column (ner_tags, tags) among [{', '.join(kinds)}]: pass --label-column")
        data["text_column"] = Setting(words, "--text-column" if text_column else f"word lists ({words})")
        data["label_column"] = Setting(tags, "--label-column" if label_column else f"a tag per word ({tags})")
        names = _tag_names(train, tags, kinds, source, labels)
    elif name == "causal_lm":
        _causal_columns(draft, kinds, text_column, label_column)
        names = None
    else:
        label = label_column or _pick(kinds, LABEL_COLUMNS, ("str", "int", "class", "float"))
        if not label:
            raise UserError(f"no label column among [{', '.join(kinds)}]: pass --label-column")
        data.update(_text_columns(kinds, text_column, label))
        data["label_column"] = Setting(label, "--label-column" if label_column else f"the column named {label}")
        names = None if name == "regression" else class_names(train, sample, label, kinds, source, labels)
        if names is not None:
            value, share = _majority(sample, label)
            if share > 0.6:
                shown = names.value[value] if isinstance(value, int) else value
                draft.metric = Setting("eval_macro_f1", f"imbalanced: {share:.0%} of the sampled labels are "
                                       f"{shown!r}, which accuracy would reward")
    if names is not None:
        data["labels"] = names
        draft.label_names = names.value

    evals = [s for s in EVAL_SPLITS if s in raw and s != train_name]
    if evals:
        data["eval_split"] = Setting(evals[0], f"the data's {evals[0]} split: trials are scored on it")
        draft.eval_rows = len(raw[evals[0]])
    else:
        n = max(1, min(HOLDOUT_MAX, round(HOLDOUT_SHARE * len(train))))
        data["eval_holdout"] = Setting(n, f"no eval split in {splits}: {n} train rows held out (10%, at most "
                                       f"{HOLDOUT_MAX}), seeded")
        draft.eval_rows = n
    if "test" in raw and train_name != "test":
        slow = " (by generating answers: slow on CPU; null skips it)" if name == "causal_lm" else ""
        data["test_split"] = Setting("test", f"scored once, by export{slow}")
    else:
        data["test_split"] = Setting(None, "the data has no test split")
    return draft


def _causal_columns(draft: DataDraft, kinds: dict[str, str], text: str | None, label: str | None) -> None:
    data = draft.data
    prompt = text or _pick(kinds, PROMPT_COLUMNS, ("str",))
    response = label or _pick(kinds, RESPONSE_COLUMNS, ("str",))
    if not prompt:
        raise UserError(f"no prompt column (instruction, prompt, question) among [{', '.join(kinds)}]: pass "
                        "--text-column")
    if not response:
        raise UserError(f"no response column (output, response, completion) among [{', '.join(kinds)}]: pass "
                        "--label-column")
    extra = kinds.get("input") == "str" and prompt != "input" and any(str(v or "").strip()
                                                                        for v in draft.sample["input"])
    data["text_column"] = Setting(prompt, "--text-column" if text else f"the prompt ({prompt})")
    if extra:
        data["prompt_template"] = Setting(f"{{{prompt}}}\n\n{{input}}", "the instruction, then its input")
    data["label_column"] = Setting(response, "--label-column" if label else f"the response the loss is on "
                                   f"({response})")
    answer = _pick({c: k for c, k in kinds.items() if c not in (prompt, response)}, ANSWER_COLUMNS, ("str",))
    if answer:
        data["answer_column"] = Setting(answer, "the final answer: eval_exact_match compares generated answers "
                                        "with it")
        outputs = [str(v) for v in draft.sample[response]]
        if sum(bool(re.search(GSM8K_ANSWER, o)) for o in outputs) >= 0.9 * len(outputs):
            draft.generation["answer_pattern"] = Setting(GSM8K_ANSWER, "the responses end in '#### <answer>' "
                                                         "(GSM8K's format)")
