"""The reference end-to-end prediction (what `sample_video_action.py` does, fixed), on a model
folder (`modeldir.py`): tokenize → T5 (no mask) → preprocess → VAE encode → posterior sample ×
scale → joint sampling with DynamicCFG → chunked VAE decode. All noise is explicit so the Rust
pipeline can replay it (`tests/parity.rs::pipeline_matches_reference`).

Noise order (the Rust `SeededNoise` draws in the same order): image-posterior ε (1,C,1,h,w),
initial video x (K,T,C,h,w), initial actions (K,A,D), then for each of the first steps-1 steps of
DPM++ a video ε and an action ε (DDIM draws none after the initial ones).
"""

from __future__ import annotations

import time

import torch

from .modeldir import LoadedModel, tokenize
from .preprocess import preprocess_image
from .sampling import Guidance, sample


@torch.no_grad()
def encode_text(m: LoadedModel, instruction: str) -> torch.Tensor:
    ids = tokenize(m.tokenizer, instruction, m.text_length,
                   pad_id=m.t5.config.pad_token_id, eos_id=m.t5.config.eos_token_id)
    return m.t5(input_ids=torch.tensor([ids])).last_hidden_state.float()


@torch.no_grad()
def encode_image(m: LoadedModel, image_u8, eps_image: torch.Tensor | None) -> torch.Tensor:
    """(1,1,C,h,w) conditioning latent, already × scaling factor."""
    pixels = preprocess_image(image_u8, m.image_size)[None, :, None]  # (1,3,1,S,S)
    mean, logvar = m.vae.encode(pixels)
    z = mean if eps_image is None else mean + torch.exp(0.5 * logvar) * eps_image
    return m.vae.to_dit(z).permute(0, 2, 1, 3, 4).contiguous()


@torch.no_grad()
def decode(m: LoadedModel, latents: torch.Tensor) -> torch.Tensor:
    """(K,T,C,h,w) × scale → video (K,3,F,H,W) in about [-1,1]."""
    out = []
    for k in range(latents.shape[0]):
        z = m.vae.from_dit(latents[k : k + 1].permute(0, 2, 1, 3, 4))
        out.append(m.vae.decode(z))
    return torch.cat(out)


@torch.no_grad()
def predict(
    m: LoadedModel,
    image_u8,
    instruction: str,
    *,
    method: str,
    steps: int,
    guidance: Guidance | None,
    robot_id: int,
    eps_image: torch.Tensor | None,
    x_init: torch.Tensor,
    a_init: torch.Tensor,
    eps_video=None,
    eps_action=None,
    timings: dict | None = None,
) -> dict:
    t0 = time.perf_counter()
    text = encode_text(m, instruction)
    t1 = time.perf_counter()
    image_latent = encode_image(m, image_u8, eps_image)
    t2 = time.perf_counter()
    k = x_init.shape[0]
    res = sample(m.dit, text.repeat(k, 1, 1), image_latent.repeat(k, 1, 1, 1, 1), x_init, a_init,
                 torch.full((k,), robot_id, dtype=torch.long), steps, method, eps_video, eps_action, guidance)
    t3 = time.perf_counter()
    video = decode(m, res.video)
    t4 = time.perf_counter()
    if timings is not None:
        timings.update(text_ms=(t1 - t0) * 1e3, encode_ms=(t2 - t1) * 1e3,
                       denoise_ms=(t3 - t2) * 1e3, decode_ms=(t4 - t3) * 1e3, total_ms=(t4 - t0) * 1e3)
    return {"text": text, "image_latent": image_latent, "latents": res.video, "actions": res.action,
            "video": video, "x0_video": res.x0_video, "x0_action": res.x0_action}
