"""Stage and publish heal-hf's Hub repositories.

`stage_hub(out)` writes the exact folders users get from the Hub:

    out/datasets/<ns>/general-entropy-pool   the general-entropy pool (card, data/*.parquet, pool_build.json)
    out/spaces/<ns>/eda                      the evaluate metric `<ns>/eda` (a Gradio Space)
    out/spaces/<ns>/entropy_dynamics         the evaluate measurement `<ns>/entropy_dynamics`
    out/models/<ns>/toy-reasoner             the toy reasoner, once it is bundled
    out/spaces/<ns>/entropy-explorer         the Entropy Explorer Space, once it exists

`publish(...)` creates those repositories and uploads the folders with huggingface_hub.
With another namespace, mentions of `heal/<repo>` in the Spaces' and the pool card's
texts are re-pointed at it; the model's files are copied as they are (its
MANIFEST.json pins their sha256).

Staging never overwrites what it did not write: `out/.heal-hf-stage.json` records the
sha256 of every file stage_hub wrote, and a repo folder holding any other file (or a
staged file edited since) stops the run before anything is changed.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .cards import pool_card_text
from .files import atomic_write, write_json_atomic
from .metrics import EDA_METRIC_PATH, ENTROPY_DYNAMICS_PATH
from .pool import DATA_DIR, MANIFEST_NAME, bundled_pool_path, build_shard_paths, load_pool

DEFAULT_NAMESPACE = "heal"
STAGE_MANIFEST = ".heal-hf-stage.json"
POOL_NAME = "general-entropy-pool"
TOY_REASONER_NAME = "toy-reasoner"
EXPLORER_NAME = "entropy-explorer"
_REPO_NAMES = ("eda", "entropy_dynamics", POOL_NAME, TOY_REASONER_NAME, EXPLORER_NAME)
_TEXT_SUFFIXES = {".md", ".py", ".txt", ".json", ".yaml", ".yml", ".toml"}
_SKIP_PARTS = {"__pycache__", ".git", ".ipynb_checkpoints"}


@dataclass(frozen=True)
class StagedRepo:
    """One Hub repository as staged: its id, type, folder and files (paths relative to the folder)."""

    repo_id: str
    repo_type: str  # "dataset" | "space" | "model"
    folder: Path
    files: tuple[str, ...]
    space_sdk: str | None = None


@dataclass
class _Plan:
    repo_type: str
    name: str
    files: dict[str, bytes | Path] = field(default_factory=dict)  # relative path -> content or source file
    space_sdk: str | None = None


def toy_reasoner_dir() -> Path:
    """Where the bundled toy reasoner lives (`heal_hf/toy/assets/toy-reasoner`)."""
    return Path(__file__).parent / "toy" / "assets" / TOY_REASONER_NAME


def explorer_space_dir() -> Path:
    """The Entropy Explorer Space in a source checkout (`spaces/entropy-explorer` beside the package)."""
    return Path(__file__).resolve().parent.parent / "spaces" / EXPLORER_NAME


def _check_namespace(namespace: str) -> None:
    if not re.fullmatch(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?", namespace or "") or ".." in namespace:
        raise ValueError(
            f"namespace: {namespace!r} is not a valid Hub user or organization name "
            "(letters, digits, '-', '_', '.'; no leading or trailing punctuation)"
        )


def _with_namespace(text: str, namespace: str) -> str:
    """Point `heal/<repo>` mentions of heal-hf's own repos at `namespace`."""
    if namespace == DEFAULT_NAMESPACE:
        return text
    names = "|".join(re.escape(n) for n in _REPO_NAMES)
    return re.sub(rf"(?<![\w./-]){DEFAULT_NAMESPACE}/({names})(?![\w-])", rf"{namespace}/\1", text)


def _folder_files(folder: Path, namespace: str) -> dict[str, bytes | Path]:
    """Every regular file under `folder` (no caches or VCS data), text files re-pointed at `namespace`
    (unchanged for the default namespace)."""
    files: dict[str, bytes | Path] = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if not path.is_file() or _SKIP_PARTS & set(rel.parts) or path.suffix == ".pyc":
            continue
        if path.suffix in _TEXT_SUFFIXES and namespace != DEFAULT_NAMESPACE:
            files[rel.as_posix()] = _with_namespace(path.read_text(encoding="utf-8"), namespace).encode("utf-8")
        else:
            files[rel.as_posix()] = path
    return files


