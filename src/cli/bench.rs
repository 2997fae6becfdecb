//! `videovla bench`: one full predict, stage by stage (text, VAE encode, each denoising step,
//! VAE decode), optionally beside the same model through the PyTorch reference in the same run.

use std::path::PathBuf;

use anyhow::Context;

use crate::model::pipeline::{device_from_name, CancelToken, PredictParams, VideoVla};
use crate::model::sampler::{SamplerKind, SamplerParams};

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Model folder (config.json + safetensors + tokenizer.json).
    #[arg(long, default_value = "models/tiny-sim")]
    pub model: PathBuf,
    #[arg(long, value_enum, default_value = "ddim")]
    pub sampler: SamplerKind,
    #[arg(long, default_value_t = 10)]
    pub steps: usize,
    /// DynamicCFG scale (0 = no guidance).
    #[arg(long, default_value_t = 6.0)]
    pub cfg: f64,
    /// Timed runs after one warm-up run; medians are reported.
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Also time the PyTorch reference (training/bench_reference.py) on the same model.
    #[arg(long)]
    pub reference: bool,
    /// Python with the reference's requirements (default: $VIDEOVLA_PYTHON, then ~/.cache/videovla/venv).
    #[arg(long)]
    pub python: Option<PathBuf>,
    /// Write the figures as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct StageMs {
    pub text_ms: f64,
    pub encode_ms: f64,
    pub step_ms: f64,
    pub denoise_ms: f64,
    pub decode_ms: f64,
    pub total_ms: f64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

fn default_python() -> PathBuf {
    if let Some(p) = std::env::var_os("VIDEOVLA_PYTHON") {
        return p.into();
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
    home.join(".cache/videovla/venv/bin/python")
}

fn reference(args: &BenchArgs) -> anyhow::Result<StageMs> {
    let python = args.python.clone().unwrap_or_else(default_python);
    let script = PathBuf::from("training/bench_reference.py");
    anyhow::ensure!(script.is_file(), "run the reference benchmark from the repository root (training/bench_reference.py not found)");
    let out = std::process::Command::new(&python)
        .arg(&script)
        .args(["--model", &args.model.to_string_lossy(), "--steps", &args.steps.to_string()])
        .args(["--sampler", match args.sampler { SamplerKind::Ddim => "ddim", SamplerKind::Dpmpp => "dpmpp" }])
        .args(["--cfg", &args.cfg.to_string(), "--runs", &args.runs.to_string()])
        .output()
        .with_context(|| format!("cannot run {}; install the reference with tests/run-all.sh or pass --python", python.display()))?;
    anyhow::ensure!(out.status.success(), "reference benchmark failed: {}", String::from_utf8_lossy(&out.stderr));
    let line = String::from_utf8_lossy(&out.stdout);
    let line = line.lines().last().unwrap_or_default();
    serde_json::from_str(line).context("parsing the reference benchmark output")
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let device = device_from_name(&args.device)?;
    let mut model = VideoVla::load(&args.model, &device)?;
    let size = model.config.image_size as u32;
    let image = image::RgbImage::from_fn(size, size, |x, y| image::Rgb([(x * 7 % 256) as u8, (y * 5 % 256) as u8, ((x + y) % 256) as u8]));
    let params = PredictParams {
        sampler: SamplerParams { kind: args.sampler, steps: args.steps, guidance_scale: args.cfg, ..Default::default() },
        robot_id: model.config.default_robot_id,
        ..Default::default()
    };
    let mut runs = Vec::new();
    for i in 0..=args.runs {
        let p = model.predict(&image, "pick up the red cube", &params, &mut |_| {}, &CancelToken::new())?;
        if i > 0 {
            runs.push(p.timings);
        }
    }
    let rust = StageMs {
        text_ms: median(runs.iter().map(|t| t.text_ms).collect()),
        encode_ms: median(runs.iter().map(|t| t.encode_ms).collect()),
        step_ms: median(runs.iter().flat_map(|t| t.step_ms.iter().copied()).collect()),
        denoise_ms: median(runs.iter().map(|t| t.step_ms.iter().sum()).collect()),
        decode_ms: median(runs.iter().map(|t| t.decode_ms).collect()),
        total_ms: median(runs.iter().map(|t| t.total_ms).collect()),
    };
    let torch = if args.reference { Some(reference(&args)?) } else { None };
    let frames = model.num_frames();
    outln!(
        "bench model {} ({}x{} px, {} frames), {:?} {} steps, cfg {}, {} runs (median), device {}",
        model.config.name, size, size, frames, args.sampler, args.steps, args.cfg, args.runs, args.device
    );
    outln!("bench {:<22} {:>12} {:>14}", "stage", "rust ms", "pytorch ms");
    let rows: [(&str, fn(&StageMs) -> f64); 6] = [
        ("text encoder", |s| s.text_ms),
        ("VAE encode", |s| s.encode_ms),
        ("one denoising step", |s| s.step_ms),
        ("all denoising steps", |s| s.denoise_ms),
        ("VAE decode", |s| s.decode_ms),
        ("total predict", |s| s.total_ms),
    ];
    for (name, f) in rows {
        let t = torch.as_ref().map(|t| format!("{:>14.1}", f(t))).unwrap_or_else(|| format!("{:>14}", "-"));
        outln!("bench {name:<22} {:>12.1} {t}", f(&rust));
    }
    if let Some(path) = &args.json {
        let v = serde_json::json!({"model": model.config.name, "sampler": args.sampler, "steps": args.steps,
            "cfg": args.cfg, "runs": args.runs, "rust": rust, "pytorch": torch});
        crate::util::write_atomic(path, serde_json::to_string_pretty(&v)?.as_bytes())?;
    }
    Ok(())
}
