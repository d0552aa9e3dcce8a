"""The experiment YAML as pydantic models. Unknown keys are errors; nothing heavy is imported here."""

from __future__ import annotations

from enum import Enum
from typing import Literal

from pydantic import Field, field_validator, model_validator

from raytune_llm.core.strict import Strict
from raytune_llm.schema.search import (  # noqa: F401 - re-exported: the search section's models live there
    COST_METRICS,
    Bounds,
    CategoricalParam,
    FloatParam,
    IntParam,
    Objective,
    Param,
    SearchConfig,
)
from raytune_llm.schema.tracking import TrackingConfig


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


class PeftMethod(str, Enum):
    full = "full"
    lora = "lora"
    prompt_tuning = "prompt_tuning"
    prefix_tuning = "prefix_tuning"


# ---------------------------------------------------------------- model and data


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


# ---------------------------------------------------------------- fixed training settings


class OptimizerConfig(Strict):
    lr: float = Field(5e-5, ge=0)
    weight_decay: float = Field(0.01, ge=0)
    beta1: float = Field(0.9, ge=0, lt=1)
    beta2: float = Field(0.999, ge=0, lt=1)
    eps: float = Field(1e-8, gt=0)


class ScheduleConfig(Strict):
    name: Literal["linear", "cosine", "constant_with_warmup", "cyclic"] = "linear"
    warmup_ratio: float = Field(0.0, ge=0, le=1)
    cycles: int = Field(2, ge=1, description="cyclic: cosine cycles with hard restarts")


class DropoutConfig(Strict):
    """None keeps the pretrained model's own value."""

    hidden: float | None = Field(None, ge=0, lt=1)
    attention: float | None = Field(None, ge=0, lt=1)
    classifier: float | None = Field(None, ge=0, lt=1)


class LoraConfig(Strict):
    r: int = Field(8, ge=1, le=1024)
    alpha: float = Field(16, gt=0)
    dropout: float = Field(0.05, ge=0, lt=1)
    targets: str | list[str] = Field(
        "qv", description="preset (qv, attention, all-linear) or a list of module names"
    )


class PromptTuningConfig(Strict):
    num_virtual_tokens: int = Field(20, ge=1, le=1024)
    init: Literal["random", "text"] = "random"
    init_text: str | None = None

    @model_validator(mode="after")
    def _text_needs_init_text(self) -> PromptTuningConfig:
        if self.init == "text" and not self.init_text:
            raise ValueError("init: text needs init_text (the words the prompt starts from)")
        return self


class PrefixTuningConfig(Strict):
    num_virtual_tokens: int = Field(20, ge=1, le=1024)
    projection: bool = False


class QuantizationConfig(Strict):
    """The frozen base model's weights in 4 or 8 bits (bitsandbytes; QLoRA with bits 4, nf4, double_quant)."""

    bits: Literal[4, 8] = 4
    quant_type: Literal["nf4", "fp4"] = Field("nf4", description="4-bit data type")
    double_quant: bool = Field(True, description="quantise the quantisation constants too (~0.4 bit/param less)")
    compute_dtype: Literal["bf16", "fp16"] = Field("bf16", description="what the quantised layers compute in")


class PeftConfig(Strict):
    method: PeftMethod = PeftMethod.full
    lora: LoraConfig = LoraConfig()
    prompt_tuning: PromptTuningConfig = PromptTuningConfig()
    prefix_tuning: PrefixTuningConfig = PrefixTuningConfig()
    quantization: QuantizationConfig | None = Field(
        None, description="PEFT methods: the frozen base in 4/8 bits on a CUDA GPU (pip install raytune-llm[quant])")


class TrainConfig(Strict):
    """Everything a single training run needs; search-space keys are paths into this."""

    epochs: float = Field(1.0, gt=0)
    max_steps: int | None = Field(None, ge=1, description="overrides epochs when set")
    batch_size: int = Field(16, ge=1, description="global batch per optimizer step, split over workers")
    micro_batch_size: int | Literal["auto"] | None = Field(
        None, description="rows a worker computes at once (gradient accumulation up to its batch_size/num_workers "
        "rows, the last micro-batch may be smaller); auto: the whole share, halved on out-of-memory "
        "(single-worker trials); null: no accumulation")
    group_by_length: bool = Field(False, description="batch rows of similar length together: less padding")
    gradient_checkpointing: bool = Field(False, description="recompute activations in backward: far less "
                                         "activation memory for about a third more compute per step")
    eval_batch_size: int = Field(64, ge=1)
    eval_every: int = Field(50, ge=1, description="steps between evaluations (one Tune iteration)")
    seed: int = 42
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="autocast: auto = bf16 on a GPU that has it, else fp32; fp16 with loss scaling")
    grad_clip: float | None = Field(1.0, gt=0, description="max gradient norm; null disables clipping")
    optimizer: OptimizerConfig = OptimizerConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    dropout: DropoutConfig = DropoutConfig()
    peft: PeftConfig = PeftConfig()
    # Stability levers (all off by default).
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    layerwise_lr_decay: float | None = Field(None, gt=0, le=1, description="lr x decay^(layers above)")
    reinit_top_layers: int = Field(0, ge=0, description="re-initialise the top N transformer layers")
    l2sp: float = Field(0.0, ge=0, description="weight of ||w - w_pretrained||^2 in the loss")
    freeze_bottom_layers: int = Field(0, ge=0, description="embeddings + bottom N layers stay frozen")
    unfreeze_every: int | None = Field(None, ge=1, description="gradual unfreezing: steps per layer, top down")
    fgm_epsilon: float = Field(0.0, ge=0, description="FGM adversarial perturbation of the embeddings")

    @field_validator("micro_batch_size", mode="before")
    @classmethod
    def _micro_batch_size(cls, value: object) -> object:
        if value is None or value == "auto" or (type(value) is int and value >= 1):
            return value
        raise ValueError(f"must be a number of rows (1 or more), auto, or null; got {value!r}")


