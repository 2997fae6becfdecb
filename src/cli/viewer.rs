//! `videovla viewer` (and `videovla` with no arguments): the desktop imagination viewer.

use std::path::PathBuf;

use crate::ui::ViewerOptions;

#[derive(clap::Args, Debug, Default)]
pub struct ViewerArgs {
    /// Model folder (default: the embedded models/tiny-sim).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Run one prediction with the simulator scene's instruction as soon as the model is
    /// loaded (smoke tests, demos).
    #[arg(long)]
    pub auto_run: bool,
    /// Start in demo mode (fullscreen, large type).
    #[arg(long)]
    pub demo: bool,
    /// With --auto-run: record UI frame times while the prediction runs, write median and
    /// 99th percentile as JSON to FILE, then close (the responsiveness benchmark).
    #[arg(long, value_name = "FILE")]
    pub measure_frames: Option<PathBuf>,
}

pub fn run(a: ViewerArgs) -> anyhow::Result<()> {
    anyhow::ensure!(a.measure_frames.is_none() || a.auto_run, "--measure-frames needs --auto-run");
    let opts = ViewerOptions {
        model_dir: a.model,
        auto_run: a.auto_run,
        demo: a.demo,
        measure_frames: a.measure_frames,
        ..Default::default()
    };
    crate::ui::run_native(opts)
}
