//! Writing a prediction to disk — one module for the CLI (`videovla predict`) and the viewer.
//!
//! Layout of `OUT/` (one sample):
//! ```text
//! prediction.json      every parameter, model id + weight hashes, seed, timings, program version
//! observation.png      the image exactly as the model saw it
//! imagination.gif      the 49 imagined frames at 8 fps
//! imagination.mp4      the same as H.264 (OpenH264) in MP4 (muxide)
//! frames/000.png ...   every frame
//! actions.json         raw actions; with statistics also unnormalised, axis-angle and the
//!                      integrated end-effector poses
//! actions.csv          the same, one row per action
//! side_by_side.gif/.mp4 (viewer, `side_by_side`) observation | imagination | trajectory
//! ```
//! With several samples, each sample's files go to `sample-00/`, `sample-01/`, ...; the
//! prediction manifest and the observation stay at the top. Everything is written into a
//! temporary sibling folder that is renamed into place at the end, so `OUT` never holds a
//! half-written export.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;

use crate::action::{integrate, rpy_to_axis_angle, ActionStats, Pose, RotationRule};
use crate::model::pipeline::Prediction;

pub mod side_by_side;

/// Frames per second of VideoVLA's videos.
pub const FPS: f32 = 8.0;

#[derive(Debug, Clone)]
pub struct ExportOptions {
    pub gif: bool,
    pub mp4: bool,
    pub frames: bool,
    /// Replace an existing non-empty output folder.
    pub overwrite: bool,
    pub stats: Option<ActionStats>,
    pub start_pose: Pose,
    pub rotation_rule: RotationRule,
    /// Also write `side_by_side.gif` (and `.mp4` with `mp4`): observation | imagination | trajectory.
    pub side_by_side: bool,
}

impl Default for ExportOptions {
    fn default() -> Self {
        Self {
            gif: true,
            mp4: true,
            frames: true,
            overwrite: false,
            stats: None,
            start_pose: Pose::default(),
            rotation_rule: RotationRule::default(),
            side_by_side: false,
        }
    }
}

/// Identity of the model that made a prediction, for the manifest.
#[derive(Debug, Clone, Serialize, Default)]
pub struct ModelInfo {
    pub name: String,
    pub source: String,
    /// `file → sha256` of every weight file.
    pub weight_sha256: Vec<(String, String)>,
}

/// Fail early (before any inference) when `out` cannot be written.
pub fn check_output_dir(out: &Path, overwrite: bool) -> anyhow::Result<()> {
    if out.exists() {
        anyhow::ensure!(out.is_dir(), "--out {} exists and is not a folder; choose another path", out.display());
        let non_empty = std::fs::read_dir(out)?.next().is_some();
        anyhow::ensure!(
            !non_empty || overwrite,
            "--out {} exists and is not empty; choose another folder or pass --overwrite",
            out.display()
        );
    }
    let parent = parent_of(out);
    std::fs::create_dir_all(&parent)
        .with_context(|| format!("cannot create {}; choose a writable --out", parent.display()))?;
    let probe = parent.join(format!(".videovla-write-test-{}", std::process::id()));
    std::fs::write(&probe, b"")
        .with_context(|| format!("{} is not writable; choose a writable --out", parent.display()))?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

fn parent_of(out: &Path) -> PathBuf {
    out.parent().filter(|p| !p.as_os_str().is_empty()).map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."))
}

/// The identity of a loaded model for the manifest: name, source and the sha256 of every
/// weight file (hub LFS blobs are named by their sha256, so those are not read again).
pub fn model_info(model: &crate::model::pipeline::VideoVla) -> anyhow::Result<ModelInfo> {
    let mut hashes = Vec::new();
    for (entry, path) in model.files.weights(&model.config.files) {
        let hash = match crate::model::hub::cached_sha256(path) {
            Some(h) => h,
            None => sha256_file(path)?,
        };
        hashes.push((entry.to_string(), hash));
    }
    Ok(ModelInfo { name: model.config.name.clone(), source: model.source.to_string(), weight_sha256: hashes })
}

/// sha256 of a file, streamed.
pub fn sha256_file(path: &Path) -> anyhow::Result<String> {
    use sha2::{Digest, Sha256};
    let mut f = std::fs::File::open(path).with_context(|| format!("hashing {}", path.display()))?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h)?;
    Ok(format!("{:x}", h.finalize()))
}

#[derive(Serialize)]
struct ActionRow {
    step: usize,
    raw: Vec<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    unnormalized: Option<Vec<f32>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    axis_angle: Option<[f32; 3]>,
    /// End-effector pose after this action: [x, y, z, qx, qy, qz, qw, gripper].
    #[serde(skip_serializing_if = "Option::is_none")]
    pose_after: Option<[f32; 8]>,
}

fn pose_vec(p: &Pose) -> [f32; 8] {
    let q = p.rotation.quaternion();
    [p.position.x, p.position.y, p.position.z, q.i, q.j, q.k, q.w, p.gripper]
}

