"""A real Hub-compatible server for tests: olah serving staged repo folders as local git mirrors.

`mirror_staged(stage_out, mirrors)` turns every repo folder that `heal-hf stage-hub`
wrote into a git repository at `<mirrors>/<type>s/<ns>/<name>`; `olah_server(mirrors,
workdir)` runs olah (offline, 127.0.0.1, a free port) on them and yields its URL;
`run_clients(endpoint, ...)` runs `client_checks` in a fresh Python process with
HF_ENDPOINT pointing at it, so the unmodified datasets / evaluate / huggingface_hub
clients resolve repo ids against the mirror (they read HF_ENDPOINT at import).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Iterator

import evaluate
import httpx
from conftest import free_port
from huggingface_hub import HfApi
from huggingface_hub.errors import RepositoryNotFoundError

REPO_ROOT = Path(__file__).resolve().parent.parent
_GIT = ["git", "-c", "user.name=heal-hf tests", "-c", "user.email=tests@heal-hf.invalid", "-c", "init.defaultBranch=main"]


def staged_repo_folders(stage_out: Path) -> dict[tuple[str, str], Path]:
    """(repo_type, repo_id) -> folder for every repo under stage_out/{datasets,spaces,models}/<ns>/<name>."""
    found = {}
    for kind in ("datasets", "spaces", "models"):
        for folder in sorted((stage_out / kind).glob("*/*")):
            if folder.is_dir():
                found[(kind[:-1], f"{folder.parent.name}/{folder.name}")] = folder
    return found


def mirror_staged(stage_out: Path, mirrors: Path) -> None:
    """Copy each staged repo into `mirrors` as a one-commit git repo; Spaces also get evaluate's tag."""
    for (repo_type, repo_id), folder in staged_repo_folders(stage_out).items():
        target = mirrors / f"{repo_type}s" / repo_id
        shutil.copytree(folder, target)
        subprocess.run([*_GIT, "init", "-q"], cwd=target, check=True)
        subprocess.run([*_GIT, "add", "-A"], cwd=target, check=True)
        subprocess.run([*_GIT, "commit", "-q", "-m", "stage-hub"], cwd=target, check=True)
        if repo_type == "space":  # evaluate.load asks for the tag v<evaluate version> first
            subprocess.run([*_GIT, "tag", f"v{evaluate.__version__}"], cwd=target, check=True)


