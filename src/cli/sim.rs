//! `videovla sim ...`: the built-in tabletop robot.
//!
//! The action convention (7-D, units, limits, frames) is documented in the
//! module docs of `videovla::sim` (src/sim/mod.rs).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::sim::dataset::{self, RecordConfig};
use crate::sim::eval::{self, EpisodeConfig};
use crate::sim::render::{Camera, Renderer};
use crate::sim::tasks::TaskRequest;
use crate::sim::{make_policy, Split, World, EVAL_SEED_START};

const CONVENTION: &str = "Action = [droll, dpitch, dyaw (rad), dx, dy, dz (m, base frame), gripper (1 open, 0 closed)], \
clipped per action to ±0.25 rad and ±0.04 m; each action is rendered as --substeps sub-frames. \
Full convention, limits and frames: module docs of videovla::sim (src/sim/mod.rs).";

#[derive(Args, Debug)]
#[command(about = "The built-in tabletop robot: record datasets, evaluate policies, show rollouts", after_help = CONVENTION)]
pub struct SimArgs {
    #[command(subcommand)]
    pub command: SimCommand,
}

#[derive(Subcommand, Debug)]
pub enum SimCommand {
    /// Record expert demonstrations as safetensors shards + meta.json (format: src/sim/dataset.rs).
    #[command(after_help = CONVENTION)]
    Record(RecordArgs),
    /// Run a policy closed loop and print a success table per task and split.
    #[command(after_help = CONVENTION)]
    Eval(EvalArgs),
    /// Save one rollout as an animated GIF (or a PNG contact sheet if FILE ends in .png).
    #[command(after_help = CONVENTION)]
    Show(ShowArgs),
    /// Measure step+render throughput and dataset recording speed (single thread).
    Bench(BenchArgs),
    /// Imagination quality of a model: PSNR/SSIM of its imagined 49 frames against the frames
    /// rendered when its predicted actions are executed.
    #[command(after_help = CONVENTION)]
    Imagine(ImagineArgs),
    /// Play the robot for a policy server in another process (`videovla serve`, or any openpi
    /// server): closed loop over the websocket, streaming every rendered frame.
    #[command(after_help = CONVENTION)]
    Connect(ConnectArgs),
}

#[derive(Args, Debug)]
pub struct ConnectArgs {
    /// The policy server, e.g. ws://127.0.0.1:8000
    pub url: String,
    /// Task: pick, stack, place, or a sentence naming the objects.
    #[arg(long, default_value = "pick")]
    pub task: String,
    #[arg(long, default_value_t = EVAL_SEED_START)]
    pub seed: u64,
    /// Episodes (seeds seed, seed+1, ...).
    #[arg(long, default_value_t = 1)]
    pub episodes: usize,
    /// train or novel.
    #[arg(long, default_value = "train")]
    pub split: String,
    /// Sent as `Authorization: Api-Key <KEY>`.
    #[arg(long)]
    pub api_key: Option<String>,
    /// Do not stream the intermediate frames (behave like a plain openpi client).
    #[arg(long)]
    pub no_stream: bool,
    /// Save the first episode as a GIF here.
    #[arg(long)]
    pub gif: Option<PathBuf>,
    #[command(flatten)]
    pub looping: LoopArgs,
}

#[derive(Args, Debug)]
pub struct ImagineArgs {
    /// Model directory.
    #[arg(long)]
    pub policy: PathBuf,
    /// Episodes per split (tasks cycle pick, stack, place).
    #[arg(long, default_value_t = 30)]
    pub episodes: usize,
    /// train, novel or all.
    #[arg(long, default_value = "all")]
    pub split: String,
    /// First episode seed (evaluation seeds start at 1000000).
    #[arg(long, default_value_t = EVAL_SEED_START)]
    pub seed: u64,
    /// Re-planning points compared per episode.
    #[arg(long, default_value_t = 2)]
    pub plans: usize,
    /// Also write the report as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Save "imagined | executed" GIFs of the first samples here.
    #[arg(long)]
    pub gif_dir: Option<PathBuf>,
    #[command(flatten)]
    pub looping: LoopArgs,
}

