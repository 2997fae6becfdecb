//! The eframe app: polls the engine every frame (never blocks), routes keys, lays out panels.

use std::path::PathBuf;
use std::sync::Arc;

use egui::TextureOptions;

use super::demo::{self, DemoMode, KeyAction};
use super::dialogs::{Dialogs, NativeDialogs};
use super::export::ExportPanel;
use super::history::{Entry, HistoryPanel};
use super::instruction::InstructionPanel;
use super::params::ParamsPanel;
use super::player::{self, Timeline};
use super::progress::{self, Running};
use super::robot::RobotPanel;
use super::source::SourcePanel;
use super::texture::color_image;
use super::trajectory_3d::Trajectory3d;
use super::action_plot;
use crate::action::view::pose_index_for_frame;
use crate::action::{Pose, RotationRule};
use crate::engine::{Engine, Event, ModelSummary, Request};
use crate::export::{trajectory, ExportOptions};
use crate::model::hub::ModelSource;
use crate::model::pipeline::Prediction;

pub struct ViewerOptions {
    /// Model folder; `None` = the embedded model (falls back to the test model while the
    /// embedded one does not exist, and says so on screen).
    pub model_dir: Option<PathBuf>,
    pub dialogs: Box<dyn Dialogs>,
    /// Run one prediction with the scene's instruction as soon as the model is loaded.
    pub auto_run: bool,
    /// Leave wall-clock times out of the UI (reproducible screenshots).
    pub hide_timings: bool,
    pub demo: bool,
    /// Measure UI frame times while the auto-run prediction runs, write them here as JSON and
    /// close the window when it finishes (the responsiveness benchmark).
    pub measure_frames: Option<PathBuf>,
}

impl Default for ViewerOptions {
    fn default() -> Self {
        Self {
            model_dir: None,
            dialogs: Box::new(NativeDialogs),
            auto_run: false,
            hide_timings: false,
            demo: false,
            measure_frames: None,
        }
    }
}

/// Frame times recorded while a prediction runs: the wall time between consecutive frames
/// (with continuous repaint requested, so this is the achievable frame time) and the CPU time
/// egui reports for the app's own `ui` pass.
#[derive(Debug, Default)]
pub struct FrameMeter {
    pub out: PathBuf,
    last: Option<std::time::Instant>,
    pub intervals_ms: Vec<f64>,
    pub ui_ms: Vec<f64>,
}

fn percentile(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    s[((p / 100.0) * (s.len() - 1) as f64).round() as usize]
}

impl FrameMeter {
    fn record(&mut self, ui_ms: Option<f64>) {
        let now = std::time::Instant::now();
        if let Some(last) = self.last {
            self.intervals_ms.push((now - last).as_secs_f64() * 1e3);
            if let Some(u) = ui_ms {
                self.ui_ms.push(u);
            }
        }
        self.last = Some(now);
    }

    pub fn report(&self) -> serde_json::Value {
        serde_json::json!({
            "frames": self.intervals_ms.len(),
            "frame_interval_median_ms": percentile(&self.intervals_ms, 50.0),
            "frame_interval_p99_ms": percentile(&self.intervals_ms, 99.0),
            "ui_cpu_median_ms": percentile(&self.ui_ms, 50.0),
            "ui_cpu_p99_ms": percentile(&self.ui_ms, 99.0),
        })
    }
}

/// Where the model comes from, and what to tell the user about it.
pub fn resolve_model_dir(explicit: Option<PathBuf>) -> (PathBuf, Option<String>) {
    if let Some(d) = explicit {
        return (d, None);
    }
    let embedded = crate::cli::predict::default_model_dir();
    if embedded.join("config.json").is_file() {
        return (embedded, None);
    }
    let fallback = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny_model");
    (
        fallback,
        Some(format!(
            "The default model is untrained: the embedded model ({}) does not exist yet, so the viewer uses the random test model — its imaginations are noise.",
            embedded.display()
        )),
    )
}

