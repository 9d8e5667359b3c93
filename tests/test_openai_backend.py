"""The OpenAI backend end to end against a real OpenAI-compatible server: llama-cpp-python's
`llama_cpp.server` on the embedded GGUF (chatml-function-calling), started on 127.0.0.1 for the
session, with a fault-injecting proxy in front where a test needs a 500, a hang or OpenAI's 401.
The model is tiny and answers badly; the tests check the client, not the model's wisdom."""

from __future__ import annotations

import json

import pytest

from tests.openai_servers import FaultProxy, LlamaServer
from toolkit.models import BackendError, load_backend
from toolkit.models.openai import AuthenticationError, OpenAIBackend, ServerUnavailableError
from toolkit.types import Constraint, LLMRequest, Message, Sampling, ToolSpec

pytestmark = [pytest.mark.llama, pytest.mark.slow]

CALC = ToolSpec(
    name="math.calculate",
    description="Evaluate an arithmetic expression.",
    parameters={"type": "object", "properties": {"expression": {"type": "string"}}, "required": ["expression"]},
)
ADD = ToolSpec(  # integer arguments: the server's grammar makes even this tiny model close its JSON
    name="math.add",
    description="Add two integers.",
    parameters={
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
        "required": ["a", "b"],
    },
)
CITY = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
    "required": ["city", "population"],
}
FAST = {"backoff_s": 0.01, "max_backoff_s": 0.05}  # retries without waiting in tests


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory):
    pytest.importorskip("llama_cpp.server.app", reason="needs llama-cpp-python[server]")
    from toolkit.models.llamacpp.files import default_model_path

    server = LlamaServer(default_model_path(), tmp_path_factory.mktemp("llama_server") / "server.log")
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture
def proxy(llama_server):
    p = FaultProxy(llama_server.base_url, LlamaServer.API_KEY)
    p.url = p.start()
    yield p
    p.stop()


@pytest.fixture(autouse=True)
def no_ambient_key(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


def backend_for(url: str, **options) -> OpenAIBackend:
    options.setdefault("api_key", LlamaServer.API_KEY)
    return OpenAIBackend.from_target(f"{LlamaServer.MODEL}@{url}", **{**FAST, **options})


def ask(text: str, max_tokens: int = 24, **kw) -> LLMRequest:
    return LLMRequest(messages=[Message(role="user", content=text)], sampling=Sampling(max_tokens=max_tokens), **kw)


async def test_tool_call(proxy):
    backend = backend_for(proxy.url)
    response = await backend.generate(ask("Add 2 and 3.", tools=[ADD, CALC], tool_choice="math.add"))
    await backend.aclose()
    assert response.parse_error is None, response.parse_error
    assert [c.name for c in response.tool_calls] == ["math.add"]  # the server's name, mapped back
    assert set(response.tool_calls[0].arguments) == {"a", "b"}
    assert response.finish_reason == "tool_calls"
    assert response.usage.prompt_tokens > 0 and response.usage.completion_tokens > 0 and response.timings.total_s > 0
    sent = proxy.posts[-1].body  # what went over the wire: OpenAI-safe names, a forced choice
    assert [t["function"]["name"] for t in sent["tools"]] == ["math__add", "math__calculate"]
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "math__add"}}
    assert sent["model"] == "smollm2" and sent["parallel_tool_calls"] is True
    # the conversation goes on: the call and its result are sent back in the server's format
    followup = ask("Add 2 and 3.", max_tokens=8, tools=[ADD])
    followup.messages += [
        Message(role="assistant", tool_calls=response.tool_calls),
        Message(role="tool", content="5", tool_call_id=response.tool_calls[0].id, name="math.add"),
    ]
    answer = await backend_for(proxy.url).generate(followup)
    assert proxy.posts[-1].status == 200 and answer.finish_reason in ("stop", "length", "tool_calls")
    assert proxy.posts[-1].body["messages"][1]["tool_calls"][0]["function"]["name"] == "math__add"


async def test_structured_output_json_schema(proxy):
    backend = backend_for(proxy.url)  # server="openai": response_format json_schema first
    request = ask(
        "Name a city and its population.", max_tokens=40, constraint=Constraint(kind="json_schema", json_schema=CITY)
    )
    first = await backend.generate(request)
    second = await backend.generate(request)
    await backend.aclose()
    for response in (first, second):
        assert response.parse_error is None, response.parse_error
        value = json.loads(response.text)
        assert isinstance(value["city"], str) and isinstance(value["population"], int)
    # llama-cpp-python's server refuses `json_schema` (with a 500); the client switched once to
    # its `json_object` + schema form, without spending retries on the refusal
    formats = [p.body["response_format"]["type"] for p in proxy.posts]
    assert formats == ["json_schema", "json_object", "json_object"]
    assert proxy.posts[1].body["response_format"]["schema"] == CITY