#[derive(Args, Debug, Clone)]
pub struct LoopArgs {
    /// Actions per planned chunk.
    #[arg(long, default_value_t = 6)]
    pub chunk: usize,
    /// Actions executed from each chunk before re-planning.
    #[arg(long, default_value_t = 3)]
    pub execute: usize,
    /// Rendered sub-frames per action (6 actions × 8 + 1 = 49 frames).
    #[arg(long, default_value_t = 8)]
    pub substeps: usize,
    /// Image side in pixels (observations and recorded frames).
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// Supersampling factor per axis (anti-aliasing, so sub-pixel motion shows; 1 = off).
    #[arg(long, default_value_t = crate::sim::render::DEFAULT_SSAA)]
    pub ssaa: usize,
}

impl LoopArgs {
    fn config(&self) -> anyhow::Result<EpisodeConfig> {
        let c = EpisodeConfig {
            chunk: self.chunk,
            execute: self.execute,
            substeps: self.substeps,
            image_size: self.size,
            ssaa: self.ssaa,
            max_actions: 0,
        };
        c.validate()?;
        Ok(c)
    }
}

#[derive(Args, Debug)]
pub struct RecordArgs {
    /// Number of episodes (tasks cycle pick, stack, place).
    #[arg(long, default_value_t = 100)]
    pub episodes: usize,
    /// train (in-domain objects, seeds < 1000000) or novel (held-out objects, seeds >= 1000000).
    #[arg(long, default_value = "train")]
    pub split: String,
    /// First episode seed; episode i uses seed + i.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output directory.
    #[arg(long)]
    pub out: PathBuf,
    /// Episodes per safetensors shard.
    #[arg(long, default_value_t = 100)]
    pub shard_episodes: usize,
    /// Replace an existing dataset in --out.
    #[arg(long)]
    pub overwrite: bool,
    /// Probability per plan of pushing the expert 1–3 steps off course, so the data shows
    /// recoveries (0 = the plain expert).
    #[arg(long, default_value_t = 0.0)]
    pub perturb: f64,
    /// Cut every episode after this many actions (0 = run each to success or its task's limit):
    /// the start of many scenes — the approach, where a policy learns which object the words
    /// name — for the price of a few frames each. `meta.json` records it; the training loader
    /// takes only windows that end inside a cut episode.
    #[arg(long, default_value_t = 0)]
    pub max_actions: usize,
    /// The demonstrating expert: waypoints (align above the object, then descend) or funnel
    /// (descend while aligning; see README "Embedded model").
    #[arg(long, default_value = "waypoints")]
    pub expert: String,
    /// Hand-over data (DAgger-style): this policy (a model folder, random, ws://…) drives each
    /// episode for 0..=--lead-plans plans first, then the expert takes over from the state it left;
    /// only the expert's part is recorded, so the demonstrations start where the policy goes.
    #[arg(long)]
    pub lead: Option<String>,
    /// With --lead: the most plans the lead policy drives (drawn uniformly per episode).
    #[arg(long, default_value_t = 8)]
    pub lead_plans: usize,
    #[command(flatten)]
    pub looping: LoopArgs,
}

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// expert, expert:P (perturbed), expert-funnel[:P] (the funnel-style expert), random, a model
    /// directory, or an openpi policy server
    /// (ws://host:port: `videovla serve` or any openpi server; one connection per job; an API key
    /// from the VIDEOVLA_API_KEY environment variable).
    #[arg(long)]
    pub policy: String,
    /// Episodes per split (tasks cycle pick, stack, place).
    #[arg(long, default_value_t = 200)]
    pub episodes: usize,
    /// train, novel or all.
    #[arg(long, default_value = "all")]
    pub split: String,
    /// First episode seed (evaluation seeds start at 1000000).
    #[arg(long, default_value_t = EVAL_SEED_START)]
    pub seed: u64,
    /// Also write the report as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Run episodes in this many threads, each with its own copy of the policy (a model policy
    /// loads its weights once per job). With more than one job each model runs on
    /// cores / jobs threads unless RAYON_NUM_THREADS says otherwise. The report does not depend on it.
    #[arg(long, default_value_t = 1)]
    pub jobs: usize,
    #[command(flatten)]
    pub looping: LoopArgs,
}

