"""The UNMODIFIED openpi client (openpi-client 0.1.2 from PyPI) against `videovla serve`.

Run by tests/run-all.sh in its own venv (the client needs numpy < 2):
    VIDEOVLA_BIN=target/release/videovla python -m pytest tests/openpi -q
"""

from __future__ import annotations

import os
import re
import subprocess
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from openpi_client import action_chunk_broker, websocket_client_policy

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "tiny_model"


def binary() -> str:
    b = os.environ.get("VIDEOVLA_BIN")
    if not b:
        target = os.environ.get("CARGO_TARGET_DIR", str(ROOT / "target"))
        b = os.path.join(target, "release", "videovla")
    assert os.path.exists(b), f"{b} missing: build with `cargo build --release` (or set VIDEOVLA_BIN)"
    return b


class Served:
    def __init__(self, *args: str):
        self.proc = subprocess.Popen([binary(), "serve", "--port", "0", *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, cwd=ROOT)
        self.lines = []
        for line in self.proc.stdout:
            self.lines.append(line)
            m = re.search(r"on ws://([\d.]+):(\d+)", line)
            if m:
                self.host, self.port = m.group(1), int(m.group(2))
                return
        raise RuntimeError("server did not start:\n" + "".join(self.lines))

    def close(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def server():
    s = Served("--model", str(FIXTURE))
    yield s
    s.close()


def libero_obs(prompt="pick up the red cube"):
    rng = np.random.default_rng(0)
    return {
        "observation/image": rng.integers(0, 256, (224, 224, 3), dtype=np.uint8),
        "observation/wrist_image": rng.integers(0, 256, (224, 224, 3), dtype=np.uint8),
        "observation/state": rng.standard_normal(8).astype(np.float32),
        "prompt": prompt,
    }


def test_metadata_and_actions(server):
    policy = websocket_client_policy.WebsocketClientPolicy(host=server.host, port=server.port)
    meta = policy.get_server_metadata()
    assert meta["action_horizon"] == 6 and meta["action_dim"] == 7
    out = policy.infer(libero_obs())
    assert out["actions"].shape == (6, 7)
    assert out["actions"].dtype == np.float32
    assert np.isfinite(out["actions"]).all()
    assert out["policy_timing"]["infer_ms"] > 0
    im = out["videovla"]["imagination"]
    frames = np.frombuffer(im["data"], dtype=np.uint8).reshape(im["shape"])
    assert frames.shape[0] == meta["imagination_frames"] and frames.shape[3] == 3


def test_droid_keys_and_the_chunk_broker_leave_the_imagination_whole(server):
    policy = websocket_client_policy.WebsocketClientPolicy(host=f"ws://{server.host}:{server.port}")
    broker = action_chunk_broker.ActionChunkBroker(policy, action_horizon=3)
    obs = {
        "observation/exterior_image_1_left": np.zeros((180, 320, 3), dtype=np.uint8),
        "observation/wrist_image_left": np.zeros((180, 320, 3), dtype=np.uint8),
        "observation/joint_position": np.zeros(7, dtype=np.float64),
        "observation/gripper_position": np.zeros(1, dtype=np.float64),
        "prompt": "put the red cube on the blue cube",
        "videovla/seed": 5,  # optional extension: a fixed seed, so the chunk can be asked for again
    }
    steps = [broker.infer(obs) for _ in range(3)]
    full = policy.infer(obs)  # the same chunk, unsliced
    assert full["actions"].shape == (6, 7)
    for i, s in enumerate(steps):
        assert s["actions"].shape == (7,)
        np.testing.assert_array_equal(s["actions"], full["actions"][i])
        im = s["videovla"]["imagination"]
        assert isinstance(im["data"], bytes) and len(im["data"]) == int(np.prod(im["shape"]))


def test_errors_reach_the_client_and_the_server_goes_on(server):
    policy = websocket_client_policy.WebsocketClientPolicy(host=server.host, port=server.port)
    with pytest.raises(RuntimeError, match="no image"):
        policy.infer({"prompt": "x"})
    bad = websocket_client_policy.WebsocketClientPolicy(host=server.host, port=server.port)
    with pytest.raises(RuntimeError, match="uint8"):
        bad.infer({"image": np.zeros((8, 8, 3), dtype="<U1"), "prompt": "x"})
    again = websocket_client_policy.WebsocketClientPolicy(host=server.host, port=server.port)
    assert again.infer(libero_obs())["actions"].shape == (6, 7)


def test_healthz(server):
    with urllib.request.urlopen(f"http://{server.host}:{server.port}/healthz", timeout=10) as r:
        assert r.status == 200 and r.read() == b"OK\n"


def test_api_key():
    s = Served("--model", str(FIXTURE), "--api-key", "sesame")
    try:
        with pytest.raises(Exception):
            websocket_client_policy.WebsocketClientPolicy(host=s.host, port=s.port)
        ok = websocket_client_policy.WebsocketClientPolicy(host=s.host, port=s.port, api_key="sesame")
        assert ok.infer(libero_obs())["actions"].shape == (6, 7)
    finally:
        s.close()


def test_sim_connect_runs_an_episode_across_processes(server, tmp_path):
    gif = tmp_path / "episode.gif"
    r = subprocess.run([binary(), "sim", "connect", f"ws://{server.host}:{server.port}", "--task", "pick",
                        "--gif", str(gif)], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"\d+/1 episodes succeeded; \d+ requests", r.stdout), r.stdout
    assert gif.exists() and gif.stat().st_size > 1000