def plan_repos(
    namespace: str = DEFAULT_NAMESPACE,
    pool_dir: str | Path | None = None,
    toy_dir: str | Path | None = None,
    explorer_dir: str | Path | None = None,
) -> tuple[list[_Plan], list[str]]:
    """What stage_hub would write: the repos found, and one line per repo skipped (and why)."""
    _check_namespace(namespace)
    plans: list[_Plan] = []
    skipped: list[str] = []
    pool = Path(pool_dir) if pool_dir is not None else bundled_pool_path()
    if (pool / MANIFEST_NAME).exists():
        load_pool(pool)  # complete, readable, finalized: a clear error otherwise
        files: dict[str, bytes | Path] = {
            "README.md": pool_card_text(pool, repo_id=f"{namespace}/{POOL_NAME}").encode("utf-8"),
            MANIFEST_NAME: pool / MANIFEST_NAME,
        }
        files.update({f"{DATA_DIR}/{p.name}": p for p in build_shard_paths(pool)})
        plans.append(_Plan("dataset", POOL_NAME, files))
    elif pool_dir is not None:
        raise ValueError(f"pool: {pool} holds no {MANIFEST_NAME}; pass a folder written by `heal-hf build-pool`")
    else:
        skipped.append(f"datasets/{namespace}/{POOL_NAME}: no bundled pool at {pool} yet (pass --pool DIR)")
    for path in (EDA_METRIC_PATH, ENTROPY_DYNAMICS_PATH):
        plans.append(_Plan("space", Path(path).name, _folder_files(Path(path), namespace), space_sdk="gradio"))
    toy = Path(toy_dir) if toy_dir is not None else toy_reasoner_dir()
    if (toy / "config.json").exists():
        # Byte for byte, whatever the namespace: the toy's MANIFEST.json pins every file's sha256.
        plans.append(_Plan("model", TOY_REASONER_NAME, _folder_files(toy, DEFAULT_NAMESPACE)))
    elif toy_dir is not None:
        raise ValueError(f"toy: {toy} holds no config.json; pass a folder written by save_pretrained")
    else:
        skipped.append(f"models/{namespace}/{TOY_REASONER_NAME}: the toy reasoner is not bundled at {toy} yet")
    explorer = Path(explorer_dir) if explorer_dir is not None else explorer_space_dir()
    if (explorer / "app.py").exists() and (explorer / "README.md").exists():
        plans.append(_Plan("space", EXPLORER_NAME, _folder_files(explorer, namespace), space_sdk="gradio"))
    elif explorer_dir is not None:
        raise ValueError(f"space: {explorer} needs app.py and README.md (a Gradio Space)")
    else:
        skipped.append(f"spaces/{namespace}/{EXPLORER_NAME}: no Space at {explorer} yet (pass --space DIR)")
    return plans, skipped


