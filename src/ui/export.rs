//! Export from the UI: the same files as `videovla predict` (through `crate::export`, the one
//! export module) plus the side-by-side clip, written on a background thread.

use std::path::{Path, PathBuf};

use crossbeam_channel::Receiver;

use super::dialogs::Dialogs;
use super::history::Entry;
use crate::export::{export_prediction, ExportOptions};

#[derive(Default)]
pub struct ExportPanel {
    pending: Option<Receiver<anyhow::Result<PathBuf>>>,
    pub last: Option<Result<PathBuf, String>>,
}

/// A new folder name inside `parent` for entry `id`.
pub fn export_dir(parent: &Path, id: u64, seed: u64) -> PathBuf {
    let base = format!("videovla-{id:03}-seed{seed}");
    let mut out = parent.join(&base);
    let mut n = 1;
    while out.exists() {
        out = parent.join(format!("{base}-{n}"));
        n += 1;
    }
    out
}

impl ExportPanel {
    pub fn busy(&self) -> bool {
        self.pending.is_some()
    }

    /// Start exporting `entry` into a new folder inside `parent`.
    pub fn start(&mut self, entry: &Entry, parent: &Path, repaint: egui::Context) {
        let out = export_dir(parent, entry.id, entry.prediction.params.seed);
        let pred = entry.prediction.clone();
        let model = entry.model.clone();
        let opts = ExportOptions {
            stats: entry.stats.clone(),
            start_pose: entry.start_pose,
            rotation_rule: entry.rotation_rule,
            side_by_side: true,
            ..Default::default()
        };
        let (tx, rx) = crossbeam_channel::bounded(1);
        std::thread::spawn(move || {
            let r = export_prediction(&pred, &model, &out, &opts);
            let _ = tx.send(r);
            repaint.request_repaint();
        });
        self.pending = Some(rx);
        self.last = None;
    }

    pub fn poll(&mut self) {
        if let Some(rx) = &self.pending {
            if let Ok(r) = rx.try_recv() {
                self.last = Some(r.map_err(|e| format!("{e:#}")));
                self.pending = None;
            }
        }
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, entry: Option<&Entry>, dialogs: &mut dyn Dialogs) {
        self.poll();
        ui.horizontal(|ui| {
            let enabled = entry.is_some() && !self.busy();
            if ui
                .add_enabled(enabled, egui::Button::new("Export…"))
                .on_hover_text("GIF, MP4, PNG frames, actions JSON/CSV, manifest and a side-by-side clip")
                .clicked()
            {
                if let (Some(e), Some(parent)) = (entry, dialogs.pick_export_folder()) {
                    self.start(e, &parent, ui.ctx().clone());
                }
            }
            if self.busy() {
                ui.add(egui::Spinner::new());
                ui.label("exporting…");
            }
            match &self.last {
                Some(Ok(p)) => {
                    ui.label(format!("exported to {}", p.display()));
                }
                Some(Err(e)) => {
                    ui.colored_label(ui.visuals().error_fg_color, e);
                }
                None => {}
            }
        });
    }
}