pub enum ModelState {
    Loading(ModelSource),
    Ready(Box<ModelSummary>),
    Failed(String),
}

/// A run waiting for its result: what the views need besides the prediction.
struct Pending {
    start_pose: Pose,
    rotation_rule: RotationRule,
    stats: Option<crate::action::ActionStats>,
}

pub struct ViewerApp {
    engine: Engine,
    pub model: ModelState,
    pub notice: Option<String>,
    pub source: SourcePanel,
    pub instruction: InstructionPanel,
    pub params: ParamsPanel,
    pub running: Option<Running>,
    pending: Option<Pending>,
    pub timeline: Timeline,
    pub trajectory: Trajectory3d,
    compare_views: [Trajectory3d; 2],
    pub history: HistoryPanel,
    pub export: ExportPanel,
    pub demo: DemoMode,
    /// The openpi policy server and the imagination-vs-execution view.
    pub robot: RobotPanel,
    robot_view: Trajectory3d,
    /// Show the robot view (instead of the viewer's own predictions) in the centre.
    pub show_robot: bool,
    pub error: Option<String>,
    /// The hub repository typed into the model picker.
    pub hub_id: String,
    /// The download in progress while a hub model loads: (file, bytes done, total).
    pub download: Option<(String, u64, Option<u64>)>,
    /// Hub files downloaded since the viewer started.
    pub downloaded: Vec<String>,
    pub status: Option<String>,
    pub sample: usize,
    dialogs: Box<dyn Dialogs>,
    auto_run: bool,
    hide_timings: bool,
    next_id: u64,
    meter: Option<FrameMeter>,
}

impl ViewerApp {
    pub fn new(cc: &eframe::CreationContext<'_>, opts: ViewerOptions) -> Self {
        let ctx = cc.egui_ctx.clone();
        let engine = Engine::spawn(move || ctx.request_repaint());
        let (dir, notice) = resolve_model_dir(opts.model_dir.clone());
        engine.send(Request::Load { source: ModelSource::Dir(dir.clone()) });
        let mut app = ViewerApp {
            engine,
            model: ModelState::Loading(ModelSource::Dir(dir)),
            notice,
            source: SourcePanel::default(),
            instruction: InstructionPanel::default(),
            params: ParamsPanel::default(),
            running: None,
            pending: None,
            timeline: Timeline::default(),
            trajectory: Trajectory3d::default(),
            compare_views: Default::default(),
            history: HistoryPanel::default(),
            export: ExportPanel::default(),
            demo: DemoMode::default(),
            robot: RobotPanel::default(),
            robot_view: Trajectory3d::default(),
            show_robot: false,
            error: None,
            hub_id: String::new(),
            download: None,
            downloaded: Vec::new(),
            status: None,
            sample: 0,
            dialogs: opts.dialogs,
            auto_run: opts.auto_run,
            hide_timings: opts.hide_timings,
            next_id: 1,
            meter: opts.measure_frames.map(|out| FrameMeter { out, ..Default::default() }),
        };
        app.trajectory.gpu_available = super::trajectory_gpu::install(cc);
        // One wgpu view per frame: the robot view uses the CPU painter.
        app.robot_view.force_cpu = true;
        if opts.demo {
            app.demo.set(&cc.egui_ctx, true);
        }
        app
    }

    pub fn model_summary(&self) -> Option<&ModelSummary> {
        match &self.model {
            ModelState::Ready(m) => Some(m),
            _ => None,
        }
    }

    pub fn busy(&self) -> bool {
        self.running.is_some()
    }

    /// Load another model folder on the worker.
    pub fn load_model(&mut self, source: ModelSource, notice: Option<String>) {
        if self.busy() {
            self.error = Some("wait for the running prediction (or cancel it) before switching models".into());
            return;
        }
        self.notice = notice;
        self.model = ModelState::Loading(source.clone());
        self.engine.send(Request::Load { source });
    }

