"""Model strings pick a backend: `llamacpp:PATH.gguf`, `hf:REPO/FILE.gguf`, `vllm:MODEL`,
`openai:MODEL@BASE_URL`, `langchain:module:attr`, `scripted:FILE`. No string: the embedded default.
"""

from __future__ import annotations

from typing import Any

from toolkit.models.base import Backend, BackendError

KINDS = ("llamacpp", "hf", "vllm", "openai", "langchain", "scripted")
DEFAULT_MODEL = "llamacpp:default"


def parse_model_string(model: str | None) -> tuple[str, str]:
    """Split `kind:target` (None: the default). Raises BackendError with the accepted forms on
    anything else, an empty string included (it would otherwise mean the default, silently)."""
    if model is None:
        model = DEFAULT_MODEL
    if not model.strip():
        forms = ", ".join(f"{k}:..." for k in KINDS)
        raise BackendError(f"the model string is empty; expected one of {forms} (or none at all, for the default)")
    kind, sep, target = model.partition(":")
    if not sep or kind not in KINDS:
        forms = ", ".join(f"{k}:..." for k in KINDS)
        raise BackendError(f"unknown model string {model!r}; expected one of {forms}")
    return kind, target


def load_backend(model: str | None = None, **options: Any) -> Backend:
    kind, target = parse_model_string(model)
    if kind == "scripted":
        from toolkit.models.scripted import ScriptedBackend

        return ScriptedBackend.from_file(target)
    if kind in ("llamacpp", "hf"):
        from toolkit.models.llamacpp.backend import LlamaCppBackend

        return LlamaCppBackend.from_model_string(kind, target, **options)
    if kind == "openai":
        from toolkit.models.openai import OpenAIBackend

        return OpenAIBackend.from_target(target, **options)
    if kind == "vllm":
        from toolkit.models.vllm import VLLMBackend

        return VLLMBackend.from_model(target, **options)
    from toolkit.models.langchain import LangChainBackend

    return LangChainBackend.from_target(target, **options)
