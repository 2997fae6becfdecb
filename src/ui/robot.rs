//! The Robot panel: start/stop the openpi policy server from the viewer, see connected clients
//! and the last request, and look at imagination against execution — side by side, overlaid or
//! as a difference, synchronised on the action step through the shared timeline — with the
//! live motion-similarity score and the executed end-effector path drawn over the predicted one.
//!
//! The server runs on its own threads (`crate::robot::server`); this panel only drains its event
//! channel each frame (never blocks). Starting loads the model on a helper thread.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use crossbeam_channel::Receiver;
use egui::{TextureHandle, TextureOptions};

use super::texture::color_image;
use crate::action::{Pose, RotationRule};
use crate::model::hub::ModelSource;
use crate::robot::recording::{ChunkRecord, Recording};
use crate::robot::server::{Server, ServerConfig, ServerEvent};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompareMode {
    SideBySide,
    Overlay,
    Difference,
}

enum State {
    Stopped,
    Starting(Receiver<anyhow::Result<Server>>),
    Running(Server),
}

pub struct RobotPanel {
    pub host: String,
    pub port: u16,
    pub api_key: String,
    state: State,
    pub message: Option<String>,
    pub recording: Recording,
    pub clients: BTreeMap<u64, SocketAddr>,
    pub last_request: Option<String>,
    /// The chunk shown (index into `recording.chunks`); `None` = follow the latest.
    pub selected: Option<usize>,
    pub mode: CompareMode,
    textures: BTreeMap<(u64, usize, u8), TextureHandle>,
}

impl Default for RobotPanel {
    fn default() -> Self {
        RobotPanel {
            host: "127.0.0.1".into(),
            port: crate::robot::server::DEFAULT_PORT,
            api_key: String::new(),
            state: State::Stopped,
            message: None,
            recording: Recording::new(64, 6),
            clients: BTreeMap::new(),
            last_request: None,
            selected: None,
            mode: CompareMode::SideBySide,
            textures: BTreeMap::new(),
        }
    }
}

/// The executed frame to show at imagination frame `f` of `n` (synchronised on the action step).
pub fn executed_index(c: &ChunkRecord, f: usize, n: usize, assume: usize) -> usize {
    let len = c.executed.len();
    if len <= 1 || n <= 1 {
        return 0;
    }
    let per_action = (n - 1) as f64 / c.actions.len().max(1) as f64;
    let step = f as f64 / per_action;
    if c.executed.iter().any(|e| e.action_step.is_some()) {
        // The last frame whose action step is at or before `step` (frame 0 is the request).
        let mut best = 0;
        for (i, e) in c.executed.iter().enumerate() {
            if e.action_step.unwrap_or(0.0) <= step + 1e-6 {
                best = i;
            }
        }
        return best;
    }
    let span = c.executed_actions(assume).max(1e-6);
    (((step / span).min(1.0)) * (len - 1) as f64).round() as usize
}

fn blend(a: &image::RgbImage, b: &image::RgbImage, diff: bool) -> image::RgbImage {
    let b = if b.dimensions() == a.dimensions() {
        b.clone()
    } else {
        image::imageops::resize(b, a.width(), a.height(), image::imageops::FilterType::Triangle)
    };
    image::RgbImage::from_fn(a.width(), a.height(), |x, y| {
        let (p, q) = (a.get_pixel(x, y).0, b.get_pixel(x, y).0);
        image::Rgb(std::array::from_fn(|i| {
            if diff {
                (p[i].abs_diff(q[i]) as u32 * 3).min(255) as u8
            } else {
                ((p[i] as u32 + q[i] as u32) / 2) as u8
            }
        }))
    })
}

impl RobotPanel {
    pub fn running(&self) -> Option<&Server> {
        match &self.state {
            State::Running(s) => Some(s),
            _ => None,
        }
    }

    pub fn start(&mut self, model: ModelSource, notify: impl Fn() + Send + Sync + 'static) {
        if !matches!(self.state, State::Stopped) {
            return;
        }
        let mut cfg = ServerConfig::new(model);
        cfg.host = self.host.trim().to_string();
        cfg.port = self.port;
        cfg.api_key = Some(self.api_key.trim().to_string()).filter(|k| !k.is_empty());
        let (tx, rx) = crossbeam_channel::bounded(1);
        let notify = std::sync::Arc::new(notify);
        std::thread::spawn(move || {
            let n = notify.clone();
            let r = Server::start(cfg, move || n());
            let _ = tx.send(r);
            notify();
        });
        self.message = None;
        self.state = State::Starting(rx);
    }

    pub fn stop(&mut self) {
        if let State::Running(mut s) = std::mem::replace(&mut self.state, State::Stopped) {
            s.stop();
            self.message = Some("server stopped (connected clients keep their connection until they close it)".into());
        }
        self.state = State::Stopped;
        self.clients.clear();
    }

