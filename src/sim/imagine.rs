//! Imagination quality: how well a model's imagined 49 frames match what the simulator renders
//! when the model's own predicted actions are executed (PSNR and SSIM, `crate::compare`).
//!
//! Per episode, the model drives the robot closed loop (execute `execute` of each chunk, as in
//! `sim eval`). At each of the first `plans_per_episode` re-planning points the prediction is
//! decoded, the *whole* predicted chunk is executed in a copy of the world while every sub-frame
//! is rendered (the current frame + chunk·substeps frames = 49), and the two clips are compared
//! frame by frame.

use serde::Serialize;

use super::eval::EpisodeConfig;
use super::model_policy::ModelPolicy;
use super::render::{Camera, Renderer};
use super::tasks::{Split, TaskKind};
use super::world::World;
use crate::compare::ClipScores;

#[derive(Debug, Clone, Serialize)]
pub struct ImaginationSample {
    pub task: TaskKind,
    pub split: Split,
    pub seed: u64,
    pub plan: usize,
    pub scores: ClipScores,
}

#[derive(Debug, Clone, Serialize)]
pub struct ImaginationReport {
    pub model: String,
    pub samples: Vec<ImaginationSample>,
    pub mean_psnr: f64,
    pub mean_ssim: f64,
    /// Baseline: the current frame held still for the whole clip, against the same executed
    /// frames (how much a model gains over "nothing moves").
    pub static_psnr: f64,
    pub static_ssim: f64,
}

/// Evaluate on `episodes` episodes of `split` starting at `seed`, cycling through the tasks.
pub fn evaluate_imagination(
    policy: &mut ModelPolicy,
    split: Split,
    episodes: usize,
    seed: u64,
    plans_per_episode: usize,
    cfg: &EpisodeConfig,
    mut on_sample: impl FnMut(&ImaginationSample, &[image::RgbImage], &[image::RgbImage]),
) -> anyhow::Result<ImaginationReport> {
    use super::policy::Policy;
    let mut renderer = Renderer::new(Camera::default(), cfg.ssaa);
    let mut samples = Vec::new();
    let (mut sp, mut ss) = (0.0, 0.0);
    for i in 0..episodes {
        let task = super::eval::task_for(i as u64);
        let ep_seed = seed + i as u64;
        let mut world = World::reset(task, split, ep_seed);
        world.substeps = cfg.substeps;
        policy.reset(ep_seed);
        let max = world.task.kind.max_steps();
        for plan in 0..plans_per_episode {
            if world.steps >= max || world.success() {
                break;
            }
            let obs = world.observation_with(&mut renderer, cfg.image_size);
            let (imagined, chunk) = policy.imagine(&obs)?;
            // Execute the whole chunk in a copy, rendering every sub-frame.
            let mut copy = world.clone();
            let mut real = vec![to_image(&obs.image, cfg.image_size)];
            for a in &chunk {
                copy.step_with(a, |w| {
                    let mut buf = Vec::new();
                    renderer.render_into(w, cfg.image_size, cfg.image_size, &mut buf);
                    real.push(to_image(&buf, cfg.image_size));
                })?;
            }
            let n = imagined.len().min(real.len());
            let imagined: Vec<image::RgbImage> = imagined.into_iter().take(n).map(|f| resize_to(&f, cfg.image_size)).collect();
            let scores = ClipScores::compute(&imagined, &real[..n]);
            let still = vec![real[0].clone(); n];
            let base = ClipScores::compute(&still, &real[..n]);
            sp += base.psnr;
            ss += base.ssim;
            let s = ImaginationSample { task, split, seed: ep_seed, plan, scores };
            on_sample(&s, &imagined, &real[..n]);
            samples.push(s);
            // Continue closed loop with the executed prefix.
            for a in chunk.iter().take(cfg.execute) {
                world.step(a)?;
                if world.success() || world.steps >= max {
                    break;
                }
            }
        }
    }
    let n = samples.len().max(1) as f64;
    Ok(ImaginationReport {
        model: policy.name(),
        mean_psnr: samples.iter().map(|s| s.scores.psnr).sum::<f64>() / n,
        mean_ssim: samples.iter().map(|s| s.scores.ssim).sum::<f64>() / n,
        static_psnr: sp / n,
        static_ssim: ss / n,
        samples,
    })
}

fn to_image(rgb: &[u8], size: usize) -> image::RgbImage {
    image::RgbImage::from_raw(size as u32, size as u32, rgb.to_vec()).expect("frame size")
}

fn resize_to(f: &image::RgbImage, size: usize) -> image::RgbImage {
    if f.width() as usize == size && f.height() as usize == size {
        f.clone()
    } else {
        image::imageops::resize(f, size as u32, size as u32, image::imageops::FilterType::Triangle)
    }
}
