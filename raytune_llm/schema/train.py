"""The `train:` section: everything one training run needs (the search space's keys are paths into it)."""

from __future__ import annotations

from enum import Enum
from typing import Literal

from pydantic import Field, field_validator, model_validator

from raytune_llm.core.strict import Strict


class PeftMethod(str, Enum):
    full = "full"
    lora = "lora"
    prompt_tuning = "prompt_tuning"
    prefix_tuning = "prefix_tuning"


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


class AugmentConfig(Strict):
    """Text augmentation of the train split, each epoch's rows edited anew (seeded by train.seed, the epoch and the
    row): EDA's four word operations (Wei & Zou 2019) or token cutoff (Shen et al. 2020)."""

    method: Literal["none", "eda", "swap", "delete", "insert", "synonym", "cutoff"] = Field(
        "none", description="eda: one of swap, delete, insert, synonym per edited row; cutoff: a random span of "
        "tokens masked out; none: off")
    alpha: float = Field(0.1, gt=0, le=0.5, description="share of a row's words changed (cutoff: of its tokens)")
    probability: float = Field(0.5, ge=0, le=1, description="share of the rows edited each epoch (the rest as "
                               "they are)")
    synonyms: int = Field(5, ge=1, le=50, description="synonym, insert: candidates per word, its nearest whole "
                          "words in the pretrained model's input embeddings")


class ConsistencyConfig(Strict):
    """Consistency regularisation between two dropout passes of each row (R-Drop, Liang et al. 2021)."""

    alpha: float = Field(0.0, ge=0, description="weight of the symmetric KL between the two passes' predictions "
                         "(regression: their squared difference); 0: off")


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
    augment: AugmentConfig = AugmentConfig()
    consistency: ConsistencyConfig = ConsistencyConfig()

    @field_validator("micro_batch_size", mode="before")
    @classmethod
    def _micro_batch_size(cls, value: object) -> object:
        if value is None or value == "auto" or (type(value) is int and value >= 1):
            return value
        raise ValueError(f"must be a number of rows (1 or more), auto, or null; got {value!r}")

