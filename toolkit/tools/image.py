"""The image tool: `generate_image(prompt, size, seed)` through one of two backends.

- `diffusers`: a local diffusers pipeline (`settings.model`: a folder or a model id), on the GPU
  when there is one. Needs the `image` extra (diffusers, torch, transformers, pillow); loaded
  lazily, so the tool loads without them. Pipelines stay cached for the process.
- `openai`: an OpenAI-compatible images endpoint, `POST {base_url}/v1/images/generations`, whose
  answer carries `data[0].b64_json` or `data[0].url`. The API key comes from the environment
  variable named by `settings.api_key_env`.

`backend: auto` picks diffusers when a model is configured and diffusers imports, else the
endpoint when `base_url` is set. The image is saved as a PNG in `settings.output_dir` (default
`$TOOLKIT_HOME/images`); the result gives its path and how it was made.
"""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import io
import os
import random
import re
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import httpx

from toolkit.bindings import ToolContext, ToolInputError
from toolkit.config import toolkit_home

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SIZE = re.compile(r"^\s*(\d{2,5})\s*[xX×]\s*(\d{2,5})\s*$")
MIN_SIDE, MAX_SIDE = 16, 4096
NOT_CONFIGURED = (
    "image generation is not configured. Set, in the config file under `tools: {image: ...}`, either "
    "`model` (a diffusers pipeline: a local folder or a model id; needs `pip install 'toolkit[image]'`) "
    "or `base_url` (an OpenAI-compatible server with /v1/images/generations; its API key is read from "
    "the environment variable named by `api_key_env`)."
)


class ImageConfigError(RuntimeError):
    """The tool can't run as configured (no backend, missing packages...)."""


def parse_size(size: str) -> tuple[int, int]:
    match = SIZE.match(str(size))
    if not match:
        raise ToolInputError(f"size must look like '512x512' (width x height), not {size!r}")
    width, height = int(match.group(1)), int(match.group(2))
    if not (MIN_SIDE <= width <= MAX_SIDE and MIN_SIDE <= height <= MAX_SIDE):
        raise ToolInputError(f"width and height must be from {MIN_SIDE} to {MAX_SIDE} pixels")
    return width, height


def diffusers_installed() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in ("diffusers", "torch"))


def choose_backend(settings: dict[str, Any]) -> str:
    backend = str(settings.get("backend") or "auto").lower()
    if backend not in ("auto", "diffusers", "openai"):
        raise ImageConfigError(f"unknown image backend {backend!r}; use auto, diffusers or openai")
    if backend == "diffusers":
        if not settings.get("model"):
            raise ImageConfigError("the diffusers backend needs `model` (a local pipeline folder or a model id)")
        if not diffusers_installed():
            raise ImageConfigError("the diffusers backend needs diffusers and torch: pip install 'toolkit[image]'")
        return backend
    if backend == "openai":
        if not settings.get("base_url"):
            raise ImageConfigError(
                "the openai backend needs `base_url` (e.g. https://api.example.com or http://127.0.0.1:8000)"
            )
        return backend
    if settings.get("model") and diffusers_installed():
        return "diffusers"
    if settings.get("base_url"):
        return "openai"
    if settings.get("model"):
        raise ImageConfigError(
            "`model` is set but diffusers/torch are not installed (pip install 'toolkit[image]'), and no `base_url` is set"
        )
    raise ImageConfigError(NOT_CONFIGURED)


def output_path(settings: dict[str, Any], prompt: str, seed: int | None) -> Path:
    folder = Path(settings.get("output_dir") or toolkit_home() / "images").expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    slug = re.sub(r"[^a-z0-9]+", "-", prompt.lower()).strip("-")[:40] or "image"
    stamp = time.strftime("%Y%m%d-%H%M%S")
    suffix = f"-{seed}" if seed is not None else ""
    path = folder / f"{stamp}-{slug}{suffix}.png"
    n = 1
    while path.exists():
        n += 1
        path = folder / f"{stamp}-{slug}{suffix}-{n}.png"
    return path


def to_png(data: bytes) -> tuple[bytes, tuple[int, int] | None]:
    """PNG bytes (converted with Pillow if the server sent JPEG/WebP) and the image's size."""
    try:
        from PIL import Image
    except ImportError:
        if not data.startswith(PNG_SIGNATURE):
            raise RuntimeError("the server did not send a PNG and Pillow is not installed to convert it") from None
        width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")  # the IHDR chunk
        return data, (width, height)
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except Exception as exc:  # noqa: BLE001 - Pillow raises many kinds for bad data
        raise RuntimeError(f"the server's answer is not an image: {exc}") from None
    if image.format == "PNG":
        return data, image.size
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue(), image.size


# ---- the OpenAI-compatible endpoint ------------------------------------------------------------


def images_url(base_url: str) -> str:
    base = base_url.rstrip("/")
    base = base[: -len("/v1")] if base.endswith("/v1") else base
    return f"{base}/v1/images/generations"


