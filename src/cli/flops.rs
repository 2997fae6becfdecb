//! `videovla flops`: floating-point work per denoising step and the floor it implies.

use std::path::PathBuf;

use anyhow::Context;

use crate::model::dit::DitConfig;
use crate::model::flops::{dit_forward, floor_seconds, t5_encoder, H100_BF16_DENSE};

#[derive(clap::Args, Debug)]
pub struct FlopsArgs {
    /// A model config.json (default: the released model).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Peak throughput to compute the floor with, TFLOP/s (default: H100 SXM dense bf16).
    #[arg(long, default_value_t = H100_BF16_DENSE / 1e12)]
    pub peak_tflops: f64,
}

pub fn run(a: FlopsArgs) -> anyhow::Result<()> {
    let cfg: DitConfig = match &a.config {
        Some(p) => {
            let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?)?;
            serde_json::from_value(v.get("dit").cloned().unwrap_or(v)).context("not a model config with a dit section")?
        }
        None => DitConfig::released(),
    };
    let peak = a.peak_tflops * 1e12;
    outln!("| setting | tokens | TFLOP/step (CFG batch 2) | attention share | steps | TFLOP total | floor at {:.0} TFLOP/s |", a.peak_tflops);
    outln!("|---|---|---|---|---|---|---|");
    for (name, frames, steps) in [("released, 49 frames (13 latent)", cfg.latent_frames, 50usize), ("paper real setting (4 latent)", 4, 10)] {
        let f = dit_forward(&cfg, frames, 2);
        let step = f.total();
        outln!(
            "| {name} | {} | {:.1} | {:.0} % | {steps} | {:.0} | {:.0} ms/step, {:.2} s |",
            f.tokens,
            step / 1e12,
            100.0 * f.attention / step,
            step * steps as f64 / 1e12,
            1e3 * floor_seconds(step, peak),
            floor_seconds(step * steps as f64, peak)
        );
    }
    let t5 = t5_encoder(4096, 64, 64, 10240, 24, cfg.text_length, true);
    outln!("T5-XXL encoder, once per prediction: {:.1} TFLOP", t5 / 1e12);
    Ok(())
}