    /// Drain server events (never blocks).
    pub fn poll(&mut self) {
        if let State::Starting(rx) = &self.state {
            match rx.try_recv() {
                Ok(Ok(s)) => {
                    self.recording = Recording::new(s.image_size, self.recording.assume_executed);
                    self.textures.clear();
                    self.state = State::Running(s);
                }
                Ok(Err(e)) => {
                    self.message = Some(format!("{e:#}"));
                    self.state = State::Stopped;
                }
                Err(_) => {}
            }
        }
        let State::Running(s) = &self.state else { return };
        let events: Vec<ServerEvent> = s.events().try_iter().collect();
        for e in &events {
            match e {
                ServerEvent::Connected { client, peer } => {
                    self.clients.insert(*client, *peer);
                }
                ServerEvent::Disconnected { client, .. } => {
                    self.clients.remove(client);
                }
                ServerEvent::Request { client, chunk, observation } => {
                    self.last_request = Some(format!("client {client}, request {chunk}: “{}” ({})", observation.prompt, observation.image_key));
                }
                ServerEvent::ClientError { client, message } => self.message = Some(format!("client {client}: {message}")),
                _ => {}
            }
            self.recording.on_event(e);
        }
        // Bounded memory: keep the last 200 chunks.
        let n = self.recording.chunks.len();
        if n > 200 {
            self.recording.chunks.drain(..n - 200);
            self.selected = None;
            self.textures.clear();
        }
    }

    /// The chunk to show: the selected one, else the latest with a prediction.
    pub fn shown(&self) -> Option<usize> {
        self.selected.or_else(|| self.recording.chunks.iter().rposition(|c| c.prediction.is_some()))
    }

    /// Start/stop, address, clients, last request.
    pub fn controls_ui(&mut self, ui: &mut egui::Ui, model: Option<ModelSource>, notify: impl Fn() + Send + Sync + 'static) {
        match &self.state {
            State::Stopped => {
                ui.horizontal(|ui| {
                    let l = ui.label("Host");
                    ui.add(egui::TextEdit::singleline(&mut self.host).desired_width(90.0)).labelled_by(l.id);
                    let l = ui.label("Port");
                    ui.add(egui::DragValue::new(&mut self.port)).labelled_by(l.id);
                });
                ui.horizontal(|ui| {
                    let l = ui.label("API key");
                    ui.add(egui::TextEdit::singleline(&mut self.api_key).password(true).hint_text("none").desired_width(120.0)).labelled_by(l.id);
                });
                let can = model.is_some();
                if ui.add_enabled(can, egui::Button::new("Start server")).on_hover_text("Serve the loaded model over openpi's websocket protocol").clicked() {
                    if let Some(m) = model {
                        self.start(m, notify);
                    }
                }
            }
            State::Starting(_) => {
                ui.horizontal(|ui| {
                    ui.add(egui::Spinner::new());
                    ui.label("loading the model for the server…");
                });
            }
            State::Running(s) => {
                ui.label(format!("serving on ws://{}", s.addr()));
                ui.weak(format!("health: http://{}/healthz", s.addr()));
                if ui.button("Stop server").clicked() {
                    self.stop();
                    return;
                }
                if self.clients.is_empty() {
                    ui.weak("no client connected (try: videovla sim connect ws://…)");
                }
                for (id, peer) in &self.clients {
                    ui.label(format!("client {id}: {peer}"));
                }
                if let Some(r) = &self.last_request {
                    ui.label(format!("last: {r}"));
                }
                if let Some(m) = self.recording.mean_similarity() {
                    ui.label(format!("mean motion similarity {m:.3}"));
                }
            }
        }
        if let Some(m) = &self.message {
            ui.colored_label(ui.visuals().warn_fg_color, m);
        }
    }

    fn texture(&mut self, ctx: &egui::Context, key: (u64, usize, u8), img: impl FnOnce() -> image::RgbImage) -> TextureHandle {
        if self.textures.len() > 2000 {
            self.textures.clear();
        }
        self.textures
            .entry(key)
            .or_insert_with(|| ctx.load_texture(format!("robot-{}-{}-{}", key.0, key.1, key.2), color_image(&img()), TextureOptions::NEAREST))
            .clone()
    }