@contextlib.contextmanager
def olah_server(mirrors: Path, workdir: Path, timeout: float = 60.0) -> Iterator[str]:
    """Run olah offline on 127.0.0.1 over `mirrors`; yield its base URL; stop it on exit."""
    port = free_port()
    config = workdir / "olah.toml"
    config.write_text(
        "[basic]\n"
        'host = "127.0.0.1"\n'
        f"port = {port}\n"
        f'repos-path = "{workdir / "repos"}"\n'
        f'mirrors-path = ["{mirrors}"]\n'
        "[accessibility]\n"
        "offline = true\n"
    )
    log = open(workdir / "olah.out", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "olah.server", "--config", str(config), "--log-path", str(workdir / "logs")],
        cwd=workdir, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"olah exited with {proc.returncode}: {(workdir / 'olah.out').read_text()[-2000:]}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"olah did not listen within {timeout} s: {(workdir / 'olah.out').read_text()[-2000:]}")
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def client_env(endpoint: str, workdir: Path) -> dict[str, str]:
    """The environment of a fresh client process: the Hub at `endpoint`, an empty HF cache in `workdir`, no token."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN")}
    env.update(
        HF_ENDPOINT=endpoint,
        HF_HOME=str(workdir / "hf-home"),
        HF_MODULES_CACHE=str(workdir / "hf-modules"),
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
        PYTHONPATH=os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")]),
    )
    return env


def run_clients(endpoint: str, workdir: Path, spec: dict[str, Any], timeout: float = 240.0) -> dict[str, Any]:
    """Run `client_checks(spec)` in a fresh interpreter against `endpoint`; return its JSON result."""
    spec_path, result_path = workdir / "spec.json", workdir / "result.json"
    spec_path.write_text(json.dumps(spec))
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), str(spec_path), str(result_path)],
        env=client_env(endpoint, workdir), capture_output=True, text=True, timeout=timeout,
    )
    if proc.returncode != 0:
        raise AssertionError(f"client checks failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return json.loads(result_path.read_text())


class RecordingApi(HfApi):
    """HfApi that records create_repo / upload_folder (with the folder's files) instead of sending them: no
    writable Hub server runs offline, and olah serves reads only. Reads go to `endpoint` (an olah mirror); with
    none, every repo is new (list_repo_files: not found)."""

    def __init__(self, endpoint: str | None = None) -> None:
        super().__init__(endpoint=endpoint, token="hf_unused")
        self.offline = endpoint is None
        self.calls: list[tuple] = []

    def list_repo_files(self, repo_id, **kwargs):
        if self.offline:
            request = httpx.Request("GET", f"https://huggingface.co/api/datasets/{repo_id}")
            raise RepositoryNotFoundError(f"{repo_id}: not created yet", response=httpx.Response(404, request=request))
        return super().list_repo_files(repo_id, **kwargs)

    def create_repo(self, repo_id, **kwargs):
        self.calls.append(("create_repo", repo_id, kwargs))

    def upload_folder(self, *, repo_id, folder_path, **kwargs):
        self.calls.append(("upload_folder", repo_id, {**kwargs, "files": file_hashes(Path(folder_path))}))


def file_hashes(folder: Path) -> dict[str, str]:
    """sha256 of every file under `folder`, by relative posix path."""
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def client_checks(spec: dict[str, Any]) -> dict[str, Any]:
    """What a user does with the published repos, with the real clients (runs in the subprocess)."""
    import datasets
    from huggingface_hub import snapshot_download

    from heal_hf.cli import main
    from heal_hf.data.model_identity import ModelIdentity, OtherModelWarning, model_identity
    from heal_hf.data.pool import load_pool
    from heal_hf.toy import TOY_REASONER_ID, TOY_REASONER_PATH
    from heal_hf.trl import as_pool_reference

    ns, config = spec["namespace"], spec["pool_config"]
    pool_id = f"{ns}/general-entropy-pool"
    ds = datasets.load_dataset(pool_id, split="train")
    eda = evaluate.load(f"{ns}/eda")
    dynamics = evaluate.load(f"{ns}/entropy_dynamics", module_type="measurement")
    try:
        load_pool(pool_id, config="no-such-model")
    except ValueError as err:
        unknown_config = str(err)
    # The default config is the toy reasoner's pool: its fingerprint comes from the Hub repo's
    # toy-reasoner/pool_build.json, so a model of the same name with other weights is told apart.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_pool(pool_id, model=model_identity(TOY_REASONER_PATH))
        load_pool(pool_id, model=ModelIdentity(TOY_REASONER_ID, "0" * 16))
    pool_model_warnings = [str(w.message) for w in caught if issubclass(w.category, OtherModelWarning)]
    train_out = Path(spec["train"]["output_dir"])
    train_code = main(["train", "--pool", f"{pool_id}:{config}", *spec["train"]["args"], "--output-dir", str(train_out)])
    return {
        "pool_features": ds.features.to_dict(),
        "pool_rows": ds.to_list(),
        "config_rows": datasets.load_dataset(pool_id, config, split="train").to_list(),
        "load_pool_rows": len(load_pool(pool_id)),
        "load_pool_config_rows": load_pool(pool_id, config=config, bins=spec["bins"]).to_list(),
        "unknown_config": unknown_config,
        "reference": as_pool_reference(f"{pool_id}:{config}", bins=spec["bins"]).to_dict(),
        "train_code": train_code,
        "pool_model_warnings": pool_model_warnings,
        "train_general": json.loads((train_out / "heal_run.json").read_text())["data"]["general"],
        "eda_references": eda.compute(predictions=spec["predictions"], references=spec["references"], bins=spec["bins"]),
        "eda_pool": eda.compute(predictions=spec["predictions"], pool=pool_id),
        "eda_pool_config": eda.compute(predictions=spec["predictions"], pool=f"{pool_id}:{config}"),
        "dynamics": dynamics.compute(data=spec["references"], bins=spec["bins"]),
        "snapshots": {
            f"{repo_type}:{repo_id}": file_hashes(Path(snapshot_download(repo_id, repo_type=repo_type)))
            for repo_type, repo_id in spec["repos"]
        },
    }


if __name__ == "__main__":
    spec_file, result_file = sys.argv[1:3]
    result = client_checks(json.loads(Path(spec_file).read_text()))
    Path(result_file).write_text(json.dumps(result))
