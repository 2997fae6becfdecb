//! Joint video + action samplers on the zero-SNR v-prediction schedule.
//!
//! * `DpmPp2mSde`: the released `VPSDEDPMPP2MSampler_withact` (DPM-Solver++(2M) SDE in the
//!   VP/λ form, fresh noise every step, the last step returns x̂₀).
//! * `Ddim`: the deterministic `VideoDDIMSampler` update extended to actions (the paper's
//!   10-step real-robot setting).
//!
//! Both use the denoiser of the official code (noise level quantised to the 1000-step table,
//! `x̂₀ = s·x − sqrt(1−s²)·v` for video and actions) and `DynamicCFG` on both outputs with the
//! all-zero text embedding as the unconditional input.

use std::ops::ControlFlow;

use candle_core::{DType, Device, Result, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use super::dit::{Dit, DitInput};
use super::schedule::{dynamic_cfg_weight, SamplingGrid, SigmaTable};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum SamplerKind {
    /// DPM-Solver++(2M) SDE, the released sampler (50 steps).
    Dpmpp,
    /// Deterministic DDIM (the paper's 10-step real-robot setting).
    Ddim,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SamplerParams {
    pub kind: SamplerKind,
    pub steps: usize,
    /// DynamicCFG scale (6 as released). 0 disables guidance (no unconditional pass).
    pub guidance_scale: f64,
    /// DynamicCFG exponent (5 as released).
    pub guidance_exp: f64,
    /// false: constant weight `1 + guidance_scale` (VanillaCFG-style) instead of the schedule.
    pub dynamic_cfg: bool,
}

impl Default for SamplerParams {
    fn default() -> Self {
        Self {
            kind: SamplerKind::Dpmpp,
            steps: 50,
            guidance_scale: 6.0,
            guidance_exp: 5.0,
            dynamic_cfg: true,
        }
    }
}

impl SamplerParams {
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            (1..=1000).contains(&self.steps),
            "steps must be between 1 and 1000 (got {})",
            self.steps
        );
        anyhow::ensure!(
            self.guidance_scale.is_finite() && self.guidance_scale >= 0.0,
            "guidance scale must be a finite number >= 0 (got {})",
            self.guidance_scale
        );
        Ok(())
    }

    /// Guidance weight at DDPM index `t`; `None` means no guidance (conditional pass only).
    pub fn guidance_weight(&self, t: i64) -> Option<f64> {
        if self.guidance_scale == 0.0 {
            None
        } else if self.dynamic_cfg {
            Some(dynamic_cfg_weight(
                self.guidance_scale,
                self.guidance_exp,
                self.steps,
                t,
            ))
        } else {
            Some(1.0 + self.guidance_scale)
        }
    }
}

/// Where Gaussian noise comes from. The sampler asks in a fixed order: initial video, initial
/// actions, then per noisy step video and action.
pub trait NoiseSource {
    fn normal(&mut self, shape: &[usize], device: &Device) -> Result<Tensor>;
}

/// Seeded ChaCha8 standard normals: the same seed gives the same bits on every machine.
pub struct SeededNoise {
    rng: ChaCha8Rng,
}

impl SeededNoise {
    pub fn new(seed: u64) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }
}

impl NoiseSource for SeededNoise {
    fn normal(&mut self, shape: &[usize], device: &Device) -> Result<Tensor> {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| StandardNormal.sample(&mut self.rng)).collect();
        Tensor::from_vec(v, shape, device)
    }
}

/// Noise given up front (tests replay the reference's recorded noise).
pub struct RecordedNoise {
    queue: std::collections::VecDeque<Tensor>,
}

impl RecordedNoise {
    pub fn new(tensors: Vec<Tensor>) -> Self {
        Self {
            queue: tensors.into(),
        }
    }
}

impl NoiseSource for RecordedNoise {
    fn normal(&mut self, shape: &[usize], device: &Device) -> Result<Tensor> {
        let t = self
            .queue
            .pop_front()
            .ok_or_else(|| candle_core::Error::Msg("recorded noise exhausted".into()))?;
        if t.dims() != shape {
            candle_core::bail!("recorded noise has shape {:?}, sampler wants {shape:?}", t.dims());
        }
        t.to_device(device)
    }
}

/// Conditioning of one prediction (batch 1; repeated to the number of samples).
pub struct Conditioning {
    /// (1, L, text_hidden) conditional text embedding.
    pub text: Tensor,
    /// (1, T, C, H, W): image latent (already × scale factor) in frame 0, zeros after.
    pub image_concat: Tensor,
    /// (1,) robot id.
    pub robot_id: u32,
}

/// What the sampler reports after each step.
pub struct StepEvent<'a> {
    /// 0-based step index.
    pub step: usize,
    pub steps: usize,
    /// DDPM index of this step.
    pub timestep: i64,
    /// Guidance weight used (None without guidance).
    pub guidance: Option<f64>,
    /// Guided x̂₀ of this step: video latents (K,T,C,H,W) and actions (K,A,D).
    pub x0_video: &'a Tensor,
    pub x0_action: &'a Tensor,
}

