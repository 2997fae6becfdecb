//! The desktop imagination viewer (eframe + egui): a source image and an instruction in,
//! the imagined clip beside the 3-D action trajectory out. One file per panel; `app` ties
//! them together; inference runs on `crate::engine`'s worker thread.

pub mod action_plot;
pub mod app;
pub mod camera;
pub mod demo;
pub mod dialogs;
pub mod export;
pub mod history;
pub mod instruction;
pub mod params;
pub mod player;
pub mod progress;
pub mod robot;
pub mod source;
pub mod trajectory_3d;
pub mod trajectory_gpu;

pub use app::{ViewerApp, ViewerOptions};

/// RGB image → egui image.
pub mod texture {
    pub fn color_image(img: &image::RgbImage) -> egui::ColorImage {
        egui::ColorImage::from_rgb([img.width() as usize, img.height() as usize], img.as_raw())
    }
}

/// Open the viewer window (blocks until it is closed).
pub fn run_native(opts: ViewerOptions) -> anyhow::Result<()> {
    #[cfg(target_os = "linux")]
    if std::env::var_os("DISPLAY").is_none() && std::env::var_os("WAYLAND_DISPLAY").is_none() && std::env::var_os("WAYLAND_SOCKET").is_none() {
        anyhow::bail!(
            "the viewer needs a display (neither DISPLAY nor WAYLAND_DISPLAY is set); \
             run it in a desktop session (or under xvfb-run), or use the command-line tools: `videovla --help`"
        );
    }
    let native = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("VideoVLA imagination viewer")
            .with_inner_size([1400.0, 900.0])
            .with_drag_and_drop(true),
        ..Default::default()
    };
    eframe::run_native("videovla-viewer", native, Box::new(move |cc| Ok(Box::new(ViewerApp::new(cc, opts)))))
        .map_err(|e| anyhow::anyhow!("cannot open the viewer window: {e}"))
}
