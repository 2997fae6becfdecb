//! Image preprocessing as released: `ToTensor` (0..1), resize the short side with
//! torchvision's antialiased bicubic (`resize(..., BICUBIC)` on a tensor, antialias on), centre
//! crop (`top = Δh // 2`, `left = Δw // 2`), then `x·2 − 1`. Any size and aspect is accepted.

use candle_core::{Device, Result, Tensor};

/// Bicubic kernel with a = −0.5, the one PyTorch's antialiased path uses.
fn cubic(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

/// Per output pixel: first input index and normalised weights (PyTorch `_compute_weights_aa`).
fn aa_weights(in_size: usize, out_size: usize) -> Vec<(usize, Vec<f32>)> {
    let scale = in_size as f64 / out_size as f64;
    let support = if scale >= 1.0 { 2.0 * scale } else { 2.0 };
    let invscale = if scale >= 1.0 { 1.0 / scale } else { 1.0 };
    (0..out_size)
        .map(|i| {
            let center = scale * (i as f64 + 0.5);
            let xmin = ((center - support + 0.5).floor().max(0.0)) as usize;
            let xmax = ((center + support + 0.5).floor() as usize).min(in_size);
            let mut w: Vec<f64> = (xmin..xmax)
                .map(|j| cubic((j as f64 - center + 0.5) * invscale))
                .collect();
            let total: f64 = w.iter().sum();
            if total != 0.0 {
                w.iter_mut().for_each(|v| *v /= total);
            }
            (xmin, w.into_iter().map(|v| v as f32).collect())
        })
        .collect()
}

/// Separable antialiased bicubic resize of a planar (C, H, W) float image.
pub fn resize_bicubic_aa(src: &[f32], c: usize, h: usize, w: usize, oh: usize, ow: usize) -> Vec<f32> {
    // Horizontal pass, then vertical (PyTorch's order).
    let wx = aa_weights(w, ow);
    let mut tmp = vec![0f32; c * h * ow];
    for ch in 0..c {
        for y in 0..h {
            let row = &src[(ch * h + y) * w..(ch * h + y + 1) * w];
            for (x, (x0, ws)) in wx.iter().enumerate() {
                tmp[(ch * h + y) * ow + x] = ws.iter().enumerate().map(|(k, wt)| row[x0 + k] * wt).sum();
            }
        }
    }
    let wy = aa_weights(h, oh);
    let mut out = vec![0f32; c * oh * ow];
    for ch in 0..c {
        for (y, (y0, ws)) in wy.iter().enumerate() {
            for x in 0..ow {
                out[(ch * oh + y) * ow + x] = ws
                    .iter()
                    .enumerate()
                    .map(|(k, wt)| tmp[(ch * h + y0 + k) * ow + x] * wt)
                    .sum();
            }
        }
    }
    out
}

/// Output size of the short-side resize for a square target, as the official
/// `resize_for_rectangle_crop` computes it (`int()` truncation of the long side).
pub fn resized_size(h: usize, w: usize, size: usize) -> (usize, usize) {
    if w as f64 / h as f64 > 1.0 {
        (size, (w as f64 * size as f64 / h as f64) as usize)
    } else {
        ((h as f64 * size as f64 / w as f64) as usize, size)
    }
}

/// RGB8 (H, W, 3) → planar float (3, size, size) in [-1, 1] (bicubic may overshoot slightly,
/// exactly like the official code, which does not clamp).
pub fn preprocess_rgb(rgb: &[u8], h: usize, w: usize, size: usize) -> Vec<f32> {
    assert_eq!(rgb.len(), h * w * 3, "RGB buffer size");
    let mut planar = vec![0f32; 3 * h * w];
    for (i, px) in rgb.chunks_exact(3).enumerate() {
        for ch in 0..3 {
            planar[ch * h * w + i] = px[ch] as f32 / 255.0;
        }
    }
    let (rh, rw) = resized_size(h, w, size);
    let resized = resize_bicubic_aa(&planar, 3, h, w, rh, rw);
    let (top, left) = ((rh - size) / 2, (rw - size) / 2);
    let mut out = vec![0f32; 3 * size * size];
    for ch in 0..3 {
        for y in 0..size {
            for x in 0..size {
                out[(ch * size + y) * size + x] = resized[(ch * rh + top + y) * rw + left + x] * 2.0 - 1.0;
            }
        }
    }
    out
}

/// The preprocessed image as a (1, 3, 1, S, S) tensor, ready for the VAE encoder.
pub fn image_tensor(img: &image::RgbImage, size: usize, device: &Device) -> Result<Tensor> {
    let (w, h) = img.dimensions();
    let v = preprocess_rgb(img.as_raw(), h as usize, w as usize, size);
    Tensor::from_vec(v, (1, 3, 1, size, size), device)
}

/// What the model sees, back as RGB8 for display.
pub fn model_view(img: &image::RgbImage, size: usize) -> image::RgbImage {
    let (w, h) = img.dimensions();
    let v = preprocess_rgb(img.as_raw(), h as usize, w as usize, size);
    let mut out = image::RgbImage::new(size as u32, size as u32);
    for y in 0..size {
        for x in 0..size {
            let px = [0, 1, 2].map(|c| {
                (((v[(c * size + y) * size + x] + 1.0) * 127.5).round().clamp(0.0, 255.0)) as u8
            });
            out.put_pixel(x as u32, y as u32, image::Rgb(px));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_follow_the_official_rule() {
        assert_eq!(resized_size(480, 640, 256), (256, 341));
        assert_eq!(resized_size(640, 480, 256), (341, 256));
        assert_eq!(resized_size(100, 100, 64), (64, 64));
    }

    #[test]
    fn constant_image_stays_constant_and_weights_sum_to_one() {
        for (i, o) in [(37, 16), (16, 37), (50, 50), (7, 64)] {
            for (_, w) in aa_weights(i, o) {
                assert!((w.iter().sum::<f32>() - 1.0).abs() < 1e-5);
            }
        }
        let rgb = vec![51u8; 37 * 50 * 3];
        let v = preprocess_rgb(&rgb, 37, 50, 16);
        let expect = 51.0 / 255.0 * 2.0 - 1.0;
        assert!(v.iter().all(|x| (x - expect).abs() < 1e-5));
    }
}
