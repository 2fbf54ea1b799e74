"""A shared artifact store is written by other people: nothing in it may name a path outside it.

Each test crafts what a hostile or broken store could hold (a manifest whose id is a path, a
file list with '..', a symlink out of the root) and checks that the store refuses it with an
error naming the bad value, and that a sentinel directory outside the store survives.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import fsspec
import pytest

from quantplan.agent.artifacts import (
    ArtifactManifest,
    ArtifactStore,
    ArtifactStoreError,
    InvalidArtifactIdError,
    artifact_id_for,
    describe_files,
)
from quantplan.errors import QuantplanError

GOOD_ID = artifact_id_for({"test": "artifact store safety"})


def _manifest_data(artifact_id: str, directory: Path) -> dict[str, object]:
    files, total = describe_files(directory)
    return {
        "artifact_id": artifact_id,
        "kind": "gguf",
        "method": "gguf",
        "scheme": "gguf-q8_0",
        "parameters": {},
        "source_model": "m",
        "source_model_sha256": "0",
        "toolchain": "llama-cpp",
        "toolchain_key": "k",
        "tool_versions": {},
        "files": [file.model_dump() for file in files],
        "total_bytes": total,
        "source_weight_bytes": 1000,
        "main_file": "model.gguf",
        "quantize_seconds": 1.0,
        "created_at": datetime.now(UTC).isoformat(),
    }


def _sentinel(directory: Path) -> Path:
    directory.mkdir(parents=True)
    (directory / "keep.txt").write_text("must survive")
    return directory


def _assert_sentinel_intact(directory: Path) -> None:
    assert (directory / "keep.txt").read_text() == "must survive"


def _put_remote_artifact(url: str, directory_name: str, manifest: dict[str, object]) -> None:
    fs, root = fsspec.core.url_to_fs(url)
    fs.pipe_file(f"{root}/{directory_name}/model.gguf", b"GGUF" + b"\0" * 60)
    fs.pipe_file(f"{root}/{directory_name}/manifest.json", json.dumps(manifest).encode())


def test_remote_manifest_with_a_path_as_id_touches_nothing_outside(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reported attack: a shared (remote) store's manifest says its id is '../../x'. The
    local mirror used to be cache/artifact-mirror/<id>, deleted and replaced: here tmp/sentinel."""
    monkeypatch.setenv("QUANTPLAN_CACHE_DIR", str(tmp_path / "home" / "cache"))
    sentinel = _sentinel(tmp_path / "home" / "sentinel")
    local = tmp_path / "made"
    local.mkdir()
    (local / "model.gguf").write_bytes(b"GGUF" + b"\0" * 60)
    url = f"memory://qp-safety-{uuid.uuid4().hex}"
    _put_remote_artifact(url, GOOD_ID, _manifest_data("../../sentinel", local))
    fs, root = fsspec.core.url_to_fs(url)
    fs.pipe_file(f"{root}/../../sentinel/evil.txt", b"replaced")  # what the old mirror copied
    store = ArtifactStore(url)

    with pytest.raises(InvalidArtifactIdError, match=r"'\.\./\.\./sentinel' is not an artifact id"):
        store.list()
    with pytest.raises(InvalidArtifactIdError, match="sentinel"):
        store.find("gguf-q8_0")
    # Even a manifest object built in memory cannot carry such an id to local_dir.
    with pytest.raises(ValueError, match="not an artifact id"):
        ArtifactManifest.model_validate(_manifest_data("../../sentinel", local))
    _assert_sentinel_intact(sentinel)
    assert not (tmp_path / "home" / "cache" / "artifact-mirror").exists() or not any(
        (tmp_path / "home" / "cache" / "artifact-mirror").iterdir()
    )


def test_remote_manifest_files_must_stay_inside_the_artifact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QUANTPLAN_CACHE_DIR", str(tmp_path / "home" / "cache"))
    sentinel = _sentinel(tmp_path / "home" / "sentinel")
    local = tmp_path / "made"
    local.mkdir()
    (local / "model.gguf").write_bytes(b"GGUF")
    data = _manifest_data(GOOD_ID, local)
    data["files"] = [{"path": "../../../sentinel/keep.txt", "bytes": 4, "sha256": "0" * 64}]
    url = f"memory://qp-safety-{uuid.uuid4().hex}"
    _put_remote_artifact(url, GOOD_ID, data)

    with pytest.raises(ArtifactStoreError, match=r"files\.0\.path.*not a relative path"):
        ArtifactStore(url).get(GOOD_ID)
    data["files"] = []
    data["main_file"] = "/etc/passwd"
    _put_remote_artifact(url, GOOD_ID, data)
    with pytest.raises(ArtifactStoreError, match="main_file"):
        ArtifactStore(url).get(GOOD_ID)
    _assert_sentinel_intact(sentinel)