    /// Start a prediction with the current source, instruction and parameters.
    pub fn run(&mut self) {
        if self.busy() {
            return;
        }
        let Some(model) = self.model_summary() else {
            self.error = Some("the model is not loaded yet".into());
            return;
        };
        let stats = self.params.stats(Some(model)).cloned();
        let Some(image) = self.source.image().cloned() else {
            self.error = Some("no observation: open an image or use the simulator".into());
            return;
        };
        let mut text = self.instruction.text.trim().to_string();
        if text.is_empty() {
            text = self.source.default_instruction();
            self.instruction.text = text.clone();
        }
        self.instruction.remember(&text);
        let params = self.params.predict_params();
        let id = self.next_id;
        self.next_id += 1;
        let (start_pose, rotation_rule) = self.source.start_pose();
        self.pending = Some(Pending { start_pose, rotation_rule, stats });
        self.running = Some(Running::new(id, params.sampler.steps));
        self.error = None;
        self.status = None;
        self.engine.send(Request::Predict { id, image, instruction: text, params });
    }

    pub fn cancel(&mut self) {
        if let Some(r) = &mut self.running {
            r.cancelling = true;
            self.engine.cancel();
        }
    }

    /// Test hook: make the worker panic (it must report and keep serving).
    #[doc(hidden)]
    pub fn inject_worker_panic(&self) {
        self.engine.send(Request::Panic);
    }

    fn finish(&mut self, ctx: &egui::Context, id: u64, prediction: Arc<Prediction>, wall_ms: f64) {
        let pending = self.pending.take().unwrap_or(Pending {
            start_pose: Pose::default(),
            rotation_rule: RotationRule::default(),
            stats: None,
        });
        let opts = ExportOptions {
            stats: pending.stats.clone(),
            start_pose: pending.start_pose,
            rotation_rule: pending.rotation_rule,
            ..Default::default()
        };
        let mut poses = Vec::new();
        let mut unnormalized = Vec::new();
        for s in &prediction.samples {
            match trajectory(&s.actions, &opts) {
                Ok(p) => poses.push(p),
                Err(e) => {
                    self.error = Some(format!("cannot integrate the actions: {e:#}"));
                    poses.push(vec![pending.start_pose]);
                }
            }
            unnormalized.push(
                pending.stats.as_ref().and_then(|st| s.actions.iter().map(|a| st.unnormalize(a, false).ok()).collect()),
            );
        }
        let textures = prediction
            .samples
            .iter()
            .enumerate()
            .map(|(k, s)| {
                s.frames
                    .iter()
                    .enumerate()
                    .map(|(f, img)| ctx.load_texture(format!("pred{id}-s{k}-f{f}"), color_image(img), TextureOptions::LINEAR))
                    .collect()
            })
            .collect();
        let observation = ctx.load_texture(format!("pred{id}-obs"), color_image(&prediction.observation), TextureOptions::NEAREST);
        let model = match &self.model {
            ModelState::Ready(m) => m.info.clone(),
            _ => Default::default(),
        };
        let entry = Entry {
            id,
            prediction,
            model,
            stats: pending.stats,
            start_pose: pending.start_pose,
            rotation_rule: pending.rotation_rule,
            poses,
            unnormalized,
            observation,
            textures,
            wall_ms,
        };
        self.timeline.load(entry.frames());
        self.timeline.looping = true;
        self.sample = 0;
        self.status = Some(if self.hide_timings {
            format!("prediction #{id} done")
        } else {
            format!("prediction #{id} done in {:.1} s", wall_ms / 1e3)
        });
        tracing::info!(
            "prediction #{id} done: {:?}, {} sample(s) of {} frames in {:.0} ms",
            entry.prediction.instruction,
            entry.prediction.samples.len(),
            entry.frames(),
            wall_ms
        );
        self.history.push(entry);
    }

