//! `videovla compare IMAGINED EXECUTED`: motion similarity (and PSNR/SSIM) of two clips.

use std::path::PathBuf;

use clap::Args;

use crate::compare::{motion_similarity, ClipScores, MotionOptions};

#[derive(Args, Debug)]
pub struct CompareArgs {
    /// The imagined clip: an animated GIF or a folder of PNG/JPEG frames.
    pub imagined: PathBuf,
    /// The executed clip (same forms); brought to the imagined frame size.
    pub executed: PathBuf,
    /// Frames both clips are resampled to by normalised time (0 = the shorter clip's length).
    #[arg(long, default_value_t = 0)]
    pub frames: usize,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: CompareArgs) -> anyhow::Result<()> {
    let im = crate::compare::motion::read_clip(&a.imagined)?;
    let ex = crate::compare::motion::read_clip(&a.executed)?;
    let opts = MotionOptions { frames: a.frames, ..Default::default() };
    let s = motion_similarity(&im, &ex, &opts)?;
    let (w, h) = im[0].dimensions();
    let n = s.frames;
    let pick = |c: &[image::RgbImage], t: usize| {
        crate::compare::motion::fit(&c[((t as f64) * (c.len() - 1) as f64 / (n - 1).max(1) as f64).round() as usize], w, h)
    };
    let ia: Vec<_> = (0..n).map(|t| pick(&im, t)).collect();
    let ea: Vec<_> = (0..n).map(|t| pick(&ex, t)).collect();
    let q = ClipScores::compute(&ia, &ea);
    if a.json {
        outln!("{}", serde_json::json!({"motion_similarity": s, "quality": q}));
    } else {
        match s.score {
            Some(v) => outln!("motion similarity {v:.3} ({} matched tracks of {} imagined / {} executed, {} frames)", s.pairs, s.imagined_tracks, s.executed_tracks, n),
            None => outln!("motion similarity: no matched tracks ({} imagined / {} executed)", s.imagined_tracks, s.executed_tracks),
        }
        outln!("PSNR {:.2} dB, SSIM {:.3} (time-aligned frames)", q.psnr, q.ssim);
    }
    Ok(())
}
