"""Config validation: every problem at once, with its YAML path; the CLI exits 2 and starts no Ray."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from raytune_llm.config.loading import load_config, validate_dict
from raytune_llm.core.errors import ConfigError, UserError

GOOD = textwrap.dedent("""
    model: {name: builtin:minilm}
    data: {source: builtin:bbc_news}
    search:
      space:
        optimizer.lr: {type: float, low: 1.0e-5, high: 1.0e-3, log: true}
        peft.method: {type: categorical, choices: [full, lora]}
        peft.lora.r: {type: int, low: 4, high: 16, when: {peft.method: lora}}
""")

THREE_MISTAKES = textwrap.dedent("""
    model: {name: builtin:minilm}
    data: {source: builtin:bbc_news}
    train:
      batch_sise: 16
      optimizer: {lr: fast}
    search:
      space:
        optimizer.lr: {type: float, low: 1.0e-3, high: 1.0e-5}
""")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "exp.yaml"
    path.write_text(text)
    return path


def problems(exc: pytest.ExceptionInfo[ConfigError]) -> dict[str, str]:
    found: dict[str, str] = {}
    for p in exc.value.problems:
        found[p.path] = f"{found[p.path]} | {p.message}" if p.path in found else p.message
    return found


def test_good_config_loads(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, GOOD))
    assert cfg.search.space["peft.lora.r"].when == {"peft.method": "lora"}
    assert cfg.train.batch_size == 16


def test_three_mistakes_reported_together(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        load_config(write(tmp_path, THREE_MISTAKES))
    found = problems(exc)
    assert "unknown key" in found["train.batch_sise"]
    assert "batch_size" in found["train.batch_sise"]  # the fix: the allowed keys are listed
    assert "'fast'" in found["train.optimizer.lr"]
    assert "`low <= high` must hold" in found["search.space.optimizer.lr"]
    assert len(found) == 3


def test_cli_validate_prints_all_three_paths_exits_2_without_ray(tmp_path: Path) -> None:
    bad = textwrap.dedent("""
        model: {name: builtin:minilm, max_lenght: 64}
        data: {source: builtin:bbc_news}
        train: {batch_size: many}
        search: {mode: maximize}
    """)
    path = write(tmp_path, bad)
    code = (
        "import sys; from raytune_llm.cli.main import main; rc = main(['validate', sys.argv[1]]); "
        "print('RAY_IMPORTED' if 'ray' in sys.modules else 'NO_RAY'); sys.exit(rc)"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "3 problems" in proc.stderr
    for where in ("model.max_lenght", "train.batch_size", "search.mode"):
        assert where in proc.stderr
    assert "Traceback" not in proc.stderr
    assert "NO_RAY" in proc.stdout


def test_space_problems_all_at_once() -> None:
    data = {
        "model": {"name": "m"}, "data": {"source": "d"},
        "search": {"space": {
            "optimizer.lr": {"type": "float", "low": 0.0, "high": 1e-3, "log": True},
            "warmup": {"type": "float", "low": 0.0, "high": 0.1},
            "peft.lora.r": {"type": "int", "low": 4, "high": 8, "when": {"peft.method": "lora"}},
            "grad_clip": {"type": "float", "low": -1.0, "high": 1.0},
            "peft.method": {"type": "categorical", "choices": ["full", "lora"]},
            "peft.lora.dropout": {"type": "float", "low": 0.0, "high": 0.2, "when": {"peft.method": "prefix"}},
        }},
    }
    with pytest.raises(ConfigError) as exc:
        validate_dict(data)
    found = problems(exc)
    assert "log: true needs low > 0" in found["search.space.optimizer.lr"]
    assert "no setting 'warmup'" in found["search.space.warmup"]
    assert "grad_clip" in found["search.space.grad_clip"]  # -1 is not a valid gradient clip
    assert "not one of its choices" in found["search.space.peft.lora.dropout.when.peft.method"]
    assert "search.space.peft.lora.r" not in found


def test_when_must_name_a_param() -> None:
    data = {"model": {"name": "m"}, "data": {"source": "d"},
            "search": {"space": {"peft.lora.r": {"type": "int", "low": 4, "high": 8,
                                                 "when": {"peft.method": "lora"}}}}}
    with pytest.raises(ConfigError) as exc:
        validate_dict(data)
    assert "not a param in search.space" in problems(exc)["search.space.peft.lora.r.when"]


def test_batch_must_divide_over_workers() -> None:
    data = {"model": {"name": "m"}, "data": {"source": "d"}, "train": {"batch_size": 15},
            "resources": {"num_workers": 2}}
    with pytest.raises(ConfigError) as exc:
        validate_dict(data)
    assert "multiple of 2" in problems(exc)["train.batch_size"]


CROSS_FIELD = textwrap.dedent("""
    task: causal_lm
    model: {name: builtin:smollm2}
    data: {source: builtin:bbc_news}
    generation: {eval_samples: 0}
    train: {reinit_top_layers: 2}
    search:
      metric: eval_exact_match
      space:
        peft.method: {type: categorical, choices: [full, lora, prompt_tuning]}
        batch_size: {type: categorical, choices: [8, 12, 15]}
        layerwise_lr_decay: {type: float, low: 0.8, high: 0.95}
        fgm_epsilon: {type: float, low: 0.0, high: 0.1, when: {peft.method: full}}
    resources: {num_workers: 2, gpus_per_worker: 0.5}
