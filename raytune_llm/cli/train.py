"""`raytune-llm train FILE`: one training run of fixed settings (e.g. an exported best_config.yaml)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from raytune_llm.config.loading import load_config
from raytune_llm.core.errors import UserError
from raytune_llm.core.outcomes import ended_at_chance, is_failure, real_value
from raytune_llm.core.stops import AT_CHANCE, advice


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="run one training job with the fixed settings of a YAML (no search)",
                       epilog="example: raytune-llm train best-model/best_config.yaml --out retrained")
    p.add_argument("file")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--out", type=Path, default=None, help="also write the best checkpoint's model here")
    p.add_argument("--address", default=None, help="Ray cluster to join; default: start one locally")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args.file, args.overrides)
    from raytune_llm.core import storage
    from raytune_llm.executors.env import HISTORY_FILE, last_report
    from raytune_llm.executors.train import EvalHistory, build_trainer
    from raytune_llm.results.export import write_model
    from raytune_llm.runs.prepare import prepare_run
    from raytune_llm.search.driver import connect, train_template

    run_dir, info = prepare_run(cfg, args.address)
    print(f"run folder: {info.run_root}")
    connect(cfg, args.address)
    history = storage.join(info.run_root, HISTORY_FILE)
    trainer = build_trainer(train_template(cfg, info), cfg.resources, storage.join(info.run_root, "train"),
                            "single", cfg.run, [EvalHistory(history)])
    result = trainer.fit()
    metric, mode = cfg.search.metric, cfg.search.mode
    reports = result.best_checkpoints
    final = dict(result.metrics or {}) or last_report(history)
    if not reports:
        reason = final.get("stop_reason") or "no evaluation"
        raise UserError(f"the run stopped at step {final.get('step')} as {reason} ({final.get('stop_detail', '')}) "
                        f"before its first evaluation: nothing to keep; see {info.run_root}")
    from raytune_llm.results.choice import best_report

    metrics = best_report([m for _, m in reports], metric, mode)
    checkpoint = next(c for c, m in reports if m is metrics)
    healthy = not is_failure(metrics.get("stop_reason", ""))
    (run_dir / "metrics.json").write_text(json.dumps({**metrics, "final": final, "history": HISTORY_FILE}, indent=2))
    if storage.is_uri(info.run_root):
        storage.put_file(run_dir / "metrics.json", storage.join(info.run_root, "metrics.json"))
    if reason := final.get("stop_reason"):
        print(f"the stability guard stopped the run at step {final.get('step')}: {reason} "
              f"({final.get('stop_detail', '')})" + ("" if healthy else "; no healthy checkpoint"))
    print(f"best {metric}: {real_value(metrics, metric):.4f} at step {metrics['step']} ({checkpoint.path})")
    if ended_at_chance(final):
        print(f"warning: the run never left chance level ({info.chance_metric} stayed within "
              f"stability.chance_level.margin of {info.chance_value:.3g}): it learnt nothing; {advice(AT_CHANCE)}")
    if args.out:
        local = Path(checkpoint.to_directory()) if storage.is_uri(info.run_root) else Path(checkpoint.path)
        write_model(info, cfg.train.peft.method, local, args.out, merge=True)
        print(f"model written to {args.out}")
    return 0
