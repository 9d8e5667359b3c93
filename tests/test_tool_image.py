"""The image tool: the OpenAI-compatible endpoint against a real HTTP server on 127.0.0.1, and the
diffusers code path with a tiny randomly initialised Stable Diffusion pipeline built here (CPU)."""

from __future__ import annotations

import base64
import hashlib
import json
import struct
import subprocess
import sys
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from toolkit.registry import ToolRegistry, builtin_manifest_dir
from toolkit.runtime.executor import Executor
from toolkit.tools import image
from toolkit.types import ErrorCode, ToolCall

try:
    from PIL import Image
except ImportError:  # Pillow comes with the `image` extra; the endpoint tests don't need it
    Image = None


def make_executor(**settings) -> Executor:
    registry = ToolRegistry(tool_settings={"image": settings})
    registry.load_file(builtin_manifest_dir() / "image.yaml")
    assert registry.tools["image"].available, registry.tools["image"].reason
    return Executor(registry, approver="auto")  # generating an image is not read-only: the test approves


async def generate(executor: Executor, **arguments):
    return await executor.execute(ToolCall(id="c1", name="image.generate_image", arguments=arguments))


def make_png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A real PNG of one colour, written by hand so that the server needs no Pillow."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return image.PNG_SIGNATURE + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def check_png(path: str) -> tuple[int, int]:
    """Validate a PNG file (signature, chunk CRCs, pixel data of the declared size); return its size."""
    data = Path(path).read_bytes()
    assert data.startswith(image.PNG_SIGNATURE)
    pos, chunks = len(image.PNG_SIGNATURE), {}
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        tag, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        assert struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])[0] == zlib.crc32(tag + body), tag
        chunks[tag] = chunks.get(tag, b"") + body
        pos += 12 + length
    assert tag == b"IEND"
    width, height, depth, color = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[color]
    assert len(zlib.decompress(chunks[b"IDAT"])) == height * (1 + width * channels * depth // 8)
    if Image is not None:
        with Image.open(path) as img:
            img.load()
            assert img.format == "PNG" and img.size == (width, height)
    return width, height


# ---- a real OpenAI-shaped images server ---------------------------------------------------------


class ImagesServer(ThreadingHTTPServer):
    def __init__(self):
        super().__init__(("127.0.0.1", 0), ImagesHandler)
        self.requests: list[dict] = []
        self.files: dict[str, bytes] = {}

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class ImagesHandler(BaseHTTPRequestHandler):
    server: ImagesServer

    def log_message(self, *args):  # keep test output clean
        pass

    def _json(self, status: int, payload: dict) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        if self.path != "/v1/images/generations":
            return self._json(404, {"error": {"message": "not found"}})
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append({"body": body, "authorization": self.headers.get("Authorization")})
        if body["prompt"] == "please fail":
            return self._json(
                400,
                {
                    "error": {
                        "message": "Your request was rejected by the safety system.",
                        "type": "invalid_request_error",
                    }
                },
            )
        width, height = (int(v) for v in body.get("size", "1024x1024").split("x"))
        color = tuple(hashlib.sha256(body["prompt"].encode()).digest()[:3])
        png = make_png(width, height, color)
        item = {"revised_prompt": body["prompt"] + ", detailed"}
        if body.get("response_format") == "url":
            name = f"{len(self.server.files)}.png"
            self.server.files[name] = png
            item["url"] = f"{self.server.base_url}/files/{name}"
        else:
            item["b64_json"] = base64.b64encode(png).decode()
        self._json(200, {"created": 1700000000, "data": [item]})

    def do_GET(self):
        data = self.server.files.get(self.path.removeprefix("/files/"))
        if data is None:
            return self._json(404, {"error": {"message": "no such file"}})
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture()
def images_server():
    server = ImagesServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


async def test_endpoint_b64_json(images_server, tmp_path, monkeypatch):
    monkeypatch.setenv("TOOLKIT_TEST_IMAGES_KEY", "sekrit")
    executor = make_executor(
        base_url=images_server.base_url + "/v1",
        api_model="tiny-images",
        api_key_env="TOOLKIT_TEST_IMAGES_KEY",
        output_dir=str(tmp_path),
    )
    obs = await generate(executor, prompt="a red square", size="96x64", seed=3)
    assert obs.ok, obs.text
    result = obs.content
    assert result["backend"] == "openai" and result["model"] == "tiny-images"
    assert result["size"] == "96x64" and result["prompt"] == "a red square"
    assert result["revised_prompt"] == "a red square, detailed"
    assert result["seed"] is None  # not sent: OpenAI's API has no seed
    assert Path(result["path"]).parent == tmp_path
    assert check_png(result["path"]) == (96, 64)
    request = images_server.requests[-1]
    assert request["authorization"] == "Bearer sekrit"
    assert request["body"] == {
        "prompt": "a red square",
        "n": 1,
        "size": "96x64",
        "model": "tiny-images",
        "response_format": "b64_json",
    }


async def test_endpoint_url_response(images_server, tmp_path):
    executor = make_executor(
        base_url=images_server.base_url, response_format="url", send_seed=True, output_dir=str(tmp_path)
    )
    obs = await generate(executor, prompt="a blue circle", size="32x48", seed=11)
    assert obs.ok, obs.text
    assert obs.content["seed"] == 11 and images_server.requests[-1]["body"]["seed"] == 11
    assert images_server.requests[-1]["authorization"] is None  # no key in the environment: none sent
    assert check_png(obs.content["path"]) == (32, 48)


async def test_endpoint_error_becomes_a_tool_error(images_server, tmp_path):
    obs = await generate(make_executor(base_url=images_server.base_url, output_dir=str(tmp_path)), prompt="please fail")
    assert obs.error == ErrorCode.tool_error
    assert "400" in obs.message and "safety system" in obs.message
    assert list(tmp_path.iterdir()) == []


async def test_unconfigured_tool_says_what_to_configure(tmp_path):
    obs = await generate(make_executor(output_dir=str(tmp_path)), prompt="a cat")
    assert obs.error == ErrorCode.tool_error
    assert "not configured" in obs.message and "model" in obs.message and "base_url" in obs.message


async def test_bad_sizes_are_invalid_arguments(images_server, tmp_path):
    executor = make_executor(base_url=images_server.base_url, output_dir=str(tmp_path))
    for size in ("big", "8x8", "99999x10"):
        obs = await generate(executor, prompt="a cat", size=size)
        assert obs.error == ErrorCode.invalid_arguments, (size, obs.text)


def test_backend_choice(monkeypatch):
    assert image.choose_backend({"base_url": "http://127.0.0.1:1"}) == "openai"
    monkeypatch.setattr(image, "diffusers_installed", lambda: False)  # as on a machine without the image extra
    with pytest.raises(image.ImageConfigError, match="pip install"):
        image.choose_backend({"model": "some/model"})
    assert image.choose_backend({"model": "some/model", "base_url": "http://127.0.0.1:1"}) == "openai"
    with pytest.raises(image.ImageConfigError, match="unknown image backend"):
        image.choose_backend({"backend": "dalle"})


def test_the_tool_loads_without_torch_or_diffusers():
    code = "import sys, toolkit.tools.image; print('torch' in sys.modules, 'diffusers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


# ---- the diffusers code path with a tiny random pipeline ---------------------------------------


def _byte_level_vocab() -> dict[str, int]:
    """CLIP's byte-level alphabet (each byte as a character, with and without the word-end mark)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    extra = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + extra)
            extra += 1
    chars = [chr(c) for c in cs]
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return vocab


@pytest.fixture(scope="session")
def tiny_pipeline_dir(tmp_path_factory) -> Path:
    """A Stable Diffusion pipeline of a few thousand random weights, saved like a real one."""
    torch = pytest.importorskip("torch")
    diffusers = pytest.importorskip("diffusers")
    transformers = pytest.importorskip("transformers")
    import inspect

    vocab = _byte_level_vocab()
    folder = tmp_path_factory.mktemp("tiny_sd")
    if "vocab" in inspect.signature(transformers.CLIPTokenizer.__init__).parameters:  # transformers >= 5
        tokenizer = transformers.CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)
    else:
        (folder / "vocab.json").write_text(json.dumps(vocab))
        (folder / "merges.txt").write_text("#version: 0.2\n")
        tokenizer = transformers.CLIPTokenizer(
            vocab_file=str(folder / "vocab.json"), merges_file=str(folder / "merges.txt"), model_max_length=77
        )
    torch.manual_seed(0)
    unet = diffusers.UNet2DConditionModel(
        block_out_channels=(4, 8),
        layers_per_block=1,
        sample_size=16,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        norm_num_groups=2,
    )
    vae = diffusers.AutoencoderKL(
        block_out_channels=[4, 8],
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        norm_num_groups=2,
        down_block_types=["DownEncoderBlock2D"] * 2,
        up_block_types=["UpDecoderBlock2D"] * 2,
    )
    scheduler = diffusers.DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    text_encoder = transformers.CLIPTextModel(
        transformers.CLIPTextConfig(
            vocab_size=len(vocab),
            hidden_size=32,
            intermediate_size=37,
            num_attention_heads=4,
            num_hidden_layers=2,
            max_position_embeddings=77,
            bos_token_id=vocab["<|startoftext|>"],
            eos_token_id=vocab["<|endoftext|>"],
            pad_token_id=vocab["<|endoftext|>"],
        )
    )
    pipe = diffusers.StableDiffusionPipeline(
        unet=unet,
        vae=vae,
        scheduler=scheduler,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    assert tokenizer("a fox").input_ids != tokenizer("a cat").input_ids  # the prompt reaches the model
    pipe.save_pretrained(folder / "pipeline")
    return folder / "pipeline"


@pytest.mark.slow
async def test_diffusers_pipeline_writes_a_png(tiny_pipeline_dir, tmp_path):
    executor = make_executor(model=str(tiny_pipeline_dir), steps=2, output_dir=str(tmp_path))  # backend auto
    obs = await generate(executor, prompt="a red fox", size="64x48", seed=7)
    assert obs.ok, obs.text
    result = obs.content
    assert result["backend"] == "diffusers" and result["model"] == str(tiny_pipeline_dir)
    assert result["pipeline"] == "StableDiffusionPipeline" and result["device"] == "cpu"
    assert result["seed"] == 7 and result["size"] == "64x48" and result["steps"] == 2
    assert check_png(result["path"]) == (64, 48)
    first = Image.open(result["path"])
    assert first.mode == "RGB"

    again = await generate(executor, prompt="a red fox", size="64x48", seed=7)
    assert Image.open(again.content["path"]).tobytes() == first.tobytes()  # same seed, same image
    other = await generate(executor, prompt="a green owl", size="64x48", seed=7)
    assert Image.open(other.content["path"]).tobytes() != first.tobytes()  # the prompt matters
    unseeded = await generate(executor, prompt="a red fox", size="64x48")
    assert isinstance(unseeded.content["seed"], int)  # a random seed, reported


@pytest.mark.slow
async def test_missing_pipeline_is_a_clear_error(tmp_path):
    pytest.importorskip("diffusers")
    pytest.importorskip("torch")
    executor = make_executor(backend="diffusers", model=str(tmp_path / "nothing-here"), output_dir=str(tmp_path))
    obs = await generate(executor, prompt="a cat", size="64x64")
    assert obs.error == ErrorCode.tool_error and "cannot load the diffusers pipeline" in obs.message


def test_png_check_without_pillow(monkeypatch):
    monkeypatch.setitem(sys.modules, "PIL", None)  # as on a machine without the image extra
    png = make_png(5, 7, (1, 2, 3))
    assert image.to_png(png) == (png, (5, 7))
    with pytest.raises(RuntimeError, match="did not send a PNG"):
        image.to_png(b"GIF89a....")
