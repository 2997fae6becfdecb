//! Every prediction since the viewer started: thumbnail, instruction, seed, parameters;
//! click to revisit; tick two to compare side by side.

use std::sync::Arc;

use egui::TextureHandle;

use crate::action::{ActionStats, Pose};
use crate::export::ModelInfo;
use crate::model::pipeline::Prediction;
use crate::model::sampler::SamplerKind;

/// One finished prediction and everything the views need to show it.
pub struct Entry {
    pub id: u64,
    pub prediction: Arc<Prediction>,
    pub model: ModelInfo,
    pub stats: Option<ActionStats>,
    pub start_pose: Pose,
    pub rotation_rule: crate::action::RotationRule,
    /// End-effector poses per sample (actions + 1, the start first).
    pub poses: Vec<Vec<Pose>>,
    /// Unnormalised actions per sample (when statistics are known).
    pub unnormalized: Vec<Option<Vec<Vec<f32>>>>,
    pub observation: TextureHandle,
    /// Per sample, per frame.
    pub textures: Vec<Vec<TextureHandle>>,
    pub wall_ms: f64,
}

impl Entry {
    pub fn frames(&self) -> usize {
        self.prediction.samples.first().map(|s| s.frames.len()).unwrap_or(0)
    }

    pub fn summary(&self) -> String {
        let p = &self.prediction.params;
        let sampler = match p.sampler.kind {
            SamplerKind::Dpmpp => "dpm++",
            SamplerKind::Ddim => "ddim",
        };
        format!(
            "seed {} · {} {} steps · cfg {} · {} sample(s) · robot {}",
            p.seed, sampler, p.sampler.steps, p.sampler.guidance_scale, p.num_samples, p.robot_id
        )
    }
}

#[derive(Default)]
pub struct HistoryPanel {
    pub entries: Vec<Entry>,
    pub selected: Option<usize>,
    /// Up to two entries ticked for comparison.
    pub compare: Vec<usize>,
}

impl HistoryPanel {
    pub fn push(&mut self, e: Entry) {
        self.entries.push(e);
        self.selected = Some(self.entries.len() - 1);
    }

    pub fn current(&self) -> Option<&Entry> {
        self.selected.and_then(|i| self.entries.get(i))
    }

    /// The two entries to compare, when two are ticked.
    pub fn comparison(&self) -> Option<(&Entry, &Entry)> {
        match self.compare.as_slice() {
            [a, b] => Some((self.entries.get(*a)?, self.entries.get(*b)?)),
            _ => None,
        }
    }

    /// Returns true when the selection changed.
    pub fn ui(&mut self, ui: &mut egui::Ui) -> bool {
        let mut changed = false;
        if self.entries.is_empty() {
            ui.weak("No predictions yet.");
            return false;
        }
        if self.compare.len() == 2 && ui.button("Stop comparing").clicked() {
            self.compare.clear();
            changed = true;
        }
        egui::ScrollArea::vertical().show(ui, |ui| {
            for i in (0..self.entries.len()).rev() {
                let e = &self.entries[i];
                let selected = self.selected == Some(i);
                egui::Frame::group(ui.style()).show(ui, |ui| {
                    ui.horizontal(|ui| {
                        ui.image((e.observation.id(), egui::vec2(40.0, 40.0)));
                        ui.vertical(|ui| {
                            let text = format!("#{} {}", e.id, e.prediction.instruction);
                            if ui.selectable_label(selected, text).on_hover_text("Show this prediction").clicked() {
                                self.selected = Some(i);
                                changed = true;
                            }
                            ui.weak(e.summary());
                            let mut ticked = self.compare.contains(&i);
                            if ui.checkbox(&mut ticked, format!("compare #{}", e.id)).changed() {
                                if ticked {
                                    self.compare.push(i);
                                    if self.compare.len() > 2 {
                                        self.compare.remove(0);
                                    }
                                } else {
                                    self.compare.retain(|&c| c != i);
                                }
                                changed = true;
                            }
                        });
                    });
                });
            }
        });
        changed
    }
}
