"""`videovla predict` end to end, judged by common Python tools (issue 5's acceptance):
with the default embedded model and with a model converted from tiny checkpoints in the
official file formats, predict writes every file, PIL / imageio decode them with 49 frames,
and the same seed gives identical files twice.

Needs the release binary (`tests/run-all.sh` builds it first; or set VIDEOVLA_BIN).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import imageio.v3 as iio
import numpy as np
import pytest
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODEL = os.path.join(ROOT, "models", "tiny-sim")


def binary() -> str:
    b = os.environ.get("VIDEOVLA_BIN") or os.path.join(
        os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release", "videovla")
    if not os.path.exists(b):
        pytest.fail(f"{b} not found: build with `cargo build --release` or set VIDEOVLA_BIN")
    return b


def run(*args: str, cwd: str = ROOT) -> subprocess.CompletedProcess:
    r = subprocess.run([binary(), *args], cwd=cwd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r


@pytest.fixture(scope="module")
def observation(tmp_path_factory) -> str:
    p = str(tmp_path_factory.mktemp("obs") / "obs.png")
    run("sim", "show", "--task", "put the red cube on the blue bar", "--seed", "1000003", "--out", p + ".gif")
    # the first frame of an expert rollout, saved as a PNG of an odd size (80x60)
    first = Image.open(p + ".gif").convert("RGB").resize((80, 60))
    first.save(p)
    return p


def files(d: str) -> dict[str, bytes]:
    out = {}
    for root, _, names in os.walk(d):
        for n in names:
            path = os.path.join(root, n)
            out[os.path.relpath(path, d)] = open(path, "rb").read()
    return out


def check_export(d: str, frames: int = 49) -> None:
    gif = Image.open(os.path.join(d, "imagination.gif"))
    assert gif.n_frames == frames
    pngs = sorted(os.listdir(os.path.join(d, "frames")))
    assert pngs == [f"{i:03d}.png" for i in range(frames)]
    first = np.asarray(Image.open(os.path.join(d, "frames", "000.png")).convert("RGB"))
    video = iio.imread(os.path.join(d, "imagination.mp4"), plugin="pyav")
    assert video.shape[0] == frames and video.shape[1:3] == first.shape[:2]
    # H.264 is lossy: the first decoded frame is close to the PNG, not equal
    assert np.abs(video[0].astype(int) - first.astype(int)).mean() < 12
    actions = json.load(open(os.path.join(d, "actions.json")))
    assert len(actions["actions"]) == 6 and len(actions["actions"][0]["raw"]) == 7
    manifest = json.load(open(os.path.join(d, "prediction.json")))
    assert manifest["frames_per_sample"] == frames


def test_default_model_predict_is_complete_decodable_and_reproducible(observation, tmp_path):
    assert os.path.exists(os.path.join(MODEL, "config.json")), "the embedded model models/tiny-sim is missing"
    outs = []
    for k in range(2):
        out = str(tmp_path / f"run{k}")
        run("predict", "--image", observation, "--instruction", "put the red cube on the blue bar",
            "--out", out, "--seed", "3")
        check_export(out)
        outs.append(files(out))
    a, b = outs
    assert a.keys() == b.keys()
    for name in a:
        if name == "prediction.json":
            ma, mb = json.loads(a[name]), json.loads(b[name])
            ma.pop("timings_ms"), mb.pop("timings_ms")
            assert ma == mb
        else:
            assert a[name] == b[name], f"{name} differs between two runs with the same seed"
    # with the model's statistics the actions are also unnormalised and integrated
    actions = json.loads(a["actions.json"])
    assert actions["normalized"] is True and len(actions["trajectory"]) == 7


def test_converted_official_format_checkpoint_predicts_49_frames(observation, tmp_path):
    py = sys.executable
    off = str(tmp_path / "official")
    for kind in ("dit", "vae"):
        r = subprocess.run([py, os.path.join(ROOT, "training", "official_format.py"), kind, "--weights", MODEL,
                            "--out", off, "--dtype", "bf16"], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
    conv = str(tmp_path / "converted")
    cfg = os.path.join(MODEL, "config.json")
    run("convert", "--from", os.path.join(off, "dit.pt"), "--out", conv, "--config", cfg)
    run("convert", "--from", os.path.join(off, "3d-vae.pt"), "--out", conv, "--kind", "vae-sat", "--config", cfg)
    c = json.load(open(os.path.join(conv, "config.json")))
    c["files"]["text_encoder"] = [os.path.join(MODEL, f) for f in c["files"]["text_encoder"]]
    c["files"]["tokenizer"] = os.path.join(MODEL, "tokenizer.json")
    if c.get("action_stats"):
        c["action_stats"] = os.path.join(MODEL, c["action_stats"])
    json.dump(c, open(os.path.join(conv, "config.json"), "w"))
    out = str(tmp_path / "pred")
    run("predict", "--model", conv, "--image", observation, "--instruction", "pick up the red cube", "--out", out)
    check_export(out)
