"""Parity fixture for the TRAINED embedded model: `tests/fixtures/tiny_sim_pipeline.{json,safetensors}`,
the layout of `pipeline_tiny` (pipeline_fixture.py) but on `models/tiny-sim` (json "model":
"../../models/tiny-sim"): recorded noise, reference predict (videovla_ref.pipeline.predict), keys
io.{dpmpp,ddim}.{eps_image,x_init,a_init,eps_video,eps_action,text,image_latent,latents,actions,video}.

Size (all fixtures stay small): ddim uses the model's default sampler (10 steps), dpmpp 3 steps;
`io.<m>.video` holds only the frames listed in json `video_frames` (ddim: first and last, dpmpp:
last), shape (1, 3, len(video_frames), 64, 64). `io.image_u8` is a simulator observation (first
frame of held-out episode 0 of --data if present, else a deterministic synthetic image).

    python training/tiny_sim_fixture.py --model models/tiny-sim --out tests/fixtures --data data/sim-val
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
import torch
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from videovla_ref.modeldir import load_model_dir  # noqa: E402
from videovla_ref.pipeline import predict  # noqa: E402
from videovla_ref.sampling import Guidance  # noqa: E402

NAME = "tiny_sim_pipeline"
FRAMES = {"ddim": [0, 48], "dpmpp": [48]}
STEPS = {"ddim": 10, "dpmpp": 3}


def observation(data: str | None) -> tuple[np.ndarray, str]:
    if data and os.path.exists(os.path.join(data, "meta.json")):
        from data import SimDataset

        ds = SimDataset(data)
        return np.ascontiguousarray(ds.episode_frames(0)[0]), ds.episodes[0]["instruction"]
    g = torch.Generator().manual_seed(5)
    return torch.randint(0, 256, (64, 64, 3), generator=g, dtype=torch.uint8).numpy(), "pick up the red cube"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="models/tiny-sim")
    ap.add_argument("--out", default="tests/fixtures")
    ap.add_argument("--data", default="data/sim-val")
    a = ap.parse_args()
    torch.set_num_threads(2)
    m = load_model_dir(a.model)
    image, instruction = observation(a.data)
    cfg = m.config["dit"]
    C, T, h = cfg["out_channels"], cfg["latent_frames"], cfg["latent_height"]
    smp = m.config["sampler"]
    gs, ge = float(smp["guidance_scale"]), float(smp["guidance_exp"])
    robot = int(m.config.get("default_robot_id", 0))
    g = torch.Generator().manual_seed(2025)
    tensors = {"io.image_u8": torch.from_numpy(image)}
    meta = {"model": "../../" + os.path.relpath(a.model, os.path.join(a.out, "..", "..")).replace(os.sep, "/"),
            "instruction": instruction, "guidance_scale": gs, "guidance_exp": ge, "robot_id": robot,
            "steps": STEPS, "video_frames": FRAMES, "latent_shift": m.vae.latent_shift is not None,
            "note": "io.<method>.video holds only the frames in video_frames (of 49); see training/tiny_sim_fixture.py"}
    for method in ("dpmpp", "ddim"):
        steps = STEPS[method]
        eps_image = torch.randn(1, C, 1, h, h, generator=g)
        x_init = torch.randn(1, T, C, h, h, generator=g)
        a_init = torch.randn(1, 6, 7, generator=g)
        eps_v = [torch.randn(1, T, C, h, h, generator=g) for _ in range(steps - 1)]
        eps_a = [torch.randn(1, 6, 7, generator=g) for _ in range(steps - 1)]
        r = predict(m, image, instruction, method=method, steps=steps, guidance=Guidance(scale=gs, exp=int(ge)),
                    robot_id=robot, eps_image=eps_image, x_init=x_init, a_init=a_init, eps_video=eps_v,
                    eps_action=eps_a)
        p = f"io.{method}."
        tensors.update({p + "eps_image": eps_image, p + "x_init": x_init, p + "a_init": a_init,
                        p + "text": r["text"], p + "image_latent": r["image_latent"], p + "latents": r["latents"],
                        p + "actions": r["actions"], p + "video": r["video"][:, :, FRAMES[method]]})
        if method == "dpmpp":
            tensors[p + "eps_video"] = torch.stack(eps_v)
            tensors[p + "eps_action"] = torch.stack(eps_a)
        print(f"{method}: actions {r['actions'][0, 0].tolist()}", flush=True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(a.out, NAME + ".safetensors"))
    with open(os.path.join(a.out, NAME + ".json"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
    n = sum(os.path.getsize(os.path.join(a.out, NAME + e)) for e in (".json", ".safetensors"))
    print(f"{NAME}: {n / 1e3:.0f} kB", flush=True)


if __name__ == "__main__":
    main()