fn action_rows(actions: &[Vec<f32>], opts: &ExportOptions) -> anyhow::Result<(Vec<ActionRow>, Option<Vec<Pose>>)> {
    let unnorm: Option<Vec<Vec<f32>>> = match &opts.stats {
        Some(s) => Some(actions.iter().map(|a| s.unnormalize(a, false)).collect::<anyhow::Result<_>>()?),
        None => None,
    };
    let poses = unnorm.as_ref().map(|u| integrate(opts.start_pose, u, opts.rotation_rule));
    let rows = actions
        .iter()
        .enumerate()
        .map(|(i, raw)| {
            let u = unnorm.as_ref().map(|u| u[i].clone());
            ActionRow {
                step: i,
                raw: raw.clone(),
                axis_angle: u.as_ref().filter(|u| u.len() >= 3).map(|u| rpy_to_axis_angle(u[0], u[1], u[2])),
                unnormalized: u,
                pose_after: poses.as_ref().map(|p| pose_vec(&p[i + 1])),
            }
        })
        .collect();
    Ok((rows, poses))
}

fn write_actions(dir: &Path, actions: &[Vec<f32>], opts: &ExportOptions) -> anyhow::Result<()> {
    let (rows, poses) = action_rows(actions, opts)?;
    let json = serde_json::json!({
        "layout": "[droll, dpitch, dyaw, dx, dy, dz, gripper]",
        "normalized": opts.stats.is_some(),
        "rotation_rule": opts.rotation_rule,
        "start_pose": pose_vec(&opts.start_pose),
        "actions": rows,
        "trajectory": poses.map(|p| p.iter().map(pose_vec).collect::<Vec<_>>()),
    });
    std::fs::write(dir.join("actions.json"), serde_json::to_string_pretty(&json)?)?;
    let mut csv = String::new();
    let dims = actions.first().map(|a| a.len()).unwrap_or(0);
    let mut header: Vec<String> = vec!["step".into()];
    header.extend((0..dims).map(|d| format!("raw_{d}")));
    if opts.stats.is_some() {
        header.extend((0..dims).map(|d| format!("unnorm_{d}")));
        header.extend(["x", "y", "z", "qx", "qy", "qz", "qw", "gripper"].map(String::from));
    }
    csv.push_str(&header.join(","));
    csv.push('\n');
    for r in &rows {
        let mut cols = vec![r.step.to_string()];
        cols.extend(r.raw.iter().map(|v| v.to_string()));
        if let (Some(u), Some(p)) = (&r.unnormalized, &r.pose_after) {
            cols.extend(u.iter().map(|v| v.to_string()));
            cols.extend(p.iter().map(|v| v.to_string()));
        }
        csv.push_str(&cols.join(","));
        csv.push('\n');
    }
    std::fs::write(dir.join("actions.csv"), csv)?;
    Ok(())
}

/// An animated GIF at `fps`, looping forever.
pub fn write_gif(path: &Path, frames: &[image::RgbImage], fps: f32) -> anyhow::Result<()> {
    use image::codecs::gif::{GifEncoder, Repeat};
    let file = std::fs::File::create(path)?;
    let mut enc = GifEncoder::new_with_speed(std::io::BufWriter::new(file), 10);
    enc.set_repeat(Repeat::Infinite)?;
    let delay = image::Delay::from_numer_denom_ms((1000.0 / fps).round() as u32, 1);
    for f in frames {
        let rgba = image::DynamicImage::ImageRgb8(f.clone()).to_rgba8();
        enc.encode_frame(image::Frame::from_parts(rgba, 0, 0, delay))?;
    }
    Ok(())
}

fn is_idr(annex_b: &[u8]) -> bool {
    openh264::nal_units(annex_b).any(|nal| {
        let start = nal.iter().position(|&b| b == 1).map(|i| i + 1).unwrap_or(0);
        nal.get(start).map(|h| h & 0x1f == 5).unwrap_or(false)
    })
}