def _sha256(data: bytes | Path) -> str:
    digest = hashlib.sha256()
    if isinstance(data, bytes):
        digest.update(data)
    else:
        with open(data, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _read_stage_manifest(out: Path) -> dict[str, list[str]]:
    path = out / STAGE_MANIFEST
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))["files"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise ValueError(f"out: {path} is corrupt ({err}); move {out} away and stage into a new folder") from None


def _repo_folder(out: Path, plan: _Plan, namespace: str) -> Path:
    return out / f"{plan.repo_type}s" / namespace / plan.name


def stage_hub(
    out: str | Path,
    namespace: str = DEFAULT_NAMESPACE,
    pool_dir: str | Path | None = None,
    toy_dir: str | Path | None = None,
    explorer_dir: str | Path | None = None,
) -> tuple[list[StagedRepo], list[str]]:
    """Write the Hub repository folders under `out` (see module doc).

    Args:
        out: the staging folder (created if needed); other content of it is left alone.
        namespace: the Hub user or organization replacing `heal` in every repo id.
        pool_dir: a pool build folder (default: the bundled pool, skipped when absent).
        toy_dir: the toy reasoner folder (default: the bundled one, skipped when absent).
        explorer_dir: the Entropy Explorer Space (default: `spaces/entropy-explorer`
            of a source checkout, skipped when absent).

    Returns the staged repos and one line per repo skipped. Raises ValueError,
    changing nothing, when a repo folder holds files stage_hub did not write.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"out: {out} is a file; pass a folder to stage into")
    plans, skipped = plan_repos(namespace, pool_dir, toy_dir, explorer_dir)
    recorded = _read_stage_manifest(out)
    conflicts = []
    for plan in plans:
        folder = _repo_folder(out, plan, namespace)
        parts = folder.relative_to(out).parts
        for depth in range(1, len(parts) + 1):
            if out.joinpath(*parts[:depth]).is_file():
                conflicts.append(f"{'/'.join(parts[:depth])}: a file where a folder belongs")
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*")):
            if path.is_dir():
                continue
            rel = path.relative_to(out).as_posix()
            if rel not in recorded:
                conflicts.append(f"{rel}: not written by stage-hub")
            elif _sha256(path) not in recorded[rel]:
                conflicts.append(f"{rel}: changed since stage-hub wrote it")
    if conflicts:
        shown = "\n  ".join(conflicts[:20]) + (f"\n  ... and {len(conflicts) - 20} more" if len(conflicts) > 20 else "")
        raise ValueError(
            f"out: staging into {out} would overwrite or publish files that stage-hub did not write:\n  {shown}\n"
            "move them out of the repo folders or stage into a new folder (nothing was changed)"
        )
    wanted = {
        f"{_repo_folder(out, plan, namespace).relative_to(out).as_posix()}/{rel}": content
        for plan in plans
        for rel, content in plan.files.items()
    }
    hashes = {rel: _sha256(content) for rel, content in wanted.items()}
    staged_folders = {_repo_folder(out, plan, namespace).relative_to(out).as_posix() + "/" for plan in plans}
    # Until every file is in place, a path may hold its old or its new content: record both.
    transition = dict(recorded)
    for rel, digest in hashes.items():
        transition[rel] = sorted(set(recorded.get(rel, [])) | {digest})
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / STAGE_MANIFEST, {"files": transition})
    for rel in recorded:  # files an earlier staging wrote that these repos no longer have (e.g. old shards)
        if rel not in wanted and any(rel.startswith(f) for f in staged_folders) and (out / rel).exists():
            (out / rel).unlink()
    for rel, content in wanted.items():
        target = out / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(target) as tmp:
            if isinstance(content, bytes):
                tmp.write_bytes(content)
            else:
                shutil.copyfile(content, tmp)
    final = {rel: digests for rel, digests in recorded.items() if not any(rel.startswith(f) for f in staged_folders)}
    final.update({rel: [digest] for rel, digest in hashes.items()})
    write_json_atomic(out / STAGE_MANIFEST, {"files": final})
    staged = [
        StagedRepo(
            repo_id=f"{namespace}/{plan.name}",
            repo_type=plan.repo_type,
            folder=_repo_folder(out, plan, namespace),
            files=tuple(sorted(plan.files)),
            space_sdk=plan.space_sdk,
        )
        for plan in plans
    ]
    return staged, skipped


def publish(
    namespace: str = DEFAULT_NAMESPACE,
    private: bool = False,
    dry_run: bool = False,
    token: str | None = None,
    pool_dir: str | Path | None = None,
    toy_dir: str | Path | None = None,
    explorer_dir: str | Path | None = None,
    staged_dir: str | Path | None = None,
    api: Any = None,
    stream: Any = None,
) -> list[StagedRepo]:
    """Create heal-hf's Hub repositories and upload their staged folders.

    Stages into `staged_dir` (kept) or a temporary folder (see `stage_hub`), then for each repo calls
    `HfApi.create_repo(..., exist_ok=True)` and `HfApi.upload_folder`. The dataset
    repo's old `data/` shards are replaced, so `data/train-*` never mixes builds.
    The token comes from `token`, else the environment (HF_TOKEN) or `hf auth login`;
    it is never printed. With `dry_run`, prints what would be uploaded and contacts
    no server. `api` replaces the `HfApi` client (e.g. one with another endpoint).
    Returns the repos (their folders are gone afterwards unless `staged_dir` is given).
    """
    from huggingface_hub import HfApi, get_token

    stream = stream or sys.stdout
    token = token or get_token()
    if token is None and not dry_run and api is None:
        raise ValueError("token: no Hugging Face token found; set HF_TOKEN or run `hf auth login` (or use --dry-run)")
    with tempfile.TemporaryDirectory(prefix="heal-hf-publish-") as tmp:
        staged, skipped = stage_hub(staged_dir or tmp, namespace, pool_dir, toy_dir, explorer_dir)
        for line in skipped:
            print(f"skip {line}", file=stream)
        if not dry_run:
            api = api or HfApi(token=token)
        for repo in staged:
            size = sum((repo.folder / f).stat().st_size for f in repo.files)
            visibility = "private" if private else "public"
            if dry_run:
                print(f"would create {visibility} {repo.repo_type} {repo.repo_id} and upload "
                      f"{len(repo.files)} files ({size / 2**20:.2f} MiB):", file=stream)
                for f in repo.files:
                    print(f"  {f}", file=stream)
                continue
            api.create_repo(repo.repo_id, repo_type=repo.repo_type, private=private, exist_ok=True,
                            space_sdk=repo.space_sdk)
            commit = api.upload_folder(
                repo_id=repo.repo_id,
                repo_type=repo.repo_type,
                folder_path=str(repo.folder),
                commit_message=f"heal-hf: publish {repo.repo_id}",
                delete_patterns=[f"{DATA_DIR}/*"] if repo.repo_type == "dataset" else None,
            )
            print(f"published {repo.repo_type} {repo.repo_id}: {len(repo.files)} files, "
                  f"{size / 2**20:.2f} MiB -> {getattr(commit, 'commit_url', commit)}", file=stream)
    return staged