#[derive(Args, Debug)]
pub struct ShowArgs {
    /// Task: pick, stack, place, or a sentence naming the objects, e.g.
    /// "put the red cube on the blue bar" (the scene is built around them).
    #[arg(long, default_value = "stack")]
    pub task: String,
    #[arg(long, default_value_t = EVAL_SEED_START)]
    pub seed: u64,
    /// train or novel.
    #[arg(long, default_value = "train")]
    pub split: String,
    /// expert, expert:P (pushed off course with probability P, as `sim record --perturb P`), random, or
    /// a model folder (e.g. models/tiny-sim), or an openpi policy server (ws://host:port): the
    /// same policy and seeds as `sim eval`.
    #[arg(long, default_value = "expert")]
    pub policy: String,
    /// Output file (.gif, or .png for a contact sheet of every action's frame).
    #[arg(long)]
    pub out: PathBuf,
    /// Milliseconds per GIF frame.
    #[arg(long, default_value_t = 40)]
    pub delay_ms: u32,
    /// Enlarge each pixel N×N in the output (to look at small observations).
    #[arg(long, default_value_t = 1)]
    pub upscale: usize,
    #[command(flatten)]
    pub looping: LoopArgs,
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Image side in pixels.
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// Sub-frames (physics sub-step + render) to time.
    #[arg(long, default_value_t = 20000)]
    pub frames: usize,
    /// Expert episodes to record for the recording benchmark (0 = skip).
    #[arg(long, default_value_t = 100)]
    pub episodes: usize,
    /// Supersampling factor for the recording benchmark (as `sim record --ssaa`).
    #[arg(long, default_value_t = 2)]
    pub ssaa: usize,
}

pub fn run(args: SimArgs) -> anyhow::Result<()> {
    match args.command {
        SimCommand::Record(a) => record(a),
        SimCommand::Eval(a) => eval_cmd(a),
        SimCommand::Show(a) => show(a),
        SimCommand::Bench(a) => bench(a),
        SimCommand::Imagine(a) => imagine(a),
        SimCommand::Connect(a) => connect(a),
    }
}

fn connect(a: ConnectArgs) -> anyhow::Result<()> {
    let request: TaskRequest = a.task.parse()?;
    let split: Split = a.split.parse()?;
    let cfg = a.looping.config()?;
    anyhow::ensure!(a.episodes >= 1, "--episodes must be at least 1");
    let mut policy = crate::sim::remote_policy::RemotePolicy::connect(&a.url, a.api_key.as_deref())?;
    let meta = policy.metadata();
    let model = crate::robot::msgpack::get(&meta, "model").and_then(|v| v.as_str().map(str::to_string)).unwrap_or_else(|| "?".into());
    outln!("connected to {} (model: {model})", a.url);
    let mut successes = 0;
    for i in 0..a.episodes {
        let seed = a.seed + i as u64;
        let mut world = World::reset_request(&request, split, seed);
        let mut stream = policy.frame_streamer(cfg.image_size, cfg.substeps, cfg.ssaa);
        let mut gif_frames: Vec<image::RgbImage> = Vec::new();
        let mut renderer = Renderer::new(Camera::default(), cfg.ssaa);
        let mut buf = Vec::new();
        let want_gif = i == 0 && a.gif.is_some();
        let out = eval::run_episode(&mut world, &mut policy, &cfg, |w| {
            if !a.no_stream {
                stream(w);
            }
            if want_gif {
                renderer.render_into(w, cfg.image_size, cfg.image_size, &mut buf);
                gif_frames.push(image::RgbImage::from_raw(cfg.image_size as u32, cfg.image_size as u32, buf.clone()).expect("rendered size"));
            }
        })?;
        successes += out.success as usize;
        outln!(
            "episode {} (seed {seed}, {:?}): {} after {} actions",
            i + 1,
            out.instruction,
            if out.success { "SUCCESS" } else { "failure" },
            out.steps
        );
        if let (true, Some(path)) = (want_gif, &a.gif) {
            crate::export::write_gif(path, &gif_frames, 25.0)?;
            outln!("wrote {}", path.display());
        }
    }
    policy.close();
    let ms = &policy.infer_ms;
    let mut sorted = ms.clone();
    sorted.sort_by(f64::total_cmp);
    outln!(
        "{successes}/{} episodes succeeded; {} requests, round trip median {:.0} ms",
        a.episodes,
        policy.requests,
        sorted.get(sorted.len() / 2).copied().unwrap_or(0.0)
    );
    Ok(())
}

