//! PSNR and SSIM on RGB8 frames.
//!
//! SSIM follows Wang et al. 2004 as scikit-image computes it with `gaussian_weights=True`:
//! an 11×11 Gaussian window (σ = 1.5), K1 = 0.01, K2 = 0.03, L = 255, per channel on the
//! valid region (no padding), averaged over channels; with the sample covariance
//! normalisation (N/(N−1)) of `use_sample_covariance=True`.

use serde::Serialize;

/// Peak signal-to-noise ratio in dB (∞ for identical frames).
pub fn psnr(a: &image::RgbImage, b: &image::RgbImage) -> f64 {
    assert_eq!(a.dimensions(), b.dimensions(), "frame sizes differ");
    let mse = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(x, y)| {
            let d = *x as f64 - *y as f64;
            d * d
        })
        .sum::<f64>()
        / a.as_raw().len() as f64;
    if mse == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (255.0f64 * 255.0 / mse).log10()
    }
}

fn gaussian_window(size: usize, sigma: f64) -> Vec<f64> {
    let c = (size as f64 - 1.0) / 2.0;
    let w: Vec<f64> = (0..size).map(|i| (-((i as f64 - c).powi(2)) / (2.0 * sigma * sigma)).exp()).collect();
    let s: f64 = w.iter().sum();
    w.into_iter().map(|v| v / s).collect()
}

/// Separable "valid" filtering of a w×h plane with the 1-D window `k`.
fn filter_valid(x: &[f64], w: usize, h: usize, k: &[f64]) -> (Vec<f64>, usize, usize) {
    let n = k.len();
    let (ow, oh) = (w + 1 - n, h + 1 - n);
    let mut tmp = vec![0.0; ow * h];
    for y in 0..h {
        for ox in 0..ow {
            tmp[y * ow + ox] = (0..n).map(|i| x[y * w + ox + i] * k[i]).sum();
        }
    }
    let mut out = vec![0.0; ow * oh];
    for oy in 0..oh {
        for ox in 0..ow {
            out[oy * ow + ox] = (0..n).map(|i| tmp[(oy + i) * ow + ox] * k[i]).sum();
        }
    }
    (out, ow, oh)
}

/// Structural similarity in [-1, 1] (1 for identical frames). Frames smaller than the
/// 11-pixel window use a window of their size.
pub fn ssim(a: &image::RgbImage, b: &image::RgbImage) -> f64 {
    assert_eq!(a.dimensions(), b.dimensions(), "frame sizes differ");
    let (w, h) = (a.width() as usize, a.height() as usize);
    let win = 11.min(w).min(h);
    let k = gaussian_window(win, 1.5);
    let n = (win * win) as f64;
    let cov_norm = if n > 1.0 { n / (n - 1.0) } else { 1.0 };
    let (c1, c2) = ((0.01f64 * 255.0).powi(2), (0.03f64 * 255.0).powi(2));
    let mut total = 0.0;
    for ch in 0..3 {
        let plane = |img: &image::RgbImage| -> Vec<f64> { img.as_raw().iter().skip(ch).step_by(3).map(|v| *v as f64).collect() };
        let (x, y) = (plane(a), plane(b));
        let xx: Vec<f64> = x.iter().map(|v| v * v).collect();
        let yy: Vec<f64> = y.iter().map(|v| v * v).collect();
        let xy: Vec<f64> = x.iter().zip(&y).map(|(p, q)| p * q).collect();
        let (ux, ow, oh) = filter_valid(&x, w, h, &k);
        let (uy, _, _) = filter_valid(&y, w, h, &k);
        let (uxx, _, _) = filter_valid(&xx, w, h, &k);
        let (uyy, _, _) = filter_valid(&yy, w, h, &k);
        let (uxy, _, _) = filter_valid(&xy, w, h, &k);
        let mut s = 0.0;
        for i in 0..ow * oh {
            let vx = cov_norm * (uxx[i] - ux[i] * ux[i]);
            let vy = cov_norm * (uyy[i] - uy[i] * uy[i]);
            let vxy = cov_norm * (uxy[i] - ux[i] * uy[i]);
            s += ((2.0 * ux[i] * uy[i] + c1) * (2.0 * vxy + c2))
                / ((ux[i] * ux[i] + uy[i] * uy[i] + c1) * (vx + vy + c2));
        }
        total += s / (ow * oh) as f64;
    }
    total / 3.0
}

/// Mean PSNR / SSIM over a clip pair (frames compared index by index).
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct ClipScores {
    pub frames: usize,
    /// Mean over frames of the per-frame PSNR, identical frames counted as 100 dB.
    pub psnr: f64,
    pub ssim: f64,
}

impl ClipScores {
    pub fn compute(imagined: &[image::RgbImage], real: &[image::RgbImage]) -> Self {
        let n = imagined.len().min(real.len());
        let mut p = 0.0;
        let mut s = 0.0;
        for i in 0..n {
            p += psnr(&imagined[i], &real[i]).min(100.0);
            s += ssim(&imagined[i], &real[i]);
        }
        Self { frames: n, psnr: p / n.max(1) as f64, ssim: s / n.max(1) as f64 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn img(f: impl Fn(u32, u32) -> [u8; 3]) -> image::RgbImage {
        image::RgbImage::from_fn(32, 24, |x, y| image::Rgb(f(x, y)))
    }

    #[test]
    fn identical_frames_are_perfect() {
        let a = img(|x, y| [(x * 8) as u8, (y * 10) as u8, 77]);
        assert!(psnr(&a, &a).is_infinite());
        assert!((ssim(&a, &a) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn psnr_matches_the_closed_form() {
        let a = img(|_, _| [100, 100, 100]);
        let b = img(|_, _| [110, 100, 100]); // mse = 100/3
        let expect = 10.0 * (255.0f64 * 255.0 / (100.0 / 3.0)).log10();
        assert!((psnr(&a, &b) - expect).abs() < 1e-9);
    }

    #[test]
    fn ssim_drops_with_structure_loss_and_ranks_noise() {
        let a = img(|x, y| [((x * 37 + y * 11) % 256) as u8, ((x * y) % 256) as u8, (x * 7) as u8]);
        let mild = img(|x, y| {
            let p = a.get_pixel(x, y).0;
            [p[0].saturating_add(((x + y) % 3) as u8), p[1], p[2]]
        });
        let flat = img(|_, _| [128, 128, 128]);
        let s_mild = ssim(&a, &mild);
        let s_flat = ssim(&a, &flat);
        assert!(s_mild > 0.9, "{s_mild}");
        assert!(s_flat < 0.2, "{s_flat}");
        // symmetric
        assert!((ssim(&mild, &a) - s_mild).abs() < 1e-12);
    }
}
