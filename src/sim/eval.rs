//! Closed-loop rollouts and success tables.

use serde::Serialize;

use super::policy::Policy;
use super::tasks::{Split, TaskKind};
use super::world::{Action, World};
use super::*;

/// How a policy is run.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct EpisodeConfig {
    /// Actions per planned chunk (the model predicts 6).
    pub chunk: usize,
    /// Actions executed from each chunk before re-planning (the paper executes 3).
    pub execute: usize,
    /// Rendered sub-frames per action.
    pub substeps: usize,
    /// Side of the square observation image.
    pub image_size: usize,
    /// Supersampling factor per axis for observations (and recorded frames).
    pub ssaa: usize,
    /// Stop after this many actions even if the task's own limit is later (0 = the task's limit);
    /// `sim record --max-actions` records just the start of many episodes.
    pub max_actions: usize,
}

impl Default for EpisodeConfig {
    fn default() -> Self {
        EpisodeConfig {
            chunk: 6,
            execute: 3,
            substeps: DEFAULT_SUBSTEPS,
            image_size: 64,
            ssaa: render::DEFAULT_SSAA,
            max_actions: 0,
        }
    }
}

impl EpisodeConfig {
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.chunk >= 1, "--chunk must be at least 1");
        anyhow::ensure!(
            (1..=self.chunk).contains(&self.execute),
            "--execute must be between 1 and --chunk ({}), got {}",
            self.chunk,
            self.execute
        );
        anyhow::ensure!((1..=64).contains(&self.substeps), "--substeps must be between 1 and 64");
        anyhow::ensure!((8..=1024).contains(&self.image_size), "--size must be between 8 and 1024");
        anyhow::ensure!((1..=8).contains(&self.ssaa), "--ssaa must be between 1 and 8");
        Ok(())
    }
}

/// The result of one episode.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EpisodeOutcome {
    pub task: TaskKind,
    pub split: Split,
    pub seed: u64,
    pub instruction: String,
    pub success: bool,
    /// Actions executed.
    pub steps: usize,
    /// Closest horizontal approach of the gripper to the target object (cm), over the reset
    /// state and the state after every executed action.
    pub closest_cm: f32,
    /// Whether the gripper held the target at some point.
    pub grasped: bool,
    #[serde(skip)]
    pub actions: Vec<Action>,
}

/// Run `policy` closed loop in `world` until success or the task's step limit.
/// `on_frame` sees the reset state and then every sub-frame.
pub fn run_episode(
    world: &mut World,
    policy: &mut dyn Policy,
    cfg: &EpisodeConfig,
    mut on_frame: impl FnMut(&World),
) -> anyhow::Result<EpisodeOutcome> {
    world.substeps = cfg.substeps;
    policy.reset(world.seed);
    on_frame(world);
    let max = match cfg.max_actions {
        0 => world.task.kind.max_steps(),
        k => k.min(world.task.kind.max_steps()),
    };
    let mut actions = Vec::new();
    let mut renderer = render::Renderer::new(render::Camera::default(), cfg.ssaa);
    let mut progress = Progress::default();
    progress.observe(world);
    'episode: while world.steps < max && !world.success() {
        let size = if policy.needs_image() { cfg.image_size } else { 0 };
        let obs = world.observation_with(&mut renderer, size);
        let chunk = policy.act(&obs)?;
        anyhow::ensure!(!chunk.is_empty(), "policy {} returned an empty action chunk", policy.name());
        for a in chunk.iter().take(cfg.execute) {
            world.step_with(a, &mut on_frame)?;
            actions.push(*a);
            progress.observe(world);
            if world.success() || world.steps >= max {
                break 'episode;
            }
        }
    }
    Ok(EpisodeOutcome {
        task: world.task.kind,
        split: world.split,
        seed: world.seed,
        instruction: world.instruction().to_string(),
        success: world.success(),
        steps: world.steps,
        closest_cm: (progress.closest * 1000.0).round() / 10.0,
        grasped: progress.grasped,
        actions,
    })
}

/// Horizontal distance (m) within which an episode counts as having reached its target.
pub const REACH_TOL: f32 = 0.02;

/// How far a (failed) episode got: closest approach to the target and whether it was held.
struct Progress {
    closest: f32,
    grasped: bool,
}

impl Default for Progress {
    fn default() -> Self {
        Progress { closest: f32::INFINITY, grasped: false }
    }
}

impl Progress {
    fn observe(&mut self, w: &World) {
        let target = w.task.target;
        self.closest = self.closest.min(w.gripper.pos.dist_xy(w.objects[target].pos));
        self.grasped |= w.gripper.held == Some(target);
    }
}

/// Task of the `i`-th episode when cycling through all tasks.
pub fn task_for(i: u64) -> TaskKind {
    TaskKind::ALL[(i % TaskKind::ALL.len() as u64) as usize]
}

