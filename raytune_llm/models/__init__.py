"""The model a trial trains: built from the user's pretrained weights (`build`, `pretrained`), wrapped by its PEFT
method (`peft_methods`, a registry), with a 4-/8-bit frozen base for QLoRA (`quantization`). Nothing heavy is
imported until a model is built."""
