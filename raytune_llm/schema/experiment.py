"""The experiment YAML: the task, model, data, run and generation sections, and the whole experiment."""

from __future__ import annotations

from enum import Enum

import yaml
from pydantic import Field, model_validator

from raytune_llm.core.strict import Strict
from raytune_llm.schema.refit import RefitConfig
from raytune_llm.schema.resources import ResourcesConfig
from raytune_llm.schema.search import COST_METRICS, SearchConfig
from raytune_llm.schema.stability import StabilityConfig
from raytune_llm.schema.tracking import TrackingConfig
from raytune_llm.schema.train import TrainConfig


class Task(str, Enum):
    sequence_classification = "sequence_classification"
    regression = "regression"
    token_classification = "token_classification"
    causal_lm = "causal_lm"
    generative_classification = "generative_classification"


# What each task reports (eval_<name>), and its default objective. Kept here, not in the task modules, so that
# validating a config imports nothing heavy.
TASK_METRICS = {
    Task.sequence_classification: ["eval_accuracy", "eval_macro_f1", "eval_mcc", "eval_f1", "eval_loss"],
    Task.regression: ["eval_pearson", "eval_spearman", "eval_mse", "eval_loss"],
    Task.token_classification: ["eval_f1", "eval_precision", "eval_recall", "eval_accuracy", "eval_loss"],
    Task.causal_lm: ["eval_loss", "eval_perplexity", "eval_exact_match", "eval_bleu", "eval_rouge_l"],
    Task.generative_classification: ["eval_accuracy", "eval_macro_f1", "eval_mcc", "eval_f1", "eval_loss"],
}
# Classification also reports each class's precision, recall and F1 as eval_<kind>_<label name>.
PER_CLASS_PREFIXES = ("eval_precision_", "eval_recall_", "eval_f1_")
CLASSIFICATION_TASKS = (Task.sequence_classification, Task.generative_classification)
DEFAULT_OBJECTIVE = {
    Task.sequence_classification: ("eval_accuracy", "max"),
    Task.regression: ("eval_pearson", "max"),
    Task.token_classification: ("eval_f1", "max"),
    Task.causal_lm: ("eval_loss", "min"),
    Task.generative_classification: ("eval_accuracy", "max"),
}


class ModelConfig(Strict):
    name: str = Field(description="hub id, local directory, or builtin:<name>")
    revision: str | None = None
    max_length: int = Field(128, ge=8, le=32768)
    trust_remote_code: bool = False
    gguf_file: str | None = Field(None, description="a GGUF file in the model folder; converted once per search")


class DataConfig(Strict):
    source: str = Field(description="directory of split files, a save_to_disk dir, hub id, or builtin:<name>")
    subset: str | None = Field(None, description="hub dataset config name, e.g. sst2 for glue")
    train_split: str = "train"
    eval_split: str = "validation"
    test_split: str | None = "test"
    text_column: str = "text"
    text_pair_column: str | None = None
    label_column: str = "label"
    labels: list[str] | None = Field(None, description="label names; maps string labels, names int labels")
    max_train_samples: int | None = Field(None, ge=1)
    max_eval_samples: int | None = Field(None, ge=1)
    eval_holdout: int | None = Field(None, ge=1, description="rows of train to hold out as eval when the data "
                                     "has no eval split (seeded)")
    # causal_lm: the prompt is text_column (or prompt_template filled from the row), the response label_column.
    prompt_template: str | None = Field(None, description="e.g. 'Question: {instruction}\\nAnswer: '")
    chat_template: bool = Field(False, description="wrap the prompt in the tokenizer's chat template")
    answer_column: str | None = Field(None, description="the final answer, for exact match of generated answers")
    # generative_classification: the word each label is generated as, in label order (default: the label names).
    verbalizer: list[str] | None = None


class GenerationConfig(Strict):
    """causal_lm evaluation: greedy answers to the first eval rows, compared with data.answer_column."""

    eval_samples: int = Field(32, ge=0, description="eval rows answered by generation at each evaluation")
    max_new_tokens: int = Field(128, ge=1)
    answer_pattern: str | None = Field(None, description="regex whose group 1 is the answer in generated text, "
                                       "e.g. '####\\s*(\\S+)'; default: the whole generated text")



class RunConfig(Strict):
    name: str = Field("raytune-llm", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    storage_path: str = "./runs"
    keep_checkpoints: int = Field(1, ge=1, description="best checkpoints kept per trial (the latest is kept too)")
    prune_stopped: bool = Field(True, description="delete checkpoints of trials stopped early unless best so far")
    worker_retries: int = Field(2, ge=0, description="restarts of a trial's worker group from its last checkpoint")


class ExperimentConfig(Strict):
    task: Task = Task.sequence_classification
    model: ModelConfig
    data: DataConfig
    train: TrainConfig = TrainConfig()
    search: SearchConfig = SearchConfig()
    stability: StabilityConfig = StabilityConfig()
    resources: ResourcesConfig = ResourcesConfig()
    run: RunConfig = RunConfig()
    generation: GenerationConfig = GenerationConfig()
    tracking: TrackingConfig = TrackingConfig()
    refit: RefitConfig = RefitConfig()

    @model_validator(mode="after")
    def _task_objective(self) -> ExperimentConfig:
        metric, mode = DEFAULT_OBJECTIVE[self.task]
        known = TASK_METRICS[self.task]
        if self.search.metric is None:
            self.search.metric, self.search.mode = metric, self.search.mode or mode
        elif self.search.metric not in known and not (
                self.task in CLASSIFICATION_TASKS and self.search.metric.startswith(PER_CLASS_PREFIXES)):
            per_class = ", or eval_f1_<label> (also precision_, recall_)" if self.task in CLASSIFICATION_TASKS else ""
            raise ValueError(f"search.metric: {self.search.metric!r} is not reported by task {self.task.value}; "
                             f"choose from {known}{per_class}")
        for i, objective in enumerate(self.search.objectives):
            if objective.metric == self.search.metric or objective.metric in [
                    o.metric for o in self.search.objectives[:i]]:
                raise ValueError(f"search.objectives: {objective.metric!r} is listed twice (search.metric counts)")
            if objective.metric not in known and objective.metric not in COST_METRICS:
                raise ValueError(f"search.objectives: {objective.metric!r} is not reported by task "
                                 f"{self.task.value}; choose from {list(known) + list(COST_METRICS)}")
        if self.search.mode is None:
            self.search.mode = "min" if self.search.metric in ("eval_loss", "eval_mse", "eval_perplexity") else "max"
        return self


def dump_config(cfg: ExperimentConfig) -> str:
    """The experiment as YAML, every default written in."""
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