""")


def test_cross_field_mistakes_are_all_caught_by_validate_without_ray(tmp_path: Path) -> None:
    path = write(tmp_path, CROSS_FIELD)
    code = (
        "import sys; from raytune_llm.cli.main import main; rc = main(['validate', sys.argv[1]]); "
        "print('RAY_IMPORTED' if 'ray' in sys.modules else 'NO_RAY'); sys.exit(rc)"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "NO_RAY" in proc.stdout and "Traceback" not in proc.stderr
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    found = problems(exc)
    assert "NCCL" in found["resources.gpus_per_worker"]  # fractional GPUs, 2 workers per trial
    assert "[15]" in found["search.space.batch_size"]  # 15 does not split over 2 workers
    assert "data.answer_column" in found["search.metric"]
    assert "never measured" in found["generation.eval_samples"]
    assert "lora" in found["train.reinit_top_layers"] and "peft.method: full" in found["train.reinit_top_layers"]
    assert "prompt_tuning" in found["search.space.layerwise_lr_decay"]
    assert "search.space.fgm_epsilon" not in found  # conditioned on full fine-tuning: fine
    assert len(found) == 6
    assert all(p in proc.stderr for p in found)  # the CLI prints every one of them, with its YAML path


def test_a_lever_limited_to_full_fine_tuning_is_accepted() -> None:
    data = {"model": {"name": "m"}, "data": {"source": "d"},
            "search": {"space": {"peft.method": {"type": "categorical", "choices": ["full", "lora"]},
                                 "reinit_top_layers": {"type": "int", "low": 0, "high": 2,
                                                       "when": {"peft.method": "full"}}}},
            "resources": {"num_workers": 2, "gpus_per_worker": 1}}
    assert validate_dict(data).resources.gpus_per_worker == 1


def test_set_overrides_are_typed_and_validated(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    cfg = load_config(path, ["train.seed=7", "train.optimizer.lr=3e-5", "train.grad_clip=null"])
    assert cfg.train.seed == 7 and cfg.train.optimizer.lr == pytest.approx(3e-5) and cfg.train.grad_clip is None
    with pytest.raises(ConfigError) as exc:
        load_config(path, ["train.seed=abc", "train.nope=1"])
    assert set(problems(exc)) == {"train.seed", "train.nope"}
    with pytest.raises(ConfigError):
        load_config(path, ["justakey"])


def test_malformed_yaml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        load_config(write(tmp_path, "model: {name: x\ndata: [1,"))
    assert "malformed YAML" in str(exc.value) and "line" in str(exc.value)
    with pytest.raises(UserError, match="no such file"):
        load_config(tmp_path / "missing.yaml")


def test_every_shipped_search_space_validates() -> None:
    shipped = sorted((Path(__file__).resolve().parents[2] / "search_spaces").glob("*.yaml"))
    assert len(shipped) >= 3
    for path in shipped:
        head = path.read_text().splitlines()[:6]
        assert head[0].startswith("#"), f"{path.name} must start with a comment saying what it is"
        assert any("raytune-llm search" in line for line in head), f"{path.name}: header needs the run command"
        load_config(path)


def test_per_class_and_positive_class_objectives() -> None:
    from raytune_llm.runs.prepare import check_metric_labels

    base = {"model": {"name": "m"}, "data": {"source": "d"}}
    cfg = validate_dict({**base, "search": {"metric": "eval_f1_positive"}})
    assert cfg.search.mode == "max"
    check_metric_labels(cfg, ["negative", "positive"])
    with pytest.raises(UserError, match="names no label"):
        check_metric_labels(cfg, ["neg", "pos"])
    binary_f1 = validate_dict({**base, "search": {"metric": "eval_f1"}})
    check_metric_labels(binary_f1, ["no", "yes"])
    with pytest.raises(UserError, match="eval_macro_f1"):
        check_metric_labels(binary_f1, ["a", "b", "c"])
    with pytest.raises(ConfigError) as exc:
        validate_dict({**base, "task": "regression", "search": {"metric": "eval_f1_x"}})
    assert "not reported by task regression" in problems(exc)["search.metric"]


def test_a_tracker_whose_package_is_missing_is_refused_up_front(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in ("wandb", "mlflow")
                        else real(name, *a))
    data = {"model": {"name": "builtin:minilm"}, "data": {"source": "builtin:bbc_news"},
            "tracking": {"mlflow": {"enabled": True}, "wandb": {"enabled": True}, "tensorbord": True}}
    with pytest.raises(ConfigError) as exc:
        validate_dict(data)
    found = problems(exc)
    assert "unknown key" in found["tracking.tensorbord"]  # a typo in the section: the schema catches it
    data["tracking"].pop("tensorbord")
    with pytest.raises(ConfigError) as exc:
        validate_dict(data)
    found = problems(exc)
    assert "pip install mlflow-skinny" in found["tracking.mlflow.enabled"]
    assert "pip install wandb" in found["tracking.wandb.enabled"]


def test_trackers_default_to_tensorboard_and_the_optuna_journal() -> None:
    cfg = validate_dict({"model": {"name": "builtin:minilm"}, "data": {"source": "builtin:bbc_news"}})
    assert cfg.tracking.tensorboard and cfg.tracking.optuna_journal
    assert not cfg.tracking.mlflow.enabled and not cfg.tracking.wandb.enabled


def test_an_executor_asked_for_wrongly_hides_no_other_problem() -> None:
    data = {"model": {"name": "m"}, "data": {"source": "d"}, "train": {"batch_size": 15},
            "resources": {"executor": "tune", "num_workers": 2, "gpus_per_worker": 0.5}}
    with pytest.raises(ConfigError) as exc:
        validate_dict(data)
    assert {"resources.executor", "resources.gpus_per_worker", "train.batch_size"} <= set(problems(exc))
