"""The official OpenAI Python SDK through the gateway, against the testkit mock: chat, streamed
chat and embeddings give what the same SDK gets from the upstream directly."""

from openai import OpenAI


def clients(mock_url, data_url, key):
    direct = OpenAI(base_url=mock_url + "/v1", api_key="direct", max_retries=0)
    via = OpenAI(base_url=data_url + "/v1", api_key=key, max_retries=0)
    return direct, via


def test_chat(mock_openai, gateway_for):
    data, _, key = gateway_for(mock_openai)
    direct, via = clients(mock_openai, data, key)
    msgs = [{"role": "user", "content": "Say hello to the gateway"}]
    a = direct.chat.completions.create(model="mock-model", messages=msgs)
    b = via.chat.completions.with_raw_response.create(model="mock-model", messages=msgs)
    got = b.parse()
    assert got.choices[0].message.content == a.choices[0].message.content
    assert got.choices[0].message.content
    assert got.usage.prompt_tokens == a.usage.prompt_tokens
    assert got.usage.completion_tokens == a.usage.completion_tokens
    assert b.headers["x-request-id"]


def test_streamed_chat(mock_openai, gateway_for):
    data, admin, key = gateway_for(mock_openai)
    direct, via = clients(mock_openai, data, key)
    msgs = [{"role": "user", "content": "Stream something"}]
    a = "".join(c.choices[0].delta.content or "" for c in direct.chat.completions.create(model="mock-model", messages=msgs, stream=True) if c.choices)
    chunks = list(via.chat.completions.create(model="mock-model", messages=msgs, stream=True))
    b = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert b == a and b
    # The caller did not ask for usage: the usage chunk the gateway asked for is not passed on.
    assert all(c.usage is None for c in chunks)
    # ...but asked for, it arrives.
    with_usage = list(
        via.chat.completions.create(model="mock-model", messages=msgs, stream=True, stream_options={"include_usage": True})
    )
    assert with_usage[-1].usage is not None and with_usage[-1].usage.completion_tokens > 0


def test_embeddings(mock_openai, gateway_for):
    data, _, key = gateway_for(mock_openai)
    direct, via = clients(mock_openai, data, key)
    a = direct.embeddings.create(model="mock-embed", input=["one", "two"])
    b = via.embeddings.create(model="mock-embed", input=["one", "two"])
    assert [d.embedding for d in b.data] == [d.embedding for d in a.data]
    assert len(b.data) == 2


def test_models_and_errors_surface_in_the_sdk(mock_openai, gateway_for):
    import openai
    import pytest

    data, _, key = gateway_for(mock_openai, models='["mock-*"]')
    _, via = clients(mock_openai, data, key)
    ids = sorted(m.id for m in via.models.list())
    assert ids == ["mock-embed", "mock-model"]
    with pytest.raises(openai.NotFoundError) as e:
        via.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
    assert e.value.body["code"] == "no_route"
    bad = OpenAI(base_url=data + "/v1", api_key="sk-not-a-modelgate-key", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as e:
        bad.models.list()
    assert e.value.body["code"] == "authentication_failed"
