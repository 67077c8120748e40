"""The general-entropy pool: schema, rows from rollouts, loading, and the EDA reference.

One row per general-domain prompt, holding what selection and EDA need so neither
has to run a model: the k sampled responses' per-token entropies, their profiles,
the verifier's outcomes, the selection criteria and how it was all sampled.
A build's settings and folder layout are `heal_hf.data.pool_shards`; building one is
`heal_hf.app.pool_build`; its dataset card is `heal_hf.hub.cards`.
"""

from __future__ import annotations

import hashlib
import json
import warnings
import weakref
from pathlib import Path
from typing import Any, Sequence

import datasets
import numpy as np

from ..core.eda import EDAReference
from ..core.profiles import DEFAULT_BINS, EntropyProfile
from ..core.selection import CRITERIA, HybridSelector, response_criteria
from ..core.verifiers import check_reference_answers, get_verifier
from ..toy import TOY_POOL_PATH
from .files import error_line
from .model_identity import ModelIdentity, OtherModelWarning
from .pool_shards import (
    MANIFEST_NAME,
    SCHEMA_VERSION,
    PoolBuildConfig,
    build_shard_paths,
    check_config_name,
    read_build_manifest,
    shard_rows,
    split_pool_source,
)

POOL_REPO_ID = "heal/general-entropy-pool"
"""Not pool config names: datasets treats a config named `default` as the default one, and `data/` holds a
one-pool repo's shards."""
DOMAIN_TARGET = "target"
DOMAIN_GENERAL = "general"
"""Values of the `domain` column of a hybrid training set: the few-shot rows, and the pool's picks."""

_f32 = datasets.Value("float32")
POOL_FEATURES = datasets.Features(
    {
        "prompt": datasets.Value("string"),
        "answer": datasets.Value("string"),
        "source": datasets.Value("string"),
        "responses": datasets.Sequence(datasets.Value("string")),
        "token_entropies": datasets.Sequence(datasets.Sequence(_f32)),
        "entropy_curves": datasets.Sequence(datasets.Sequence(_f32)),
        "magnitude": datasets.Sequence(_f32),
        "total_variation": datasets.Sequence(_f32),
        "volatility": datasets.Sequence(_f32),
        "lengths": datasets.Sequence(datasets.Value("int32")),
        "passed": datasets.Sequence(_f32),
        "pass_rate": _f32,
        "mean_entropy": _f32,
        "outcome_uncertainty": _f32,
        "curve_diversity": _f32,
        "lexical_diversity": _f32,
        "uncertainty_score": _f32,
        "diversity_score": _f32,
        "features": datasets.Sequence(_f32),
        "model_id": datasets.Value("string"),
        "tokenizer_hash": datasets.Value("string"),
        "bins": datasets.Value("int32"),
        "sampling": {
            "num_samples": datasets.Value("int32"),
            "max_new_tokens": datasets.Value("int32"),
            "temperature": _f32,
            "top_p": _f32,
            "top_k": datasets.Value("int32"),
            "seed": datasets.Value("int64"),
        },
        "schema_version": datasets.Value("string"),
    }
)
"""Pool row schema, version SCHEMA_VERSION. Entropies in nats; curves have `bins` entries."""