def test_remote_file_that_does_not_match_its_sha256_is_not_mirrored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QUANTPLAN_CACHE_DIR", str(tmp_path / "cache"))
    local = tmp_path / "made"
    local.mkdir()
    (local / "model.gguf").write_bytes(b"the original")
    url = f"memory://qp-safety-{uuid.uuid4().hex}"
    _put_remote_artifact(url, GOOD_ID, _manifest_data(GOOD_ID, local))  # uploads other bytes
    store = ArtifactStore(url)
    manifest = store.get(GOOD_ID)
    assert manifest is not None
    with pytest.raises(ArtifactStoreError, match=r"model\.gguf does not match"):
        store.local_dir(manifest)
    assert not (tmp_path / "cache" / "artifact-mirror" / GOOD_ID).exists()


def test_manifest_that_claims_another_artifacts_id_is_refused(tmp_path: Path) -> None:
    store_dir = tmp_path / "store"
    (store_dir / GOOD_ID).mkdir(parents=True)
    (store_dir / GOOD_ID / "model.gguf").write_bytes(b"GGUF")
    other = artifact_id_for({"another": 1})
    (store_dir / GOOD_ID / "manifest.json").write_text(
        json.dumps(_manifest_data(other, store_dir / GOOD_ID))
    )
    with pytest.raises(ArtifactStoreError, match=f"names artifact '{other}' but lies under"):
        ArtifactStore(str(store_dir)).get(GOOD_ID)


def test_local_artifact_symlinked_out_of_the_store_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "model.gguf").write_bytes(b"GGUF")
    (outside / "manifest.json").write_text(json.dumps(_manifest_data(GOOD_ID, outside)))
    store_dir = tmp_path / "store"
    store_dir.mkdir()
    (store_dir / GOOD_ID).symlink_to(outside, target_is_directory=True)
    store = ArtifactStore(str(store_dir))
    with pytest.raises(ArtifactStoreError, match="leads outside the artifact store"):
        store.list()


def test_local_artifact_file_symlinked_out_of_the_store_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret.gguf"
    secret.write_bytes(b"not yours")
    artifact = tmp_path / "store" / GOOD_ID
    artifact.mkdir(parents=True)
    (artifact / "model.gguf").write_bytes(b"GGUF")
    (artifact / "manifest.json").write_text(json.dumps(_manifest_data(GOOD_ID, artifact)))
    (artifact / "model.gguf").unlink()
    (artifact / "model.gguf").symlink_to(secret)
    store = ArtifactStore(str(tmp_path / "store"))
    manifest = store.get(GOOD_ID)
    assert manifest is not None
    with pytest.raises(ArtifactStoreError, match="leads outside"):
        store.local_dir(manifest)


@pytest.mark.parametrize("bad", ["../../x", "/etc", "a/b", "ABC", "0" * 23, "0" * 25, ""])
def test_ids_of_any_other_form_are_refused_before_a_path_is_built(tmp_path: Path, bad: str) -> None:
    store = ArtifactStore(str(tmp_path / "store"))
    with pytest.raises(InvalidArtifactIdError, match="is not an artifact id"):
        store.get(bad)
    with pytest.raises(InvalidArtifactIdError):
        store.staging_dir(bad)
    assert not (tmp_path / "store").exists()


def test_store_still_finds_its_own_artifacts_by_prefix_and_scheme(tmp_path: Path) -> None:
    store = ArtifactStore(str(tmp_path / "store"))
    staging = store.staging_dir(GOOD_ID)
    (staging / "model.gguf").write_bytes(b"GGUF")
    store.commit(staging, ArtifactManifest.model_validate(_manifest_data(GOOD_ID, staging)))
    (tmp_path / "store" / "notes").mkdir()  # not an artifact: ignored, not an error
    assert store.find(GOOD_ID[:6]).artifact_id == GOOD_ID
    assert store.find("gguf-q8_0").artifact_id == GOOD_ID
    assert store.local_dir(store.find(GOOD_ID)) == (tmp_path / "store" / GOOD_ID).resolve()
    with pytest.raises(QuantplanError, match="not an artifact id, id prefix or scheme name"):
        store.find("../" + GOOD_ID)


def _quantplan(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "quantplan", *args], capture_output=True, text=True, timeout=120
    )


def test_cli_refuses_a_crafted_store_with_one_line(tmp_path: Path) -> None:
    sentinel = _sentinel(tmp_path / "sentinel")
    artifact = tmp_path / "store" / GOOD_ID
    artifact.mkdir(parents=True)
    (artifact / "model.gguf").write_bytes(b"GGUF")
    (artifact / "manifest.json").write_text(json.dumps(_manifest_data("../sentinel", artifact)))

    crafted = _quantplan("evaluate", "gguf-q8_0", "--store", str(tmp_path / "store"))
    assert crafted.returncode != 0
    assert "Traceback" not in crafted.stderr
    assert "'../sentinel' is not an artifact id" in crafted.stderr

    path_like = _quantplan("evaluate", "../../sentinel", "--store", str(tmp_path / "store"))
    assert path_like.returncode != 0
    assert "Traceback" not in path_like.stderr
    assert "'../../sentinel' is not an artifact id, id prefix or scheme name" in path_like.stderr
    _assert_sentinel_intact(sentinel)