    /// Imagination vs execution at timeline frame `frame`. Returns the number of imagined frames
    /// (for the timeline) when a chunk is shown.
    pub fn view_ui(
        &mut self,
        ui: &mut egui::Ui,
        frame: usize,
        traj: &mut super::trajectory_3d::Trajectory3d,
        dialogs: &mut dyn super::dialogs::Dialogs,
    ) -> Option<usize> {
        let idx = self.shown()?;
        let n_chunks = self.recording.chunks.len();
        let c = self.recording.chunks[idx].clone();
        let pred = c.prediction.clone()?;
        let frames = &pred.samples[0].frames;
        ui.horizontal(|ui| {
            ui.heading(format!("Robot: imagination vs execution — request {} (client {})", c.chunk, c.client));
        });
        ui.horizontal(|ui| {
            if ui.small_button("previous").on_hover_text("previous chunk").clicked() {
                self.selected = Some(idx.saturating_sub(1));
            }
            if ui.small_button("next").on_hover_text("next chunk").clicked() {
                self.selected = Some((idx + 1).min(n_chunks - 1));
            }
            let mut follow = self.selected.is_none();
            if ui.checkbox(&mut follow, "follow live").changed() {
                self.selected = if follow { None } else { Some(idx) };
            }
            ui.separator();
            ui.selectable_value(&mut self.mode, CompareMode::SideBySide, "side by side");
            ui.selectable_value(&mut self.mode, CompareMode::Overlay, "overlay");
            ui.selectable_value(&mut self.mode, CompareMode::Difference, "difference");
            ui.separator();
            if ui
                .add_enabled(c.closed, egui::Button::new("Export chunk…"))
                .on_hover_text("imagined.gif, executed.gif and chunk.json (actions, executed path, motion similarity)")
                .clicked()
            {
                if let Some(dir) = dialogs.pick_export_folder() {
                    self.message = Some(match self.recording.save_chunk(idx, &dir) {
                        Ok(()) => format!("wrote {}", dir.join(format!("chunk-{:05}", c.chunk)).display()),
                        Err(e) => format!("export failed: {e:#}"),
                    });
                }
            }
        });
        if let Some(m) = &self.message {
            ui.label(m);
        }
        ui.label(format!("“{}” · {} executed frames · {:.1} actions executed", c.instruction, c.executed.len(), c.executed_actions(self.recording.assume_executed)));
        match (c.closed, c.similarity.as_ref().and_then(|s| s.score)) {
            (true, Some(s)) => {
                let m = c.similarity.as_ref().unwrap();
                ui.strong(format!("motion similarity {s:.3} ({} matched tracks)", m.pairs));
            }
            (true, None) => {
                ui.label("motion similarity: no matched tracks");
            }
            (false, _) => {
                ui.label("motion similarity: scored when the next request arrives");
            }
        }
        if let Some(q) = &c.quality {
            ui.weak(format!("PSNR {:.2} dB · SSIM {:.3} (time-aligned)", q.psnr, q.ssim));
        }
        if frames.is_empty() {
            ui.weak("this request asked for no imagination");
            return None;
        }
        let n = frames.len();
        let f = frame.min(n - 1);
        let e = executed_index(&c, f, n, self.recording.assume_executed).min(c.executed.len() - 1);
        let ctx = ui.ctx().clone();
        let key = c.chunk;
        let side = ((ui.available_width() - 40.0) / 3.0).clamp(96.0, 256.0);
        let im = self.texture(&ctx, (key, f, 0), || frames[f].clone());
        let ex = self.texture(&ctx, (key, e + 100_000, 1), || c.executed[e].image.clone());
        ui.horizontal_top(|ui| {
            ui.vertical(|ui| {
                ui.label(format!("imagined · frame {f}/{}", n - 1));
                ui.image((im.id(), egui::vec2(side, side)));
            });
            ui.vertical(|ui| {
                let st = c.executed[e].action_step.map(|s| format!(" · step {s:.2}")).unwrap_or_default();
                ui.label(format!("executed · frame {e}/{}{st}", c.executed.len() - 1));
                ui.image((ex.id(), egui::vec2(side, side)));
            });
            if self.mode != CompareMode::SideBySide {
                let diff = self.mode == CompareMode::Difference;
                let tag = if diff { 3 } else { 2 };
                let b = self.texture(&ctx, (key, f * 100_000 + e, tag), || blend(&frames[f], &c.executed[e].image, diff));
                ui.vertical(|ui| {
                    ui.label(if diff { "difference (×3)" } else { "overlay (50 %)" });
                    ui.image((b.id(), egui::vec2(side, side)));
                });
            }
        });
        // 3-D: the predicted path from the request's state, the executed positions over it.
        let start = c.start_state.as_ref().map(|st| {
            let mut p7 = [0f32, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0];
            // A 7-D state is the simulator's pose [x, y, z, roll, pitch, yaw, gripper]; otherwise
            // only the position is read.
            let k = if st.len() == 7 { 7 } else { 3 };
            for (o, v) in p7.iter_mut().zip(st.iter().take(k)) {
                *o = *v as f32;
            }
            Pose::from_xyz_rpy(&p7)
        });
        let opts = crate::export::ExportOptions { stats: None, start_pose: start.unwrap_or_default(), rotation_rule: RotationRule::EulerAdd, ..Default::default() };
        let poses = crate::export::trajectory(&c.actions, &opts).unwrap_or_else(|_| vec![opts.start_pose]);
        traj.overlay = c.executed.iter().filter_map(|x| x.position).map(|p| [p[0] as f32, p[1] as f32, p[2] as f32]).collect();
        let pose = crate::action::view::pose_index_for_frame(f, n, poses.len().saturating_sub(1));
        let w = (ui.available_width() * 0.6).clamp(200.0, 520.0);
        ui.label(if traj.overlay.is_empty() { "3-D: predicted path (the client sends no state)" } else { "3-D: predicted path; executed positions in cyan" });
        traj.ui(ui, (u64::MAX - key, 0), &poses, pose, egui::vec2(w, w * 0.7));
        traj.overlay.clear();
        Some(n)
    }
}
