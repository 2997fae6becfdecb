//! The inference worker: one thread owns the model; the UI sends [`Request`]s and polls
//! [`Event`]s over crossbeam channels, so inference never runs on the UI thread.
//!
//! * Cancel: [`Engine::cancel`] sets the shared [`CancelToken`], which `predict` checks after
//!   every denoising step, so a running prediction stops within one step.
//! * A panic while serving a request is caught (`catch_unwind`), reported as
//!   [`Event::Error`], and the worker keeps serving (the model is reloaded on the next
//!   request if the panic happened while it was borrowed).
//! * `repaint` is called after every event so an egui UI wakes up (`ctx.request_repaint()`).

use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};

use crate::action::ActionStats;
use crate::export::ModelInfo;
use crate::model::hub::ModelSource;
use crate::model::pipeline::{CancelToken, Cancelled, Prediction, PredictParams, Progress, Stage, VideoVla};

/// What the UI asks the worker to do.
pub enum Request {
    /// Load a model folder or hub repository (replacing the current model).
    Load { source: ModelSource },
    /// One prediction with the loaded model.
    Predict { id: u64, image: image::RgbImage, instruction: String, params: PredictParams },
    /// Test hook: panic inside the worker (checks that the worker survives).
    #[doc(hidden)]
    Panic,
    Shutdown,
}

/// A loaded model as the UI sees it.
#[derive(Debug, Clone)]
pub struct ModelSummary {
    pub source: ModelSource,
    /// The folder holding config.json (for a hub model, its snapshot in the cache).
    pub dir: PathBuf,
    pub name: String,
    pub image_size: usize,
    pub num_frames: usize,
    pub action_length: usize,
    pub num_robot_ids: usize,
    pub default_params: PredictParams,
    pub stats: Option<ActionStats>,
    pub info: ModelInfo,
}

/// What the worker reports.
pub enum Event {
    ModelLoading { source: ModelSource },
    /// A hub file is being downloaded while a model loads.
    Download { file: String, done: u64, total: Option<u64> },
    ModelLoaded(Box<ModelSummary>),
    Stage { id: u64, stage: Stage },
    Progress {
        id: u64,
        step: usize,
        steps: usize,
        elapsed_ms: f64,
        /// Estimated time left for the denoising loop.
        eta_ms: f64,
        /// Decoded x̂₀ of the first sample (when previews are on).
        preview: Option<Vec<image::RgbImage>>,
    },
    Done { id: u64, prediction: Arc<Prediction>, wall_ms: f64 },
    Cancelled { id: u64 },
    /// `id` is `None` for errors outside a prediction (e.g. loading).
    Error { id: Option<u64>, message: String },
}

pub struct Engine {
    tx: Sender<Request>,
    rx: Receiver<Event>,
    cancel: CancelToken,
    handle: Option<std::thread::JoinHandle<()>>,
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".into()
    }
}

struct Worker {
    model: Option<VideoVla>,
    events: Sender<Event>,
    cancel: CancelToken,
    repaint: Arc<dyn Fn() + Send + Sync>,
}

impl Worker {
    fn send(&self, e: Event) {
        let _ = self.events.send(e);
        (self.repaint)();
    }