    /// Drain the worker's events (never blocks).
    pub fn poll(&mut self, ctx: &egui::Context) {
        while let Some(ev) = self.engine.try_recv() {
            match ev {
                Event::ModelLoading { source } => self.model = ModelState::Loading(source),
                Event::Download { file, done, total } => {
                    if Some(done) == total && !self.downloaded.contains(&file) {
                        self.downloaded.push(file.clone());
                    }
                    self.download = Some((file, done, total));
                }
                Event::ModelLoaded(m) => {
                    self.download = None;
                    self.params.adopt_defaults(&m);
                    self.model = ModelState::Ready(m);
                    if self.auto_run {
                        self.auto_run = false;
                        self.run();
                    }
                }
                Event::Stage { id, stage } => {
                    if let Some(r) = self.running.as_mut().filter(|r| r.id == id) {
                        r.stage = Some(stage);
                    }
                }
                Event::Progress { id, step, steps, eta_ms, preview, .. } => {
                    if let Some(r) = self.running.as_mut().filter(|r| r.id == id) {
                        r.step = step + 1;
                        r.steps = steps;
                        r.eta_ms = eta_ms;
                        if let Some(frames) = preview {
                            r.preview = frames
                                .iter()
                                .enumerate()
                                .map(|(f, img)| ctx.load_texture(format!("preview-{f}"), color_image(img), TextureOptions::LINEAR))
                                .collect();
                        }
                    }
                }
                Event::Done { id, prediction, wall_ms } => {
                    self.running = None;
                    if let Some(m) = self.meter.take() {
                        let report = m.report();
                        tracing::info!("frame times while predicting: {report}");
                        if let Err(e) = crate::util::write_atomic(&m.out, report.to_string().as_bytes()) {
                            tracing::error!("{e:#}");
                        }
                        ctx.send_viewport_cmd(egui::ViewportCommand::Close);
                    }
                    self.finish(ctx, id, prediction, wall_ms);
                }
                Event::Cancelled { id } => {
                    self.running = None;
                    self.pending = None;
                    self.status = Some(format!("prediction #{id} cancelled"));
                }
                Event::Error { id, message } => {
                    if id.is_none() {
                        self.download = None;
                    }
                    if id.is_some() || self.running.is_some() {
                        self.running = None;
                        self.pending = None;
                    }
                    if matches!(self.model, ModelState::Loading(_)) && id.is_none() && !message.contains("panicked") {
                        self.model = ModelState::Failed(message.clone());
                    }
                    self.error = Some(message);
                }
            }
        }
    }

    fn handle_keys(&mut self, ctx: &egui::Context) {
        for k in demo::keys(ctx) {
            match k {
                KeyAction::Run => self.run(),
                KeyAction::Frame(d) => {
                    self.timeline.playing = false;
                    self.timeline.step(d);
                }
                KeyAction::ToggleLoop => self.timeline.looping = !self.timeline.looping,
                KeyAction::ToggleFullscreen => {
                    let on = !self.demo.fullscreen;
                    self.demo.set_fullscreen(ctx, on);
                }
                KeyAction::Cancel => self.cancel(),
            }
        }
    }

