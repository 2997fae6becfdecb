//! `videovla predict`: one prediction from the command line, everything it predicts saved.

use std::path::PathBuf;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

use crate::action::ActionStats;
use crate::export::{self, ExportOptions};
use crate::model::hub::ModelSource;
use crate::model::pipeline::{device_from_name, CancelToken, Progress, Stage, VideoVla};
use crate::model::sampler::SamplerKind;

#[derive(clap::Args, Debug)]
pub struct PredictArgs {
    /// Observation image (PNG, JPEG; any size — resized and centre-cropped like the release).
    #[arg(long)]
    pub image: PathBuf,
    /// What the robot should do.
    #[arg(long)]
    pub instruction: String,
    /// Output folder (must be new or empty unless --overwrite).
    #[arg(long)]
    pub out: PathBuf,
    /// Model folder, or a hub repository `hf:ORG/NAME[@REV]` (looked up in the Hugging Face
    /// cache first). Default: the embedded models/tiny-sim.
    #[arg(long)]
    pub model: Option<String>,
    #[arg(long, value_enum)]
    pub sampler: Option<SamplerKind>,
    #[arg(long)]
    pub steps: Option<usize>,
    /// DynamicCFG scale (0 = no guidance).
    #[arg(long)]
    pub cfg: Option<f64>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Number of samples (each gets its own sub-folder).
    #[arg(long, default_value_t = 1)]
    pub samples: usize,
    #[arg(long)]
    pub robot_id: Option<u32>,
    /// dataset_statistics.json to unnormalise the actions (default: the model's own, if any).
    #[arg(long)]
    pub action_stats: Option<PathBuf>,
    #[arg(long)]
    pub unnorm_key: Option<String>,
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Replace a non-empty --out folder.
    #[arg(long)]
    pub overwrite: bool,
}

/// The embedded model folder: $VIDEOVLA_MODEL_DIR, else ./models/tiny-sim, else the one in
/// the source tree this binary was built from.
pub fn default_model_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("VIDEOVLA_MODEL_DIR") {
        return p.into();
    }
    let local = PathBuf::from("models/tiny-sim");
    if local.join("config.json").is_file() {
        return local;
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/tiny-sim")
}

pub fn run(a: PredictArgs) -> anyhow::Result<()> {
    // Every check that needs no model comes first: nothing runs on bad input.
    export::check_output_dir(&a.out, a.overwrite)?;
    let image = image::open(&a.image)
        .with_context(|| format!("cannot read the image {}; give a PNG or JPEG file", a.image.display()))?
        .to_rgb8();
    let device = device_from_name(&a.device)?;
    let source = match &a.model {
        Some(m) => ModelSource::parse(m)?,
        None => ModelSource::Dir(default_model_dir()),
    };
    let mut model = VideoVla::load_source(&source, &device)?;
    let stats = match &a.action_stats {
        Some(p) => Some(ActionStats::load(p, a.unnorm_key.as_deref())?),
        None => model.action_stats()?,
    };
    let mut params = model.default_params();
    if let Some(k) = a.sampler {
        params.sampler.kind = k;
    }
    if let Some(s) = a.steps {
        params.sampler.steps = s;
    }
    if let Some(c) = a.cfg {
        params.sampler.guidance_scale = c;
    }
    if let Some(r) = a.robot_id {
        params.robot_id = r;
    }
    params.seed = a.seed;
    params.num_samples = a.samples;

    let pb = ProgressBar::new(params.sampler.steps as u64);
    pb.set_style(
        ProgressStyle::with_template("{msg:>10} [{bar:30}] {pos}/{len} steps {elapsed_precise} eta {eta}")
            .unwrap()
            .progress_chars("=> "),
    );
    let pred = model.predict(&image, &a.instruction, &params, &mut |p| match p {
        Progress::Stage(s) => pb.set_message(match s {
            Stage::Text => "text",
            Stage::Encode => "encode",
            Stage::Denoise => "denoise",
            Stage::Decode => "decode",
        }),
        Progress::Step { step, .. } => pb.set_position(step as u64 + 1),
    }, &CancelToken::new())?;
    pb.finish_and_clear();
    if let Some(n) = pred.truncated_from {
        eprintln!("warning: the instruction has {n} tokens; only the first {} were used", model.config.dit.text_length);
    }
    let info = export::model_info(&model)?;
    let opts = ExportOptions { stats, overwrite: a.overwrite, ..Default::default() };
    let out = export::export_prediction(&pred, &info, &a.out, &opts)?;
    let t = &pred.timings;
    outln!(
        "wrote {} ({} sample(s), {} frames each) in {:.0} ms: text {:.0}, encode {:.0}, {} steps {:.0}, decode {:.0}",
        out.display(),
        pred.samples.len(),
        pred.samples[0].frames.len(),
        t.total_ms,
        t.text_ms,
        t.encode_ms,
        t.step_ms.len(),
        t.step_ms.iter().sum::<f64>(),
        t.decode_ms
    );
    Ok(())
}
