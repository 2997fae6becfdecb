//! The desktop viewer driven headless like a person would (egui_kittest + wgpu on lavapipe,
//! no display): type an instruction, Run, wait for the worker's result, scrub, export.
//! Snapshots live in tests/snapshots/ (`UPDATE_SNAPSHOTS=1 cargo test --release --test viewer`).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use egui::Key;
use egui_kittest::kittest::Queryable;
use egui_kittest::Harness;
use videovla::ui::dialogs::FixedDialogs;

mod common;
use videovla::ui::{ViewerApp, ViewerOptions};

fn tiny_model() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny_model")
}

/// Process-wide environment for these tests, set once before any harness starts (other
/// threads' C code, e.g. the Vulkan loader, reads the environment too):
/// no embedded model (so the default falls back to the test model and says so), and a hub
/// cache holding the tiny model as `test-org/tiny` (huggingface_hub's layout).
fn setup() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let cache = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("viewer-hub-cache");
        let commit = "0123456789abcdef0123456789abcdef01234567";
        let repo = cache.join("models--test-org--tiny");
        let snap = repo.join("snapshots").join(commit);
        std::fs::create_dir_all(&snap).unwrap();
        std::fs::create_dir_all(repo.join("refs")).unwrap();
        std::fs::write(repo.join("refs/main"), commit).unwrap();
        for f in std::fs::read_dir(tiny_model()).unwrap() {
            let f = f.unwrap().path();
            std::fs::copy(&f, snap.join(f.file_name().unwrap())).unwrap();
        }
        std::env::set_var("HF_HUB_CACHE", &cache);
        // A hub endpoint for download tests (files are registered per test).
        let (endpoint, _) = common::fake_hub::fake_hub(hub_files().clone(), None);
        std::env::set_var("HF_ENDPOINT", endpoint);
        std::env::set_var("VIDEOVLA_MODEL_DIR", "/nonexistent/videovla-model");
    });
}

fn hub_files() -> &'static common::fake_hub::HubFiles {
    static FILES: std::sync::OnceLock<common::fake_hub::HubFiles> = std::sync::OnceLock::new();
    FILES.get_or_init(Default::default)
}

fn harness(dialogs: FixedDialogs) -> Harness<'static, ViewerApp> {
    setup();
    Harness::builder()
        .with_size(egui::vec2(1400.0, 900.0))
        .wgpu()
        .build_eframe(move |cc| {
            ViewerApp::new(
                cc,
                ViewerOptions {
                    model_dir: Some(tiny_model()),
                    dialogs: Box::new(dialogs),
                    hide_timings: true,
                    ..Default::default()
                },
            )
        })
}

/// Step the UI until `done` holds (the worker is a real thread), at most 120 s.
fn step_until(h: &mut Harness<'_, ViewerApp>, what: &str, done: impl Fn(&ViewerApp) -> bool) {
    let t0 = Instant::now();
    while !done(h.state()) {
        assert!(t0.elapsed() < Duration::from_secs(120), "timed out waiting for {what}");
        h.step();
        std::thread::sleep(Duration::from_millis(20));
    }
    h.step();
}

fn type_and_run(h: &mut Harness<'_, ViewerApp>, text: &str) {
    let field = h.get_by_label("Instruction");
    field.click();
    h.run_steps(2);
    h.get_by_label("Instruction").type_text(text);
    h.run_steps(2);
    h.get_by_label("Run").click();
    h.step();
}