fn progress_bar(n: usize, what: &str) -> indicatif::ProgressBar {
    let pb = indicatif::ProgressBar::new(n as u64);
    if let Ok(style) = indicatif::ProgressStyle::with_template(&format!(
        "{what} [{{elapsed_precise}}] {{bar:40}} {{pos}}/{{len}} ({{per_sec}}, eta {{eta}})"
    )) {
        pb.set_style(style);
    }
    pb
}

fn record(a: RecordArgs) -> anyhow::Result<()> {
    let split: Split = a.split.parse()?;
    anyhow::ensure!(a.episodes > 0, "--episodes must be at least 1");
    let end = a.seed.checked_add(a.episodes as u64).context("--seed + --episodes overflows")?;
    match split {
        Split::Train => anyhow::ensure!(
            end <= EVAL_SEED_START,
            "training seeds must stay below {EVAL_SEED_START} (evaluation range); lower --seed or --episodes"
        ),
        Split::Novel => anyhow::ensure!(
            a.seed >= EVAL_SEED_START,
            "novel-object data is for evaluation only; use --seed {EVAL_SEED_START} or higher"
        ),
    }
    let meta_path = a.out.join("meta.json");
    anyhow::ensure!(
        a.overwrite || !meta_path.exists(),
        "{} already holds a dataset; pass --overwrite or choose another --out",
        a.out.display()
    );
    let cfg = RecordConfig {
        episodes: a.episodes,
        split,
        seed: a.seed,
        out: a.out.clone(),
        size: a.looping.size,
        episode: EpisodeConfig { max_actions: a.max_actions, ..a.looping.config()? },
        episodes_per_shard: a.shard_episodes,
        perturb: a.perturb,
        expert: crate::sim::expert::ExpertStyle::parse(&a.expert)?,
        lead: a.lead.clone().map(|policy| dataset::Lead { policy, max_plans: a.lead_plans }),
    };
    let t0 = Instant::now();
    let pb = progress_bar(a.episodes, "recording");
    let meta = dataset::record(&cfg, || pb.inc(1))?;
    pb.finish_and_clear();
    let frames: usize = meta.episodes.iter().map(|e| e.frame_count).sum();
    let ok = meta.episodes.iter().filter(|e| e.success).count();
    outln!(
        "recorded {} episodes ({} successful, {} frames of {}x{}) in {} shard(s) to {} in {:.1} s",
        meta.episodes.len(),
        ok,
        frames,
        cfg.size,
        cfg.size,
        meta.shards.len(),
        a.out.display(),
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}

fn parse_splits(s: &str) -> anyhow::Result<Vec<Split>> {
    if s.trim().eq_ignore_ascii_case("all") {
        return Ok(Split::ALL.to_vec());
    }
    s.parse::<Split>().map(|x| vec![x]).map_err(|_| anyhow::anyhow!("unknown split {s:?}; valid splits: train, novel, all"))
}

fn eval_cmd(a: EvalArgs) -> anyhow::Result<()> {
    let splits = parse_splits(&a.split)?;
    let cfg = a.looping.config()?;
    anyhow::ensure!(a.episodes > 0, "--episodes must be at least 1");
    a.seed.checked_add(a.episodes as u64).context("--seed + --episodes overflows; use a smaller --seed")?;
    if a.seed < EVAL_SEED_START {
        tracing::warn!("seeds below {EVAL_SEED_START} are the training range; results may be optimistic");
    }
    anyhow::ensure!((1..=256).contains(&a.jobs), "--jobs must be between 1 and 256, got {}", a.jobs);
    // Threads per job: RAYON_NUM_THREADS if set, else the cores shared out. candle sizes its
    // matrix products by RAYON_NUM_THREADS, so it is set before any model code runs.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per_job = match std::env::var("RAYON_NUM_THREADS").ok().and_then(|v| v.parse::<usize>().ok()) {
        Some(n) if n > 0 => n,
        _ => (cores / a.jobs).max(1),
    };
    std::env::set_var("RAYON_NUM_THREADS", per_job.to_string());
    // Built before the progress bar appears, so a bad --policy fails at once; the other jobs build theirs.
    let mut policy = make_policy(&a.policy, cfg.chunk, a.seed)?;
    let make = || make_policy(&a.policy, cfg.chunk, a.seed);
    let pb = progress_bar(a.episodes * splits.len(), "evaluating");
    let report = eval::evaluate_parallel(a.jobs, per_job, policy.as_mut(), make, &splits, a.episodes, a.seed, &cfg, || pb.inc(1))?;
    pb.finish_and_clear();
    outln!("{}", report.table().trim_end());
    if let Some(path) = &a.json {
        let json = serde_json::to_vec_pretty(&report)?;
        dataset::write_atomic(path, &json)?;
        outln!("wrote {}", path.display());
    }
    Ok(())
}

