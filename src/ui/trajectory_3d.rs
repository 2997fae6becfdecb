//! The 3-D end-effector trajectory: path coloured by gripper state, an orientation triad per
//! step, a ground grid, the timeline's current step highlighted; orbit (drag), pan
//! (right/middle drag or shift+drag), zoom (scroll), reset view.
//!
//! Rendered with wgpu and a depth buffer through an egui_wgpu paint callback
//! (`super::trajectory_gpu`) when the app runs on wgpu; otherwise (or when switched off) drawn
//! on the CPU with egui's painter (projection in `crate::action::view`, back-to-front ordering)
//! — the same drawing the exported side-by-side clip rasterises.

use egui::{Color32, Sense, Stroke};

use crate::action::view::{draw_trajectory, OrbitCamera};
use crate::action::Pose;

#[derive(Default)]
pub struct Trajectory3d {
    pub camera: OrbitCamera,
    /// wgpu pipelines are installed (see `trajectory_gpu::install`).
    pub gpu_available: bool,
    /// Use the CPU painter even when wgpu is available.
    pub force_cpu: bool,
    fitted_for: Option<(u64, usize)>,
    /// Extra positions drawn over the path as a cyan polyline (e.g. the executed end-effector
    /// path of a connected robot); set by the caller for one `ui` call.
    pub overlay: Vec<[f32; 3]>,
}

fn rgb(c: [u8; 3]) -> Color32 {
    Color32::from_rgb(c[0], c[1], c[2])
}

impl Trajectory3d {
    /// Frame the trajectory again.
    pub fn reset_view(&mut self, poses: &[Pose]) {
        self.camera = OrbitCamera::fit(poses);
    }

    /// `key` identifies the trajectory (entry id, sample): the view is fitted when it changes.
    pub fn ui(&mut self, ui: &mut egui::Ui, key: (u64, usize), poses: &[Pose], current: usize, size: egui::Vec2) {
        if self.fitted_for != Some(key) {
            self.reset_view(poses);
            self.fitted_for = Some(key);
        }
        ui.horizontal(|ui| {
            if ui.small_button("Reset view").clicked() {
                self.reset_view(poses);
            }
            if self.gpu_available {
                let mut gpu = !self.force_cpu;
                ui.checkbox(&mut gpu, "wgpu").on_hover_text("Render with wgpu and a depth buffer (off: CPU painter)");
                self.force_cpu = !gpu;
            }
            ui.weak("drag: orbit · right-drag/shift: pan · scroll: zoom");
        });
        let (rect, resp) = ui.allocate_exact_size(size, Sense::click_and_drag());
        let shift = ui.input(|i| i.modifiers.shift);
        let d = resp.drag_delta();
        if resp.dragged_by(egui::PointerButton::Secondary) || resp.dragged_by(egui::PointerButton::Middle) || (shift && resp.dragged()) {
            self.camera.pan(d.x, d.y, rect.height());
        } else if resp.dragged_by(egui::PointerButton::Primary) {
            self.camera.orbit(d.x, d.y);
        }
        if resp.hovered() {
            let scroll = ui.input(|i| i.smooth_scroll_delta.y);
            if scroll != 0.0 {
                self.camera.zoom((scroll * 0.005).exp());
            }
        }
        if resp.double_clicked() {
            self.reset_view(poses);
        }
        let painter = ui.painter_at(rect);
        if self.gpu_available && !self.force_cpu {
            super::trajectory_gpu::paint(ui, rect, poses, current, &self.camera);
        } else {
            painter.rect_filled(rect, 4.0, Color32::from_rgb(24, 26, 32));
            let drawing = draw_trajectory(poses, Some(current), &self.camera, rect.width(), rect.height());
            let at = |p: [f32; 2]| rect.min + egui::vec2(p[0], p[1]);
            for s in &drawing.segments {
                painter.line_segment([at(s.a), at(s.b)], Stroke::new(s.width, rgb(s.rgb)));
            }
            for dot in &drawing.dots {
                painter.circle_filled(at(dot.centre), dot.radius, rgb(dot.rgb));
            }
        }
        if self.overlay.len() > 1 {
            let pts: Vec<egui::Pos2> = self
                .overlay
                .iter()
                .filter_map(|p| self.camera.project(nalgebra::Vector3::new(p[0], p[1], p[2]), rect.width(), rect.height()))
                .map(|(x, y, _)| rect.min + egui::vec2(x, y))
                .collect();
            painter.add(egui::Shape::line(pts.clone(), Stroke::new(2.0, Color32::from_rgb(0, 220, 255))));
            for p in pts {
                painter.circle_filled(p, 2.0, Color32::from_rgb(0, 220, 255));
            }
        }
        let legend = format!("step {current}/{} · path green = gripper open, red = closed", poses.len().saturating_sub(1));
        painter.text(rect.left_top() + egui::vec2(6.0, 4.0), egui::Align2::LEFT_TOP, legend, egui::FontId::proportional(12.0), Color32::LIGHT_GRAY);
        if let Some(p) = poses.get(current) {
            let t = format!("x {:+.3} y {:+.3} z {:+.3} · gripper {:.2}", p.position.x, p.position.y, p.position.z, p.gripper);
            painter.text(rect.left_bottom() + egui::vec2(6.0, -4.0), egui::Align2::LEFT_BOTTOM, t, egui::FontId::monospace(11.0), Color32::LIGHT_GRAY);
        }
    }
}
