"""Stage and publish heal-hf's Hub repositories.

`stage_hub(out)` writes the exact folders users get from the Hub:

    out/datasets/<ns>/general-entropy-pool   the general-entropy pools: one `datasets` config per model
    out/spaces/<ns>/eda                      the evaluate metric `<ns>/eda` (a Gradio Space)
    out/spaces/<ns>/entropy_dynamics         the evaluate measurement `<ns>/entropy_dynamics`
    out/models/<ns>/toy-reasoner             the bundled toy reasoner
    out/spaces/<ns>/entropy-explorer         the Entropy Explorer Space (in a source checkout)

The pool dataset holds one config per model's pool, each a build folder of its own:

    README.md                              card: `configs:` (the first, `default: true`), one section per config
    <config>/pool_build.json               how that pool was built
    <config>/data/train-XXXXX-of-NNNNN.parquet

so `load_dataset("<ns>/general-entropy-pool", "<config>")` loads one model's pool with no
script. The default config is the `pool_dir` pool (the bundled toy reasoner's, `toy-reasoner`);
`add_pools` stage more beside it, and configs staged into `out` earlier are kept, their files
untouched. A config is named after its pool's model (`heal_hf.data.pool.config_name_for`) unless
given a name.

`publish(...)` creates those repositories and uploads the folders with huggingface_hub.
With another namespace, mentions of `heal/<repo>` in the Spaces' and the pool card's
texts are re-pointed at it; the model's files are copied as they are (its
MANIFEST.json pins their sha256).

Staging never overwrites what it did not write: `out/.heal-hf-stage.json` records the
sha256 of every file stage_hub wrote, and a repo folder holding any other file (or a
staged file edited since) stops the run before anything is changed.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence, Union

from ..data.files import atomic_write, sha256_of, write_json_atomic
from ..data.pool import bundled_pool_path, load_pool
from ..data.pool_shards import (
    DATA_DIR,
    MANIFEST_NAME,
    build_shard_paths,
    check_config_name,
    config_name_for,
    read_build_manifest,
)
from ..metrics import EDA_METRIC_PATH, ENTROPY_DYNAMICS_PATH
from ..toy import TOY_REASONER_PATH
from .cards import (
    PoolCardConfig,
    pool_card_config,
    pool_card_license,
    pool_dataset_card,
)

DEFAULT_NAMESPACE = "heal"
STAGE_MANIFEST = ".heal-hf-stage.json"
POOL_NAME = "general-entropy-pool"
TOY_REASONER_NAME = "toy-reasoner"
EXPLORER_NAME = "entropy-explorer"
_REPO_NAMES = ("eda", "entropy_dynamics", POOL_NAME, TOY_REASONER_NAME, EXPLORER_NAME)
_TEXT_SUFFIXES = {".md", ".py", ".txt", ".json", ".yaml", ".yml", ".toml"}
_SKIP_PARTS = {"__pycache__", ".git", ".ipynb_checkpoints"}

PoolSource = Union[str, Path, tuple[str, Union[str, Path]]]
"""A pool to stage: its build folder (the config named after its model), or (config name, build folder)."""


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


def explorer_space_dir() -> Path:
    """The Entropy Explorer Space in a source checkout (`spaces/entropy-explorer` beside the package)."""
    return Path(__file__).resolve().parents[2] / "spaces" / EXPLORER_NAME


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


def parse_pool_source(spec: str) -> PoolSource:
    """`NAME=DIR` -> (NAME, DIR); `DIR` -> DIR (the command line's form of a `PoolSource`)."""
    name, sep, folder = spec.partition("=")
    return (check_config_name(name), folder) if sep and not Path(spec).exists() else spec


def _pool_configs(
    pool_dir: PoolSource | None, add_pools: Sequence[PoolSource], kept: dict[str, Path]
) -> tuple[list[tuple[str, Path]], str | None]:
    """The pool configs to stage as (name, build folder), the default first, and the license of the default's
    build card.

    Each new pool is named (after its model unless given a name); a folder without a
    build manifest, a name given twice, or a new pool named like a kept config of
    another model is a ValueError. A kept config given again is replaced.
    """
    named: dict[str, Path] = {}
    for source in [pool_dir if pool_dir is not None else bundled_pool_path(), *add_pools]:
        name, folder = (source[0], Path(source[1])) if isinstance(source, tuple) else (None, Path(source))
        if not (folder / MANIFEST_NAME).exists():
            raise ValueError(f"pool: {folder} holds no {MANIFEST_NAME}; pass a folder written by `heal-hf build-pool`")
        model_id = read_build_manifest(folder)["model_id"]
        name = check_config_name(name) if name is not None else config_name_for(model_id)
        if name in named:
            raise ValueError(f"config: {name!r} is given to two pools ({named[name]} and {folder}); "
                             "name them apart with NAME=DIR")
        if name in kept and read_build_manifest(kept[name])["model_id"] != model_id:
            raise ValueError(f"config: {name!r} is already staged with the pool of "
                             f"{read_build_manifest(kept[name])['model_id']!r}, not {model_id!r}; give this pool "
                             "another config name (NAME=DIR) or stage into a new folder")
        named[name] = folder
    names = list(named)
    order = names[:1] + sorted((set(names) | set(kept)) - set(names[:1]))
    configs = [(name, named.get(name) or kept[name]) for name in order]
    return configs, pool_card_license(configs[0][1])


def plan_repos(
    namespace: str = DEFAULT_NAMESPACE,
    pool_dir: PoolSource | None = None,
    toy_dir: str | Path | None = None,
    explorer_dir: str | Path | None = None,
    add_pools: Sequence[PoolSource] = (),
    kept_pools: dict[str, Path] | None = None,
) -> tuple[list[_Plan], list[str]]:
    """What stage_hub would write: the repos, and one line per repo skipped (and why).

    `kept_pools`: config name -> folder of the configs already staged (kept unless restaged).
    """
    _check_namespace(namespace)
    skipped: list[str] = []
    kept = dict(kept_pools or {})
    plans = [_pool_plan(namespace, *_pool_configs(pool_dir, add_pools, kept), kept)]
    for path in (EDA_METRIC_PATH, ENTROPY_DYNAMICS_PATH):
        plans.append(_Plan("space", Path(path).name, _folder_files(Path(path), namespace), space_sdk="gradio"))
    toy = Path(toy_dir) if toy_dir is not None else TOY_REASONER_PATH
    if not (toy / "config.json").exists():
        raise ValueError(f"toy: {toy} holds no config.json; pass a folder written by save_pretrained")
    # Byte for byte, whatever the namespace: the toy's MANIFEST.json pins every file's sha256.
    plans.append(_Plan("model", TOY_REASONER_NAME, _folder_files(toy, DEFAULT_NAMESPACE)))
    explorer = Path(explorer_dir) if explorer_dir is not None else explorer_space_dir()
    if (explorer / "app.py").exists() and (explorer / "README.md").exists():
        plans.append(_Plan("space", EXPLORER_NAME, _folder_files(explorer, namespace), space_sdk="gradio"))
    elif explorer_dir is not None:
        raise ValueError(f"space: {explorer} needs app.py and README.md (a Gradio Space)")
    else:
        skipped.append(f"spaces/{namespace}/{EXPLORER_NAME}: no Space at {explorer}, which a source checkout "
                       "has (pass --space DIR)")
    return plans, skipped


def _pool_plan(namespace: str, configs: list[tuple[str, Path]], license: str, kept: dict[str, Path]) -> _Plan:
    """The pool dataset's files: its card, and each config's build manifest and shards."""
    files: dict[str, bytes | Path] = {}
    cards: list[PoolCardConfig] = []
    for name, folder in configs:
        try:
            pool = load_pool(folder)  # complete, readable, finalized: a clear error otherwise
        except ValueError as err:
            if name not in kept or folder != kept[name]:
                raise
            raise ValueError(f"config: {name!r}, staged in {folder}, is damaged ({err}); restage it with "
                             f"--add-pool {name}=DIR or stage into a new folder") from None
        cards.append(pool_card_config(name, folder, f"{name}/{DATA_DIR}/train-*", pool=pool))
        files[f"{name}/{MANIFEST_NAME}"] = folder / MANIFEST_NAME
        files.update({f"{name}/{DATA_DIR}/{p.name}": p for p in build_shard_paths(folder)})
    card = pool_dataset_card(cards, repo_id=f"{namespace}/{POOL_NAME}", license=license)
    return _Plan("dataset", POOL_NAME, {"README.md": str(card).encode("utf-8"), **files})


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
    pool_dir: PoolSource | None = None,
    toy_dir: str | Path | None = None,
    explorer_dir: str | Path | None = None,
    add_pools: Sequence[PoolSource] = (),
) -> tuple[list[StagedRepo], list[str]]:
    """Write the Hub repository folders under `out` (see module doc).

    Args:
        out: the staging folder (created if needed); other content of it is left alone.
        namespace: the Hub user or organization replacing `heal` in every repo id.
        pool_dir: the pool dataset's default config: a pool build folder, or (config
            name, folder) (default: the bundled pool, config `toy-reasoner`, skipped when absent).
        toy_dir: the toy reasoner folder (default: the bundled one, skipped when absent).
        explorer_dir: the Entropy Explorer Space (default: `spaces/entropy-explorer`
            of a source checkout, skipped when absent).
        add_pools: more pool configs (build folders, or (config name, folder) pairs),
            staged beside the default and those staged into `out` before.

    Returns the staged repos and one line per repo skipped. Raises ValueError,
    changing nothing, when a repo folder holds files stage_hub did not write, or a
    pool config name is invalid, given twice, or taken by another model's pool.
    Files whose content is unchanged are not rewritten.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"out: {out} is a file; pass a folder to stage into")
    _check_namespace(namespace)
    recorded = _read_stage_manifest(out)
    pool_folder = out / "datasets" / namespace / POOL_NAME
    kept = {  # the configs an earlier staging wrote here (files it did not write are conflicts, below)
        path.parent.name: path.parent
        for path in sorted(pool_folder.glob(f"*/{MANIFEST_NAME}"))
        if path.relative_to(out).as_posix() in recorded
    }
    plans, skipped = plan_repos(namespace, pool_dir, toy_dir, explorer_dir, add_pools, kept)
    folders = {_repo_folder(out, plan, namespace).relative_to(out).as_posix(): plan for plan in plans}
    conflicts = _conflicts(out, list(folders), recorded)
    if conflicts:
        shown = "\n  ".join(conflicts[:20]) + (f"\n  ... and {len(conflicts) - 20} more" if len(conflicts) > 20 else "")
        raise ValueError(
            f"out: staging into {out} would overwrite or publish files that stage-hub did not write:\n  {shown}\n"
            "move them out of the repo folders or stage into a new folder (nothing was changed)"
        )
    wanted = {f"{folder}/{rel}": content for folder, plan in folders.items() for rel, content in plan.files.items()}
    _write_staged(out, wanted, recorded, [f"{folder}/" for folder in folders])
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


def _conflicts(out: Path, folders: Sequence[str], recorded: dict[str, list[str]]) -> list[str]:
    """One line per file in the repo folders (paths relative to `out`) that stage-hub did not write, or that was
    edited since, and per file standing where a folder belongs."""
    conflicts = []
    for folder in folders:
        parts = folder.split("/")
        for depth in range(1, len(parts) + 1):
            if out.joinpath(*parts[:depth]).is_file():
                conflicts.append(f"{'/'.join(parts[:depth])}: a file where a folder belongs")
        if not (out / folder).is_dir():
            continue
        for path in sorted((out / folder).rglob("*")):
            if path.is_dir():
                continue
            rel = path.relative_to(out).as_posix()
            if rel not in recorded:
                conflicts.append(f"{rel}: not written by stage-hub")
            elif sha256_of(path) not in recorded[rel]:
                conflicts.append(f"{rel}: changed since stage-hub wrote it")
    return conflicts


def _write_staged(
    out: Path, wanted: dict[str, bytes | Path], recorded: dict[str, list[str]], staged_folders: Sequence[str]
) -> None:
    """Write `wanted` (path relative to `out` -> content or source file) and the stage manifest; remove files an
    earlier staging wrote into these folders that they no longer have (e.g. old shards)."""
    hashes = {rel: sha256_of(content) for rel, content in wanted.items()}
    # Until every file is in place, a path may hold its old or its new content: record both.
    transition = dict(recorded)
    for rel, digest in hashes.items():
        transition[rel] = sorted(set(recorded.get(rel, [])) | {digest})
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / STAGE_MANIFEST, {"files": transition})
    for rel in recorded:
        if rel not in wanted and any(rel.startswith(f) for f in staged_folders) and (out / rel).exists():
            (out / rel).unlink()
    for rel, content in wanted.items():
        target = out / rel
        if recorded.get(rel) == [hashes[rel]] and target.is_file():  # checked by _conflicts: it holds this content
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(target) as tmp:
            if isinstance(content, bytes):
                tmp.write_bytes(content)
            else:
                shutil.copyfile(content, tmp)
    final = {rel: digests for rel, digests in recorded.items() if not any(rel.startswith(f) for f in staged_folders)}
    final.update({rel: [digest] for rel, digest in hashes.items()})
    write_json_atomic(out / STAGE_MANIFEST, {"files": final})


def publish(
    namespace: str = DEFAULT_NAMESPACE,
    private: bool = False,
    dry_run: bool = False,
    token: str | None = None,
    pool_dir: PoolSource | None = None,
    toy_dir: str | Path | None = None,
    explorer_dir: str | Path | None = None,
    staged_dir: str | Path | None = None,
    api: Any = None,
    stream: Any = None,
    add_pools: Sequence[PoolSource] = (),
) -> list[StagedRepo]:
    """Create heal-hf's Hub repositories and upload their staged folders.

    Stages into `staged_dir` (kept: stage into it again to add a pool config later) or a
    temporary folder (see `stage_hub`), then for each repo calls
    `HfApi.create_repo(..., exist_ok=True)` and `HfApi.upload_folder`. Each staged pool
    config's old shards on the Hub are replaced, so `<config>/data/train-*` never mixes
    builds (and a one-pool repo's `data/` and `pool_build.json` go).
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
        staged, skipped = stage_hub(staged_dir or tmp, namespace, pool_dir, toy_dir, explorer_dir, add_pools)
        for line in skipped:
            print(f"skip {line}", file=stream)
        if not dry_run:
            api = api or HfApi(token=token)
            for repo in staged:  # before any upload: a refused publish changes nothing on the Hub
                if repo.repo_type == "dataset":
                    _check_hub_configs(api, repo)
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
                delete_patterns=_replaced_files(repo) if repo.repo_type == "dataset" else None,
            )
            print(f"published {repo.repo_type} {repo.repo_id}: {len(repo.files)} files, "
                  f"{size / 2**20:.2f} MiB -> {getattr(commit, 'commit_url', commit)}", file=stream)
    return staged


