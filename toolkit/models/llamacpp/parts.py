"""GGUF files that PyPI packages ship in parts: assembled once into the model cache, trusted only by hash.

PyPI caps a file at 100 MB, so larger models come as N part packages, each holding one slice of
the GGUF. The slices are concatenated in order into `<cache>/models/<file>` through a temp file
and a rename (a concurrent reader sees no file or the whole file; two processes assembling at once
each rename a complete copy), and the sha256 of the whole is checked before the file is used: a
mismatch is refused with the expected and the found hash, and nothing is left in the cache.

Hashing 1 GB takes seconds, so a verified file gets a sidecar `<file>.verified` holding the hash
and the file's size and mtime; while they match, later starts skip the hash. Any rewrite of the
file changes its mtime and forces a fresh check.

The part packages are located through their import spec, never imported: a package's code does
not run here (the ones we ship only define a path getter, but trust is the hash's job).
"""

from __future__ import annotations

import hashlib
import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from toolkit.models.base import BackendError
from toolkit.models.llamacpp.cache_files import written_atomically


class ModelNotFoundError(BackendError):
    """The model string names a file or package that is not here (with what to install)."""


class ModelHashError(ModelNotFoundError):
    """Assembled bytes do not hash to the pinned sha256: the parts were altered or damaged."""


def package_dir(package: str, install_hint: str) -> Path:
    """The folder of an installed package, found without importing (running) it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(f"package {package!r} is not installed; {install_hint}")
    return Path(next(iter(spec.submodule_search_locations)))


@dataclass(frozen=True)
class PartedModel:
    """A GGUF shipped as part packages: `packages[i]` holds `part_files[i]`, concatenated in order."""

    file_name: str
    sha256: str
    packages: tuple[str, ...]  # import names, in concatenation order
    part_files: tuple[str, ...]  # each part's path inside its package
    install_hint: str

    def part_paths(self) -> list[Path]:
        """Where the installed parts are; a missing package or file is a clear error."""
        paths = []
        for package, relative in zip(self.packages, self.part_files, strict=True):
            path = package_dir(package, f"a part of {self.file_name}; {self.install_hint}") / relative
            if not path.is_file():
                raise ModelNotFoundError(f"{self.file_name}: {path} is missing; {self.install_hint}")
            paths.append(path)
        return paths


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _stamp(expected: str, path: Path) -> str:
    st = path.stat()
    return f"{expected} {st.st_size}:{st.st_mtime_ns}"


def _remember_verified(target: Path, expected: str) -> None:
    with written_atomically(target.with_name(target.name + ".verified")) as tmp:
        tmp.write_text(_stamp(expected, target) + "\n")


def _verified_before(target: Path, expected: str) -> bool:
    stamp = target.with_name(target.name + ".verified")
    try:
        return stamp.read_text().strip() == _stamp(expected, target)
    except FileNotFoundError:
        return False


def assembled_file(
    file_name: str,
    expected_sha256: str,
    parts: Sequence[Path],
    cache: Path,
    install_hint: str = "reinstall the part packages",
) -> Path:
    """`parts` concatenated into `cache/models/file_name`, verified against `expected_sha256`.

    Done once: a file already there is reused if its stamp says it was verified (else re-hashed,
    and re-assembled from the parts if it does not match).
    """
    target = cache / "models" / file_name
    if target.is_file():
        if _verified_before(target, expected_sha256):
            return target
        if file_sha256(target) == expected_sha256:
            _remember_verified(target, expected_sha256)
            return target
    digest, size = hashlib.sha256(), 0
    with written_atomically(target) as tmp:
        with tmp.open("wb") as out:
            for part in parts:
                with part.open("rb") as f:
                    while block := f.read(1 << 20):
                        digest.update(block)
                        size += len(block)
                        out.write(block)
        found = digest.hexdigest()
        if found != expected_sha256:  # raising inside the block removes the temp file
            raise ModelHashError(
                f"refusing {file_name}: its {len(parts)} parts assemble to sha256 {found} ({size:,} bytes), "
                f"expected sha256 {expected_sha256}; the part files were altered or damaged ({install_hint})"
            )
    _remember_verified(target, expected_sha256)
    return target


def parted_model_path(model: PartedModel, cache: Path) -> Path:
    """The assembled, verified GGUF of `model` in `cache` (assembled on first use)."""
    return assembled_file(model.file_name, model.sha256, model.part_paths(), cache, model.install_hint)