async def generate_with_endpoint(
    prompt: str, size: str, seed: int | None, settings: dict[str, Any]
) -> tuple[bytes, dict[str, Any]]:
    headers = {"Content-Type": "application/json"}
    key_env = settings.get("api_key_env")
    if key_env:
        key = os.environ.get(str(key_env))
        if not key and settings.get("api_key_required"):
            raise ImageConfigError(f"the environment variable {key_env} (the images API key) is not set")
        if key:
            headers["Authorization"] = f"Bearer {key}"
    body: dict[str, Any] = {"prompt": prompt, "n": 1, "size": size}
    if settings.get("api_model"):
        body["model"] = settings["api_model"]
    if settings.get("response_format"):
        body["response_format"] = settings["response_format"]
    if seed is not None and settings.get("send_seed"):
        body["seed"] = seed
    url = images_url(str(settings["base_url"]))
    timeout = float(settings.get("request_timeout_s") or 300)
    async with httpx.AsyncClient(timeout=timeout, follow_redirects=True) as client:
        try:
            response = await client.post(url, json=body, headers=headers)
        except httpx.HTTPError as exc:
            raise RuntimeError(f"cannot reach the images endpoint {url}: {exc}") from None
        if response.status_code >= 400:
            raise RuntimeError(f"the images endpoint answered {response.status_code}: {response.text[:500]}")
        try:
            item = response.json()["data"][0]
        except (ValueError, KeyError, IndexError, TypeError):
            raise RuntimeError(
                f"unexpected answer from the images endpoint (no data[0]): {response.text[:300]}"
            ) from None
        if item.get("b64_json"):
            try:
                data = base64.b64decode(item["b64_json"], validate=True)
            except ValueError:
                raise RuntimeError("data[0].b64_json is not valid base64") from None
        elif item.get("url"):
            fetched = await client.get(item["url"])
            if fetched.status_code >= 400:
                raise RuntimeError(f"cannot download the image from {item['url']}: HTTP {fetched.status_code}")
            data = fetched.content
        else:
            raise RuntimeError("the images endpoint returned neither b64_json nor url")
    meta = {"model": settings.get("api_model"), "seed": seed if settings.get("send_seed") else None}
    if item.get("revised_prompt"):
        meta["revised_prompt"] = item["revised_prompt"]
    return data, meta


# ---- the local diffusers pipeline --------------------------------------------------------------

_pipelines: dict[tuple[str, str, str], Any] = {}
_pipelines_lock = threading.Lock()


def _device_and_dtype(settings: dict[str, Any]) -> tuple[str, str]:
    import torch

    device = str(settings.get("device") or "auto")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = str(settings.get("dtype") or "auto")
    if dtype == "auto":
        dtype = "float16" if device.startswith("cuda") else "float32"
    return device, dtype


def load_pipeline(model: str, device: str, dtype: str) -> Any:
    """Load (once per process) a diffusers pipeline from a folder or a model id."""
    key = (model, device, dtype)
    with _pipelines_lock:
        if key not in _pipelines:
            import torch
            from diffusers import DiffusionPipeline

            try:
                with warnings.catch_warnings():
                    # newer diffusers call it `dtype` and warn about `torch_dtype`, which older ones need
                    warnings.filterwarnings("ignore", message=".*torch_dtype.*", category=FutureWarning)
                    pipe = DiffusionPipeline.from_pretrained(model, torch_dtype=getattr(torch, dtype))
            except Exception as exc:  # noqa: BLE001 - from_pretrained raises OSError, ValueError, HTTP errors...
                raise ImageConfigError(f"cannot load the diffusers pipeline {model!r}: {exc}") from None
            pipe = pipe.to(device)
            if hasattr(pipe, "set_progress_bar_config"):
                pipe.set_progress_bar_config(disable=True)
            _pipelines[key] = pipe
        return _pipelines[key]


def clear_pipelines() -> None:
    with _pipelines_lock:
        _pipelines.clear()


def generate_with_diffusers(
    prompt: str, width: int, height: int, seed: int, settings: dict[str, Any]
) -> tuple[bytes, dict[str, Any]]:
    import inspect

    import torch

    device, dtype = _device_and_dtype(settings)
    model = str(settings["model"])
    pipe = load_pipeline(model, device, dtype)
    params = inspect.signature(pipe.__call__).parameters
    kwargs: dict[str, Any] = {"generator": torch.Generator(device="cpu").manual_seed(seed)}
    meta: dict[str, Any] = {"model": model, "device": device, "pipeline": type(pipe).__name__}
    if "prompt" in params:
        kwargs["prompt"] = prompt
    else:
        meta["note"] = "this pipeline is unconditional: the prompt was not used"
    if "height" in params and "width" in params:
        kwargs["height"], kwargs["width"] = height, width
    if "num_inference_steps" in params:
        kwargs["num_inference_steps"] = meta["steps"] = int(settings.get("steps") or 25)
    if settings.get("guidance_scale") is not None and "guidance_scale" in params:
        kwargs["guidance_scale"] = meta["guidance_scale"] = float(settings["guidance_scale"])
    if "output_type" in params:
        kwargs["output_type"] = "pil"
    with torch.inference_mode():
        image = pipe(**kwargs).images[0]
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue(), meta


# ---- the action --------------------------------------------------------------------------------


async def generate_image(
    prompt: str, size: str = "512x512", seed: int | None = None, ctx: ToolContext | None = None
) -> dict[str, Any]:
    """Generate one image from a text prompt and save it as a PNG; returns its path and metadata."""
    settings = dict(ctx.settings) if ctx else {}
    if not prompt.strip():
        raise ToolInputError("prompt is empty")
    width, height = parse_size(size)
    backend = choose_backend(settings)
    started = time.perf_counter()
    if backend == "diffusers":
        seed = random.randrange(2**31) if seed is None else int(seed)  # reported, so the image can be made again
        data, meta = await asyncio.to_thread(generate_with_diffusers, prompt, width, height, seed, settings)
    else:
        data, meta = await generate_with_endpoint(prompt, f"{width}x{height}", seed, settings)
        seed = meta.pop("seed")
    png, actual = to_png(data)
    path = output_path(settings, prompt, seed)
    path.write_bytes(png)
    return {
        "path": str(path),
        "prompt": prompt,
        "size": f"{actual[0]}x{actual[1]}" if actual else f"{width}x{height}",
        "requested_size": f"{width}x{height}",
        "seed": seed,
        "backend": backend,
        "bytes": len(png),
        "duration_s": round(time.perf_counter() - started, 3),
        **meta,
    }