    fn serve(&mut self, req: Request) -> bool {
        match req {
            Request::Shutdown => return false,
            Request::Panic => panic!("test panic requested"),
            Request::Load { source } => {
                self.send(Event::ModelLoading { source: source.clone() });
                self.model = None;
                let events = self.events.clone();
                let repaint = self.repaint.clone();
                let mut last = std::time::Instant::now() - std::time::Duration::from_secs(1);
                let observer: crate::model::hub::DownloadObserver = Box::new(move |file, done, total| {
                    // At most ~20 events a second (and always the last chunk).
                    if last.elapsed().as_millis() >= 50 || Some(done) == total {
                        last = std::time::Instant::now();
                        let _ = events.send(Event::Download { file: file.to_string(), done, total });
                        repaint();
                    }
                });
                let loaded = crate::model::hub::with_download_observer(observer, || VideoVla::load_source(&source, &candle_core::Device::Cpu));
                match loaded.and_then(|m| {
                    let stats = m.action_stats()?;
                    let info = crate::export::model_info(&m)?;
                    Ok((m, stats, info))
                }) {
                    Ok((m, stats, info)) => {
                        let s = ModelSummary {
                            source: source.clone(),
                            dir: m.dir.clone(),
                            name: m.config.name.clone(),
                            image_size: m.config.image_size,
                            num_frames: m.num_frames(),
                            action_length: m.config.dit.action_length,
                            num_robot_ids: m.config.dit.num_robot_ids,
                            default_params: m.default_params(),
                            stats,
                            info,
                        };
                        self.model = Some(m);
                        self.send(Event::ModelLoaded(Box::new(s)));
                    }
                    Err(e) => self.send(Event::Error { id: None, message: format!("loading {source}: {e:#}") }),
                }
            }
            Request::Predict { id, image, instruction, params } => {
                let Some(model) = self.model.as_mut() else {
                    self.send(Event::Error { id: Some(id), message: "no model is loaded".into() });
                    return true;
                };
                let t0 = Instant::now();
                let events = self.events.clone();
                let repaint = self.repaint.clone();
                let mut on_progress = |p: Progress| {
                    let e = match p {
                        Progress::Stage(stage) => Event::Stage { id, stage },
                        Progress::Step { step, steps, elapsed_ms, preview } => {
                            let done = (step + 1) as f64;
                            let eta_ms = elapsed_ms / done * (steps as f64 - done).max(0.0);
                            Event::Progress { id, step, steps, elapsed_ms, eta_ms, preview: preview.map(|p| p.to_vec()) }
                        }
                    };
                    let _ = events.send(e);
                    repaint();
                };
                match model.predict(&image, &instruction, &params, &mut on_progress, &self.cancel) {
                    Ok(p) => self.send(Event::Done {
                        id,
                        prediction: Arc::new(p),
                        wall_ms: t0.elapsed().as_secs_f64() * 1e3,
                    }),
                    Err(e) if e.is::<Cancelled>() => self.send(Event::Cancelled { id }),
                    Err(e) => self.send(Event::Error { id: Some(id), message: format!("{e:#}") }),
                }
            }
        }
        true
    }
}

impl Engine {
    /// Start the worker. `repaint` is called after every event.
    pub fn spawn(repaint: impl Fn() + Send + Sync + 'static) -> Engine {
        let (tx, req_rx) = crossbeam_channel::unbounded::<Request>();
        let (ev_tx, rx) = crossbeam_channel::unbounded::<Event>();
        let cancel = CancelToken::new();
        let mut worker = Worker { model: None, events: ev_tx, cancel: cancel.clone(), repaint: Arc::new(repaint) };
        let handle = std::thread::Builder::new()
            .name("videovla-engine".into())
            .spawn(move || {
                let mut last_source: Option<ModelSource> = None;
                while let Ok(req) = req_rx.recv() {
                    let id = match &req {
                        Request::Predict { id, .. } => Some(*id),
                        _ => None,
                    };
                    if let Request::Load { source } = &req {
                        last_source = Some(source.clone());
                    }
                    match std::panic::catch_unwind(AssertUnwindSafe(|| worker.serve(req))) {
                        Ok(true) => {}
                        Ok(false) => break,
                        Err(p) => {
                            let message = format!("the inference worker panicked: {}; it has recovered", panic_message(&*p));
                            // The model may be in a half-updated state: reload it.
                            worker.model = None;
                            if let Some(source) = &last_source {
                                worker.send(Event::ModelLoading { source: source.clone() });
                            }
                            worker.send(Event::Error { id, message });
                            if let Some(source) = last_source.clone() {
                                let _ = std::panic::catch_unwind(AssertUnwindSafe(|| worker.serve(Request::Load { source })));
                            }
                        }
                    }
                }
            })
            .expect("spawning the inference worker");
        Engine { tx, rx, cancel, handle: Some(handle) }
    }

