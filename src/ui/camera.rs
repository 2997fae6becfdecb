//! Live camera source (cargo feature `camera`: V4L2 through `linuxvideo`, pure Rust).
//! A capture thread keeps sending the newest frame; without a device (or without the feature)
//! `Camera::start` returns a clear message instead.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crossbeam_channel::Receiver;

pub struct Camera {
    rx: Receiver<Result<image::RgbImage, String>>,
    stop: Arc<AtomicBool>,
    pub name: String,
}

impl Drop for Camera {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

impl Camera {
    /// The newest frame (or capture error) since the last call.
    pub fn poll(&self) -> Option<Result<image::RgbImage, String>> {
        self.rx.try_iter().last()
    }

    #[cfg(not(feature = "camera"))]
    pub fn start(_repaint: egui::Context) -> Result<Camera, String> {
        Err("this build has no camera support; rebuild with `cargo build --release --features camera`".into())
    }

    #[cfg(feature = "camera")]
    pub fn start(repaint: egui::Context) -> Result<Camera, String> {
        let mut devices: Vec<std::path::PathBuf> = std::fs::read_dir("/dev")
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        devices.retain(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("video")));
        devices.sort();
        let Some(path) = devices.into_iter().next() else {
            return Err("no camera found (no /dev/video* device); use the simulator or an image file".into());
        };
        let device = linuxvideo::Device::open(&path).map_err(|e| format!("cannot open the camera {}: {e}", path.display()))?;
        let want = linuxvideo::format::PixFormat::new(640, 480, linuxvideo::format::PixelFormat::YUYV);
        let capture = device.video_capture(want).map_err(|e| format!("{} cannot capture video: {e}", path.display()))?;
        let fmt = capture.format();
        let (w, h, stride, pf) = (fmt.width(), fmt.height(), fmt.bytes_per_line(), fmt.pixel_format());
        use linuxvideo::format::PixelFormat;
        if pf != PixelFormat::YUYV && pf != PixelFormat::MJPG && pf != PixelFormat::JPEG {
            return Err(format!("{} offers the pixel format {pf:?}; only YUYV and MJPEG are supported", path.display()));
        }
        let mut stream = capture.into_stream().map_err(|e| format!("{}: cannot start streaming: {e}", path.display()))?;
        let (tx, rx) = crossbeam_channel::bounded(2);
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        std::thread::spawn(move || {
            while !stop2.load(Ordering::SeqCst) {
                let frame = stream
                    .dequeue(|buf| Ok(decode(&buf, w, h, stride, pf)))
                    .map_err(|e| format!("camera read failed: {e}"))
                    .and_then(|r| r);
                let failed = frame.is_err();
                if tx.try_send(frame).is_err() && tx.is_empty() {
                    break; // the UI is gone
                }
                repaint.request_repaint();
                if failed {
                    break;
                }
            }
        });
        Ok(Camera { rx, stop, name: path.display().to_string() })
    }
}

#[cfg(feature = "camera")]
fn decode(buf: &[u8], w: u32, h: u32, stride: u32, pf: linuxvideo::format::PixelFormat) -> Result<image::RgbImage, String> {
    if pf == linuxvideo::format::PixelFormat::YUYV {
        yuyv_to_rgb(buf, w, h, stride.max(w * 2))
    } else {
        image::load_from_memory_with_format(buf, image::ImageFormat::Jpeg)
            .map(|i| i.to_rgb8())
            .map_err(|e| format!("cannot decode the camera's JPEG frame: {e}"))
    }
}

/// YUYV 4:2:2 (BT.601, limited range) → RGB.
pub fn yuyv_to_rgb(buf: &[u8], w: u32, h: u32, stride: u32) -> Result<image::RgbImage, String> {
    if buf.len() < (stride * h) as usize || w % 2 != 0 {
        return Err(format!("short YUYV frame: {} bytes for {w}×{h}", buf.len()));
    }
    let mut out = image::RgbImage::new(w, h);
    let conv = |y: u8, u: u8, v: u8| {
        let (c, d, e) = (y as f32 - 16.0, u as f32 - 128.0, v as f32 - 128.0);
        let px = |x: f32| (x).round().clamp(0.0, 255.0) as u8;
        image::Rgb([px(1.164 * c + 1.596 * e), px(1.164 * c - 0.392 * d - 0.813 * e), px(1.164 * c + 2.017 * d)])
    };
    for y in 0..h {
        let row = &buf[(y * stride) as usize..];
        for x in (0..w).step_by(2) {
            let i = (x * 2) as usize;
            let (y0, u, y1, v) = (row[i], row[i + 1], row[i + 2], row[i + 3]);
            out.put_pixel(x, y, conv(y0, u, v));
            out.put_pixel(x + 1, y, conv(y1, u, v));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn yuyv_grey_white_and_short_frames() {
        // Two pixels: black (16) and white (235), neutral chroma.
        let img = super::yuyv_to_rgb(&[16, 128, 235, 128], 2, 1, 4).unwrap();
        assert_eq!(img.get_pixel(0, 0).0, [0, 0, 0]);
        assert_eq!(img.get_pixel(1, 0).0, [255, 255, 255]);
        assert!(super::yuyv_to_rgb(&[16, 128], 2, 1, 4).is_err());
    }
}