/// H.264 (OpenH264, built from source) in an MP4 container (muxide, fast start).
/// Odd frame sizes are padded by repeating the last row/column.
pub fn write_mp4(path: &Path, frames: &[image::RgbImage], fps: f32) -> anyhow::Result<()> {
    use openh264::encoder::Encoder;
    use openh264::formats::{RgbSliceU8, YUVBuffer};
    anyhow::ensure!(!frames.is_empty(), "no frames to encode");
    let (w, h) = frames[0].dimensions();
    let (ew, eh) = ((w + 1) & !1, (h + 1) & !1);
    let mut encoder = Encoder::new().map_err(|e| anyhow::anyhow!("H.264 encoder: {e}"))?;
    let file = std::fs::File::create(path)?;
    let mut muxer = muxide::api::MuxerBuilder::new(std::io::BufWriter::new(file))
        .video(muxide::api::VideoCodec::H264, ew, eh, fps as f64)
        .with_fast_start(true)
        .build()
        .map_err(|e| anyhow::anyhow!("MP4 muxer: {e}"))?;
    for (i, f) in frames.iter().enumerate() {
        let padded;
        let f = if (ew, eh) != (w, h) {
            padded = image::RgbImage::from_fn(ew, eh, |x, y| *f.get_pixel(x.min(w - 1), y.min(h - 1)));
            &padded
        } else {
            f
        };
        let yuv = YUVBuffer::from_rgb8_source(RgbSliceU8::new(f.as_raw(), (ew as usize, eh as usize)));
        let bits = encoder.encode(&yuv).map_err(|e| anyhow::anyhow!("H.264 encode: {e}"))?.to_vec();
        if bits.is_empty() {
            continue; // the rate controller skipped this frame
        }
        muxer
            .write_video(i as f64 / fps as f64, &bits, is_idr(&bits))
            .map_err(|e| anyhow::anyhow!("MP4 muxer: {e}"))?;
    }
    muxer.finish().map_err(|e| anyhow::anyhow!("MP4 muxer: {e}"))?;
    Ok(())
}

/// The end-effector poses of a chunk: unnormalised with the statistics when given (raw
/// actions otherwise), integrated from the start pose with the rotation rule.
pub fn trajectory(actions: &[Vec<f32>], opts: &ExportOptions) -> anyhow::Result<Vec<Pose>> {
    let unnorm: Vec<Vec<f32>> = match &opts.stats {
        Some(s) => actions.iter().map(|a| s.unnormalize(a, false)).collect::<anyhow::Result<_>>()?,
        None => actions.to_vec(),
    };
    Ok(integrate(opts.start_pose, &unnorm, opts.rotation_rule))
}

fn write_sample(
    dir: &Path,
    observation: &image::RgbImage,
    frames: &[image::RgbImage],
    actions: &[Vec<f32>],
    opts: &ExportOptions,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    if opts.side_by_side && !frames.is_empty() {
        let panel = frames[0].height().max(192);
        let clip = side_by_side::side_by_side_frames(observation, frames, &trajectory(actions, opts)?, panel);
        write_gif(&dir.join("side_by_side.gif"), &clip, FPS)?;
        if opts.mp4 {
            write_mp4(&dir.join("side_by_side.mp4"), &clip, FPS)?;
        }
    }
    if !frames.is_empty() {
        if opts.gif {
            write_gif(&dir.join("imagination.gif"), frames, FPS)?;
        }
        if opts.mp4 {
            write_mp4(&dir.join("imagination.mp4"), frames, FPS)?;
        }
        if opts.frames {
            let fdir = dir.join("frames");
            std::fs::create_dir_all(&fdir)?;
            for (i, f) in frames.iter().enumerate() {
                f.save(fdir.join(format!("{i:03}.png")))?;
            }
        }
    }
    write_actions(dir, actions, opts)
}

/// Write `pred` to `out` (see the module docs). Returns the folder written.
pub fn export_prediction(pred: &Prediction, model: &ModelInfo, out: &Path, opts: &ExportOptions) -> anyhow::Result<PathBuf> {
    check_output_dir(out, opts.overwrite)?;
    let parent = parent_of(out);
    let name = out.file_name().context("--out has no folder name")?.to_string_lossy().to_string();
    let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let result = (|| -> anyhow::Result<()> {
        std::fs::create_dir_all(&tmp)?;
        pred.observation.save(tmp.join("observation.png"))?;
        let single = pred.samples.len() == 1;
        for (i, s) in pred.samples.iter().enumerate() {
            let dir = if single { tmp.clone() } else { tmp.join(format!("sample-{i:02}")) };
            write_sample(&dir, &pred.observation, &s.frames, &s.actions, opts)?;
        }
        let manifest = serde_json::json!({
            "program": "videovla",
            "version": env!("CARGO_PKG_VERSION"),
            "instruction": pred.instruction,
            "truncated_from_tokens": pred.truncated_from,
            "params": pred.params,
            "model": model,
            "samples": pred.samples.len(),
            "frames_per_sample": pred.samples.first().map(|s| s.frames.len()).unwrap_or(0),
            "fps": FPS,
            "timings_ms": pred.timings,
            "action_statistics": opts.stats,
        });
        let mut f = std::fs::File::create(tmp.join("prediction.json"))?;
        f.write_all(serde_json::to_string_pretty(&manifest)?.as_bytes())?;
        f.sync_all()?;
        Ok(())
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e.context(format!("writing the export to {}", out.display())));
    }
    if out.exists() {
        std::fs::remove_dir_all(out).with_context(|| format!("replacing {}", out.display()))?;
    }
    std::fs::rename(&tmp, out).with_context(|| format!("moving the export into {}", out.display()))?;
    Ok(out.to_path_buf())
}