#[test]
fn viewer_types_runs_scrubs_and_exports() {
    let out = tempfile::tempdir().unwrap();
    let mut h = harness(FixedDialogs { export_folder: Some(out.path().to_path_buf()), ..Default::default() });
    step_until(&mut h, "the model", |a| a.model_summary().is_some());
    // The simulator scene is the default source: its phrasings are offered.
    let suggestion = h.state().source.suggestions()[0].clone();
    assert!(h.query_by_label(&suggestion).is_some(), "suggestion {suggestion:?} not shown");
    h.snapshot("viewer_start");

    type_and_run(&mut h, "pick up the red cube");
    assert!(h.state().busy() || !h.state().history.entries.is_empty(), "Run did not start a prediction");
    step_until(&mut h, "the prediction", |a| !a.history.entries.is_empty());
    let app = h.state();
    assert!(app.error.is_none(), "{:?}", app.error);
    let e = app.history.current().unwrap();
    assert_eq!(e.prediction.instruction, "pick up the red cube");
    let frames = e.frames();
    assert_eq!(frames, app.model_summary().unwrap().num_frames);
    assert_eq!(e.poses[0].len(), app.model_summary().unwrap().action_length + 1);
    assert_eq!(app.instruction.history[0], "pick up the red cube");

    // Scrub: pause, then step with the keyboard and the frame buttons; the one timeline moves.
    h.get_by_label("Pause").click();
    h.run_steps(2);
    h.get_by_label("|<").click();
    h.run_steps(2);
    assert_eq!(h.state().timeline.frame, 0);
    h.key_press(Key::ArrowRight);
    h.run_steps(2);
    h.key_press(Key::ArrowRight);
    h.run_steps(2);
    assert_eq!(h.state().timeline.frame, 2);
    h.get_by_label(">|").click();
    h.run_steps(2);
    assert_eq!(h.state().timeline.frame, frames - 1);
    h.get_by_label("<").click();
    h.run_steps(2);
    assert_eq!(h.state().timeline.frame, frames - 2);
    assert!(h.query_by_label_contains(&format!("frame {}/{}", frames - 2, frames - 1)).is_some());
    h.snapshot("viewer_result");

    // The 3-D view: a drag orbits the camera, "Reset view" frames the trajectory again.
    let fitted = h.state().trajectory.camera;
    let reset = h.get_by_label("Reset view").rect();
    let p = egui::pos2(reset.left() + 150.0, reset.bottom() + 150.0);
    h.event(egui::Event::PointerMoved(p));
    h.step();
    let press = |pressed| egui::Event::PointerButton { pos: p, button: egui::PointerButton::Primary, pressed, modifiers: Default::default() };
    h.event(press(true));
    h.step();
    for dx in [10.0, 30.0, 60.0] {
        h.event(egui::Event::PointerMoved(p + egui::vec2(dx, 15.0)));
        h.step();
    }
    h.event(egui::Event::PointerButton { pos: p + egui::vec2(60.0, 15.0), button: egui::PointerButton::Primary, pressed: false, modifiers: Default::default() });
    h.step();
    let orbited = h.state().trajectory.camera;
    assert!((orbited.yaw - fitted.yaw).abs() > 0.1 && orbited.pitch != fitted.pitch, "{fitted:?} -> {orbited:?}");
    h.get_by_label("Reset view").click();
    h.run_steps(2);
    assert_eq!(h.state().trajectory.camera, fitted);

    // Export: the same files as `videovla predict` plus the side-by-side clip, all decodable.
    h.get_by_label("Export…").click();
    step_until(&mut h, "the export", |a| a.export.last.is_some());
    let dir = match &h.state().export.last {
        Some(Ok(p)) => p.clone(),
        other => panic!("export failed: {other:?}"),
    };
    assert!(dir.starts_with(out.path()));
    let gif = image::ImageReader::open(dir.join("imagination.gif")).unwrap().decode().unwrap();
    assert_eq!(gif.width(), 64);
    let sbs = image::ImageReader::open(dir.join("side_by_side.gif")).unwrap().decode().unwrap();
    assert_eq!(sbs.width(), 3 * sbs.height());
    if let Ok(dbg) = std::env::var("VIEWER_DEBUG_SHOTS") {
        sbs.save(format!("{dbg}/viewer_side_by_side.png")).unwrap();
    }
    let obs = image::open(dir.join("observation.png")).unwrap();
    assert_eq!(obs.width(), 64);
    image::open(dir.join("frames/000.png")).unwrap();
    assert!(std::fs::metadata(dir.join("imagination.mp4")).unwrap().len() > 100);
    assert!(std::fs::metadata(dir.join("side_by_side.mp4")).unwrap().len() > 100);
    let manifest: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("prediction.json")).unwrap()).unwrap();
    assert_eq!(manifest["instruction"], "pick up the red cube");
    let actions: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("actions.json")).unwrap()).unwrap();
    assert_eq!(actions["actions"].as_array().unwrap().len(), 6);
    assert!(std::fs::read_to_string(dir.join("actions.csv")).unwrap().lines().count() == 7);
}

