//! Native file dialogs behind a trait, so tests (and headless runs) never open one.

use std::path::PathBuf;

pub trait Dialogs {
    /// An observation image (PNG / JPEG).
    fn pick_image(&mut self) -> Option<PathBuf>;
    /// A model folder (config.json + weights).
    fn pick_model_folder(&mut self) -> Option<PathBuf>;
    /// A `dataset_statistics.json`.
    fn pick_stats_file(&mut self) -> Option<PathBuf>;
    /// The folder an export is written into (a new sub-folder is created there).
    fn pick_export_folder(&mut self) -> Option<PathBuf>;
}

/// The platform's dialogs through rfd (xdg-portal on Linux; returns nothing when no portal runs).
pub struct NativeDialogs;

impl Dialogs for NativeDialogs {
    fn pick_image(&mut self) -> Option<PathBuf> {
        rfd::FileDialog::new().add_filter("image", &["png", "jpg", "jpeg"]).pick_file()
    }
    fn pick_model_folder(&mut self) -> Option<PathBuf> {
        rfd::FileDialog::new().set_title("Model folder").pick_folder()
    }
    fn pick_stats_file(&mut self) -> Option<PathBuf> {
        rfd::FileDialog::new().add_filter("statistics", &["json"]).pick_file()
    }
    fn pick_export_folder(&mut self) -> Option<PathBuf> {
        rfd::FileDialog::new().set_title("Export into").pick_folder()
    }
}

/// Fixed answers (tests, scripted runs). `None` behaves like a cancelled dialog.
#[derive(Debug, Clone, Default)]
pub struct FixedDialogs {
    pub image: Option<PathBuf>,
    pub model_folder: Option<PathBuf>,
    pub stats_file: Option<PathBuf>,
    pub export_folder: Option<PathBuf>,
}

impl Dialogs for FixedDialogs {
    fn pick_image(&mut self) -> Option<PathBuf> {
        self.image.clone()
    }
    fn pick_model_folder(&mut self) -> Option<PathBuf> {
        self.model_folder.clone()
    }
    fn pick_stats_file(&mut self) -> Option<PathBuf> {
        self.stats_file.clone()
    }
    fn pick_export_folder(&mut self) -> Option<PathBuf> {
        self.export_folder.clone()
    }
}