POOL_COLUMN_DOCS: dict[str, str] = {
    "prompt": "the general-domain problem, as given to the model",
    "answer": "its reference answer, checked by the verifier",
    "source": "where the problem comes from (a dataset, a task family)",
    "responses": "the k sampled responses",
    "token_entropies": "per response, the entropy (nats) of each generated token, EOS included",
    "entropy_curves": "per response, the K-bin entropy curve over normalized time (nats)",
    "magnitude": "per response, the mean token entropy m (nats)",
    "total_variation": "per response, mean_t |H_{t+1} - H_t| (nats)",
    "volatility": "per response, std_t (H_{t+1} - H_t) (nats)",
    "lengths": "per response, the number of generated tokens",
    "passed": "per response, the verifier's outcome (1.0 correct, 0.0 wrong)",
    "pass_rate": "p, the share of correct responses",
    "mean_entropy": "uncertainty criterion: mean of the responses' magnitudes (nats)",
    "outcome_uncertainty": "uncertainty criterion: 4 p (1 - p)",
    "curve_diversity": "diversity criterion: mean pairwise RMS distance between the responses' curves (nats)",
    "lexical_diversity": "diversity criterion: distinct word bigrams / all bigrams over the responses",
    "uncertainty_score": "rank-normalized uncertainty within the pool, in [0, 1]",
    "diversity_score": "rank-normalized diversity within the pool, in [0, 1]",
    "features": "mean profile features of the responses (K curve bins, magnitude, total variation, "
    "volatility, forking share) used to avoid near-duplicate picks",
    "model_id": "the model that sampled the responses",
    "tokenizer_hash": "fingerprint of its tokenizer (entropies of other tokenizers are not comparable)",
    "bins": "K, the number of curve bins",
    "sampling": "k, max new tokens, temperature, top-p, top-k and the build seed",
    "schema_version": "the pool schema version",
}
"""One line per pool column, for dataset cards and docs."""


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """A short stable hash of a tokenizer's vocabulary and special tokens.

    Pools record it so that a pool sampled with one tokenizer is not mistaken for
    another model's reference.
    """
    vocab = sorted(tokenizer.get_vocab().items())
    special = sorted((k, str(v)) for k, v in tokenizer.special_tokens_map.items())
    payload = json.dumps({"vocab": vocab, "special": special}, ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def pool_rows(
    prompts: Sequence[str],
    answers: Sequence[str],
    sources: Sequence[str],
    responses: Sequence[Sequence[str]],
    entropies: Sequence[Sequence[Sequence[float]]],
    passed: Sequence[Sequence[float]],
    model_id: str,
    tokenizer_hash: str,
    sampling: dict[str, Any],
    bins: int = 32,
) -> list[dict[str, Any]]:
    """Pool rows (dicts matching POOL_FEATURES) for P prompts and their k responses.

    `uncertainty_score` and `diversity_score` are left NaN: they are ranks within
    the whole pool, filled by `with_pool_scores` once all rows exist.
    """
    if not (len(prompts) == len(answers) == len(sources) == len(responses) == len(entropies) == len(passed)):
        raise ValueError(
            "prompts, answers, sources, responses, entropies, passed: expected one entry per prompt, got lengths "
            f"{[len(x) for x in (prompts, answers, sources, responses, entropies, passed)]}"
        )
    keys = ("num_samples", "max_new_tokens", "temperature", "top_p", "top_k", "seed")
    missing = [k for k in keys if k not in sampling]
    if missing:
        raise ValueError(f"sampling: missing settings {missing}")
    rows = []
    for prompt, answer, source, texts, ents, ok in zip(prompts, answers, sources, responses, entropies, passed):
        profile = EntropyProfile.from_entropies([list(e) for e in ents], bins=bins, forking_threshold=0.0)
        crit = response_criteria([list(e) for e in ents], texts, ok, bins=bins)
        rows.append(
            {
                "prompt": prompt,
                "answer": str(answer),
                "source": source,
                "responses": list(texts),
                "token_entropies": [list(map(float, e)) for e in ents],
                "entropy_curves": profile.curve.tolist(),
                "magnitude": profile.magnitude.tolist(),
                "total_variation": profile.total_variation.tolist(),
                "volatility": profile.volatility.tolist(),
                "lengths": profile.lengths.tolist(),
                "passed": [float(x) for x in ok],
                "pass_rate": crit["pass_rate"],
                **{c: crit[c] for c in CRITERIA},
                "uncertainty_score": float("nan"),
                "diversity_score": float("nan"),
                "features": crit["features"],
                "model_id": model_id,
                "tokenizer_hash": tokenizer_hash,
                "bins": bins,
                "sampling": {k: sampling[k] for k in keys},
                "schema_version": SCHEMA_VERSION,
            }
        )
    return rows


def pool_scores(criteria: dict[str, Sequence[float] | np.ndarray], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(uncertainty_score, diversity_score), each (N,) float32 in [0, 1]: the criteria's ranks over N rows."""
    _, uncertainty, diversity = HybridSelector(1, seed=seed).score({c: np.asarray(criteria[c]) for c in CRITERIA})
    return uncertainty.astype(np.float32), diversity.astype(np.float32)


def with_pool_scores(pool: datasets.Dataset, seed: int = 0) -> datasets.Dataset:
    """Fill `uncertainty_score` / `diversity_score`: the criteria's ranks within this pool.

    Columns beyond the pool schema (e.g. the source dataset's own, after
    `Dataset.map` with the entropy profiler) are kept as they are.
    """
    uncertainty, diversity = pool_scores({c: list(pool[c]) for c in CRITERIA}, seed=seed)
    pool = pool.remove_columns(["uncertainty_score", "diversity_score"])
    pool = pool.add_column("uncertainty_score", uncertainty.tolist())
    pool = pool.add_column("diversity_score", diversity.tolist())
    extra = {name: feature for name, feature in pool.features.items() if name not in POOL_FEATURES}
    return pool.cast(datasets.Features({**POOL_FEATURES, **extra}))


def validate_pool(
    pool: datasets.Dataset, bins: int | None = None, tokenizer_hash: str | None = None
) -> datasets.Dataset:
    """Check a loaded pool's schema version, columns, bins and (optionally) tokenizer.

    Raises ValueError naming what differs and what to do about it.
    """
    missing = [c for c in POOL_FEATURES if c not in pool.column_names]
    if missing:
        raise ValueError(
            f"pool: missing columns {missing}; expected a heal-hf general-entropy pool (schema v{SCHEMA_VERSION}). "
            "Build one with `heal-hf build-pool`"
        )
    if len(pool) == 0:
        raise ValueError("pool: it has no rows; build it with `heal-hf build-pool`")
    versions = set(pool.unique("schema_version"))
    if versions != {SCHEMA_VERSION}:
        raise ValueError(
            f"pool: schema version {sorted(versions)} but this heal-hf reads v{SCHEMA_VERSION}; "
            "rebuild the pool with this version's `heal-hf build-pool` or install the matching heal-hf"
        )
    pool_bins = set(pool.unique("bins"))
    if len(pool_bins) != 1:
        raise ValueError(f"pool: rows were profiled with different bins {sorted(pool_bins)}; rebuild it with one K")
    if bins is not None and pool_bins != {bins}:
        raise ValueError(
            f"pool: profiled with bins={pool_bins.pop()} but bins={bins} was asked for; "
            "use the pool's bins or rebuild the pool with --bins"
        )
    if tokenizer_hash is not None:
        hashes = set(pool.unique("tokenizer_hash"))
        if hashes != {tokenizer_hash}:
            raise ValueError(
                f"pool: sampled with tokenizer {sorted(hashes)} but the model's tokenizer is {tokenizer_hash}; "
                "its entropies are not comparable: build a pool with this model (`heal-hf build-pool --model ...`)"
            )
    return pool


def bundled_pool_path() -> Path:
    """Folder of the general-entropy pool shipped with heal-hf (built from the toy reasoner)."""
    return TOY_POOL_PATH


def pool_model(pool: datasets.Dataset, manifest: dict[str, Any] | None = None) -> ModelIdentity:
    """The model that sampled `pool`: its rows' `model_id`, and the fingerprint its build manifest records."""
    names = sorted(set(pool.unique("model_id")))
    return ModelIdentity(", ".join(names), (manifest or {}).get("model_fingerprint"))


_WARNED: set[tuple[ModelIdentity, ModelIdentity]] = set()
_MANIFESTS: "weakref.WeakKeyDictionary[datasets.Dataset, Any]" = weakref.WeakKeyDictionary()
"""The build manifest of each pool `load_pool` returned, so that the loaded Dataset, passed on (to a trainer, a
reward), is checked by the fingerprint its build recorded, as its folder was."""


def check_pool_model(pool: datasets.Dataset, model: ModelIdentity, manifest: dict[str, Any] | None = None) -> bool:
    """Whether `pool` was sampled by `model` (`ModelIdentity.same_as`); if not, an OtherModelWarning naming both,
    once per pair in a process."""
    sampled_by = pool_model(pool, manifest)
    if sampled_by.same_as(model):
        return True
    if (sampled_by, model) not in _WARNED:
        _WARNED.add((sampled_by, model))
        warnings.warn(
            f"pool: sampled by {sampled_by} but used with {model}: its selection scores are the other model's "
            "uncertainty and its EDA reference the other model's entropy; build a pool with this model "
            "(`heal-hf build-pool --model ...`)", OtherModelWarning, stacklevel=3)
    return False


def _hub_manifest(repo_id: str, config: str | None) -> dict[str, Any] | None:
    """The build manifest of a Hub pool dataset's config (`<config>/pool_build.json`, as `heal-hf stage-hub` lays
    it out; `pool_build.json` for a one-pool repo); None when there is none."""
    from huggingface_hub import hf_hub_download

    for name in ([f"{config}/{MANIFEST_NAME}"] if config else []) + [MANIFEST_NAME]:
        try:
            return json.loads(Path(hf_hub_download(repo_id, name, repo_type="dataset")).read_text())
        except Exception:  # no such file (a pool made elsewhere), or unreachable: the rows' model_id still says
            continue
    return None


def load_pool(
    source: str | Path | datasets.Dataset | None = None, config: str | None = None,
    model: ModelIdentity | None = None, **validate: Any
) -> datasets.Dataset:
    """Load a general-entropy pool and validate it.

    Args:
        source: None or "bundled" for the pool shipped with heal-hf; a local folder
            (a pool directory with data/*.parquet, or anything `load_dataset` reads);
            a Hub dataset id such as "heal/general-entropy-pool"; or a Dataset. A Hub id
            or folder may name its config after a colon: "heal/general-entropy-pool:toy-reasoner".
        config: the dataset config holding one model's pool (`heal-hf stage-hub` lays out
            one per model; default: the dataset's default config). ValueError listing the
            dataset's configs when it has no such config.
        model: the model the pool is used with (`heal_hf.data.model_identity.model_identity`): a pool sampled by
            another is said once (`check_pool_model`), by fingerprint when the pool's build recorded one.
        validate: `bins` / `tokenizer_hash` to check against (see `validate_pool`).
    """
    pool, manifest = _load_pool(source, config, **validate)
    if manifest is not None:
        _MANIFESTS[pool] = manifest
    if model is not None:
        check_pool_model(pool, model, manifest() if callable(manifest) else manifest)
    return pool


def _load_pool(
    source: str | Path | datasets.Dataset | None, config: str | None, **validate: Any
) -> tuple[datasets.Dataset, Any]:
    """`load_pool` without the model check: the pool, and its build manifest (a dict, None, or a function
    fetching a Hub dataset's, called only when asked for)."""
    if isinstance(source, str):
        source, named = split_pool_source(source)
        if named is not None and config not in (None, named):
            raise ValueError(f"config: the pool names config {named!r} but config={config!r}; pass only one of them")
        config = config or named
    if config is not None:
        check_config_name(config)
    if isinstance(source, datasets.Dataset):
        if config is not None:
            raise ValueError(f"config: a Dataset is one pool already; drop config={config!r}")
        return validate_pool(source, **validate), _MANIFESTS.get(source)
    if config is not None and (source is None or str(source) == "bundled" or (Path(source) / "data").is_dir()):
        raise ValueError(f"config: {source or 'bundled'} is one pool, without configs; drop the config {config!r} "
                         "or pass a Hub dataset id (or a folder staged by `heal-hf stage-hub`)")
    if source is None or str(source) == "bundled":
        source = bundled_pool_path()
        if not (source / "data").is_dir():
            raise ValueError(
                f"pool: the bundled pool is missing at {source}; reinstall heal-hf or pass a pool folder / Hub id"
            )
    path = Path(source)
    manifest: Any = None
    if path.is_dir() and not (path / "data").is_dir() and any(path.glob(f"*/{MANIFEST_NAME}")):
        # A pool dataset staged by `heal-hf stage-hub`: read the config's build folder (datasets would cache a local
        # folder by its card's file patterns, and serve old rows after a restaging).
        name = config or _default_config(path)
        if not (path / name / MANIFEST_NAME).is_file():
            raise _unknown_config(path, name, sorted(p.parent.name for p in path.glob(f"*/{MANIFEST_NAME}")))
        path = path / name
    if path.is_dir() and (path / "data").is_dir():
        is_build = (path / MANIFEST_NAME).exists()
        # A heal-hf build folder: every shard must be there, and finalized.
        files = build_shard_paths(path) if is_build else sorted((path / "data").glob("*.parquet"))
        if not files:
            raise ValueError(f"pool: no parquet shards in {path / 'data'}; build the pool with `heal-hf build-pool`")
        for file in files:
            shard_rows(file)  # a clear error naming a damaged shard, before datasets reads them
        ds = datasets.load_dataset("parquet", data_files=[str(f) for f in files], split="train", features=POOL_FEATURES)
        if is_build and np.isnan(np.asarray(list(ds["uncertainty_score"]), dtype=np.float64)).any():
            raise ValueError(
                f"pool: {path} has no pool scores yet (the build was not finalized); re-run the same "
                "`heal-hf build-pool` command to finish it"
            )
        if is_build:
            manifest = read_build_manifest(path)
    elif path.is_dir():
        ds = _load_dataset_config(str(path), config, "pass a folder written by `heal-hf build-pool` or "
                                  "`heal-hf stage-hub`, a Hub id, or 'bundled'")
    elif path.is_absolute() or str(source).startswith((".", "~")) or str(source).count("/") != 1:
        raise ValueError(f"pool: no such folder {path}; pass a folder written by `heal-hf build-pool`, "
                         "a Hub dataset id (user/name), or 'bundled' (the pool shipped with heal-hf)")
    else:
        ds = _load_dataset_config(str(source), config, "pass a local pool folder or 'bundled'")
        manifest = lambda: _hub_manifest(str(source), config or ds.info.config_name)  # noqa: E731
    return validate_pool(ds, **validate), manifest


def _default_config(folder: Path) -> str:
    """The default config of a staged pool dataset, from its card's `configs:` (the one marked default, else the
    first)."""
    from huggingface_hub import DatasetCard

    readme = folder / "README.md"
    configs = DatasetCard.load(readme).data.configs if readme.is_file() else None
    if not configs:
        raise ValueError(f"pool: {folder} holds pool configs but no card listing them; name one "
                         f"(config=NAME or {folder}:NAME) or restage it with `heal-hf stage-hub`")
    return next((c for c in configs if c.get("default")), configs[0])["config_name"]


def _unknown_config(source: str | Path, config: str, names: Sequence[str]) -> ValueError:
    return ValueError(f"config: {source} has no config {config!r}; its configs are {', '.join(names)} (pass one of them)")


def _load_dataset_config(source: str, config: str | None, fix: str) -> datasets.Dataset:
    """The train split of `source`'s config `config` (None: its default); one-line ValueErrors, an unknown config's
    naming the dataset's configs."""
    try:
        return datasets.load_dataset(source, config, split="train")
    except Exception as err:  # offline, no such repo or config, unreadable folder: which input failed, and the fix
        failure = err
    if config is not None:
        try:
            names = datasets.get_dataset_config_names(source)
        except Exception:  # the dataset itself is unreachable: the first error says why
            names = None
        if names is not None and config not in names:
            raise _unknown_config(source, config, names) from None
    raise ValueError(f"pool: cannot load {source!r}{'' if config is None else f' config {config!r}'} "
                     f"({error_line(failure)}); {fix}") from None


def pool_reference(pool: datasets.Dataset) -> EDAReference:
    """The EDA reference R over every response in the pool, from its stored token entropies.

    Equals `EDAReference.from_entropies` on the same responses (forking threshold: the
    80th percentile of all their tokens, with no limit on the count).
    """
    validate_pool(pool)
    entropies: list[np.ndarray] = []
    bins = None
    for batch in pool.select_columns(["entropy_curves", "token_entropies"]).iter(batch_size=1024):
        for curves, row in zip(batch["entropy_curves"], batch["token_entropies"]):
            bins = bins or len(curves[0])
            entropies.extend(np.asarray(x, dtype=np.float32) for x in row)
    return EDAReference.from_entropies(entropies, bins=bins or DEFAULT_BINS)


def sample_pool_rows(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    answers: Sequence[str],
    sources: Sequence[str],
    config: PoolBuildConfig,
    seed: int,
    model_id: str,
    tokenizer_hash: str | None = None,
    progress: Any = None,
    verifiers: Sequence[str] | None = None,
    llm: Any = None,
) -> list[dict[str, Any]]:
    """Sample k responses per prompt, verify them and profile them: pool rows (scores left NaN).

    `seed` seeds this call's sampling; rows record `config.seed`. `verifiers` names
    each prompt's verifier (default `config.verifier` for all). With
    `config.backend` "vllm", `llm` (a `vllm.LLM` of the same checkpoint) generates and
    `model` scores. A reference answer a verifier cannot use (missing, or no number
    for `numeric`) raises ValueError before any sampling.
    """
    from .rollout import (
        sample_with_entropies,  # here, not at the top: loading a pool needs no transformers
    )

    names = list(verifiers or [config.verifier] * len(prompts))
    for name in set(names):  # a data error in the answers surfaces here, not after minutes of sampling
        check_reference_answers(name, [a for a, n in zip(answers, names) if n == name], f"answers ({name})")
    checks = [get_verifier(name) for name in names]
    if (config.backend == "vllm") != (llm is not None):
        raise ValueError(f"llm: pass a vllm.LLM exactly when backend is 'vllm' (backend {config.backend!r})")
    out = sample_with_entropies(
        model,
        tokenizer,
        prompts,
        num_samples=config.samples_per_prompt,
        max_new_tokens=config.max_new_tokens,
        temperature=config.temperature,
        top_p=config.top_p,
        top_k=config.top_k,
        seed=seed,
        batch_size=config.batch_size,
        chat_template=config.chat_template,
        progress=progress,
        two_phase=config.backend != "transformers",
        llm=llm,
    )
    passed = [[check(text, answer) for text in texts] for texts, answer, check in zip(out.texts, answers, checks)]
    return pool_rows(
        prompts,
        answers,
        sources,
        out.texts,
        out.entropies,
        passed,
        model_id=model_id,
        tokenizer_hash=tokenizer_hash or tokenizer_fingerprint(tokenizer),
        sampling=config.sampling(),
        bins=config.bins,
    )