#[test]
fn viewer_cancels_survives_a_worker_panic_and_compares_history() {
    let mut h = harness(FixedDialogs::default());
    step_until(&mut h, "the model", |a| a.model_summary().is_some());

    // A long run cancelled from the UI: the worker stops and the app stays usable.
    h.state_mut().params.params.sampler.steps = 400;
    type_and_run(&mut h, "lift the cube");
    step_until(&mut h, "the first step and its x0 preview", |a| a.running.as_ref().is_some_and(|r| r.step >= 1 && !r.preview.is_empty()));
    assert!(h.query_by_label_contains("denoising · step").is_some());
    assert!(h.query_by_label("Live x0 (current estimate)").is_some());
    if let Ok(dir) = std::env::var("VIEWER_DEBUG_SHOTS") {
        h.render().unwrap().save(format!("{dir}/viewer_progress.png")).unwrap();
    }
    h.get_by_label("Cancel").click();
    step_until(&mut h, "the cancellation", |a| !a.busy());
    assert!(h.state().status.as_deref().unwrap_or("").contains("cancelled"), "{:?}", h.state().status);
    assert!(h.state().history.entries.is_empty());

    // A panic in the worker is shown as an error; the next run still works.
    h.state().inject_worker_panic();
    step_until(&mut h, "the panic report", |a| a.error.as_deref().is_some_and(|e| e.contains("panicked")));
    step_until(&mut h, "the reload", |a| a.model_summary().is_some());
    h.state_mut().params.params.sampler.steps = 2;
    h.get_by_label("Run").click();
    step_until(&mut h, "the first prediction", |a| a.history.entries.len() == 1);
    // Space runs again (no text field focused) with another seed and two samples side by side.
    h.state_mut().params.params.seed = 7;
    h.state_mut().params.params.num_samples = 2;
    h.key_press(Key::Space);
    h.step();
    step_until(&mut h, "the second prediction", |a| a.history.entries.len() == 2);
    let app = h.state();
    assert_eq!(app.history.entries[1].prediction.params.seed, 7);
    assert_eq!(app.history.entries[1].textures.len(), 2);
    // The caption under the second clip and the trajectory's sample picker.
    assert_eq!(h.query_all_by_label("sample 1").count(), 2);
    // The model's default robot id survives the reload (the params panel never clamps it while
    // no model is loaded).
    assert_eq!(app.history.entries[0].prediction.params.robot_id, 3);
    assert_eq!(app.history.entries[1].prediction.params.robot_id, 3);
    assert_ne!(
        app.history.entries[0].prediction.samples[0].actions,
        app.history.entries[1].prediction.samples[0].actions,
        "different seeds gave identical actions"
    );

    // Revisit the first one, then compare the two (id 1 was the cancelled run).
    let (a, b) = (app.history.entries[0].id, app.history.entries[1].id);
    assert_eq!((a, b), (2, 3));
    h.get_by_label("#2 lift the cube").click();
    h.run_steps(2);
    assert_eq!(h.state().history.selected, Some(0));
    h.get_by_label("compare #2").click();
    h.run_steps(2);
    h.get_by_label("compare #3").click();
    h.run_steps(2);
    assert!(h.query_by_label("Comparing #2 and #3").is_some());
    // Pause at a fixed frame for a reproducible picture.
    h.state_mut().timeline.playing = false;
    h.state_mut().timeline.frame = 4;
    h.run_steps(2);
    h.snapshot("viewer_compare");
}