# ---------------------------------------------------------------- stability guard


class LossSpikeConfig(Strict):
    enabled: bool = True
    factor: float = Field(3.0, gt=1, description="smoothed loss / its running minimum")
    smoothing: float = Field(0.9, ge=0, lt=1, description="EMA factor of the train loss")
    min_rise: float = Field(0.1, ge=0, description="and at least this far above the minimum")


class GradExplosionConfig(Strict):
    enabled: bool = True
    factor: float = Field(20.0, gt=1, description="grad norm / median of recent grad norms")
    window: int = Field(50, ge=5)
    patience: int = Field(3, ge=1, description="steps in a row above the threshold")


class ChanceLevelConfig(Strict):
    enabled: bool = True
    at_fraction: float = Field(0.25, gt=0, le=1, description="first check, as a fraction of the trial's steps")
    margin: float = Field(0.02, ge=0, description="the chance metric (MCC, Pearson, entity F1) must beat its "
                          "chance level by this much")
    loss_margin: float = Field(0.01, ge=0, description="relative: eval loss this far below the constant "
                               "prediction's, or a loss falling this much, means 'still learning'")
    patience: int = Field(3, ge=1, description="evaluations over which a falling loss counts as still learning")
    population: bool = Field(True, description="also wait while no other trial of the search has left chance by "
                             "the same point of its budget (relative early stopping)")


class PlateauConfig(Strict):
    enabled: bool = False
    patience: int = Field(3, ge=1, description="evaluations without improvement")
    min_delta: float = Field(0.0, ge=0)


class StabilityConfig(Strict):
    enabled: bool = True
    min_steps: int = Field(10, ge=0, description="step detectors wait at least this long (and for warmup)")
    loss_spike: LossSpikeConfig = LossSpikeConfig()
    grad_explosion: GradExplosionConfig = GradExplosionConfig()
    chance_level: ChanceLevelConfig = ChanceLevelConfig()
    plateau: PlateauConfig = PlateauConfig()


# ---------------------------------------------------------------- resources and run


class ResourcesConfig(Strict):
    num_workers: int = Field(1, ge=1, description="DDP workers per trial")
    cpus_per_worker: float = Field(1, gt=0)
    gpus_per_worker: float = Field(0, ge=0)
    driver_cpus: float = Field(0.1, gt=0, description="CPU share of the trial's Tune driver")
    torch_threads: int | None = Field(1, ge=1, description="torch threads per worker; null = torch default")
    placement_strategy: Literal["PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"] = Field(
        "PACK", description="how a trial's workers are placed on nodes (Ray placement group strategy)")
    start_timeout_s: float | None = Field(
        900, gt=0, description="how long a trial may wait for its workers' resources (asking again every 30 s) "
        "before it errors; null = for as long as the search runs")
    strategy: Literal["ddp", "fsdp"] = Field(
        "ddp", description="how a multi-worker trial splits the work: ddp replicates the model on every worker, "
        "fsdp shards weights, gradients and optimizer state over them (full fine-tuning of large models)")
    memory_check: Literal["error", "warn", "off"] = Field(
        "error", description="before a search: a PEFT variant whose estimated memory per worker exceeds what a "
        "worker has is an error (warn: a warning)")
    executor: Literal["auto", "tune", "train"] = Field(
        "auto", description="where a trial trains: tune = inside its Tune trial's process, which is reused for the "
        "next trial (one worker; fast start); train = a Ray Train DDP job of num_workers processes; auto = tune for "
        "one worker, train for more")

    @property
    def in_process(self) -> bool:
        """Whether a trial trains in its Tune trial's own process (raytune_llm.executors.inprocess)."""
        return self.executor == "tune" or (self.executor == "auto" and self.num_workers == 1)

    @property
    def trial_cpus(self) -> float:
        """CPUs one trial holds: its one process, or its workers plus the Tune driver that waits for them."""
        if self.in_process:
            return self.cpus_per_worker
        return self.num_workers * self.cpus_per_worker + self.driver_cpus

    @property
    def trial_gpus(self) -> float:
        return self.num_workers * self.gpus_per_worker


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