    pub fn send(&self, req: Request) {
        if matches!(req, Request::Predict { .. }) {
            self.cancel.reset();
        }
        let _ = self.tx.send(req);
    }

    /// Stop the running prediction (within one denoising step).
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    /// The next event, if any (never blocks).
    pub fn try_recv(&self) -> Option<Event> {
        self.rx.try_recv().ok()
    }

    /// Wait up to `timeout` for the next event (tests, headless use).
    pub fn recv_timeout(&self, timeout: std::time::Duration) -> Option<Event> {
        self.rx.recv_timeout(timeout).ok()
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.cancel.cancel();
        let _ = self.tx.send(Request::Shutdown);
        // Do not join: a long step could block the UI while closing; the thread exits by itself.
        let _ = self.handle.take();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn tiny() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny_model")
    }

    fn wait<T>(e: &Engine, mut f: impl FnMut(Event) -> Option<T>) -> T {
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(120) {
            if let Some(ev) = e.recv_timeout(Duration::from_millis(200)) {
                if let Some(t) = f(ev) {
                    return t;
                }
            }
        }
        panic!("timed out waiting for the worker");
    }

    #[test]
    fn worker_predicts_cancels_and_survives_a_panic() {
        let e = Engine::spawn(|| {});
        e.send(Request::Load { source: ModelSource::Dir(tiny()) });
        let summary = wait(&e, |ev| match ev {
            Event::ModelLoaded(s) => Some(s),
            Event::Error { message, .. } => panic!("{message}"),
            _ => None,
        });
        let img = image::RgbImage::from_pixel(80, 64, image::Rgb([120, 30, 200]));
        let mut params = summary.default_params.clone();
        params.sampler.steps = 3;
        e.send(Request::Predict { id: 1, image: img.clone(), instruction: "pick up the red cube".into(), params: params.clone() });
        let mut steps_seen = 0;
        let pred = wait(&e, |ev| match ev {
            Event::Progress { id: 1, steps, .. } => {
                assert_eq!(steps, 3);
                steps_seen += 1;
                None
            }
            Event::Done { id: 1, prediction, .. } => Some(prediction),
            Event::Error { message, .. } => panic!("{message}"),
            _ => None,
        });
        assert_eq!(steps_seen, 3);
        assert_eq!(pred.samples[0].frames.len(), summary.num_frames);
        assert_eq!(pred.observation.dimensions(), (summary.image_size as u32, summary.image_size as u32));

        // A panic is reported and the worker keeps serving (it reloads the model).
        e.send(Request::Panic);
        let msg = wait(&e, |ev| match ev {
            Event::Error { message, .. } => Some(message),
            _ => None,
        });
        assert!(msg.contains("panicked"), "{msg}");
        wait(&e, |ev| matches!(ev, Event::ModelLoaded(_)).then_some(()));

        // Cancel: many steps, cancelled as soon as the first step is reported. Steps the worker
        // finished before the token was set may still sit in the channel (a loaded CI machine
        // lets it run ahead of this thread); after the token is set, at most the step in flight
        // may report.
        params.sampler.steps = 200;
        e.send(Request::Predict { id: 2, image: img, instruction: "lift the cube".into(), params });
        let mut after_cancel = 0;
        let mut queued_at_cancel = None;
        wait(&e, |ev| match ev {
            Event::Progress { id: 2, .. } => {
                if queued_at_cancel.is_some() {
                    after_cancel += 1;
                } else {
                    e.cancel();
                    queued_at_cancel = Some(e.rx.len());
                }
                None
            }
            Event::Cancelled { id: 2 } => Some(()),
            Event::Done { .. } => panic!("not cancelled"),
            _ => None,
        });
        let queued = queued_at_cancel.expect("no step was reported");
        assert!(after_cancel <= queued + 1, "{after_cancel} steps reported after cancel, {queued} were queued");
    }
}
