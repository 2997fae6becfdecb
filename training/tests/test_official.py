"""Opt-in witness against the official code itself (see training/official_check.py): skipped unless
VIDEOVLA_OFFICIAL_DIR and SAT_DIR point at checkouts of VideoVLA-Project/VideoVLA and
THUDM/SwissArmyTransformer (einops, omegaconf and beartype importable). Runs in a subprocess because
it stubs training-only modules of the official tree."""

import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))


@pytest.mark.skipif(not (os.environ.get("VIDEOVLA_OFFICIAL_DIR") and os.environ.get("SAT_DIR")),
                    reason="VIDEOVLA_OFFICIAL_DIR / SAT_DIR not set")
def test_fixtures_vs_official_code():
    p = subprocess.run([sys.executable, os.path.join(HERE, "..", "official_check.py")], capture_output=True, text=True,
                       timeout=600)
    lines = [l for l in p.stdout.splitlines() if l.startswith("OFFICIAL")]
    for l in lines:
        print(l)
    assert p.returncode == 0 and len(lines) == 8, p.stdout[-2000:] + p.stderr[-4000:]