/// Success counts for one (task, split) cell.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Cell {
    pub task: String,
    pub split: String,
    pub episodes: usize,
    pub successes: usize,
    /// Percent.
    pub success_rate: f64,
    /// Mean actions per successful episode (0 if none succeeded).
    pub mean_success_steps: f64,
    /// Episodes whose gripper came within [`REACH_TOL`] of the target (horizontally).
    pub reached: usize,
    /// Episodes whose gripper held the target at some point.
    pub grasped: usize,
    /// Mean closest horizontal approach to the target (cm).
    pub mean_closest_cm: f64,
}

/// Everything `videovla sim eval` reports (also its `--json` output).
#[derive(Clone, Debug, Serialize)]
pub struct EvalReport {
    pub policy: String,
    pub seed: u64,
    pub episodes_per_split: usize,
    pub config: EpisodeConfig,
    /// One cell per task and split, plus task `"all"` per split.
    pub results: Vec<Cell>,
    pub episodes: Vec<EpisodeOutcome>,
}

/// The episodes of an evaluation in report order: split-major, tasks cycling pick, stack, place.
fn schedule(splits: &[Split], episodes: usize) -> Vec<(Split, u64)> {
    splits.iter().flat_map(|&s| (0..episodes as u64).map(move |i| (s, i))).collect()
}

fn run_scheduled(
    policy: &mut dyn Policy,
    (split, i): (Split, u64),
    seed: u64,
    cfg: &EpisodeConfig,
) -> anyhow::Result<EpisodeOutcome> {
    let mut w = World::reset(task_for(i), split, seed + i);
    run_episode(&mut w, policy, cfg, |_| {})
}

fn report(policy: String, seed: u64, episodes: usize, cfg: &EpisodeConfig, splits: &[Split], outcomes: Vec<EpisodeOutcome>) -> EvalReport {
    EvalReport {
        policy,
        seed,
        episodes_per_split: episodes,
        config: *cfg,
        results: tabulate(&outcomes, splits),
        episodes: outcomes,
    }
}

/// Evaluate `policy` on `episodes` episodes of each split (tasks cycle pick, stack, place).
pub fn evaluate(
    policy: &mut dyn Policy,
    splits: &[Split],
    episodes: usize,
    seed: u64,
    cfg: &EpisodeConfig,
    mut progress: impl FnMut(),
) -> anyhow::Result<EvalReport> {
    let mut outcomes = Vec::with_capacity(episodes * splits.len());
    for job in schedule(splits, episodes) {
        outcomes.push(run_scheduled(policy, job, seed, cfg)?);
        progress();
    }
    Ok(report(policy.name(), seed, episodes, cfg, splits, outcomes))
}

/// [`evaluate`] with the episodes spread over `jobs` jobs: one runs `policy`, each of the other
/// `jobs - 1` its own policy from `make_policy` (a model policy loads its weights once per job).
/// Each job has a rayon pool of its own with `threads_per_job` threads — candle's CPU ops run on
/// rayon, and jobs sharing one pool wait on each other. Every policy resets from the episode's
/// seed, so the report is the one [`evaluate`] gives, in the same order — up to the floating-point
/// rounding of a model's thread count.
#[allow(clippy::too_many_arguments)]
pub fn evaluate_parallel(
    jobs: usize,
    threads_per_job: usize,
    policy: &mut dyn Policy,
    make_policy: impl Fn() -> anyhow::Result<Box<dyn Policy>> + Sync,
    splits: &[Split],
    episodes: usize,
    seed: u64,
    cfg: &EpisodeConfig,
    progress: impl Fn() + Sync,
) -> anyhow::Result<EvalReport> {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Mutex;
    let todo = schedule(splits, episodes);
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let done: Mutex<Vec<Option<EpisodeOutcome>>> = Mutex::new((0..todo.len()).map(|_| None).collect());
    // Takes episodes until none is left or another thread failed.
    let work = |policy: &mut dyn Policy| -> anyhow::Result<()> {
        while !failed.load(Ordering::Relaxed) {
            let k = next.fetch_add(1, Ordering::Relaxed);
            let Some(&job) = todo.get(k) else { break };
            let outcome = run_scheduled(policy, job, seed, cfg).inspect_err(|_| failed.store(true, Ordering::Relaxed))?;
            done.lock().unwrap_or_else(|e| e.into_inner())[k] = Some(outcome);
            progress();
        }
        Ok(())
    };
    let jobs = jobs.clamp(1, todo.len().max(1));
    let pools = (0..jobs)
        .map(|_| rayon::ThreadPoolBuilder::new().num_threads(threads_per_job.max(1)).build())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("cannot start the evaluation threads: {e}"))?;
    let (work, make_policy, failed) = (&work, &make_policy, &failed);
    std::thread::scope(|s| -> anyhow::Result<()> {
        let handles: Vec<_> = pools[1..]
            .iter()
            .map(|pool| {
                s.spawn(move || {
                    pool.install(|| {
                        let mut own = make_policy().inspect_err(|_| failed.store(true, Ordering::Relaxed))?;
                        work(own.as_mut())
                    })
                })
            })
            .collect();
        let mine = pools[0].install(|| work(&mut *policy));
        for h in handles {
            h.join().unwrap_or_else(|_| Err(anyhow::anyhow!("an evaluation thread panicked")))?;
        }
        mine
    })?;
    let outcomes = done.into_inner().unwrap_or_else(|e| e.into_inner());
    let outcomes: Vec<EpisodeOutcome> = outcomes.into_iter().map(|o| o.expect("every scheduled episode ran")).collect();
    Ok(report(policy.name(), seed, episodes, cfg, splits, outcomes))
}