def _pool_config_names(files: Sequence[str]) -> list[str]:
    """The pool configs among a pool dataset's files (each `<config>/pool_build.json`)."""
    return sorted({f.split("/")[0] for f in files if f.count("/") == 1 and f.endswith(f"/{MANIFEST_NAME}")})


def _replaced_files(repo: StagedRepo) -> list[str]:
    """Patterns of the pool dataset's files on the Hub that its staged folder replaces: the shards of each staged
    config, and a one-pool repo's `data/` shards and manifest (uploaded files are never deleted)."""
    return [f"{DATA_DIR}/*", MANIFEST_NAME] + [f"{name}/{DATA_DIR}/*" for name in _pool_config_names(repo.files)]


def _check_hub_configs(api: Any, repo: StagedRepo) -> None:
    """ValueError when the pool dataset on the Hub has configs the staged folder lacks: the uploaded card, listing
    the staged configs only, would hide them."""
    from huggingface_hub.errors import RepositoryNotFoundError

    try:
        hub_files = api.list_repo_files(repo.repo_id, repo_type="dataset")
    except RepositoryNotFoundError:  # a first publish
        return
    missing = sorted(set(_pool_config_names(hub_files)) - set(_pool_config_names(repo.files)))
    if missing:
        name = missing[0]
        raise ValueError(
            f"publish: {repo.repo_id} on the Hub has pool configs {', '.join(missing)} that are not staged here, and "
            f"its new card would drop them; stage them too (e.g. `hf download {repo.repo_id} --repo-type dataset "
            f"--include '{name}/*' --local-dir D`, then --add-pool {name}=D/{name}) or publish with --staged set to "
            "the folder that holds them (nothing was uploaded)"
        )
