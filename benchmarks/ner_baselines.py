"""Trivial taggers on CoNLL-2003 validation, scored like the search (entity-level micro F1), to judge what the NER
search space reaches: all-O (the chance level the stability guard uses) and a lookup tagger that gives each word
the tag it had most often in the training split (unknown words: O), the classic CoNLL baseline's idea.

Usage: python benchmarks/ner_baselines.py [--data ../shared/data/conll2003] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
from collections import Counter, defaultdict
from pathlib import Path

import pandas as pd

from raytune_llm.tasks.token_classification import entity_scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/conll2003")
    parser.add_argument("--json", type=Path, default=Path("ner_baselines.json"))
    args = parser.parse_args()
    names = json.loads((args.data / "labels.json").read_text())["id2label"]
    train = pd.read_parquet(args.data / "train.parquet")
    val = pd.read_parquet(args.data / "validation.parquet")
    counts: dict[str, Counter] = defaultdict(Counter)
    for words, tags in zip(train["tokens"], train["ner_tags"]):
        for w, t in zip(words, tags):
            counts[w][names[str(t)]] += 1
    gold = [[names[str(t)] for t in tags] for tags in val["ner_tags"]]
    taggers = {
        "all O": [["O"] * len(g) for g in gold],
        "most frequent tag per word": [[counts[w].most_common(1)[0][0] if w in counts else "O" for w in words]
                                       for words in val["tokens"]],
    }
    results = {name: entity_scores(pred, gold) for name, pred in taggers.items()}
    print(f"{'tagger':<30}{'precision':>10}{'recall':>10}{'F1':>10}")
    for name, s in results.items():
        print(f"{name:<30}{s['precision']:>10.4f}{s['recall']:>10.4f}{s['f1']:>10.4f}")
    args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