fn tabulate(outcomes: &[EpisodeOutcome], splits: &[Split]) -> Vec<Cell> {
    let mut cells = Vec::new();
    for &split in splits {
        let tasks = TaskKind::ALL.iter().map(|t| (t.name(), Some(*t))).chain([("all", None)]);
        for (name, task) in tasks {
            let sel: Vec<&EpisodeOutcome> = outcomes
                .iter()
                .filter(|o| o.split == split && task.is_none_or(|t| o.task == t))
                .collect();
            let successes = sel.iter().filter(|o| o.success).count();
            let ok_steps: usize = sel.iter().filter(|o| o.success).map(|o| o.steps).sum();
            let mean_steps = if successes == 0 { 0.0 } else { ok_steps as f64 / successes as f64 };
            let rate = if sel.is_empty() { 0.0 } else { 100.0 * successes as f64 / sel.len() as f64 };
            let closest = sel.iter().map(|o| o.closest_cm as f64).sum::<f64>() / sel.len().max(1) as f64;
            cells.push(Cell {
                task: name.into(),
                split: split.name().into(),
                episodes: sel.len(),
                successes,
                success_rate: (rate * 10.0).round() / 10.0,
                mean_success_steps: (mean_steps * 10.0).round() / 10.0,
                reached: sel.iter().filter(|o| o.closest_cm <= REACH_TOL * 100.0).count(),
                grasped: sel.iter().filter(|o| o.grasped).count(),
                mean_closest_cm: (closest * 10.0).round() / 10.0,
            });
        }
    }
    cells
}

impl EvalReport {
    /// A paper-style table: one row per task, one column per split.
    pub fn table(&self) -> String {
        // Column width: the progress cells ("reached/n grasped/n closest cm") are the widest.
        const W: usize = 23;
        let splits: Vec<String> = {
            let mut s: Vec<String> = Vec::new();
            for c in &self.results {
                if !s.contains(&c.split) {
                    s.push(c.split.clone());
                }
            }
            s
        };
        let mut out = format!(
            "policy {} | {} episodes per split from seed {} | chunk {}, execute {}, substeps {}\n",
            self.policy,
            self.episodes_per_split,
            self.seed,
            self.config.chunk,
            self.config.execute,
            self.config.substeps
        );
        out += &format!("{:<8}", "task");
        for s in &splits {
            out += &format!(" | {s:>W$}");
        }
        out.push('\n');
        out += &"-".repeat(8 + splits.len() * (W + 3));
        out.push('\n');
        for task in TaskKind::ALL.iter().map(|t| t.name()).chain(["all"]) {
            out += &format!("{task:<8}");
            for s in &splits {
                match self.results.iter().find(|c| c.task == task && &c.split == s) {
                    Some(c) => {
                        let cell = format!("{:>6.1}% ({:>4}/{:<4})", c.success_rate, c.successes, c.episodes);
                        out += &format!(" | {cell:>W$}");
                    }
                    None => out += &format!(" | {:>W$}", "-"),
                }
            }
            out.push('\n');
        }
        out += &format!(
            "progress: reached the target (within {:.0} cm) / grasped it / mean closest approach\n",
            REACH_TOL * 100.0
        );
        for task in TaskKind::ALL.iter().map(|t| t.name()).chain(["all"]) {
            out += &format!("{task:<8}");
            for s in &splits {
                match self.results.iter().find(|c| c.task == task && &c.split == s) {
                    Some(c) => {
                        let g = format!("{:>3}/{:<3} {:>3}/{:<3} {:>4.1} cm", c.reached, c.episodes, c.grasped, c.episodes, c.mean_closest_cm);
                        out += &format!(" | {g:>W$}");
                    }
                    None => out += &format!(" | {:>W$}", "-"),
                }
            }
            out.push('\n');
        }
        out
    }
}