fn show(a: ShowArgs) -> anyhow::Result<()> {
    let request: TaskRequest = a.task.parse()?;
    let split: Split = a.split.parse()?;
    let cfg = a.looping.config()?;
    let ext = a.out.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    anyhow::ensure!(ext == "gif" || ext == "png", "--out must end in .gif or .png, got {}", a.out.display());
    let mut policy = make_policy(&a.policy, cfg.chunk, a.seed)?;
    let mut world = World::reset_request(&request, split, a.seed);
    let mut renderer = Renderer::new(Camera::default(), cfg.ssaa);
    anyhow::ensure!((1..=16).contains(&a.upscale), "--upscale must be between 1 and 16");
    let mut frames: Vec<Vec<u8>> = Vec::new();
    let mut buf = Vec::new();
    let (n, up) = (cfg.image_size, a.upscale);
    let size = n * up;
    let outcome = eval::run_episode(&mut world, policy.as_mut(), &cfg, |w| {
        renderer.render_into(w, n, n, &mut buf);
        let mut big = Vec::with_capacity(size * size * 3);
        for y in 0..size {
            for x in 0..size {
                let i = ((y / up) * n + x / up) * 3;
                big.extend_from_slice(&buf[i..i + 3]);
            }
        }
        frames.push(big);
    })?;
    outln!(
        "{:?} task, seed {}: \"{}\" — {} after {} actions ({} frames)",
        request.kind,
        a.seed,
        outcome.instruction,
        if outcome.success { "success" } else { "failure" },
        outcome.steps,
        frames.len()
    );
    if ext == "png" {
        let picked: Vec<&Vec<u8>> = frames.iter().step_by(cfg.substeps).collect();
        let cols = 8usize.min(picked.len()).max(1);
        let rows = picked.len().div_ceil(cols);
        let mut sheet = image::RgbImage::new((cols * size) as u32, (rows * size) as u32);
        for (i, f) in picked.iter().enumerate() {
            let (ox, oy) = ((i % cols) * size, (i / cols) * size);
            for y in 0..size {
                for x in 0..size {
                    let p = &f[(y * size + x) * 3..(y * size + x) * 3 + 3];
                    sheet.put_pixel((ox + x) as u32, (oy + y) as u32, image::Rgb([p[0], p[1], p[2]]));
                }
            }
        }
        sheet.save(&a.out).with_context(|| format!("cannot write {}", a.out.display()))?;
    } else {
        write_gif(&a.out, &frames, size, a.delay_ms)?;
    }
    outln!("wrote {}", a.out.display());
    Ok(())
}

