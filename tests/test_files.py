"""data/files: claiming a resumable folder by its run's identity, and file hashes."""

import hashlib
import json

import pytest

from heal_hf.data.files import claim_folder, sha256_of


def test_a_fresh_folder_is_claimed_and_the_same_run_continues(tmp_path):
    out = tmp_path / "run"
    assert claim_folder(out, "run.json", {"steps": 3, "seed": 0}) is None  # a fresh start writes the identity
    assert json.loads((out / "run.json").read_text()) == {"steps": 3, "seed": 0}
    assert claim_folder(out, "run.json", {"steps": 3, "seed": 0}) == {"steps": 3, "seed": 0}
    assert claim_folder(out, "run.json", {"steps": 3, "seed": 0}, resume=True) == {"steps": 3, "seed": 0}


def test_other_settings_a_stranger_folder_or_a_missing_run_are_refused_and_nothing_changes(tmp_path):
    out = tmp_path / "run"
    claim_folder(out, "run.json", {"steps": 3, "seed": 0, "version": "1"})
    before = (out / "run.json").read_bytes()
    with pytest.raises(ValueError, match=r"^output_dir: .* other settings \(seed: 0 there, 1 now; steps: 3 there, 4 "
                                         r"now\); continue it with the same settings or choose a new --output-dir$"):
        claim_folder(out, "run.json", {"steps": 4, "seed": 1, "version": "1"})
    assert claim_folder(out, "run.json", {"steps": 3, "seed": 0, "version": "2"}, ignore=("version",))
    with pytest.raises(ValueError, match="already holds another heal-hf run; pass --resume"):
        claim_folder(out, "run.json", {"steps": 3, "seed": 0, "version": "1"}, resume=False)
    assert (out / "run.json").read_bytes() == before
    with pytest.raises(ValueError, match="--resume needs a run in .* but it has no run.json; drop --resume"):
        claim_folder(tmp_path / "elsewhere", "run.json", {}, resume=True)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "mine.txt").write_text("mine")
    with pytest.raises(ValueError, match="^out: .* is not empty and holds no run.json; choose a new --out"):
        claim_folder(tmp_path / "notes", "run.json", {}, what="out")
    assert [p.name for p in (tmp_path / "notes").iterdir()] == ["mine.txt"]
    (out / "run.json").write_text("{not json")
    with pytest.raises(ValueError, match="run.json is corrupted"):
        claim_folder(out, "run.json", {"steps": 3})


def test_an_identity_inside_a_larger_record_and_defaults_for_older_records(tmp_path):
    out = tmp_path / "train"
    assert claim_folder(out, "run.json", {"lr": 1}, resume=False, key="fingerprint") is None
    assert not out.exists()  # with a key, the caller writes the record once the run has started
    out.mkdir()
    (out / "run.json").write_text(json.dumps({"fingerprint": {"lr": 1}, "status": "training"}))
    assert claim_folder(out, "run.json", {"lr": 1}, resume=True, key="fingerprint")["status"] == "training"
    with pytest.raises(ValueError, match="lr: 1 there, 2 now"):
        claim_folder(out, "run.json", {"lr": 2}, resume=True, key="fingerprint")
    old = tmp_path / "old"
    old.mkdir()
    (old / "run.json").write_text(json.dumps({"steps": 3}))  # written before `warmup` existed
    assert claim_folder(old, "run.json", {"steps": 3, "warmup": 0}, defaults={"warmup": 0})
    with pytest.raises(ValueError, match="warmup: 0 there, 5 now"):
        claim_folder(old, "run.json", {"steps": 3, "warmup": 5}, defaults={"warmup": 0})


def test_another_process_writing_the_record_does_not_make_the_folder_a_stranger(tmp_path):
    (tmp_path / ".run.json.1234.tmp").write_text("{")  # atomic_write's temporary, mid-write
    assert claim_folder(tmp_path, "run.json", {"steps": 3}) is None


def test_sha256_of_bytes_and_files(tmp_path):
    data = b"x" * (3 << 20)  # more than one read block
    (tmp_path / "f").write_bytes(data)
    assert sha256_of(data) == sha256_of(tmp_path / "f") == hashlib.sha256(data).hexdigest()
