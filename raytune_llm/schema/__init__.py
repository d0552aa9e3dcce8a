"""The experiment YAML as pydantic models: unknown keys are errors, every field checks its own range. One module
per section (`experiment` holds the whole and the task, model, data, run and generation sections), the search
space's params and how sampled values are applied (`space`). Nothing heavy is imported here: validating a config
must stay instant. Checks that span sections, and every plug-in's own checks, run in raytune_llm.config."""

from raytune_llm.schema.experiment import (
    CLASSIFICATION_TASKS,
    DEFAULT_OBJECTIVE,
    PER_CLASS_PREFIXES,
    TASK_METRICS,
    DataConfig,
    ExperimentConfig,
    GenerationConfig,
    ModelConfig,
    RunConfig,
    Task,
    dump_config,
)
from raytune_llm.schema.refit import RefitConfig
from raytune_llm.schema.resources import ResourcesConfig
from raytune_llm.schema.search import (
    COST_METRICS,
    Bounds,
    CategoricalParam,
    FloatParam,
    IntParam,
    Objective,
    Param,
    SearchConfig,
)
from raytune_llm.schema.stability import (
    ChanceLevelConfig,
    GradExplosionConfig,
    LossSpikeConfig,
    PlateauConfig,
    StabilityConfig,
)
from raytune_llm.schema.tracking import MLflowConfig, TrackingConfig, WandbConfig
from raytune_llm.schema.train import (
    DropoutConfig,
    LoraConfig,
    OptimizerConfig,
    PeftConfig,
    PeftMethod,
    PrefixTuningConfig,
    PromptTuningConfig,
    QuantizationConfig,
    ScheduleConfig,
    TrainConfig,
)

__all__ = [
    "CLASSIFICATION_TASKS", "COST_METRICS", "DEFAULT_OBJECTIVE", "PER_CLASS_PREFIXES", "TASK_METRICS", "Bounds",
    "CategoricalParam", "ChanceLevelConfig", "DataConfig", "DropoutConfig", "ExperimentConfig", "FloatParam",
    "GenerationConfig", "GradExplosionConfig", "IntParam", "LoraConfig", "LossSpikeConfig", "MLflowConfig",
    "ModelConfig", "Objective", "OptimizerConfig", "Param", "PeftConfig", "PeftMethod", "PlateauConfig",
    "PrefixTuningConfig", "PromptTuningConfig", "QuantizationConfig", "RefitConfig", "ResourcesConfig", "RunConfig",
    "ScheduleConfig", "SearchConfig", "StabilityConfig", "Task", "TrackingConfig", "TrainConfig", "WandbConfig",
    "dump_config",
]