struct Denoiser<'a> {
    dit: &'a Dit,
    cond: &'a Conditioning,
    table: SigmaTable,
    uncond_text: Tensor,
    batch: usize,
}

impl<'a> Denoiser<'a> {
    fn new(dit: &'a Dit, cond: &'a Conditioning, batch: usize) -> Result<Self> {
        Ok(Self {
            dit,
            cond,
            table: SigmaTable::new(),
            uncond_text: cond.text.zeros_like()?,
            batch,
        })
    }

    /// Guided x̂₀ for video and actions at noise level `s` (quantised here) and DDPM index `t`.
    fn x0(&self, x: &Tensor, a: &Tensor, s: f32, t: i64, w: Option<f64>) -> Result<(Tensor, Tensor)> {
        let k = self.batch;
        let sq = self.table.quantize(s);
        let c_out = -(1.0 - sq * sq).sqrt();
        let concat = self.cond.image_concat.repeat((k, 1, 1, 1, 1))?;
        let x_in = Tensor::cat(&[x, &concat], 2)?;
        let text_c = self.cond.text.repeat((k, 1, 1))?;
        let device = x.device();
        let (xin, text, acts, n) = match w {
            Some(_) => {
                let text_u = self.uncond_text.repeat((k, 1, 1))?;
                (
                    Tensor::cat(&[&x_in, &x_in], 0)?,
                    Tensor::cat(&[&text_u, &text_c], 0)?,
                    Tensor::cat(&[a, a], 0)?,
                    2 * k,
                )
            }
            None => (x_in, text_c, a.clone(), k),
        };
        let ids = Tensor::new(vec![self.cond.robot_id; n], device)?;
        let timesteps = vec![t; n];
        let (v, va) = self.dit.forward(&DitInput {
            x: &xin,
            text: &text,
            actions: &acts,
            timesteps: &timesteps,
            robot_ids: &ids,
        })?;
        let xx = if w.is_some() { Tensor::cat(&[x, x], 0)? } else { x.clone() };
        let aa = if w.is_some() { Tensor::cat(&[a, a], 0)? } else { a.clone() };
        // denoised = v * c_out + input * c_skip
        let d_video = ((v * c_out as f64)? + (xx * sq as f64)?)?;
        let d_action = ((va * c_out as f64)? + (aa * sq as f64)?)?;
        match w {
            Some(w) => Ok((guide(&d_video, k, w)?, guide(&d_action, k, w)?)),
            None => Ok((d_video, d_action)),
        }
    }
}

/// `u + w (c − u)` over the batch halves [uncond, cond]; w is rounded to f32 like PyTorch's
/// scalar multiply.
fn guide(d: &Tensor, k: usize, w: f64) -> Result<Tensor> {
    let u = d.narrow(0, 0, k)?;
    let c = d.narrow(0, k, k)?;
    let w = w as f32 as f64;
    &u + ((&c - &u)? * w)?
}

/// Output of a finished sampling run.
pub struct SampleOutput {
    /// (K, T, C, H, W) latents (still × scale factor).
    pub video: Tensor,
    /// (K, A, D) raw actions.
    pub action: Tensor,
}

