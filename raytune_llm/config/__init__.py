"""An experiment YAML, loaded and checked: read, `--set` overrides applied, validated by the schema
(raytune_llm.schema), then by the cross-field rules (`rules`) and by every plug-in it uses (`plugins`), every
problem reported at once with its YAML path and the fix (`ConfigError`). This is what `validate` runs, and what
every command that reads a YAML runs first. It sits above every plug-in package, which is why it is not the schema;
everything it imports is light: validating stays instant.
"""

from raytune_llm.config.loading import experiment_problems, load_config, read_yaml, validate_dict

__all__ = ["experiment_problems", "load_config", "read_yaml", "validate_dict"]
