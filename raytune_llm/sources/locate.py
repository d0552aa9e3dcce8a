"""Where the user's model is: a built-in (`builtin:minilm`), a local folder or `.gguf` file, or a hub id."""

from __future__ import annotations

from pathlib import Path

from raytune_llm.core.errors import UserError
from raytune_llm.sources import builtins


def locate_model(name: str) -> str:
    """A local folder or built-in name becomes a checked path; anything else is taken as a hub id."""
    if name.startswith(builtins.PREFIX):
        return str(builtins.models.get(name.removeprefix(builtins.PREFIX))())
    path = Path(name).expanduser()
    if path.suffix == ".gguf" and path.is_file():
        return str(path.resolve())
    if path.exists() or name.startswith((".", "/", "~")):
        if not (path / "config.json").is_file() and not list(path.glob("*.gguf")):
            raise UserError(f"model.name: {name} is not a model folder (no config.json); pass a folder written by "
                            "save_pretrained, a .gguf file, a hub id, or builtin:minilm")
        return str(path.resolve())
    return name
