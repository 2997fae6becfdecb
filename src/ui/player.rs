//! The imagination player: one timeline (frame index) shared by every view, with play/pause,
//! loop, speed and frame step; the K samples side by side.

use super::history::Entry;
use crate::export::FPS;

pub struct Timeline {
    pub frame: usize,
    pub frames: usize,
    pub playing: bool,
    pub looping: bool,
    pub speed: f32,
    acc: f32,
}

impl Default for Timeline {
    fn default() -> Self {
        Self { frame: 0, frames: 0, playing: false, looping: true, speed: 1.0, acc: 0.0 }
    }
}

impl Timeline {
    /// A new clip of `frames` frames: start at 0 and play.
    pub fn load(&mut self, frames: usize) {
        self.frames = frames;
        self.frame = 0;
        self.acc = 0.0;
        self.playing = frames > 1;
    }

    pub fn step(&mut self, delta: i64) {
        if self.frames == 0 {
            return;
        }
        let n = self.frames as i64;
        let f = self.frame as i64 + delta;
        self.frame = if self.looping { f.rem_euclid(n) } else { f.clamp(0, n - 1) } as usize;
    }

    /// Advance by `dt` seconds of wall time; asks for a repaint while playing.
    pub fn tick(&mut self, ctx: &egui::Context, dt: f32) {
        if !self.playing || self.frames < 2 {
            return;
        }
        self.acc += dt * self.speed * FPS;
        while self.acc >= 1.0 {
            self.acc -= 1.0;
            if self.frame + 1 >= self.frames {
                if self.looping {
                    self.frame = 0;
                } else {
                    self.playing = false;
                    break;
                }
            } else {
                self.frame += 1;
            }
        }
        ctx.request_repaint_after(std::time::Duration::from_secs_f32(1.0 / (FPS * self.speed.max(0.1))));
    }

    pub fn time_s(&self) -> f32 {
        self.frame as f32 / FPS
    }

    /// The transport bar: ⏮ ◀ ▶/⏸ ▶ ⏭, the scrubber, loop, speed, frame and time.
    pub fn controls_ui(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            let last = self.frames.saturating_sub(1);
            if ui.button("|<").on_hover_text("First frame").clicked() {
                self.frame = 0;
            }
            if ui.button("<").on_hover_text("Previous frame (Left arrow)").clicked() {
                self.step(-1);
            }
            let play = if self.playing { "Pause" } else { "Play" };
            if ui.button(play).clicked() {
                self.playing = !self.playing;
            }
            if ui.button(">").on_hover_text("Next frame (Right arrow)").clicked() {
                self.step(1);
            }
            if ui.button(">|").on_hover_text("Last frame").clicked() {
                self.frame = last;
            }
            ui.checkbox(&mut self.looping, "Loop");
            egui::ComboBox::from_label("Speed").selected_text(format!("{}×", self.speed)).width(60.0).show_ui(ui, |ui| {
                for s in [0.25, 0.5, 1.0, 2.0] {
                    ui.selectable_value(&mut self.speed, s, format!("{s}×"));
                }
            });
            ui.label(format!("frame {}/{} · t = {:.3} s @ {} fps", self.frame, last, self.time_s(), FPS));
        });
        let last = self.frames.saturating_sub(1);
        ui.spacing_mut().slider_width = (ui.available_width() - 130.0).max(100.0);
        let r = ui.add_enabled(self.frames > 0, egui::Slider::new(&mut self.frame, 0..=last).text("Frame"));
        if r.dragged() || r.changed() {
            self.playing = false;
        }
    }
}

/// The K samples of `entry` at the timeline's frame, side by side, each `size` wide.
pub fn frames_ui(ui: &mut egui::Ui, entry: &Entry, frame: usize, size: f32) {
    ui.horizontal(|ui| {
        for (k, sample) in entry.textures.iter().enumerate() {
            ui.vertical(|ui| {
                if let Some(t) = sample.get(frame.min(sample.len().saturating_sub(1))) {
                    ui.image((t.id(), egui::vec2(size, size)));
                }
                if entry.textures.len() > 1 {
                    ui.weak(format!("sample {k}"));
                }
            });
        }
    });
}