fn write_gif(path: &std::path::Path, frames: &[Vec<u8>], size: usize, delay_ms: u32) -> anyhow::Result<()> {
    use image::codecs::gif::{GifEncoder, Repeat};
    let mut bytes = Vec::new();
    {
        let mut enc = GifEncoder::new_with_speed(&mut bytes, 10);
        enc.set_repeat(Repeat::Infinite)?;
        for f in frames {
            let rgba: Vec<u8> = f.chunks_exact(3).flat_map(|p| [p[0], p[1], p[2], 255]).collect();
            let img = image::RgbaImage::from_raw(size as u32, size as u32, rgba).context("frame size mismatch")?;
            let delay = image::Delay::from_numer_denom_ms(delay_ms, 1);
            enc.encode_frame(image::Frame::from_parts(img, 0, 0, delay))?;
        }
    }
    dataset::write_atomic(path, &bytes)
}

/// Time `n` units of expert-driven simulation at `size`² with supersampling `ssaa`.
/// `every_substep`: render every sub-frame (a unit = one sub-frame) or once per
/// action (a unit = one action + one observation). Returns units per second.
fn bench_loop(size: usize, ssaa: usize, n: usize, every_substep: bool) -> anyhow::Result<f64> {
    let mut renderer = Renderer::new(Camera::default(), ssaa);
    let mut buf = Vec::new();
    let mut checksum = 0u64;
    let (mut ep, mut done) = (0u64, 0usize);
    let mut world = World::reset(eval::task_for(ep), Split::Train, ep);
    let t0 = Instant::now();
    while done < n {
        if world.success() || world.steps >= world.task.kind.max_steps() {
            ep += 1;
            world = World::reset(eval::task_for(ep), Split::Train, ep);
        }
        let act = crate::sim::expert_action(&world);
        if every_substep {
            world.step_with(&act, |w| {
                renderer.render_into(w, size, size, &mut buf);
                checksum = checksum.wrapping_add(buf[buf.len() / 2] as u64);
                done += 1;
            })?;
        } else {
            world.step(&act)?;
            renderer.render_into(&world, size, size, &mut buf);
            checksum = checksum.wrapping_add(buf[buf.len() / 2] as u64);
            done += 1;
        }
    }
    let rate = done as f64 / t0.elapsed().as_secs_f64();
    tracing::debug!("bench checksum {checksum}");
    Ok(rate)
}