    fn top_bar(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            ui.heading("VideoVLA");
            match &self.model {
                ModelState::Loading(d) => {
                    ui.add(egui::Spinner::new());
                    ui.label(format!("loading {d}"));
                    if let Some((file, done, total)) = &self.download {
                        let name = file.rsplit('/').next().unwrap_or(file);
                        let mb = |b: u64| b as f64 / (1 << 20) as f64;
                        let (frac, text) = match total {
                            Some(t) if *t > 0 => (*done as f32 / *t as f32, format!("downloading {name}: {:.1} / {:.1} MiB", mb(*done), mb(*t))),
                            _ => (0.0, format!("downloading {name}: {:.1} MiB", mb(*done))),
                        };
                        ui.add(egui::ProgressBar::new(frac).desired_width(220.0).text(text));
                    }
                }
                ModelState::Ready(m) => {
                    ui.label(format!("model: {} ({} frames, {}×{})", m.name, m.num_frames, m.image_size, m.image_size))
                        .on_hover_text(format!("{} ({})", m.source, m.dir.display()));
                }
                ModelState::Failed(e) => {
                    // The full message is in the error line; keep the bar short.
                    ui.colored_label(ui.visuals().error_fg_color, "no model loaded").on_hover_text(e);
                }
            }
            let mut pick: Option<PathBuf> = None;
            egui::ComboBox::from_label("Model").selected_text("switch…").show_ui(ui, |ui| {
                if ui.selectable_label(false, "Embedded").clicked() {
                    pick = Some(PathBuf::new());
                }
                if ui.selectable_label(false, "Local folder…").clicked() {
                    pick = self.dialogs.pick_model_folder();
                }
            });
            if let Some(p) = pick {
                if p.as_os_str().is_empty() {
                    let (dir, notice) = resolve_model_dir(None);
                    self.load_model(ModelSource::Dir(dir), notice);
                } else {
                    self.load_model(ModelSource::Dir(p), None);
                }
            }
            let l = ui.label("Hub id");
            ui.add(egui::TextEdit::singleline(&mut self.hub_id).hint_text("hf:ORG/NAME[@REV]").desired_width(180.0))
                .labelled_by(l.id);
            if ui.add_enabled(!self.hub_id.trim().is_empty(), egui::Button::new("Load")).on_hover_text(if cfg!(feature = "download") { "A model repository: from the Hugging Face cache, missing files downloaded (progress shown here)" } else { "A model repository from the Hugging Face cache" }).clicked() {
                let spec = self.hub_id.trim();
                let spec = if spec.starts_with("hf:") { spec.to_string() } else { format!("hf:{spec}") };
                match ModelSource::parse(&spec) {
                    Ok(src) => self.load_model(src, None),
                    Err(e) => self.error = Some(format!("{e:#}")),
                }
            }
            let mut on = self.demo.on;
            if ui.toggle_value(&mut on, "Demo mode").on_hover_text("Fullscreen, large type (Space run, Left/Right frame, L loop, F fullscreen, Esc cancel)").changed() {
                self.demo.set(ui.ctx(), on);
            }
        });
        if let Some(n) = &self.notice {
            ui.colored_label(ui.visuals().warn_fg_color, format!("Warning: {n}"));
        }
    }

    fn controls(&mut self, ui: &mut egui::Ui) {
        let image_size = self.model_summary().map(|m| m.image_size).unwrap_or(64);
        ui.heading("Source");
        self.source.ui(ui, image_size, self.dialogs.as_mut(), 224.0);
        ui.separator();
        let suggestions = self.source.suggestions();
        let hint = self.source.default_instruction();
        if self.instruction.ui(ui, &suggestions, &hint, false) {
            self.run();
        }
        ui.horizontal(|ui| {
            let ready = self.model_summary().is_some() && !self.busy();
            if ui.add_enabled(ready, egui::Button::new("Run")).on_hover_text("Predict (Space)").clicked() {
                self.run();
            }
        });
        self.progress_and_messages(ui, 160.0);
        ui.separator();
        egui::CollapsingHeader::new("Parameters").default_open(true).show(ui, |ui| {
            let model = match &self.model {
                ModelState::Ready(m) => Some(&**m),
                _ => None,
            };
            self.params.ui(ui, model, self.dialogs.as_mut());
        });
        ui.separator();
        egui::CollapsingHeader::new("Robot link (openpi server)").default_open(false).show(ui, |ui| {
            let source = self.model_summary().map(|m| m.source.clone());
            let ctx = ui.ctx().clone();
            self.robot.controls_ui(ui, source, move || ctx.request_repaint());
            if self.robot.shown().is_some() {
                ui.checkbox(&mut self.show_robot, "Show imagination vs execution");
            }
        });
    }

    fn progress_and_messages(&mut self, ui: &mut egui::Ui, preview: f32) {
        if let Some(r) = &self.running {
            // The preview clip cycles at 8 fps while the run goes on.
            let t = ui.input(|i| i.time);
            let preview_frame = if self.hide_timings { 0 } else { (t * crate::export::FPS as f64) as usize };
            if progress::ui(ui, r, preview_frame, self.hide_timings, preview) {
                self.cancel();
            }
        }
        if let Some(s) = &self.status {
            ui.label(s);
        }
        let mut dismiss = false;
        if let Some(e) = &self.error {
            ui.horizontal_wrapped(|ui| {
                ui.colored_label(ui.visuals().error_fg_color, format!("Error: {e}"));
                dismiss = ui.small_button("dismiss").clicked();
            });
        }
        if dismiss {
            self.error = None;
        }
    }

    /// The imagination (all samples), the 3-D trajectory, the action plot and table.
    fn results(&mut self, ui: &mut egui::Ui) {
        if let Some((a, b)) = self.history.comparison() {
            ui.heading(format!("Comparing #{} and #{}", a.id, b.id));
            let w = ((ui.available_width() - 20.0) / 2.0).max(120.0);
            let frame = self.timeline.frame;
            let views = &mut self.compare_views;
            ui.columns(2, |cols| {
                for ((ui, e), view) in cols.iter_mut().zip([a, b]).zip(views.iter_mut()) {
                    ui.label(format!("#{} {}", e.id, e.prediction.instruction));
                    ui.weak(e.summary());
                    player::frames_ui(ui, e, frame, (w / e.textures.len().max(1) as f32).min(320.0));
                    let poses = &e.poses[0];
                    let pose = pose_index_for_frame(frame, e.frames(), poses.len().saturating_sub(1));
                    // Two views in one frame: the CPU painter (the wgpu view has one target).
                    view.force_cpu = true;
                    view.ui(ui, (e.id, 0), poses, pose, egui::vec2(w - 10.0, (w - 10.0).min(360.0)));
                }
            });
            return;
        }
        let Some(entry) = self.history.current() else {
            ui.vertical_centered(|ui| {
                ui.add_space(60.0);
                ui.heading("Type an instruction and press Run");
                ui.label("The imagined clip and the predicted action trajectory appear here.");
            });
            return;
        };
        let frame = self.timeline.frame;
        let k = entry.textures.len().max(1);
        ui.label(format!("#{} “{}”", entry.id, entry.prediction.instruction));
        if let Some(n) = entry.prediction.truncated_from {
            ui.colored_label(ui.visuals().warn_fg_color, format!("the instruction has {n} tokens; only the first ones were used"));
        }
        let avail = ui.available_width();
        let sample = self.sample.min(entry.poses.len().saturating_sub(1));
        if self.demo.on {
            // Demo: the clip(s) and the trajectory side by side, as large as fits.
            let poses = &entry.poses[sample];
            let pose = pose_index_for_frame(frame, entry.frames(), poses.len().saturating_sub(1));
            let side = (ui.available_height() - 40.0).min(avail / (k as f32 + 1.0) - 12.0).max(96.0);
            ui.horizontal_top(|ui| {
                player::frames_ui(ui, entry, frame, side);
                ui.vertical(|ui| self.trajectory.ui(ui, (entry.id, sample), poses, pose, egui::vec2(side, side)));
            });
            return;
        }
        let size = ((avail - 10.0 * k as f32) / k as f32).clamp(96.0, 300.0);
        player::frames_ui(ui, entry, frame, size);
        ui.separator();
        if entry.poses.len() > 1 {
            ui.horizontal(|ui| {
                ui.label("Trajectory of");
                for s in 0..entry.poses.len() {
                    ui.selectable_value(&mut self.sample, s, format!("sample {s}"));
                }
            });
        }
        let poses = &entry.poses[sample];
        let actions = poses.len().saturating_sub(1);
        let pose = pose_index_for_frame(frame, entry.frames(), actions);
        let step = pose.min(actions.saturating_sub(1));
        let raw = &entry.prediction.samples[sample].actions;
        let unnorm = entry.unnormalized[sample].as_deref();
        let h = (ui.available_height() - 10.0).max(200.0);
        let id = entry.id;
        ui.horizontal_top(|ui| {
            let w = (ui.available_width() * 0.5).max(200.0);
            ui.vertical(|ui| {
                ui.label("3-D end-effector trajectory");
                self.trajectory.ui(ui, (id, sample), poses, pose, egui::vec2(w, (h - 40.0).min(w)));
            });
            ui.vertical(|ui| {
                action_plot::plot_ui(ui, id, raw, unnorm, step, (h * 0.45).max(120.0));
                action_plot::table_ui(ui, id, raw, unnorm, step);
            });
        });
    }
}

