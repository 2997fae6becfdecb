//! The observation source: the built-in simulator (task, split, seed, reset) or an image file
//! (dialog, drag-and-drop, a pasted image or file path). The observation is shown exactly as the model sees it.

use std::path::{Path, PathBuf};

use anyhow::Context;
use egui::{TextureHandle, TextureOptions};

use super::dialogs::Dialogs;
use super::texture;
use crate::action::{Pose, RotationRule};
use crate::model::preprocess;
use crate::sim::tasks::task_phrasings;
use crate::sim::{Split, TaskKind, World};

/// Resolution the simulator scene is rendered at before the model's resize and crop.
pub const SIM_RENDER_SIZE: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    Simulator,
    ImageFile,
    /// A live camera (cargo feature `camera`).
    Camera,
}

pub struct SourcePanel {
    pub kind: SourceKind,
    pub task: TaskKind,
    pub split: Split,
    pub seed: u64,
    pub world: World,
    sim_image: image::RgbImage,
    pub file: Option<(PathBuf, image::RgbImage)>,
    camera: Option<super::camera::Camera>,
    camera_frame: Option<image::RgbImage>,
    /// Bumped whenever the raw image changes.
    version: u64,
    view: Option<(usize, u64, TextureHandle)>,
    pub message: Option<String>,
}

impl Default for SourcePanel {
    fn default() -> Self {
        let mut s = SourcePanel {
            kind: SourceKind::Simulator,
            task: TaskKind::Pick,
            split: Split::Train,
            seed: 0,
            world: World::reset(TaskKind::Pick, Split::Train, 0),
            sim_image: image::RgbImage::new(1, 1),
            file: None,
            camera: None,
            camera_frame: None,
            version: 0,
            view: None,
            message: None,
        };
        s.reset();
        s
    }
}

impl SourcePanel {
    /// A new simulator scene for the current task, split and seed.
    pub fn reset(&mut self) {
        self.world = World::reset(self.task, self.split, self.seed);
        let raw = self.world.render(SIM_RENDER_SIZE, SIM_RENDER_SIZE);
        self.sim_image = image::RgbImage::from_raw(SIM_RENDER_SIZE as u32, SIM_RENDER_SIZE as u32, raw).expect("render size");
        self.version += 1;
    }

    /// The raw image the model will get (before its resize and crop).
    pub fn image(&self) -> Option<&image::RgbImage> {
        match self.kind {
            SourceKind::Simulator => Some(&self.sim_image),
            SourceKind::ImageFile => self.file.as_ref().map(|(_, i)| i),
            SourceKind::Camera => self.camera_frame.as_ref(),
        }
    }

    /// Where the trajectory starts and how rotations compose for this source.
    pub fn start_pose(&self) -> (Pose, RotationRule) {
        match self.kind {
            SourceKind::Simulator => (Pose::from_xyz_rpy(&self.world.ee_pose().0), RotationRule::EulerAdd),
            SourceKind::ImageFile | SourceKind::Camera => (Pose::default(), RotationRule::DeltaRotation),
        }
    }

    /// Instruction suggestions for this source.
    pub fn suggestions(&self) -> Vec<String> {
        match self.kind {
            SourceKind::Simulator => task_phrasings(&self.world.task, &self.world.objects),
            SourceKind::ImageFile | SourceKind::Camera => {
                vec!["pick up the object".into(), "open the drawer".into(), "move the cup to the left".into()]
            }
        }
    }

    /// The scene's own instruction (used when the box is empty).
    pub fn default_instruction(&self) -> String {
        match self.kind {
            SourceKind::Simulator => self.world.instruction().to_string(),
            SourceKind::ImageFile | SourceKind::Camera => "pick up the object".into(),
        }
    }

    pub fn load_file(&mut self, path: &Path) -> anyhow::Result<()> {
        let img = image::open(path)
            .with_context(|| format!("cannot read {}; give a PNG or JPEG image", path.display()))?
            .to_rgb8();
        self.file = Some((path.to_path_buf(), img));
        self.kind = SourceKind::ImageFile;
        self.version += 1;
        self.message = None;
        Ok(())
    }

    /// Use an in-memory image (e.g. pasted) as the source.
    pub fn set_image(&mut self, name: &str, img: image::RgbImage) {
        self.file = Some((PathBuf::from(name), img));
        self.kind = SourceKind::ImageFile;
        self.version += 1;
    }

