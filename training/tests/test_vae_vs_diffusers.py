"""Witness (a): reference VAE (SAT semantics) vs diffusers' AutoencoderKLCogVideoX with the same
state dict (tiny config). Encode: diffusers encodes in 8-frame batches by default (SAT: whole clip),
so the comparison sets its batch size above the clip length; the default-batched difference is
printed as information. Decode: both use the chunked decode with conv cache."""

import torch
from diffusers import AutoencoderKLCogVideoX

from gen_fixtures import VAE_TINY, build_vae_tiny


def rel(a, b):
    return ((a - b).norm() / b.norm()).item()


@torch.no_grad()
def test_vae_vs_diffusers():
    ref = build_vae_tiny()
    cfg = {k: v for k, v in VAE_TINY.items() if not k.startswith("_")}
    dif = AutoencoderKLCogVideoX(**cfg).eval()
    missing, unexpected = dif.load_state_dict(ref.state_dict(), strict=True), None
    assert set(dif.state_dict()) == set(ref.state_dict())

    g = torch.Generator().manual_seed(3)
    video = torch.rand(1, 3, 17, 32, 32, generator=g) * 2 - 1
    image = video[:, :, :1]

    mean, logvar = ref.encode(video)
    dif.num_sample_frames_batch_size = 10_000  # whole clip, as SAT
    post = dif.encode(video).latent_dist
    e_mean, e_logvar = rel(mean, post.mean), rel(logvar, post.logvar)
    print(f"encode (17 frames, whole clip): rel err mean {e_mean:.3e}, logvar {e_logvar:.3e}")

    im_mean, _ = ref.encode(image)
    e_img = rel(im_mean, dif.encode(image).latent_dist.mean)
    print(f"encode (1 frame): rel err mean {e_img:.3e}")

    dif.num_sample_frames_batch_size = 8
    e_batched = rel(mean, dif.encode(video).latent_dist.mean)
    print(f"info: diffusers default 8-frame batched encode vs SAT whole-clip encode: rel diff {e_batched:.3e}")

    z = mean
    dec = ref.decode(z)
    dec_d = dif.decode(z).sample
    e_dec = rel(dec, dec_d)
    print(f"chunked decode (5 latent frames -> 17): rel err {e_dec:.3e}")
    assert dec.shape == (1, 3, 17, 32, 32)
    assert max(e_mean, e_logvar, e_img, e_dec) <= 1e-4
