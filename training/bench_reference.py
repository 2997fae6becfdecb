"""Time one full predict of a model folder through the PyTorch reference, stage by stage.

    python training/bench_reference.py --model tests/fixtures/tiny_model --sampler ddim --steps 10 --runs 3

Prints one JSON object (median milliseconds per stage) on stdout; `videovla bench --reference`
calls this in the same run as the Rust measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from videovla_ref.modeldir import load_model_dir  # noqa: E402
from videovla_ref.pipeline import predict  # noqa: E402
from videovla_ref.sampling import Guidance  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--sampler", default="ddim", choices=["ddim", "dpmpp"])
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--cfg", type=float, default=6.0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--instruction", default="pick up the red cube")
    args = ap.parse_args()
    torch.manual_seed(0)
    m = load_model_dir(args.model)
    cfg = m.config["dit"]
    C, T, h, w = cfg["out_channels"], cfg["latent_frames"], cfg["latent_height"], cfg["latent_width"]
    image = torch.randint(0, 256, (m.image_size, m.image_size, 3), dtype=torch.uint8).numpy()
    guidance = Guidance(scale=args.cfg, exp=5) if args.cfg > 0 else None
    runs = []
    for i in range(args.runs + 1):  # the first run is a warm-up
        t = {}
        predict(m, image, args.instruction, method=args.sampler, steps=args.steps, guidance=guidance,
                robot_id=m.config.get("default_robot_id", 0), eps_image=torch.randn(1, C, 1, h, w),
                x_init=torch.randn(1, T, C, h, w), a_init=torch.randn(1, cfg["action_length"], cfg["action_dim"]),
                eps_video=[torch.randn(1, T, C, h, w) for _ in range(args.steps)],
                eps_action=[torch.randn(1, cfg["action_length"], cfg["action_dim"]) for _ in range(args.steps)],
                timings=t)
        if i > 0:
            runs.append(t)
    out = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    out["step_ms"] = out["denoise_ms"] / args.steps
    out["torch"] = torch.__version__
    out["threads"] = torch.get_num_threads()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