    /// Files dropped on the window and pasted file paths.
    pub fn handle_drops(&mut self, ctx: &egui::Context) {
        let dropped: Vec<PathBuf> = ctx.input(|i| i.raw.dropped_files.iter().map(|f| f.path().to_path_buf()).filter(|p| !p.as_os_str().is_empty()).collect());
        let pasted: Vec<PathBuf> = ctx.input(|i| {
            i.events
                .iter()
                .filter_map(|e| match e {
                    egui::Event::Paste(s) => Some(PathBuf::from(s.trim().trim_start_matches("file://"))),
                    _ => None,
                })
                .filter(|p| p.is_file())
                .collect()
        });
        let pasted_image: Option<image::RgbImage> = ctx.input(|i| {
            i.events.iter().find_map(|e| match e {
                egui::Event::PasteImage(img) => {
                    let [w, h] = img.size;
                    let rgb: Vec<u8> = img.pixels.iter().flat_map(|c| [c.r(), c.g(), c.b()]).collect();
                    image::RgbImage::from_raw(w as u32, h as u32, rgb)
                }
                _ => None,
            })
        });
        if let Some(img) = pasted_image {
            self.set_image("pasted image", img);
            return;
        }
        if let Some(p) = dropped.into_iter().chain(pasted).next() {
            if let Err(e) = self.load_file(&p) {
                self.message = Some(format!("{e:#}"));
            }
        }
    }

    /// The observation as the model sees it, as a texture.
    pub fn model_view_texture(&mut self, ctx: &egui::Context, size: usize) -> Option<TextureHandle> {
        let version = self.version
            + match self.kind {
                SourceKind::Simulator => 0,
                SourceKind::ImageFile => 1 << 40,
                SourceKind::Camera => 2 << 40,
            };
        if let Some((s, v, t)) = &self.view {
            if *s == size && *v == version {
                return Some(t.clone());
            }
        }
        let img = preprocess::model_view(self.image()?, size);
        let t = ctx.load_texture("observation", texture::color_image(&img), TextureOptions::NEAREST);
        self.view = Some((size, version, t.clone()));
        Some(t)
    }

    /// Start or stop the camera with the source choice; take its newest frame.
    pub fn update_camera(&mut self, ctx: &egui::Context) {
        if self.kind != SourceKind::Camera {
            self.camera = None;
            return;
        }
        if self.camera.is_none() && self.message.is_none() {
            match super::camera::Camera::start(ctx.clone()) {
                Ok(c) => self.camera = Some(c),
                Err(e) => self.message = Some(e),
            }
        }
        if let Some(r) = self.camera.as_ref().and_then(|c| c.poll()) {
            match r {
                Ok(img) => {
                    self.camera_frame = Some(img);
                    self.version += 1;
                }
                Err(e) => {
                    self.message = Some(e);
                    self.camera = None;
                }
            }
        }
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, image_size: usize, dialogs: &mut dyn Dialogs, display: f32) {
        let before = self.kind;
        ui.horizontal(|ui| {
            ui.selectable_value(&mut self.kind, SourceKind::Simulator, "Simulator");
            ui.selectable_value(&mut self.kind, SourceKind::ImageFile, "Image file");
            ui.selectable_value(&mut self.kind, SourceKind::Camera, "Camera");
        });
        if self.kind != before {
            self.message = None;
            self.update_camera(ui.ctx());
        }
        match self.kind {
            SourceKind::Simulator => {
                let mut changed = false;
                ui.horizontal(|ui| {
                    egui::ComboBox::from_label("Task").selected_text(self.task.name()).show_ui(ui, |ui| {
                        for k in TaskKind::ALL {
                            changed |= ui.selectable_value(&mut self.task, k, k.name()).changed();
                        }
                    });
                    egui::ComboBox::from_label("Split").selected_text(self.split.name()).show_ui(ui, |ui| {
                        for s in Split::ALL {
                            changed |= ui.selectable_value(&mut self.split, s, s.name()).changed();
                        }
                    });
                });
                ui.horizontal(|ui| {
                    let l = ui.label("Scene seed");
                    changed |= ui.add(egui::DragValue::new(&mut self.seed)).labelled_by(l.id).changed();
                    if ui.button("Reset").on_hover_text("A new scene for this task and seed").clicked() {
                        changed = true;
                    }
                    if ui.button("Next scene").clicked() {
                        self.seed += 1;
                        changed = true;
                    }
                });
                if changed {
                    self.reset();
                }
            }
            SourceKind::ImageFile => {
                ui.horizontal(|ui| {
                    if ui.button("Open image…").clicked() {
                        if let Some(p) = dialogs.pick_image() {
                            if let Err(e) = self.load_file(&p) {
                                self.message = Some(format!("{e:#}"));
                            }
                        }
                    }
                    ui.weak("or drop / paste a file");
                });
                if let Some((p, img)) = &self.file {
                    ui.weak(format!("{} ({}×{})", p.display(), img.width(), img.height()));
                }
            }
            SourceKind::Camera => {
                if let Some(c) = &self.camera {
                    ui.weak(format!("live: {}", c.name));
                }
            }
        }
        if let Some(m) = &self.message {
            ui.colored_label(ui.visuals().error_fg_color, m);
        }
        match self.model_view_texture(ui.ctx(), image_size) {
            Some(t) => {
                ui.add(egui::Image::new((t.id(), egui::vec2(display, display))))
                    .on_hover_text(format!("What the model sees: {image_size}×{image_size} after resize and centre crop"));
                ui.weak(format!("model view {image_size}×{image_size}"));
            }
            None => {
                ui.label("No image yet: open one, drop one on the window, or use the simulator.");
            }
        }
    }
}