fn bench(a: BenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(a.frames > 0, "--frames must be at least 1");
    anyhow::ensure!((1..=8).contains(&a.ssaa), "--ssaa must be between 1 and 8");
    let sub = crate::sim::DEFAULT_SUBSTEPS;
    outln!("single thread, {}x{}, expert-driven episodes, {} sub-frames per action", a.size, a.size, sub);
    for ssaa in if a.ssaa == 1 { vec![1] } else { vec![1, a.ssaa] } {
        let per_frame = bench_loop(a.size, ssaa, a.frames, true)?;
        let closed = bench_loop(a.size, ssaa, a.frames / sub, false)?;
        outln!(
            "ssaa {ssaa}: physics sub-step + render {per_frame:.0}/s (= {:.0} actions/s with every sub-frame rendered); \
             closed loop, 1 action ({sub} physics sub-steps) + 1 observation render: {closed:.0}/s",
            per_frame / sub as f64
        );
    }
    if a.episodes > 0 {
        let dir = std::env::temp_dir().join(format!("videovla-sim-bench-{}", std::process::id()));
        let cfg = RecordConfig {
            episodes: a.episodes,
            split: Split::Train,
            seed: 0,
            out: dir.clone(),
            size: a.size,
            episode: EpisodeConfig { image_size: a.size, ssaa: a.ssaa, ..EpisodeConfig::default() },
            episodes_per_shard: 100,
            perturb: 0.0,
            expert: Default::default(),
            lead: None,
        };
        let t2 = Instant::now();
        let meta = dataset::record(&cfg, || {})?;
        let dt2 = t2.elapsed().as_secs_f64();
        let frames: usize = meta.episodes.iter().map(|e| e.frame_count).sum();
        let bytes: u64 = std::fs::read_dir(&dir)?.filter_map(|e| e.ok()?.metadata().ok()).map(|m| m.len()).sum();
        let _ = std::fs::remove_dir_all(&dir);
        outln!(
            "record {} expert episodes at {}x{} (ssaa {}): {:.2} s ({} frames, {:.1} MB) → 1000 episodes ≈ {:.0} s",
            a.episodes,
            a.size,
            a.size,
            a.ssaa,
            dt2,
            frames,
            bytes as f64 / 1e6,
            dt2 * 1000.0 / a.episodes as f64
        );
    }
    Ok(())
}

fn imagine(a: ImagineArgs) -> anyhow::Result<()> {
    use crate::sim::imagine::evaluate_imagination;
    use crate::sim::model_policy::ModelPolicy;
    let splits = parse_splits(&a.split)?;
    let cfg = a.looping.config()?;
    anyhow::ensure!(a.episodes > 0 && a.plans > 0, "--episodes and --plans must be at least 1");
    let mut policy = ModelPolicy::load(&a.policy, cfg.chunk, a.seed)?;
    if let Some(d) = &a.gif_dir {
        std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
    }
    let mut reports = Vec::new();
    let mut saved = 0;
    for split in splits {
        let pb = progress_bar(a.episodes * a.plans, &format!("imagining ({})", split.name()));
        let r = evaluate_imagination(&mut policy, split, a.episodes, a.seed, a.plans, &cfg, |s, imagined, real| {
            pb.inc(1);
            if let (Some(d), true) = (&a.gif_dir, saved < 12) {
                saved += 1;
                let frames: Vec<image::RgbImage> = imagined
                    .iter()
                    .zip(real)
                    .map(|(x, y)| {
                        let mut f = image::RgbImage::new(x.width() * 2, x.height());
                        image::imageops::replace(&mut f, x, 0, 0);
                        image::imageops::replace(&mut f, y, x.width() as i64, 0);
                        f
                    })
                    .collect();
                let path = d.join(format!("{}-{:?}-{}-plan{}.gif", s.split.name(), s.task, s.seed, s.plan).to_lowercase());
                if let Err(e) = crate::export::write_gif(&path, &frames, crate::export::FPS) {
                    tracing::warn!("cannot write {}: {e:#}", path.display());
                }
            }
        })?;
        pb.finish_and_clear();
        outln!(
            "imagination {}: {} clips, PSNR {:.2} dB, SSIM {:.3} (static-frame baseline: PSNR {:.2} dB, SSIM {:.3})",
            split.name(),
            r.samples.len(),
            r.mean_psnr,
            r.mean_ssim,
            r.static_psnr,
            r.static_ssim
        );
        reports.push((split.name().to_string(), r));
    }
    if let Some(path) = &a.json {
        let json = serde_json::to_vec_pretty(&reports)?;
        dataset::write_atomic(path, &json)?;
        outln!("wrote {}", path.display());
    }
    Ok(())
}
