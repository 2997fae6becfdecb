//! Imagination–execution motion similarity (paper §5.7; ../shared/docs/motion-similarity.md),
//! the lightweight version: Shi-Tomasi keypoints on frame 0 inside the moving foreground,
//! pyramidal Lucas–Kanade tracking with a forward-backward check (`optical-flow-lk`), Hungarian
//! matching of imagined to executed tracks by their start positions (`lsap`, the JV algorithm as
//! in SciPy), and per matched pair the cosine similarity of the displacement vectors
//! `[p_t − p_0]_{t=1..T}`, mapped to [0, 1] by `(cos + 1) / 2` and averaged.
//!
//! Both clips are first brought to the imagined frame size and resampled to the same number of
//! frames by normalised time. Foreground (in place of SAM): pixels whose grey level changes by more
//! than `motion_threshold` from frame 0 in either clip, dilated; static clips have no foreground
//! and keypoints are then taken anywhere. A pair whose two tracks both stay put counts as
//! similar (1); one moving and one static counts as 0.5 (orthogonal).

use image::{GrayImage, RgbImage};
use optical_flow_lk::{build_pyramid, calc_optical_flow_fb, good_features_to_track, TrackParams, TrackStatus};
use serde::Serialize;

#[derive(Clone, Debug)]
pub struct MotionOptions {
    /// Frames both clips are resampled to (0 = the shorter clip's length).
    pub frames: usize,
    pub max_points: usize,
    /// Shi-Tomasi quality level (fraction of the best corner's score).
    pub quality: f32,
    pub min_distance: u32,
    pub pyramid_levels: usize,
    pub window: usize,
    /// Forward-backward round trip allowed (pixels).
    pub fb_threshold: f32,
    /// Grey-level change that marks a pixel as moving.
    pub motion_threshold: u8,
    /// Farthest start-point distance for a match, as a fraction of the frame width.
    pub max_match: f32,
    /// Displacements shorter than this (pixels, whole track) count as "no motion".
    pub still: f32,
}