#[test]
fn viewer_demo_mode_keys_and_the_untrained_default_model_notice() {
    // No embedded model (see `setup`): the viewer falls back to the test model and says so.
    setup();
    let mut h = Harness::builder().with_size(egui::vec2(1400.0, 900.0)).wgpu().build_eframe(|cc| {
        ViewerApp::new(cc, ViewerOptions { dialogs: Box::new(FixedDialogs::default()), hide_timings: true, ..Default::default() })
    });
    step_until(&mut h, "the model", |a| a.model_summary().is_some());
    assert!(h.query_by_label_contains("default model is untrained").is_some());
    assert_eq!(h.state().model_summary().unwrap().dir, tiny_model());

    h.get_by_label("Demo mode").click();
    h.run_steps(2);
    assert!(h.state().demo.on && h.state().demo.fullscreen);
    // Space runs with the scene's own instruction (the box is empty).
    h.key_press(Key::Space);
    h.step();
    step_until(&mut h, "the prediction", |a| a.history.entries.len() == 1);
    assert_eq!(h.state().history.entries[0].prediction.instruction, h.state().source.default_instruction());
    // L toggles looping; Left/Right step frames (wrapping while looping); F leaves fullscreen.
    h.key_press(Key::L);
    h.run_steps(1);
    assert!(!h.state().timeline.looping);
    h.key_press(Key::L);
    h.run_steps(1);
    h.state_mut().timeline.frame = 0;
    h.key_press(Key::ArrowLeft);
    h.run_steps(1);
    assert_eq!(h.state().timeline.frame, h.state().timeline.frames - 1);
    h.key_press(Key::ArrowRight);
    h.run_steps(1);
    assert_eq!(h.state().timeline.frame, 0);
    h.key_press(Key::F);
    h.run_steps(1);
    assert!(!h.state().demo.fullscreen);
    // Esc cancels a long run.
    h.state_mut().params.params.sampler.steps = 400;
    h.key_press(Key::Space);
    h.step();
    step_until(&mut h, "the first step", |a| a.running.as_ref().is_some_and(|r| r.step >= 1));
    h.key_press(Key::Escape);
    step_until(&mut h, "the cancellation", |a| !a.busy());
    assert_eq!(h.state().history.entries.len(), 1);
    h.state_mut().timeline.frame = 4;
    h.run_steps(2);
    h.snapshot("viewer_demo");
}

#[test]
fn viewer_image_file_source_and_action_statistics() {
    let dir = tempfile::tempdir().unwrap();
    let img_path = dir.path().join("photo.png");
    let stats_path = dir.path().join("dataset_statistics.json");
    std::fs::write(&img_path, b"not an image").unwrap();
    std::fs::write(
        &stats_path,
        r#"{"sim": {"action": {"q01": [-0.1,-0.1,-0.1,-0.02,-0.02,-0.02,0], "q99": [0.1,0.1,0.1,0.02,0.02,0.02,1],
            "mask": [true,true,true,true,true,true,false]}}}"#,
    )
    .unwrap();
    let mut h = harness(FixedDialogs { image: Some(img_path.clone()), stats_file: Some(stats_path), ..Default::default() });
    step_until(&mut h, "the model", |a| a.model_summary().is_some());

    // The camera: on a machine without one (or a build without the `camera` feature) a clear
    // message, and Run says there is no observation instead of failing somewhere else.
    h.get_by_label("Camera").click();
    h.run_steps(2);
    let msg = h.state().source.message.clone().expect("a camera message");
    assert!(msg.contains("no camera"), "{msg}");
    assert!(h.query_by_label(&msg).is_some());
    h.get_by_label("Run").click();
    h.run_steps(2);
    assert!(h.state().error.as_deref().unwrap_or("").contains("no observation"), "{:?}", h.state().error);
    assert!(!h.state().busy());

    h.get_by_label("Image file").click();
    h.run_steps(2);
    // A broken file: a clear message, no crash, no image.
    h.get_by_label("Open image…").click();
    h.run_steps(2);
    assert!(h.query_by_label_contains("cannot read").is_some());
    assert!(h.state().source.image().is_none());
    // A real (non-square) image: shown as the model sees it (64×64 after resize and crop).
    let photo = image::RgbImage::from_fn(120, 80, |x, y| image::Rgb([(x * 2) as u8, (y * 3) as u8, 90]));
    photo.save(&img_path).unwrap();
    h.get_by_label("Open image…").click();
    h.run_steps(2);
    assert_eq!(h.state().source.image().unwrap().dimensions(), (120, 80));
    assert!(h.query_by_label("model view 64×64").is_some());

    // A pasted image replaces it.
    let pasted = egui::ColorImage::new([50, 70], vec![egui::Color32::from_rgb(10, 200, 30); 50 * 70]);
    h.event(egui::Event::PasteImage(std::sync::Arc::new(pasted)));
    h.run_steps(2);
    assert_eq!(h.state().source.image().unwrap().dimensions(), (50, 70));
    assert_eq!(h.state().source.image().unwrap().get_pixel(3, 3).0, [10, 200, 30]);
    // A file dropped on the window replaces that.
    #[derive(Debug)]
    struct Dropped(PathBuf);
    impl egui::DroppedFile for Dropped {
        fn path(&self) -> &std::path::Path {
            &self.0
        }
        fn bytes(&self) -> Result<Vec<u8>, String> {
            std::fs::read(&self.0).map_err(|e| e.to_string())
        }
    }
    h.input_mut().dropped_files.push(std::sync::Arc::new(Dropped(img_path.clone())));
    h.run_steps(2);
    assert_eq!(h.state().source.image().unwrap().dimensions(), (120, 80));

    h.get_by_label("Action stats…").click();
    h.run_steps(2);
    assert!(h.query_by_label("dataset_statistics.json").is_some());

    type_and_run(&mut h, "move the cup to the left");
    step_until(&mut h, "the prediction", |a| !a.history.entries.is_empty());
    let e = h.state().history.current().unwrap();
    assert_eq!(e.prediction.observation, videovla::model::preprocess::model_view(&photo, 64));
    let unnorm = e.unnormalized[0].as_ref().expect("unnormalised actions");
    let raw = &e.prediction.samples[0].actions;
    // dx is scaled into ±0.02 m; the gripper (masked out) stays raw.
    assert!((unnorm[0][3] - (0.5 * (raw[0][3] + 1.0) * 0.04 - 0.02)).abs() < 1e-5);
    assert_eq!(unnorm[0][6], raw[0][6]);
    // Robot units first (visible at the default width), the model's normalised output after them.
    let unnorm_x = h.get_by_label("dx (unnorm)").rect().min.x;
    let model_x = h.get_by_label("dx (model)").rect().min.x;
    assert!(unnorm_x < model_x, "unnormalised column at x={unnorm_x}, model column at x={model_x}");
    assert!(h.query_by_label_contains("actions (unnormalised)").is_some());
}

