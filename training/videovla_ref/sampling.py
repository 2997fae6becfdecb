"""Diffusion side of VideoVLA: zero-SNR discretisation, v-prediction denoiser, DynamicCFG, the
official ``VPSDEDPMPP2MSampler_withact`` and a deterministic DDIM on the same schedule.

Written from the official sgm code in VideoVLA-Project/VideoVLA (``discretizer.py``, ``denoiser.py``,
``denoiser_scaling.py``, ``guiders.py``, ``sampling.py``, ``diffusion_video.py``); the arithmetic
reproduces the official dtypes and operation order (betas/cumprod in float64, everything after the
cast -- sqrt, zero-SNR rescale, lambda, multipliers -- in float32; the CFG weight in Python float64).

All noise is explicit: the samplers take the initial video/action noise and a list of per-step
epsilons, so fixtures can record them. The official sampler draws ``randn_like`` twice per step
after the first (one for the discarded "standard" update and one for the "advanced" 2M update);
only the epsilon that reaches the output is taken here: ``eps[k]`` is the noise of step k,
k = 0 .. N-2 (the last step returns x0_hat and draws nothing).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

NUM_TRAIN_TIMESTEPS = 1000
LINEAR_START = 0.00085
LINEAR_END = 0.0120


# ------------------------------------------------------------------------------------------------
# schedule


def ddpm_alphas_cumprod(num_timesteps: int = NUM_TRAIN_TIMESTEPS) -> np.ndarray:
    """float64 cumprod(1 - beta), beta = linspace(sqrt(0.00085), sqrt(0.012), 1000)^2 (float64)."""
    betas = torch.linspace(LINEAR_START**0.5, LINEAR_END**0.5, num_timesteps, dtype=torch.float64) ** 2
    return np.cumprod(1.0 - betas.numpy(), axis=0)


def sampling_timesteps(n: int, num_timesteps: int = NUM_TRAIN_TIMESTEPS) -> np.ndarray:
    """Ascending DDPM indices of an n-step grid: linspace(999, 0, n, endpoint=False).astype(int)[::-1]."""
    if n == num_timesteps:
        return np.arange(num_timesteps)
    assert n < num_timesteps
    return np.linspace(num_timesteps - 1, 0, n, endpoint=False).astype(int)[::-1].copy()


def zero_snr_sqrt_alphas(n: int, num_timesteps: int = NUM_TRAIN_TIMESTEPS) -> tuple[torch.Tensor, np.ndarray]:
    """``ZeroSNRDDPMDiscretization.get_sigmas`` (shift_scale 1) before its final flip.

    Returns (s, timesteps) with timesteps ascending and s[i] = sqrt(alpha_bar) at timesteps[i] after
    the zero-terminal-SNR rescale *of the selected subset* (so s[-1] == 0), float32.
    """
    ts = sampling_timesteps(n, num_timesteps)
    ac = ddpm_alphas_cumprod(num_timesteps)[ts]
    s = torch.tensor(ac, dtype=torch.float32).sqrt()
    s0 = s[0].clone()
    sT = s[-1].clone()
    s -= sT
    s *= s0 / (s0 - sT)
    return s, ts


def denoiser_sigmas() -> torch.Tensor:
    """The 1000-entry table of ``DiscreteDenoiser_withact``: index t -> s(t); s(999) = 0."""
    s, _ = zero_snr_sqrt_alphas(NUM_TRAIN_TIMESTEPS)
    return s


def sampler_schedule(n: int) -> tuple[torch.Tensor, list[int]]:
    """``VideoDDIMSampler.prepare_sampling_loop``: (s_seq (n+1,) f32, timesteps (n,) descending).

    s_seq = [s(t_0)=0, s(t_1), ..., s(t_{n-1}), 1.0] with t_0 = 999 > t_1 > ...; step i uses
    s_seq[i], s_seq[i+1] and DDPM index t_i.
    """
    s, ts = zero_snr_sqrt_alphas(n)
    s_seq = torch.cat([torch.flip(s, (0,)), s.new_ones([1])])
    return s_seq, [int(t) for t in ts[::-1]]


def dynamic_cfg_weight(timestep: int, scale: float, exp: int, num_steps: int, sampler_num_steps: int | None = None) -> float:
    """``DynamicCFG``: w = 1 + scale * (1 - cos(pi * (step_index / num_steps)^exp)) / 2 with
    step_index = sampler.num_steps - t and t the DDPM index (not the step number). Python floats
    (float64). With an integer ``exp`` a negative base is fine."""
    if sampler_num_steps is None:
        sampler_num_steps = num_steps
    step_index = sampler_num_steps - int(timestep)
    return 1 + scale * (1 - math.cos(math.pi * (step_index / num_steps) ** exp)) / 2


# ------------------------------------------------------------------------------------------------
# denoiser


class Denoiser:
    """``DiscreteDenoiser_withact`` + ``VideoScaling`` (v-prediction), quantize_c_noise False.

    s is quantised to the nearest entry of the 1000-step table (ties -> lowest index); c_skip = s_q,
    c_out = -sqrt(1 - s_q^2), c_in = 1; the DiT gets the DDPM index as its time input.
    """

    def __init__(self, model):
        self.model = model
        self.sigmas = denoiser_sigmas()

    def quantize(self, s: torch.Tensor) -> torch.Tensor:
        idx = (s - self.sigmas.to(s.device)[:, None]).abs().argmin(dim=0).view(s.shape)
        return self.sigmas.to(s.device)[idx]

    def __call__(self, x, concat, actions, s, timesteps, text, robot_ids):
        """x (B,T,C,H,W) noisy latent; concat (B,T,C,H,W); actions (B,A,D) noisy; s (B,) f32;
        timesteps (B,) DDPM index. Returns (x0_video, x0_action) in float32."""
        sq = self.quantize(s)
        c_skip = sq
        c_out = -((1 - sq**2) ** 0.5)
        x_in = torch.cat([x, concat], dim=2)
        v_vid, v_act = self.model(x_in, text, actions, timesteps, robot_ids)
        v_vid, v_act = v_vid.float(), v_act.float()
        bshape_v = (-1,) + (1,) * (x.ndim - 1)
        bshape_a = (-1,) + (1,) * (actions.ndim - 1)
        x0 = v_vid * c_out.view(bshape_v) + x * c_skip.view(bshape_v)
        a0 = v_act * c_out.view(bshape_a) + actions * c_skip.view(bshape_a)
        return x0, a0


def image_concat(image_latent: torch.Tensor, num_frames: int) -> torch.Tensor:
    """Image-conditioning tensor: the (already x scale_factor) image latent in frame 0, zeros after."""
    B, _, C, H, W = image_latent.shape
    return torch.cat([image_latent, image_latent.new_zeros(B, num_frames - 1, C, H, W)], dim=1)


@dataclass
class Guidance:
    scale: float = 6.0
    exp: int = 5
    num_steps: int | None = None  # guider's num_steps; defaults to the sampler's


def guided_denoise(denoiser, x, a, s, t, text, concat, robot_ids, guidance: Guidance | None, num_steps: int):
    """One CFG'd denoiser call. Batch [uncond, cond]; uncond = all-zero text embedding; the
    image concat, the noisy actions and the robot ids are the same in both halves."""
    B = x.shape[0]
    s_b = s * x.new_ones([B])
    t_b = x.new_ones([B]) * t  # official: float tensor holding the DDPM index
    if guidance is None:
        return denoiser(x, concat, a, s_b, t_b, text, robot_ids)
    x0, a0 = denoiser(
        torch.cat([x, x]),
        torch.cat([concat, concat]),
        torch.cat([a, a]),
        torch.cat([s_b, s_b]),
        torch.cat([t_b, t_b]),
        torch.cat([torch.zeros_like(text), text]),
        torch.cat([robot_ids, robot_ids]),
    )
    w = dynamic_cfg_weight(t, guidance.scale, guidance.exp, guidance.num_steps or num_steps, num_steps)
    xu, xc = x0.chunk(2)
    au, ac = a0.chunk(2)
    return xu + w * (xc - xu), au + w * (ac - au)


@dataclass
class SampleResult:
    video: torch.Tensor
    action: torch.Tensor
    x0_video: list = field(default_factory=list)
    x0_action: list = field(default_factory=list)
    timesteps: list = field(default_factory=list)
    weights: list = field(default_factory=list)
    s_seq: torch.Tensor | None = None


def _lamb(s):
    ac = s**2
    return ((ac / (1 - ac)) ** 0.5).log()


def dpmpp_2m_sde_step(x, x0, x0_prev, s_prev, s, s_next, eps):
    """The VP-SDE DPM-Solver++(2M) update of ``VPSDEDPMPP2MSampler(_withact).sampler_step`` (not the
    last step). s_prev is None on the first step. float32 tensors of shape (B,)."""
    lamb, lamb_next = _lamb(s), _lamb(s_next)
    h = lamb_next - lamb
    bs = (-1,) + (1,) * (x.ndim - 1)
    mult1 = (((1 - s_next**2) / (1 - s**2)) ** 0.5 * (-h).exp()).view(bs)
    mult2 = ((-2 * h).expm1() * s_next).view(bs)
    noise = ((1 - s_next**2) ** 0.5 * (1 - (-2 * h).exp()) ** 0.5).view(bs)
    if s_prev is None or x0_prev is None:
        return mult1 * x - mult2 * x0 + noise * eps
    r = (lamb - _lamb(s_prev)) / h
    mult3 = (1 + 1 / (2 * r)).view(bs)
    mult4 = (1 / (2 * r)).view(bs)
    d = mult3 * x0 - mult4 * x0_prev
    return mult1 * x - mult2 * d + noise * eps


def ddim_step(x, x0, s, s_next):
    """Deterministic DDIM (eta 0), the ``VideoDDIMSampler.sampler_step`` algebra:
    x_next = a_t x + b_t x0, a_t = sqrt((1-s_next^2)/(1-s^2)), b_t = s_next - s a_t
    (== s_next x0 + sqrt(1-s_next^2) eps_hat with eps_hat = (x - s x0)/sqrt(1-s^2))."""
    bs = (-1,) + (1,) * (x.ndim - 1)
    a_t = ((1 - s_next**2) / (1 - s**2)) ** 0.5
    b_t = s_next - s * a_t
    return a_t.view(bs) * x + b_t.view(bs) * x0


@torch.no_grad()
def sample(
    model,
    text: torch.Tensor,
    image_latent: torch.Tensor,
    x_init: torch.Tensor,
    a_init: torch.Tensor,
    robot_ids: torch.Tensor,
    num_steps: int,
    method: str = "dpmpp",
    eps_video: list | torch.Tensor | None = None,
    eps_action: list | torch.Tensor | None = None,
    guidance: Guidance | None = Guidance(),
) -> SampleResult:
    """Joint video + action sampling.

    method "dpmpp": ``VPSDEDPMPP2MSampler_withact``; needs num_steps-1 epsilons for video and for
    actions. method "ddim": deterministic DDIM, no noise. The last step returns x0_hat for both.
    """
    denoiser = Denoiser(model)
    s_seq, timesteps = sampler_schedule(num_steps)
    T = x_init.shape[1]
    concat = image_concat(image_latent, T)
    x, a = x_init.float(), a_init.float()
    B = x.shape[0]
    res = SampleResult(video=x, action=a, s_seq=s_seq, timesteps=timesteps)
    x0_prev = a0_prev = None
    for i in range(num_steps):
        t = timesteps[i]
        s = s_seq[i] * x.new_ones([B])
        s_next = s_seq[i + 1] * x.new_ones([B])
        s_prev = None if i == 0 else s_seq[i - 1] * x.new_ones([B])
        x0, a0 = guided_denoise(denoiser, x, a, s, t, text, concat, robot_ids, guidance, num_steps)
        res.x0_video.append(x0)
        res.x0_action.append(a0)
        if guidance is not None:
            res.weights.append(dynamic_cfg_weight(t, guidance.scale, guidance.exp, guidance.num_steps or num_steps, num_steps))
        if i == num_steps - 1:  # idx == 1 in the official loop
            x, a = x0, a0
            break
        if method == "dpmpp":
            x = dpmpp_2m_sde_step(x, x0, x0_prev, s_prev, s, s_next, eps_video[i])
            a = dpmpp_2m_sde_step(a, a0, a0_prev, s_prev, s, s_next, eps_action[i])
        elif method == "ddim":
            x = ddim_step(x, x0, s, s_next)
            a = ddim_step(a, a0, s, s_next)
        else:
            raise ValueError(method)
        x0_prev, a0_prev = x0, a0
    res.video, res.action = x, a
    return res
