"""File helpers: the one atomic write, claiming a resumable folder, file hashes, and reading a table of problems.

Every file heal-hf writes for itself (pool shards, manifests, run records, cards,
figures) goes through `atomic_write`: readers, and a run resumed after kill -9, see
the old file or the new one, never half of one. Every command that can continue its
work in a folder (train, demo, replicate, build-pool) claims it with `claim_folder`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path
from typing import Any

DATA_SUFFIXES = {".json": "json", ".jsonl": "json", ".csv": "csv", ".parquet": "parquet"}
"""Local file types `load_rows` reads, and the `datasets` builder of each."""


@contextlib.contextmanager
def atomic_write(path: str | Path) -> Iterator[Path]:
    """Yield a hidden temporary path beside `path`; on success fsync it and move it onto `path`.

    Write the file's content to the yielded path (any writer works: `write_text`,
    `pq.write_table`, `savefig(..., format=...)`). The temporary name,
    `.<name>.<pid>.tmp`, never matches `*.parquet` or `*.json` globs; on error it is
    removed and `path` is left as it was.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    if os.name == "posix":  # the rename itself survives a power cut once the folder is synced
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write UTF-8 `text` to `path` through `atomic_write`."""
    with atomic_write(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(path: str | Path, data: Any) -> None:
    """Write `data` as indented, key-sorted JSON to `path` through `atomic_write`."""
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def sha256_of(content: bytes | Path) -> str:
    """The hex sha256 of `content`: bytes, or a file read in 1 MiB blocks."""
    digest = hashlib.sha256()
    if isinstance(content, bytes):
        digest.update(content)
    else:
        with open(content, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def claim_folder(
    folder: str | Path,
    record: str,
    identity: Mapping[str, Any],
    resume: bool | None = None,
    *,
    key: str | None = None,
    ignore: Collection[str] = (),
    defaults: Mapping[str, Any] | None = None,
    what: str = "output_dir",
) -> dict[str, Any] | None:
    """Start a run in `folder`, or check that it continues the run already there.

    A run is known by its `identity` (JSON values), kept in the JSON file `folder/record`:
    the whole file, or its entry `key` when the record holds more (then the caller
    writes the record itself once the run has started).

    Args:
        resume: True: a run must be there to continue; False: the folder must be new or
            empty; None: continue the run there if any, else start one.
        ignore: identity entries a continuing run may change (e.g. the library version).
        defaults: values for entries a stored identity lacks (written before they existed).
        what: the option that names the folder (`output_dir`: --output-dir), first word of every error.

    Returns the stored record when continuing, None on a fresh start (with `key` None the
    folder is then created and the record written). Every refusal is a ValueError naming
    the fix, raised before anything in the folder is changed.
    """
    folder = Path(folder)
    path = folder / record
    new = f"a new --{what.replace('_', '-')}"  # the fix of most refusals: another folder
    if path.exists():
        if resume is False:
            raise ValueError(f"{what}: {folder} already holds another heal-hf run; pass --resume to continue it "
                             f"or choose {new}")
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
            theirs = {**(defaults or {}), **(stored if key is None else stored[key])}
        except (ValueError, KeyError, TypeError) as err:  # not JSON, or not a mapping holding the identity
            raise ValueError(f"{what}: {path} is corrupted ({type(err).__name__}: {err}); move it away or "
                             f"choose {new}") from None
        differ = sorted(k for k in set(theirs) | set(identity) if k not in ignore and theirs.get(k) != identity.get(k))
        if differ:
            details = "; ".join(f"{k}: {theirs.get(k)!r} there, {identity.get(k)!r} now" for k in differ)
            raise ValueError(f"{what}: {folder} holds a run made with other settings ({details}); continue it with "
                             f"the same settings or choose {new}")
        return stored
    if resume:
        raise ValueError(f"{what}: --resume needs a run in {folder}, but it has no {record}; drop --resume")
    ours = f".{record}."  # atomic_write's temporary: another process of this run may be writing the record now
    if folder.exists() and any(not p.name.startswith(ours) for p in folder.iterdir()):
        raise ValueError(f"{what}: {folder} is not empty and holds no {record}; choose {new} or an empty one "
                         "(nothing in it was changed)")
    if key is None:
        folder.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, dict(identity))
    return None
def write_figure_atomic(figure: Any, path: str | Path, dpi: int = 100) -> Path:
    """Save a matplotlib figure to `path` through `atomic_write`, in the format its suffix names (PNG without one)."""
    path = Path(path)
    with atomic_write(path) as tmp:
        figure.savefig(tmp, dpi=dpi, format=path.suffix.lstrip(".") or "png")
    return path


def load_rows(source: str | Path, split: str = "train", what: str = "dataset", config_name: str | None = None) -> Any:
    """A `datasets.Dataset` from a local .json/.jsonl/.csv/.parquet file, a local folder or a Hub id.

    Every way this can fail is a one-line ValueError starting with `what` that names
    the file and the fix: a missing file or folder, an empty or malformed file, an
    unknown Hub id or split, a table without rows.
    """
    import datasets

    path = Path(source)
    suffix = path.suffix.lower()
    if suffix in DATA_SUFFIXES or path.is_file():
        if not path.is_file():
            raise ValueError(f"{what}: no such file {path}; check the path")
        if suffix not in DATA_SUFFIXES:
            raise ValueError(f"{what}: {path} is not a .json, .jsonl, .csv or .parquet file; convert it or pass its folder")
        if suffix == ".jsonl":
            _check_json_lines(path, what)
        elif path.stat().st_size == 0:
            raise ValueError(f"{what}: {path} is empty; write one problem per row into it")
        try:
            ds = datasets.load_dataset(DATA_SUFFIXES[suffix], data_files=str(path), split="train")
        except Exception as err:  # datasets wraps parse errors of every format in its own types
            raise ValueError(f"{what}: cannot read {path} as {suffix[1:]} ({error_line(err)}); fix the file's "
                             f"format{' (one JSON object per line)' if suffix == '.jsonl' else ''}") from None
    else:
        looks_local = path.is_absolute() or str(source).startswith((".", "~")) or str(source).count("/") > 1
        if looks_local and not path.exists():
            raise ValueError(f"{what}: no such folder {path}; check the path (a Hub id looks like user/name)")
        try:
            ds = datasets.load_dataset(str(source), config_name, split=split)
        except Exception as err:  # offline, missing repo or split, unreadable folder: say which input failed
            raise ValueError(f"{what}: cannot load {str(source)!r} split {split!r} ({error_line(err)}); "
                             "pass a data file, a dataset folder or a Hub dataset id") from None
    if len(ds) == 0:
        raise ValueError(f"{what}: {source} has no rows; it needs at least one problem")
    return ds


def _check_json_lines(path: Path, what: str) -> None:
    """ValueError naming the first line of a .jsonl file that is not a JSON object, or an empty file."""
    rows = 0
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as err:
                raise ValueError(f"{what}: {path} line {number} is not JSON ({err}); fix that line "
                                 "(one JSON object per line)") from None
            if not isinstance(row, dict):
                raise ValueError(f"{what}: {path} line {number} is a JSON {type(row).__name__}, not an object; "
                                 'write one {"prompt": ..., "answer": ...} object per line')
            rows += 1
    if rows == 0:
        raise ValueError(f"{what}: {path} is empty; write one problem per row into it")


def error_line(err: BaseException, limit: int = 300) -> str:
    """The first line of the innermost error behind `err` (datasets' own wrappers say little), shortened."""
    while err.__cause__ is not None or err.__context__ is not None:
        err = err.__cause__ or err.__context__
    lines = str(err).strip().splitlines()
    line = lines[0] if lines else type(err).__name__
    return line if len(line) <= limit else line[: limit - 3] + "..."