#[test]
fn viewer_model_picker_loads_from_the_hub_cache_and_reports_bad_ids() {
    // The hub cache of `setup` holds the tiny model as `test-org/tiny`.
    let mut h = harness(FixedDialogs::default());
    step_until(&mut h, "the model", |a| a.model_summary().is_some());
    // Not in the cache: the error names the repository; the app keeps working.
    h.get_by_label("Hub id").click();
    h.run_steps(1);
    h.get_by_label("Hub id").type_text("hf:test-org/missing");
    h.run_steps(2);
    assert_eq!(h.state().hub_id, "hf:test-org/missing");
    h.get_by_label("Load").click();
    step_until(&mut h, "the load error", |a| a.error.is_some());
    let err = h.state().error.clone().unwrap();
    assert!(err.contains("test-org/missing"), "{err}");
    assert!(matches!(h.state().model, videovla::ui::app::ModelState::Failed(_)));
    // A malformed id is refused before anything is loaded.
    h.state_mut().hub_id = "not a hub id".into();
    h.state_mut().error = None;
    h.run_steps(1);
    h.get_by_label("Load").click();
    h.run_steps(2);
    assert!(h.state().error.as_deref().unwrap_or("").contains("hub reference"), "{:?}", h.state().error);
    // The cached one loads and runs.
    h.state_mut().hub_id = "test-org/tiny".into();
    h.run_steps(1);
    h.get_by_label("Load").click();
    step_until(&mut h, "the hub model", |a| a.model_summary().is_some_and(|m| m.source.to_string() == "hf:test-org/tiny"));
    h.get_by_label("Run").click();
    step_until(&mut h, "the prediction", |a| !a.history.entries.is_empty());
    assert_eq!(h.state().history.entries[0].model.source, "hf:test-org/tiny");
}

#[test]
fn viewer_downloads_a_hub_model_with_progress() {
    let mut h = harness(FixedDialogs::default());
    step_until(&mut h, "the model", |a| a.model_summary().is_some());
    // A repository only the (local) hub endpoint has: a fresh name, so nothing is cached.
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let repo = format!("test-org/remote-{}-{nanos}", std::process::id());
    for f in std::fs::read_dir(tiny_model()).unwrap() {
        let f = f.unwrap().path();
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        hub_files().lock().unwrap().insert(format!("{repo}/{name}"), std::fs::read(&f).unwrap());
    }
    h.state_mut().hub_id = format!("hf:{repo}");
    h.run_steps(1);
    h.get_by_label("Load").click();
    step_until(&mut h, "the downloaded model", |a| a.model_summary().is_some_and(|m| m.source.to_string() == format!("hf:{repo}")));
    let got = h.state().downloaded.clone();
    for f in ["config.json", "transformer.safetensors", "vae.safetensors"] {
        assert!(got.iter().any(|g| g.ends_with(f)), "{f} not reported downloaded: {got:?}");
    }
    assert!(h.state().download.is_none(), "the progress bar goes away once loaded");
    h.get_by_label("Run").click();
    step_until(&mut h, "the prediction", |a| !a.history.entries.is_empty());
}