impl Default for MotionOptions {
    fn default() -> Self {
        MotionOptions {
            frames: 0,
            max_points: 200,
            quality: 0.01,
            min_distance: 2,
            pyramid_levels: 3,
            window: 7,
            fb_threshold: 0.7,
            motion_threshold: 24,
            max_match: 0.08,
            still: 0.5,
        }
    }
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct MotionScore {
    /// Mean over matched pairs of (cos + 1) / 2, in [0, 1]; `None` when no pair survived.
    pub score: Option<f64>,
    pub pairs: usize,
    pub frames: usize,
    pub imagined_tracks: usize,
    pub executed_tracks: usize,
    /// Whether keypoints came from the moving foreground (false: no motion, whole frame).
    pub foreground: bool,
}

/// `img` in a `w`×`h` frame's coordinates: centre-cropped to that aspect ratio, then resized
/// (how the model crops its input), so positions are comparable.
pub fn fit(img: &RgbImage, w: u32, h: u32) -> RgbImage {
    if img.dimensions() == (w, h) {
        return img.clone();
    }
    let (iw, ih) = img.dimensions();
    // Largest centred crop with the target aspect.
    let (cw, ch) = if iw as u64 * h as u64 > ih as u64 * w as u64 {
        (((ih as u64 * w as u64) / h as u64).max(1) as u32, ih)
    } else {
        (iw, ((iw as u64 * h as u64) / w as u64).max(1) as u32)
    };
    let crop = image::imageops::crop_imm(img, (iw - cw) / 2, (ih - ch) / 2, cw, ch).to_image();
    image::imageops::resize(&crop, w, h, image::imageops::FilterType::Triangle)
}

fn gray(img: &RgbImage, w: u32, h: u32) -> GrayImage {
    let img = fit(img, w, h);
    image::DynamicImage::ImageRgb8(img).to_luma8()
}

/// `n` frames of `clip` at evenly spaced normalised times (nearest frame).
fn resample(clip: &[GrayImage], n: usize) -> Vec<GrayImage> {
    let m = clip.len();
    (0..n)
        .map(|t| {
            let i = if n <= 1 { 0 } else { ((t as f64) * (m - 1) as f64 / (n - 1) as f64).round() as usize };
            clip[i.min(m - 1)].clone()
        })
        .collect()
}

/// Pixels that move in `clip` (vs frame 0), dilated by 2 px.
fn motion_mask(clip: &[GrayImage], thr: u8, mask: &mut [bool]) {
    let (w, h) = clip[0].dimensions();
    let f0 = clip[0].as_raw();
    let mut raw = vec![false; mask.len()];
    for f in &clip[1..] {
        for (i, (&a, &b)) in f0.iter().zip(f.as_raw()).enumerate() {
            if a.abs_diff(b) > thr {
                raw[i] = true;
            }
        }
    }
    let r = 2i64;
    for y in 0..h as i64 {
        for x in 0..w as i64 {
            if !raw[(y * w as i64 + x) as usize] {
                continue;
            }
            for dy in -r..=r {
                for dx in -r..=r {
                    let (xx, yy) = (x + dx, y + dy);
                    if xx >= 0 && yy >= 0 && xx < w as i64 && yy < h as i64 {
                        mask[(yy * w as i64 + xx) as usize] = true;
                    }
                }
            }
        }
    }
}

/// Track keypoints of frame 0 through the clip; returns the surviving tracks (T points each).
fn tracks(clip: &[GrayImage], mask: Option<&[bool]>, o: &MotionOptions) -> Vec<Vec<(f32, f32)>> {
    let w = clip[0].width();
    let corners = good_features_to_track(&clip[0], o.quality, o.min_distance);
    let mut pts: Vec<(f32, f32)> = corners
        .iter()
        .map(|c| c.position())
        .filter(|&(x, y)| mask.is_none_or(|m| m[(y.round() as u32).min(clip[0].height() - 1) as usize * w as usize + (x.round() as u32).min(w - 1) as usize]))
        .take(o.max_points)
        .collect();
    let mut alive: Vec<usize> = (0..pts.len()).collect();
    let mut out: Vec<Vec<(f32, f32)>> = pts.iter().map(|&p| vec![p]).collect();
    let params = TrackParams { window_size: o.window, max_iterations: 30, min_eigen_threshold: 1e-4 };
    let mut prev = build_pyramid(&clip[0], o.pyramid_levels);
    for f in &clip[1..] {
        if alive.is_empty() {
            break;
        }
        let next = build_pyramid(f, o.pyramid_levels);
        let cur: Vec<(f32, f32)> = alive.iter().map(|&i| pts[i]).collect();
        let res = calc_optical_flow_fb(&prev, &next, &cur, None, params, o.fb_threshold);
        let mut keep = Vec::with_capacity(alive.len());
        for (&i, r) in alive.iter().zip(&res) {
            if r.status == TrackStatus::Tracked && r.pos.0.is_finite() && r.pos.1.is_finite() {
                pts[i] = r.pos;
                out[i].push(r.pos);
                keep.push(i);
            }
        }
        alive = keep;
        prev = next;
    }
    let n = clip.len();
    out.into_iter().filter(|t| t.len() == n).collect()
}

fn pair_similarity(a: &[(f32, f32)], b: &[(f32, f32)], still: f32) -> f64 {
    let (mut dot, mut na, mut nb) = (0.0f64, 0.0f64, 0.0f64);
    for t in 1..a.len() {
        let da = ((a[t].0 - a[0].0) as f64, (a[t].1 - a[0].1) as f64);
        let db = ((b[t].0 - b[0].0) as f64, (b[t].1 - b[0].1) as f64);
        dot += da.0 * db.0 + da.1 * db.1;
        na += da.0 * da.0 + da.1 * da.1;
        nb += db.0 * db.0 + db.1 * db.1;
    }
    // "Still" = the largest displacement is below `still` pixels.
    let max_disp = |p: &[(f32, f32)]| p.iter().map(|q| ((q.0 - p[0].0).powi(2) + (q.1 - p[0].1).powi(2)).sqrt()).fold(0.0f32, f32::max);
    let (sa, sb) = (max_disp(a) < still, max_disp(b) < still);
    let (sa, sb) = (sa || na == 0.0, sb || nb == 0.0);
    let cos = match (sa, sb) {
        (true, true) => 1.0,
        (true, false) | (false, true) => 0.0,
        _ => dot / (na.sqrt() * nb.sqrt()),
    };
    (cos.clamp(-1.0, 1.0) + 1.0) / 2.0
}

/// The motion similarity of an imagined clip and an executed clip (see the module doc).
pub fn motion_similarity(imagined: &[RgbImage], executed: &[RgbImage], o: &MotionOptions) -> anyhow::Result<MotionScore> {
    anyhow::ensure!(imagined.len() >= 2 && executed.len() >= 2, "both clips need at least 2 frames (got {} and {})", imagined.len(), executed.len());
    let (w, h) = imagined[0].dimensions();
    anyhow::ensure!(w >= 8 && h >= 8, "frames must be at least 8x8 pixels");
    let n = if o.frames > 0 { o.frames } else { imagined.len().min(executed.len()) }.max(2);
    let im = resample(&imagined.iter().map(|f| gray(f, w, h)).collect::<Vec<_>>(), n);
    let ex = resample(&executed.iter().map(|f| gray(f, w, h)).collect::<Vec<_>>(), n);
    let mut mask = vec![false; (w * h) as usize];
    motion_mask(&im, o.motion_threshold, &mut mask);
    motion_mask(&ex, o.motion_threshold, &mut mask);
    let foreground = mask.iter().any(|&m| m);
    let m = foreground.then_some(mask.as_slice());
    let ti = tracks(&im, m, o);
    let te = tracks(&ex, m, o);
    let mut score = MotionScore { score: None, pairs: 0, frames: n, imagined_tracks: ti.len(), executed_tracks: te.len(), foreground };
    if ti.is_empty() || te.is_empty() {
        return Ok(score);
    }
    // Hungarian matching on start-point distance; far pairs are dropped afterwards.
    let big = 1e6;
    let cost: Vec<f64> = ti
        .iter()
        .flat_map(|a| te.iter().map(move |b| (((a[0].0 - b[0].0).powi(2) + (a[0].1 - b[0].1).powi(2)) as f64).sqrt()))
        .map(|d| if d.is_finite() { d } else { big })
        .collect();
    let (rows, cols) = lsap::solve(ti.len(), te.len(), &cost, false).map_err(|e| anyhow::anyhow!("assignment failed: {e:?}"))?;
    let limit = (o.max_match * w as f32) as f64;
    let sims: Vec<f64> = rows
        .iter()
        .zip(&cols)
        .filter(|(&r, &c)| cost[r * te.len() + c] <= limit)
        .map(|(&r, &c)| pair_similarity(&ti[r], &te[c], o.still))
        .collect();
    score.pairs = sims.len();
    if !sims.is_empty() {
        score.score = Some(sims.iter().sum::<f64>() / sims.len() as f64);
    }
    Ok(score)
}

/// Read a clip: an animated GIF, a folder of PNG/JPEG frames (sorted by name), or one image.
pub fn read_clip(path: &std::path::Path) -> anyhow::Result<Vec<RgbImage>> {
    use image::AnimationDecoder;
    if path.is_dir() {
        let mut files: Vec<_> = std::fs::read_dir(path)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().and_then(|e| e.to_str()).is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "png" | "jpg" | "jpeg")))
            .collect();
        files.sort();
        anyhow::ensure!(!files.is_empty(), "{} holds no PNG or JPEG frames", path.display());
        return files
            .iter()
            .map(|f| Ok(image::open(f).map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))?.to_rgb8()))
            .collect();
    }
    let is_gif = path.extension().and_then(|e| e.to_str()).is_some_and(|e| e.eq_ignore_ascii_case("gif"));
    if is_gif {
        let f = std::io::BufReader::new(std::fs::File::open(path).map_err(|e| anyhow::anyhow!("cannot open {}: {e}", path.display()))?);
        let dec = image::codecs::gif::GifDecoder::new(f).map_err(|e| anyhow::anyhow!("{}: not a GIF ({e})", path.display()))?;
        let frames = dec.into_frames().collect_frames().map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        return Ok(frames.into_iter().map(|f| image::DynamicImage::ImageRgba8(f.into_buffer()).to_rgb8()).collect());
    }
    anyhow::bail!("{}: give an animated GIF or a folder of PNG/JPEG frames (export with `videovla predict --out`)", path.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 64×64 grey frame with a smoothly textured 16×16 patch whose top-left corner is at (x, y)
    /// (a continuous function of position, so sub-pixel shifts are exact).
    fn frame(x: f32, y: f32) -> RgbImage {
        RgbImage::from_fn(64, 64, |px, py| {
            let (u, v) = (px as f32 - x, py as f32 - y);
            let inside = |t: f32| ((t + 0.5).clamp(0.0, 1.0)) * ((16.5 - t).clamp(0.0, 1.0));
            let m = inside(u) * inside(v);
            let tex = 128.0 + 60.0 * (u * 0.7).sin() * (v * 0.5).cos() + 40.0 * ((u + 2.0 * v) * 0.3).sin();
            let g = (120.0 * (1.0 - m) + tex * m).round().clamp(0.0, 255.0) as u8;
            image::Rgb([g, g, g])
        })
    }

    fn clip(dx: f32, dy: f32, n: usize) -> Vec<RgbImage> {
        (0..n).map(|t| frame(26.0 + dx * t as f32, 26.0 + dy * t as f32)).collect()
    }

    fn score(a: &[RgbImage], b: &[RgbImage]) -> MotionScore {
        motion_similarity(a, b, &MotionOptions::default()).unwrap()
    }

    #[test]
    fn identical_clips_score_one() {
        let a = clip(1.0, 0.5, 9);
        let s = score(&a, &a);
        assert!(s.pairs >= 4, "{s:?}");
        assert!((s.score.unwrap() - 1.0).abs() < 1e-9, "{s:?}");
    }

    #[test]
    fn reversed_motion_scores_low() {
        let s = score(&clip(1.0, 0.0, 9), &clip(-1.0, 0.0, 9));
        assert!(s.pairs >= 4, "{s:?}");
        assert!(s.score.unwrap() < 0.1, "{s:?}");
    }

    #[test]
    fn known_translations_score_as_the_angle_says() {
        // Orthogonal motions: cos 0 -> 0.5.  45 degrees: (cos 45 + 1) / 2 = 0.854.
        let s = score(&clip(1.0, 0.0, 9), &clip(0.0, 1.0, 9));
        assert!((s.score.unwrap() - 0.5).abs() < 0.08, "{s:?}");
        let s = score(&clip(1.0, 0.0, 9), &clip(0.8, 0.8, 9));
        assert!((s.score.unwrap() - 0.854).abs() < 0.06, "{s:?}");
        // Same direction, different speed and frame count: still ~1.
        let s = score(&clip(1.0, 0.0, 9), &clip(0.5, 0.0, 17));
        assert!(s.score.unwrap() > 0.95, "{s:?}");
    }

    #[test]
    fn static_clips_are_similar_and_bad_input_is_refused() {
        let a = clip(0.0, 0.0, 5);
        let s = score(&a, &a);
        assert!(!s.foreground);
        assert_eq!(s.score, Some(1.0), "{s:?}");
        assert!(motion_similarity(&a[..1], &a, &MotionOptions::default()).is_err());
    }
}
