"""Run folders on a cloud URI (s3://, gs://, ... any pyarrow filesystem) as well as on local or shared disks.

A local or shared path is used in place. For a URI:
- `search` prepares the run (tokenizer, tokenised data, a converted model) in a local staging folder and uploads
  it to URI/<run.name>; Tune and Train write their results and checkpoints there themselves.
- Each node copies what trials read (tokenizer, data, model) once into a node-local cache (`node_copy`), so a
  trial starts from local disk and the bucket is read once per node, not once per trial.
- `status`, `export`, `resume` and `robust` read a local mirror of the run folder without its checkpoints
  (`mirror`); `export` fetches only the checkpoint it exports.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from raytune_llm.core.errors import UserError

if TYPE_CHECKING:
    import pyarrow.fs

CACHE_ROOT = Path(os.environ.get("RAYTUNE_LLM_CACHE", Path(tempfile.gettempdir()) / "raytune-llm-cache"))
_DONE = ".complete"
# A checkpoint being written, staged beside its final place (local storage) before the session reports it.
STAGING_PREFIX = "rtl-ckpt-"
# Folders a mirror leaves out: Train's checkpoints (the search's and the robustness runs') and the prepared inputs
# (and, wherever they are, checkpoint_* folders: export fetches the one it needs).
_NOT_MIRRORED = ("train", "prepared", "robust/train")


def is_uri(path: str | os.PathLike) -> bool:
    return "://" in str(path)


def join(base: str, *parts: str) -> str:
    return "/".join([str(base).rstrip("/"), *parts])


def filesystem(uri: str) -> tuple[pyarrow.fs.FileSystem, str]:
    import pyarrow.fs

    try:
        return pyarrow.fs.FileSystem.from_uri(uri)
    except (pyarrow.lib.ArrowInvalid, pyarrow.lib.ArrowNotImplementedError, OSError) as exc:
        raise UserError(f"run.storage_path: cannot open {uri}: {exc}; check the scheme and credentials") from None


def exists(uri: str) -> bool:
    import pyarrow.fs

    fs, path = filesystem(uri)
    return fs.get_file_info(path).type != pyarrow.fs.FileType.NotFound


def upload(local_dir: Path, uri: str) -> None:
    import pyarrow.fs

    fs, path = filesystem(uri)
    fs.create_dir(path, recursive=True)
    pyarrow.fs.copy_files(str(local_dir), path, source_filesystem=pyarrow.fs.LocalFileSystem(),
                          destination_filesystem=fs)


def download(uri: str, local_dir: Path, skip: tuple[str, ...] = (), skip_checkpoints: bool = False) -> None:
    """Copy a remote folder into `local_dir`, leaving out the sub-folders in `skip` (paths relative to it) and,
    with `skip_checkpoints`, every checkpoint_* folder (an in-process trial keeps them in its own folder)."""
    import pyarrow.fs

    fs, root = filesystem(uri)
    root = root.rstrip("/")
    infos = fs.get_file_info(pyarrow.fs.FileSelector(root, recursive=True, allow_not_found=True))
    for info in infos:
        rel = info.path[len(root):].lstrip("/")
        if info.type != pyarrow.fs.FileType.File or any(rel.startswith(f"{s}/") for s in skip):
            continue
        if skip_checkpoints and "/checkpoint_" in f"/{rel}":
            continue
        target = local_dir / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        with fs.open_input_stream(info.path) as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst)


def _cache_dir(kind: str, uri: str) -> Path:
    return CACHE_ROOT / kind / hashlib.sha256(uri.encode()).hexdigest()[:16]


def input_cache(path: str, run_id: str) -> Path:
    """Where this node keeps its copy of one run's remote input folder."""
    return _cache_dir("inputs", f"{path}#{run_id}")


def node_copy(path: str, run_id: str = "") -> str:
    """A local path for `path`: itself when local, else this node's cached copy of the remote folder, made once
    (under a file lock, so concurrent trials on one node download it once). The copy belongs to one run
    (`run_id`): a run folder removed and made again under the same URI never gets the old run's inputs."""
    if not is_uri(path):
        return path
    from filelock import FileLock

    target = input_cache(path, run_id)
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if not (target / _DONE).exists():
            shutil.rmtree(target, ignore_errors=True)
            download(path, target)
            (target / _DONE).touch()
    return str(target)


def mirror(uri: str) -> Path:
    """A fresh local copy of a remote run folder's metadata and results (no checkpoints, no prepared inputs)."""
    if not exists(uri):
        raise UserError(f"{uri}: no such run folder")
    target = _cache_dir("mirrors", uri)
    shutil.rmtree(target, ignore_errors=True)
    download(uri, target, skip=_NOT_MIRRORED, skip_checkpoints=True)
    return target


def fetch_checkpoint(run_root: str, checkpoint_path: str) -> Path:
    """A local copy of one checkpoint of a remote run. A report gives a checkpoint's path without the URI's scheme
    (Train's, and ours for in-process trials), so the checkpoint is located by its path below the run folder."""
    name = run_root.rstrip("/").rsplit("/", 1)[-1]
    marker = f"/{name}/"
    if marker not in checkpoint_path:
        raise UserError(f"checkpoint {checkpoint_path} is not inside run {run_root}")
    rel = checkpoint_path.split(marker, 1)[1]
    uri = join(run_root, rel)
    target = _cache_dir("checkpoints", uri)
    if not (target / _DONE).exists():
        shutil.rmtree(target, ignore_errors=True)
        download(uri, target)
        if not target.is_dir():
            raise UserError(f"the checkpoint {uri} is gone; re-run the trial with `raytune-llm train`")
        (target / _DONE).touch()
    return target


def remove_checkpoints(train_root: str, trial_id: str, staged_only: bool = False) -> None:
    """Delete the checkpoint_* folders of one trial (not Train's snapshot file), locally or remotely, and what its
    processes staged and never reported (`staged_only`: only that)."""
    import pyarrow.fs

    fs, root = filesystem(train_root) if is_uri(train_root) else (pyarrow.fs.LocalFileSystem(), train_root)
    selector = pyarrow.fs.FileSelector(f"{root.rstrip('/')}/{trial_id}", allow_not_found=True)
    prefixes = (STAGING_PREFIX,) if staged_only else ("checkpoint_", STAGING_PREFIX)
    for info in fs.get_file_info(selector):
        if info.type == pyarrow.fs.FileType.Directory and info.base_name.startswith(prefixes):
            with contextlib.suppress(FileNotFoundError):  # gone meanwhile: a staging folder its process cleaned up
                fs.delete_dir(info.path)


def read_text(path: str) -> str:
    """A text file's contents, local or on a URI; "" when it is not there (yet)."""
    if is_uri(path):
        fs, fs_path = filesystem(path)
        try:
            with fs.open_input_stream(fs_path) as src:
                return src.read().decode()
        except OSError:
            return ""
    return Path(path).read_text() if Path(path).is_file() else ""


def put_file(local_file: Path, uri: str) -> None:
    fs, path = filesystem(uri)
    with open(local_file, "rb") as src, fs.open_output_stream(path) as dst:
        shutil.copyfileobj(src, dst)
