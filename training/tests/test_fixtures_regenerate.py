"""The committed fixtures are what training/gen_fixtures.py writes (regenerated into a temp dir)."""

import json
import os

import pytest
import torch
from safetensors.torch import load_file

import gen_fixtures

FIXDIR = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "fixtures")


def _close_json(a, b):
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_close_json(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_close_json(x, y) for x, y in zip(a, b))
    if isinstance(a, float) or isinstance(b, float):
        # float32 values (schedules) regenerate to within a few ulps on another CPU (its vector kernels
        # round differently), not bit for bit
        return abs(a - b) <= 1e-6 * max(1.0, abs(a))
    return a == b


@pytest.mark.parametrize("name", list(gen_fixtures.FIXTURES))
def test_fixture_regenerates(name, tmp_path):
    gen_fixtures.FIXTURES[name](str(tmp_path))
    with open(os.path.join(FIXDIR, f"{name}.json")) as f:
        want_meta = json.load(f)
    with open(tmp_path / f"{name}.json") as f:
        got_meta = json.load(f)
    assert _close_json(got_meta, want_meta)
    want = load_file(os.path.join(FIXDIR, f"{name}.safetensors"))
    got = load_file(str(tmp_path / f"{name}.safetensors"))
    assert want.keys() == got.keys()
    worst = 0.0
    for k in want:
        assert want[k].dtype == got[k].dtype and want[k].shape == got[k].shape, k
        if want[k].is_floating_point():
            d = (got[k] - want[k]).norm() / want[k].norm().clamp_min(1e-30)
            worst = max(worst, d.item())
        else:
            assert torch.equal(want[k], got[k]), k
    print(f"{name}: regenerated, max rel diff {worst:.1e}")
    assert worst < 1e-5


def test_fixture_sizes():
    mine = [f"{n}.{e}" for n in gen_fixtures.FIXTURES for e in ("json", "safetensors")]
    total = sum(os.path.getsize(os.path.join(FIXDIR, f)) for f in mine)
    everything = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(FIXDIR) for f in fs)
    print(f"reference fixtures {total / 1e6:.2f} MB; tests/fixtures total {everything / 1e6:.2f} MB")
    # 5 MB for the reference fixtures + tiny_model/ (pipeline_fixture.py) + ~0.35 MB for the trained
    # model's parity fixture tiny_sim_pipeline.* (tiny_sim_fixture.py)
    assert everything < 5.5e6