impl eframe::App for ViewerApp {
    fn ui(&mut self, ui: &mut egui::Ui, frame: &mut eframe::Frame) {
        let ctx = ui.ctx().clone();
        if self.running.is_some() {
            if let Some(m) = self.meter.as_mut() {
                m.record(frame.info().cpu_usage.map(|s| s as f64 * 1e3));
                ctx.request_repaint();
            }
        }
        self.poll(&ctx);
        let had_chunk = self.robot.shown().is_some();
        self.robot.poll();
        if !had_chunk && self.robot.shown().is_some() {
            self.show_robot = true;
        }
        self.source.handle_drops(&ctx);
        self.source.update_camera(&ctx);
        self.handle_keys(&ctx);
        let dt = ctx.input(|i| i.stable_dt).min(0.1);
        self.timeline.tick(&ctx, dt);

        egui::Panel::top("top").show(ui, |ui| self.top_bar(ui));
        egui::Panel::bottom("timeline").show(ui, |ui| {
            ui.horizontal(|ui| {
                let entry = self.history.current();
                self.export.ui(ui, entry, self.dialogs.as_mut());
            });
            self.timeline.controls_ui(ui);
        });
        if self.demo.on {
            egui::Panel::top("demo-input").show(ui, |ui| {
                let suggestions = self.source.suggestions();
                let hint = self.source.default_instruction();
                ui.horizontal(|ui| {
                    let image_size = self.model_summary().map(|m| m.image_size).unwrap_or(64);
                    if let Some(t) = self.source.model_view_texture(ui.ctx(), image_size) {
                        ui.image((t.id(), egui::vec2(160.0, 160.0)));
                    }
                    ui.vertical(|ui| {
                        if self.instruction.ui(ui, &suggestions, &hint, true) {
                            self.run();
                        }
                        let ready = self.model_summary().is_some() && !self.busy();
                        if ui.add_enabled(ready, egui::Button::new("Run")).clicked() {
                            self.run();
                        }
                        self.progress_and_messages(ui, 120.0);
                    });
                });
            });
        } else {
            egui::Panel::left("controls").default_size(330.0).min_size(300.0).resizable(true).show(ui, |ui| {
                egui::ScrollArea::vertical().show(ui, |ui| self.controls(ui));
            });
            egui::Panel::right("history").default_size(260.0).min_size(240.0).resizable(true).show(ui, |ui| {
                ui.heading("History");
                if self.history.ui(ui) {
                    if let Some(e) = self.history.current() {
                        let n = e.frames();
                        self.timeline.frames = n;
                        self.timeline.frame = self.timeline.frame.min(n.saturating_sub(1));
                    }
                }
            });
        }
        egui::CentralPanel::default().show(ui, |ui| {
            egui::ScrollArea::vertical().show(ui, |ui| {
                if self.show_robot && self.robot.shown().is_some() {
                    if let Some(n) = self.robot.view_ui(ui, self.timeline.frame, &mut self.robot_view, self.dialogs.as_mut()) {
                        if self.timeline.frames != n {
                            self.timeline.frames = n;
                            self.timeline.frame = self.timeline.frame.min(n - 1);
                        }
                    }
                } else {
                    self.results(ui);
                }
            });
        });
    }
}