/// Run the sampler. `on_step` may stop the run by returning `ControlFlow::Break`, in which
/// case `Ok(None)` is returned (cancellation takes effect within one denoising step).
pub fn sample(
    dit: &Dit,
    cond: &Conditioning,
    params: &SamplerParams,
    num_samples: usize,
    noise: &mut dyn NoiseSource,
    on_step: &mut dyn FnMut(&StepEvent) -> ControlFlow<()>,
) -> anyhow::Result<Option<SampleOutput>> {
    params.validate()?;
    let device = dit.device().clone();
    let (_, t, c, h, w) = cond.image_concat.dims5()?;
    let cfg = dit.config();
    let k = num_samples.max(1);
    let mut x = noise.normal(&[k, t, c, h, w], &device)?;
    let mut a = noise.normal(&[k, cfg.action_length, cfg.action_dim], &device)?;
    let grid = SamplingGrid::new(params.steps);
    let den = Denoiser::new(dit, cond, k)?;
    let n = grid.steps();
    let mut old: Option<(Tensor, Tensor)> = None;
    for i in 0..n {
        let s = grid.s[i];
        let s_next = grid.s[i + 1];
        let ts = grid.timesteps[i];
        let wgt = params.guidance_weight(ts);
        let (d_v, d_a) = den.x0(&x, &a, s, ts, wgt)?;
        check_finite(&d_v, "video x0")?;
        check_finite(&d_a, "action x0")?;
        let last = i + 1 == n;
        let (nx, na) = if last {
            (d_v.clone(), d_a.clone())
        } else {
            match params.kind {
                SamplerKind::Ddim => {
                    let a_t = ((1.0 - s_next * s_next) / (1.0 - s * s)).sqrt();
                    let b_t = s_next - s * a_t;
                    (
                        ((&x * a_t as f64)? + (&d_v * b_t as f64)?)?,
                        ((&a * a_t as f64)? + (&d_a * b_t as f64)?)?,
                    )
                }
                SamplerKind::Dpmpp => {
                    let prev = if i == 0 { None } else { Some(grid.s[i - 1]) };
                    let co = dpmpp_coeffs(prev, s, s_next);
                    let (dv, da) = match (&old, co.r) {
                        (Some((ov, oa)), Some(r)) => {
                            let m3 = 1.0 + 1.0 / (2.0 * r);
                            let m4 = 1.0 / (2.0 * r);
                            (
                                ((&d_v * m3 as f64)? - (ov * m4 as f64)?)?,
                                ((&d_a * m3 as f64)? - (oa * m4 as f64)?)?,
                            )
                        }
                        _ => (d_v.clone(), d_a.clone()),
                    };
                    let ev = noise.normal(x.dims(), &device)?;
                    let ea = noise.normal(a.dims(), &device)?;
                    (
                        (((&x * co.mult1 as f64)? - (dv * co.mult2 as f64)?)? + (ev * co.noise as f64)?)?,
                        (((&a * co.mult1 as f64)? - (da * co.mult2 as f64)?)? + (ea * co.noise as f64)?)?,
                    )
                }
            }
        };
        let event = StepEvent {
            step: i,
            steps: n,
            timestep: ts,
            guidance: wgt,
            x0_video: &d_v,
            x0_action: &d_a,
        };
        if on_step(&event).is_break() {
            return Ok(None);
        }
        old = Some((d_v, d_a));
        x = nx;
        a = na;
    }
    Ok(Some(SampleOutput { video: x, action: a }))
}

struct DpmCoeffs {
    mult1: f32,
    mult2: f32,
    noise: f32,
    r: Option<f32>,
}

/// λ = log(s / sqrt(1−s²)); IEEE infinities at s = 0 are intended (exp(−∞) = 0, expm1(−∞) = −1).
fn lambda(s: f32) -> f32 {
    let a = s * s;
    (a / (1.0 - a)).sqrt().ln()
}

fn dpmpp_coeffs(prev: Option<f32>, s: f32, s_next: f32) -> DpmCoeffs {
    let h = lambda(s_next) - lambda(s);
    let r = prev.map(|p| (lambda(s) - lambda(p)) / h);
    DpmCoeffs {
        mult1: ((1.0 - s_next * s_next) / (1.0 - s * s)).sqrt() * (-h).exp(),
        mult2: (-2.0 * h).exp_m1() * s_next,
        noise: (1.0 - s_next * s_next).sqrt() * (1.0 - (-2.0 * h).exp()).sqrt(),
        r,
    }
}

/// NaN or inf in an output is an error, never a silent black video.
pub fn check_finite(t: &Tensor, what: &str) -> anyhow::Result<()> {
    let bad = t
        .to_dtype(DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?
        .iter()
        .filter(|v| !v.is_finite())
        .count();
    anyhow::ensure!(
        bad == 0,
        "the model produced {bad} non-finite values in the {what}; the weights or inputs are broken (try --device cpu, check the weight files)"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_step_coefficients_use_ieee_infinities() {
        let c = dpmpp_coeffs(None, 0.0, 0.3);
        assert_eq!(c.mult1, 0.0);
        assert!((c.mult2 + 0.3).abs() < 1e-7);
        assert!((c.noise - (1.0f32 - 0.09).sqrt()).abs() < 1e-6);
        // Second step after s = 0: r = inf so the 2M correction vanishes.
        let c2 = dpmpp_coeffs(Some(0.0), 0.3, 0.5);
        assert!(c2.r.unwrap().is_infinite());
    }

    #[test]
    fn seeded_noise_is_reproducible_and_standard() {
        let a = SeededNoise::new(7).normal(&[4000], &Device::Cpu).unwrap();
        let b = SeededNoise::new(7).normal(&[4000], &Device::Cpu).unwrap();
        let va = a.to_vec1::<f32>().unwrap();
        assert_eq!(va, b.to_vec1::<f32>().unwrap());
        let mean = va.iter().sum::<f32>() / va.len() as f32;
        let var = va.iter().map(|x| (x - mean) * (x - mean)).sum::<f32>() / va.len() as f32;
        assert!(mean.abs() < 0.05 && (var - 1.0).abs() < 0.1, "{mean} {var}");
    }

    #[test]
    fn nan_is_an_error() {
        let t = Tensor::new(&[1.0f32, f32::NAN], &Device::Cpu).unwrap();
        assert!(check_finite(&t, "video").unwrap_err().to_string().contains("non-finite"));
    }
}
