//! Progress of the running prediction: stage, step k/N, ETA, live x0 preview, Cancel.

use egui::TextureHandle;

use crate::model::pipeline::Stage;

pub struct Running {
    pub id: u64,
    pub stage: Option<Stage>,
    pub step: usize,
    pub steps: usize,
    pub eta_ms: f64,
    pub preview: Vec<TextureHandle>,
    pub cancelling: bool,
    pub started: std::time::Instant,
}

impl Running {
    pub fn new(id: u64, steps: usize) -> Self {
        Self { id, stage: None, step: 0, steps, eta_ms: 0.0, preview: Vec::new(), cancelling: false, started: std::time::Instant::now() }
    }

    /// Fraction done (0..1): text and encode count as the start, decode as the end.
    pub fn fraction(&self) -> f32 {
        match self.stage {
            None | Some(Stage::Text) | Some(Stage::Encode) => 0.0,
            Some(Stage::Denoise) => self.step as f32 / self.steps.max(1) as f32,
            Some(Stage::Decode) => 1.0,
        }
    }

    pub fn label(&self, hide_timings: bool) -> String {
        let stage = match self.stage {
            None => "starting",
            Some(Stage::Text) => "encoding the instruction",
            Some(Stage::Encode) => "encoding the image",
            Some(Stage::Denoise) => "denoising",
            Some(Stage::Decode) => "decoding the video",
        };
        let mut s = format!("{stage} · step {}/{}", self.step, self.steps);
        if !hide_timings && self.stage == Some(Stage::Denoise) {
            s += &format!(" · ETA {:.1} s", self.eta_ms / 1e3);
        }
        s
    }
}

/// Shows the progress; returns true when Cancel was clicked.
pub fn ui(ui: &mut egui::Ui, run: &Running, frame: usize, hide_timings: bool, preview_size: f32) -> bool {
    let mut cancel = false;
    ui.horizontal(|ui| {
        ui.add(egui::Spinner::new());
        ui.label(run.label(hide_timings));
    });
    ui.add(egui::ProgressBar::new(run.fraction()).show_percentage());
    ui.horizontal(|ui| {
        if run.cancelling {
            ui.label("cancelling…");
        } else if ui.button("Cancel").on_hover_text("Stop within one denoising step (Esc)").clicked() {
            cancel = true;
        }
    });
    if let Some(t) = run.preview.get(frame % run.preview.len().max(1)) {
        ui.label("Live x0 (current estimate)");
        ui.image((t.id(), egui::vec2(preview_size, preview_size)));
    }
    cancel
}
