//! Model parameters: sampler, steps, guidance, seed (with a dice), samples, robot id,
//! action statistics, live preview.

use std::path::PathBuf;

use crate::action::ActionStats;
use crate::engine::ModelSummary;
use crate::model::pipeline::PredictParams;
use crate::model::sampler::SamplerKind;

use super::dialogs::Dialogs;

pub struct ParamsPanel {
    pub params: PredictParams,
    /// Decode a preview of x0 about five times per run.
    pub live_preview: bool,
    pub stats_path: Option<PathBuf>,
    pub stats_override: Option<ActionStats>,
    defaults_for: Option<PathBuf>,
    pub message: Option<String>,
}

impl Default for ParamsPanel {
    fn default() -> Self {
        Self {
            params: PredictParams::default(),
            live_preview: true,
            stats_path: None,
            stats_override: None,
            defaults_for: None,
            message: None,
        }
    }
}

fn labelled(ui: &mut egui::Ui, text: &str, add: impl FnOnce(&mut egui::Ui) -> egui::Response) -> egui::Response {
    ui.horizontal(|ui| {
        let l = ui.label(text);
        add(ui).labelled_by(l.id)
    })
    .inner
}

impl ParamsPanel {
    /// Take the model's defaults when a different model was loaded (keeps the seed).
    pub fn adopt_defaults(&mut self, m: &ModelSummary) {
        if self.defaults_for.as_ref() != Some(&m.dir) {
            let seed = self.params.seed;
            let samples = self.params.num_samples;
            self.params = m.default_params.clone();
            self.params.seed = seed;
            self.params.num_samples = samples.max(1);
            self.defaults_for = Some(m.dir.clone());
        }
    }

    /// The parameters of the next run.
    pub fn predict_params(&self) -> PredictParams {
        let mut p = self.params.clone();
        // About five previews per run: each costs ~7 single-frame decodes (see decode_preview).
        p.preview_every = if self.live_preview { (p.sampler.steps / 5).max(1) } else { 0 };
        p
    }

    /// The statistics to unnormalise with: the chosen file, else the model's own.
    pub fn stats<'a>(&'a self, model: Option<&'a ModelSummary>) -> Option<&'a ActionStats> {
        self.stats_override.as_ref().or(model.and_then(|m| m.stats.as_ref()))
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, model: Option<&ModelSummary>, dialogs: &mut dyn Dialogs) {
        let p = &mut self.params;
        egui::ComboBox::from_label("Sampler")
            .selected_text(match p.sampler.kind {
                SamplerKind::Dpmpp => "DPM++ 2M SDE",
                SamplerKind::Ddim => "DDIM",
            })
            .show_ui(ui, |ui| {
                ui.selectable_value(&mut p.sampler.kind, SamplerKind::Dpmpp, "DPM++ 2M SDE");
                ui.selectable_value(&mut p.sampler.kind, SamplerKind::Ddim, "DDIM");
            });
        labelled(ui, "Steps", |ui| ui.add(egui::DragValue::new(&mut p.sampler.steps).range(1..=1000)));
        labelled(ui, "Guidance", |ui| ui.add(egui::DragValue::new(&mut p.sampler.guidance_scale).range(0.0..=20.0).speed(0.1)))
            .on_hover_text("DynamicCFG scale; 0 = no guidance");
        ui.horizontal(|ui| {
            let l = ui.label("Seed");
            ui.add(egui::DragValue::new(&mut p.seed)).labelled_by(l.id);
            if ui.button("Dice").on_hover_text("A random seed").clicked() {
                p.seed = rand::random::<u32>() as u64;
            }
        });
        labelled(ui, "Samples", |ui| ui.add(egui::DragValue::new(&mut p.num_samples).range(1..=8)));
        match model {
            // The range is only known with a model; never clamp the value while one loads.
            Some(m) => {
                let max_robot = m.num_robot_ids.saturating_sub(1) as u32;
                labelled(ui, "Robot id", |ui| ui.add(egui::DragValue::new(&mut p.robot_id).range(0..=max_robot)));
            }
            None => {
                ui.label(format!("Robot id {}", p.robot_id));
            }
        }
        ui.checkbox(&mut self.live_preview, "Live preview of x0");
        ui.horizontal(|ui| {
            if ui.button("Action stats…").on_hover_text("dataset_statistics.json to unnormalise the actions").clicked() {
                if let Some(path) = dialogs.pick_stats_file() {
                    match ActionStats::load(&path, None) {
                        Ok(s) => {
                            self.stats_override = Some(s);
                            self.stats_path = Some(path);
                            self.message = None;
                        }
                        Err(e) => self.message = Some(format!("{e:#}")),
                    }
                }
            }
            match (&self.stats_path, model.and_then(|m| m.stats.as_ref())) {
                (Some(p), _) => {
                    ui.weak(p.file_name().map(|f| f.to_string_lossy().to_string()).unwrap_or_default());
                    if ui.small_button("x").on_hover_text("Use the model's statistics").clicked() {
                        self.stats_path = None;
                        self.stats_override = None;
                    }
                }
                (None, Some(_)) => {
                    ui.weak("model's own");
                }
                (None, None) => {
                    ui.weak("none (raw actions)");
                }
            }
        });
        if let Some(m) = &self.message {
            ui.colored_label(ui.visuals().error_fg_color, m);
        }
    }
}