async def test_a_vllm_server_gets_structured_outputs(proxy):
    proxy.owned_by = "vllm"  # what `vllm serve` reports in /v1/models
    backend = backend_for(proxy.url)  # server="auto"
    await backend.generate(ask("Yes or no?", max_tokens=4, constraint=Constraint(kind="choice", choices=["yes", "no"])))
    await backend.aclose()
    assert backend.server == "vllm" and backend.capabilities.batching
    sent = proxy.posts[-1].body
    assert sent["structured_outputs"] == {"choice": ["yes", "no"]} and "response_format" not in sent


async def test_streaming(llama_server):
    backend = backend_for(llama_server.base_url, stream=True)
    text = await backend.generate(ask("Say hello to the world.", max_tokens=12))
    call = await backend.generate(ask("Add 2 and 3.", tools=[ADD], tool_choice="math.add"))
    await backend.aclose()
    assert text.text.strip() and text.parse_error is None
    assert text.timings.ttft_s is not None and 0 < text.timings.ttft_s <= text.timings.total_s
    assert text.usage.completion_tokens > 0 and text.timings.decode_tokens_per_s > 0
    # tool-call deltas assembled (this server repeats the name in every delta)
    assert call.parse_error is None, call.parse_error
    assert [c.name for c in call.tool_calls] == ["math.add"] and set(call.tool_calls[0].arguments) == {"a", "b"}


async def test_a_500_is_retried(proxy):
    proxy.fail_next = 1
    backend = backend_for(proxy.url)
    response = await backend.generate(ask("Say hi.", max_tokens=4))
    await backend.aclose()
    assert response.text and [p.status for p in proxy.posts] == [500, 200]


async def test_retries_are_bounded(proxy):
    proxy.fail_next = 10
    backend = backend_for(proxy.url, max_retries=2)
    with pytest.raises(ServerUnavailableError, match=r"failed 3 times; last: HTTP 500: The server had an error"):
        await backend.generate(ask("Say hi.", max_tokens=4))
    await backend.aclose()
    assert len(proxy.posts) == 3


async def test_a_timeout_is_retried(proxy):
    proxy.delay_next, proxy.delay_s = 1, 8.0
    backend = backend_for(proxy.url, timeout_s=4.0)  # the forwarded retry must fit: slow CI machines
    response = await backend.generate(ask("Say hi.", max_tokens=4))
    await backend.aclose()
    assert response.text and len(proxy.posts) == 2


async def test_a_bad_key_is_reported_clearly(proxy, monkeypatch):
    proxy.require_key = "sk-good-key"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-bad-key-123")
    backend = OpenAIBackend.from_target(f"gpt-4o-mini@{proxy.url}", **FAST)
    with pytest.raises(AuthenticationError) as info:
        await backend.generate(ask("hi"))
    message = str(info.value)
    assert proxy.url in message and "HTTP 401" in message and "Incorrect API key provided" in message
    assert "Set OPENAI_API_KEY" in message and "the key from OPENAI_API_KEY" in message
    assert len(proxy.seen) == 1  # refused at the first request (GET /models, asking what server this is), not retried
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(AuthenticationError, match=r"no key \(OPENAI_API_KEY is not set\)"):
        await OpenAIBackend.from_target(f"gpt-4o-mini@{proxy.url}").generate(ask("hi"))
    good = OpenAIBackend.from_target(f"smollm2@{proxy.url}", api_key="sk-good-key")
    assert (await good.generate(ask("Say hi.", max_tokens=4))).text


async def test_the_real_server_refuses_a_wrong_key(llama_server):
    backend = backend_for(llama_server.base_url, api_key="wrong")
    with pytest.raises(AuthenticationError, match="Invalid API key"):
        await backend.generate(ask("hi"))


async def test_no_server_is_retried_then_reported():
    from tests.openai_servers import free_port

    backend = OpenAIBackend.from_target(f"m@http://127.0.0.1:{free_port()}/v1", max_retries=1, **FAST)
    with pytest.raises(ServerUnavailableError, match="failed 2 times; last: ConnectError"):
        await backend.generate(ask("hi"))


async def test_model_strings(llama_server, monkeypatch):
    backend = load_backend(f"openai:@{llama_server.base_url}", api_key=LlamaServer.API_KEY)
    assert isinstance(backend, OpenAIBackend) and backend.base_url == llama_server.base_url
    response = await backend.generate(ask("Say hi.", max_tokens=4))
    assert backend.model == "smollm2" and response.text  # an empty MODEL asks /models
    monkeypatch.setenv("OPENAI_BASE_URL", llama_server.base_url)
    assert load_backend("openai:smollm2").base_url == llama_server.base_url
    monkeypatch.delenv("OPENAI_BASE_URL")
    with pytest.raises(BackendError, match="names no server"):
        load_backend("openai:gpt-4o")
    with pytest.raises(BackendError, match="server must be one of"):
        load_backend(f"openai:m@{llama_server.base_url}", server="tgi")


async def test_a_request_the_server_cannot_validate_is_not_retried(proxy):
    backend = backend_for(proxy.url)
    bad = ask("hi", max_tokens=4)
    bad.sampling.top_p = 7.0  # out of range for the server
    with pytest.raises(BackendError, match="rejected the request") as info:
        await backend.generate(bad)
    assert not isinstance(info.value, ServerUnavailableError) and len(proxy.posts) == 1