#[test]
fn viewer_robot_panel_serves_a_simulated_robot_and_shows_imagination_vs_execution() {
    use videovla::sim::policy::Policy;
    let out = tempfile::tempdir().unwrap();
    let mut h = harness(FixedDialogs { export_folder: Some(out.path().to_path_buf()), ..Default::default() });
    step_until(&mut h, "the model", |a| a.model_summary().is_some());
    h.state_mut().robot.port = 0;
    h.get_by_label("Robot link (openpi server)").click();
    h.run_steps(2);
    h.get_by_label("Start server").click();
    h.step();
    step_until(&mut h, "the server", |a| a.robot.running().is_some());
    let url = format!("ws://{}", h.state().robot.running().unwrap().addr());
    // The simulator as the robot, in its own thread: two requests, 3 actions executed in
    // between with every sub-frame streamed.
    let robot = std::thread::spawn(move || {
        use videovla::sim::render::{Camera, Renderer};
        let mut w = videovla::sim::World::reset(videovla::sim::TaskKind::Pick, videovla::sim::Split::Train, 1_000_000);
        w.substeps = 8;
        let mut policy = videovla::sim::remote_policy::RemotePolicy::connect(&url, None).unwrap();
        let mut renderer = Renderer::new(Camera::default(), 2);
        let chunk = policy.act(&w.observation_with(&mut renderer, 64)).unwrap();
        let mut stream = policy.frame_streamer(64, 8, 2);
        for a in chunk.iter().take(3) {
            w.step_with(a, &mut stream).unwrap();
        }
        drop(stream);
        policy.act(&w.observation_with(&mut renderer, 64)).unwrap();
    });
    step_until(&mut h, "a scored chunk", |a| a.robot.recording.chunks.iter().any(|c| c.closed && c.quality.is_some()) && a.robot.shown().is_some());
    robot.join().unwrap();
    let c0 = h.state().robot.recording.chunks.iter().position(|c| c.closed).unwrap();
    {
        let c = &h.state().robot.recording.chunks[c0];
        assert_eq!(c.executed.len(), 1 + 3 * 8, "the request + 24 streamed sub-frames");
        assert_eq!(c.executed_actions(6), 3.0);
        assert!(c.executed.iter().all(|f| f.position.is_some()));
    }
    assert!(h.state().show_robot, "the robot view opens with the first chunk");
    h.state_mut().robot.selected = Some(c0);
    h.state_mut().timeline.playing = false;
    h.state_mut().timeline.frame = 6;
    h.get_by_label("overlay").click();
    h.run_steps(3);
    // Synchronised on the action step: imagination frame 6 of 9 = step 4.5 of 6 -> past the 3
    // executed actions -> the last executed frame.
    let _ = h.get_by_label_contains("matched tracks");
    let _ = h.get_by_label_contains("imagined · frame 6/8");
    let _ = h.get_by_label_contains("executed · frame 24/24");
    h.get_by_label("Export chunk…").click();
    h.run_steps(2);
    let j: serde_json::Value = serde_json::from_slice(&std::fs::read(out.path().join("chunk-00000/chunk.json")).unwrap()).unwrap();
    assert_eq!(j["executed_frames"], 25);
    assert!(j["motion_similarity"]["score"].is_number(), "{j}");
    for f in ["imagined.gif", "executed.gif"] {
        assert!(image::open(out.path().join("chunk-00000").join(f)).is_ok(), "{f}");
    }
    assert!(h.state().robot.message.as_deref().unwrap_or("").starts_with("wrote "));
    h.state_mut().robot.message = None; // names a random temp dir
    // The server's port is random: fold the Robot link section away for the snapshot.
    h.get_by_label("Robot link (openpi server)").click();
    h.run_steps(3);
    h.snapshot("viewer_robot");
    h.get_by_label("Robot link (openpi server)").click();
    h.run_steps(3);
    h.get_by_label("Stop server").click();
    h.step();
    assert!(h.state().robot.running().is_none());
}
