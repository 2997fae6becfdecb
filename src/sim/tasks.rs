//! Language tasks, scene sampling, splits and success checks.
//!
//! Splits (like the paper's evaluation): `train` scenes use only in-domain
//! objects; `novel` scenes make the task's target a *novel* object — one of
//! the 8 colour/shape combinations in [`is_novel`] that never appear in a
//! `train` scene. Scenes are drawn from a RNG seeded by `(split, seed)`;
//! training data uses seeds below [`EVAL_SEED_START`](super::EVAL_SEED_START)
//! and evaluation uses seeds from it upwards, so the two never share a scene.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::geom::{self, V3};
use super::world::{Color, Object, Shape, Support, World};
use super::WORKSPACE_HALF;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskKind {
    /// "pick up the red cube": grasp X and lift it.
    Pick,
    /// "put the red cube on the blue bar": stack X on Y.
    Stack,
    /// "put the red cube next to the blue bar": place X on the table beside Y.
    Place,
}

impl TaskKind {
    pub const ALL: [TaskKind; 3] = [TaskKind::Pick, TaskKind::Stack, TaskKind::Place];
    pub fn name(self) -> &'static str {
        match self {
            TaskKind::Pick => "pick",
            TaskKind::Stack => "stack",
            TaskKind::Place => "place",
        }
    }
    /// Longest episode (actions) before it counts as a failure.
    pub fn max_steps(self) -> usize {
        match self {
            TaskKind::Pick => 40,
            TaskKind::Stack | TaskKind::Place => 60,
        }
    }
}

impl std::str::FromStr for TaskKind {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<TaskKind> {
        let t = s.trim().to_ascii_lowercase();
        TaskKind::ALL
            .into_iter()
            .find(|k| k.name() == t || (t == "pick up" && *k == TaskKind::Pick))
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "unknown task {s:?}; valid tasks: pick (pick up X), stack (put X on Y), place (put X next to Y)"
                )
            })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// In-domain objects only.
    Train,
    /// The target object is a novel colour/shape combination.
    Novel,
}

impl Split {
    pub const ALL: [Split; 2] = [Split::Train, Split::Novel];
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Novel => "novel",
        }
    }
}

impl std::str::FromStr for Split {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Split> {
        Split::ALL
            .into_iter()
            .find(|k| k.name() == s.trim().to_ascii_lowercase())
            .ok_or_else(|| anyhow::anyhow!("unknown split {s:?}; valid splits: train, novel"))
    }
}

/// Novel objects: for each colour exactly one shape (8 of the 40 combinations).
pub fn is_novel(shape: Shape, color: Color) -> bool {
    let s = Shape::ALL.iter().position(|&x| x == shape).unwrap_or(0);
    let c = Color::ALL.iter().position(|&x| x == color).unwrap_or(0);
    (c + 2 * s) % 5 == 0
}

/// A task instance: what to do with which objects, in words.
#[derive(Clone, Debug)]
pub struct Task {
    pub kind: TaskKind,
    /// Index of X, the object to move.
    pub target: usize,
    /// Index of Y for stack/place.
    pub reference: Option<usize>,
    pub instruction: String,
}

pub struct Scene {
    pub objects: Vec<Object>,
    pub task: Task,
    pub ee_pos: V3,
    pub ee_yaw: f32,
}

const PHRASES_PICK: [&str; 4] = ["pick up the {x}", "lift the {x}", "grab the {x} and lift it", "raise the {x}"];
const PHRASES_STACK: [&str; 4] = [
    "put the {x} on the {y}",
    "stack the {x} on top of the {y}",
    "place the {x} onto the {y}",
    "set the {x} on the {y}",
];
const PHRASES_PLACE: [&str; 4] = [
    "put the {x} next to the {y}",
    "place the {x} beside the {y}",
    "move the {x} near the {y}",
    "set the {x} down by the {y}",
];

/// The phrasings of a task kind (`{x}` the object to move, `{y}` the reference).
pub fn phrasings(kind: TaskKind) -> &'static [&'static str] {
    match kind {
        TaskKind::Pick => &PHRASES_PICK,
        TaskKind::Stack => &PHRASES_STACK,
        TaskKind::Place => &PHRASES_PLACE,
    }
}

/// Every phrasing of `task`'s kind filled in with its objects' names ("pick up the red cube").
pub fn task_phrasings(task: &Task, objects: &[Object]) -> Vec<String> {
    let name = |i: usize| objects.get(i).map(|o| o.name()).unwrap_or_default();
    phrasings(task.kind)
        .iter()
        .map(|p| {
            let s = p.replace("{x}", &name(task.target));
            match task.reference {
                Some(r) => s.replace("{y}", &name(r)),
                None => s,
            }
        })
        .collect()
}

/// Object centres are sampled in `|x|, |y| <= SPAWN_HALF`.
const SPAWN_HALF: f32 = 0.15;
/// Free space between spawned objects' collision circles (m).
const SPAWN_GAP: f32 = 0.04;
/// "Next to": centres at most this far beyond touching (m).
pub const NEXT_TO_SLACK: f32 = 0.05;
/// A picked object counts as lifted when its bottom is this high (m).
pub const LIFT_HEIGHT: f32 = 0.06;

fn rng_for(split: Split, seed: u64) -> ChaCha8Rng {
    let tag = match split {
        Split::Train => 0x7472_6169_6e00_0000u64,
        Split::Novel => 0x6e6f_7665_6c00_0000u64,
    };
    ChaCha8Rng::seed_from_u64(seed ^ tag.rotate_left(17))
}

fn pick<T: Copy>(rng: &mut ChaCha8Rng, xs: &[T]) -> T {
    xs[rng.random_range(0..xs.len())]
}

/// A task asked for by name (`pick`) or by a sentence naming its objects
/// ("put the red cube on the blue bar").
#[derive(Clone, Debug, PartialEq)]
pub struct TaskRequest {
    pub kind: TaskKind,
    /// The object to move, if the sentence names it.
    pub target: Option<(Shape, Color)>,
    /// The reference object (stack/place), if the sentence names it.
    pub reference: Option<(Shape, Color)>,
    /// The sentence, used verbatim as the instruction.
    pub instruction: Option<String>,
}

impl std::str::FromStr for TaskRequest {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<TaskRequest> {
        if let Ok(kind) = s.parse::<TaskKind>() {
            return Ok(TaskRequest { kind, target: None, reference: None, instruction: None });
        }
        let text = s.trim().to_ascii_lowercase();
        let words: Vec<&str> = text.split(|c: char| !c.is_ascii_alphabetic()).filter(|w| !w.is_empty()).collect();
        let mut mentions = Vec::new();
        for pair in words.windows(2) {
            let color = Color::ALL.into_iter().find(|c| c.name() == pair[0]);
            let shape = Shape::ALL.into_iter().find(|s| s.nouns().contains(&pair[1]));
            if let (Some(c), Some(sh)) = (color, shape) {
                mentions.push((sh, c));
            }
        }
        let has = |w: &str| words.contains(&w);
        let help = || {
            let colors: Vec<&str> = Color::ALL.iter().map(|c| c.name()).collect();
            let nouns: Vec<&str> = Shape::ALL.iter().flat_map(|s| s.nouns().iter().copied()).collect();
            format!(
                "unknown task {s:?}; valid tasks: pick, stack, place, or a sentence such as \
                 \"pick up the red cube\", \"put the red cube on the blue bar\", \
                 \"put the red cube next to the blue ball\" (colours: {}; shapes: {})",
                colors.join(", "),
                nouns.join(", ")
            )
        };
        let kind = match mentions.len() {
            1 => TaskKind::Pick,
            2 if has("next") || has("beside") || has("near") || has("by") => TaskKind::Place,
            2 if has("on") || has("onto") => TaskKind::Stack,
            _ => anyhow::bail!(help()),
        };
        let target = mentions[0];
        let reference = mentions.get(1).copied();
        if let Some(r) = reference {
            anyhow::ensure!(r != target, "{s:?} names the same object twice; name two different objects");
            anyhow::ensure!(
                kind != TaskKind::Stack || r.0.flat_top(),
                "nothing can be stacked on a {} (round tops support nothing); use a cube, bar or cylinder",
                r.0.name()
            );
        }
        Ok(TaskRequest { kind, target: Some(target), reference, instruction: Some(s.trim().to_string()) })
    }
}

/// Draw a scene for `kind` on `split` with `seed`.
pub fn sample_scene(kind: TaskKind, split: Split, seed: u64) -> Scene {
    let request = TaskRequest { kind, target: None, reference: None, instruction: None };
    sample_scene_for(&request, split, seed)
}

/// Draw a scene for `request` on `split` with `seed`; objects the request names
/// are placed in the scene (the split then only affects the distractors).
pub fn sample_scene_for(request: &TaskRequest, split: Split, seed: u64) -> Scene {
    let kind = request.kind;
    let mut rng = rng_for(split, seed);
    let combos: Vec<(Shape, Color)> = Shape::ALL
        .iter()
        .flat_map(|&s| Color::ALL.iter().map(move |&c| (s, c)))
        .collect();
    let in_domain: Vec<(Shape, Color)> = combos.iter().copied().filter(|&(s, c)| !is_novel(s, c)).collect();
    let novel: Vec<(Shape, Color)> = combos.iter().copied().filter(|&(s, c)| is_novel(s, c)).collect();
    loop {
        let n = rng.random_range(3..=5usize);
        // Target first (index 0 before shuffling), then the reference, then distractors.
        let mut kinds: Vec<(Shape, Color)> = Vec::with_capacity(n);
        let target_pool = if split == Split::Novel { &novel } else { &in_domain };
        let drawn = pick(&mut rng, target_pool);
        kinds.push(request.target.unwrap_or(drawn));
        if let Some(r) = request.reference {
            kinds.push(r);
        }
        while kinds.len() < n {
            let c = pick(&mut rng, &in_domain);
            let needs_flat = kinds.len() == 1 && kind == TaskKind::Stack;
            if kinds.contains(&c) || (needs_flat && !c.0.flat_top()) {
                continue;
            }
            kinds.push(c);
        }
        let Some(objects) = place_objects(&mut rng, &kinds) else { continue };
        if kind == TaskKind::Place {
            let (x, y) = (&objects[0], &objects[1]);
            let near = x.shape.collision_radius() + y.shape.collision_radius() + NEXT_TO_SLACK;
            if x.pos.dist_xy(y.pos) <= near + 0.03 || place_spot(&objects, 0, 1).is_none() {
                continue;
            }
        }
        // Shuffle the order so the target is not always object 0.
        let mut order: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let j = rng.random_range(0..=i);
            order.swap(i, j);
        }
        let objects: Vec<Object> = order.iter().map(|&k| objects[k].clone()).collect();
        let target = order.iter().position(|&k| k == 0).unwrap_or(0);
        let reference = (kind != TaskKind::Pick).then(|| order.iter().position(|&k| k == 1).unwrap_or(0));
        let phrases = phrasings(kind);
        let phrase = pick(&mut rng, phrases);
        let mut instruction = phrase.replace("{x}", &describe(&mut rng, &objects[target]));
        if let Some(r) = reference {
            instruction = instruction.replace("{y}", &describe(&mut rng, &objects[r]));
        }
        if let Some(text) = &request.instruction {
            instruction = text.clone();
        }
        let ee_pos = V3::new(
            rng.random_range(-0.05..=0.05f32),
            rng.random_range(-0.05..=0.05f32),
            rng.random_range(0.17..=0.22f32),
        );
        let ee_yaw = rng.random_range(-0.3..=0.3f32);
        return Scene { objects, task: Task { kind, target, reference, instruction }, ee_pos, ee_yaw };
    }
}

fn describe(rng: &mut ChaCha8Rng, o: &Object) -> String {
    format!("{} {}", o.color.name(), pick(rng, o.shape.nouns()))
}

fn place_objects(rng: &mut ChaCha8Rng, kinds: &[(Shape, Color)]) -> Option<Vec<Object>> {
    let mut out: Vec<Object> = Vec::with_capacity(kinds.len());
    for &(shape, color) in kinds {
        let r = shape.collision_radius();
        let mut placed = false;
        for _ in 0..200 {
            let pos = V3::new(
                rng.random_range(-SPAWN_HALF..=SPAWN_HALF),
                rng.random_range(-SPAWN_HALF..=SPAWN_HALF),
                0.0,
            );
            let free = out
                .iter()
                .all(|o| pos.dist_xy(o.pos) >= r + o.shape.collision_radius() + SPAWN_GAP);
            if free {
                let yaw = rng.random_range(-std::f32::consts::FRAC_PI_2..std::f32::consts::FRAC_PI_2);
                out.push(Object { shape, color, pos, yaw, support: Support::Table });
                placed = true;
                break;
            }
        }
        if !placed {
            return None;
        }
    }
    Some(out)
}

/// Whether the world's task is accomplished now.
pub fn success(w: &World) -> bool {
    let t = &w.task;
    let x = &w.objects[t.target];
    match t.kind {
        TaskKind::Pick => w.gripper.held == Some(t.target) && x.pos.z >= LIFT_HEIGHT,
        TaskKind::Stack => t.reference.is_some_and(|r| x.support == Support::On(r)),
        TaskKind::Place => t.reference.is_some_and(|r| {
            let y = &w.objects[r];
            let near = x.shape.collision_radius() + y.shape.collision_radius() + NEXT_TO_SLACK;
            x.support == Support::Table && x.pos.dist_xy(y.pos) <= near
        }),
    }
}

/// A free spot on the table next to `objects[reference]` where `objects[target]`
/// can be put down (deterministic; independent of where the target is now).
/// `None` if every candidate is blocked.
pub fn place_spot(objects: &[Object], target: usize, reference: usize) -> Option<V3> {
    let (x, y) = (&objects[target], &objects[reference]);
    let rx = x.shape.collision_radius();
    let base = geom::atan2(-y.pos.y, -y.pos.x);
    let lim = WORKSPACE_HALF - 0.03;
    for gap in [0.02f32, 0.04] {
        let dist = rx + y.shape.collision_radius() + gap;
        for k in [0i32, 1, -1, 2, -2, 3, -3, 4, -4, 5, -5, 6, -6, 7, -7, 8] {
            let ang = base + k as f32 * std::f32::consts::FRAC_PI_8;
            let p = V3::new(y.pos.x + dist * geom::cos(ang), y.pos.y + dist * geom::sin(ang), 0.0);
            if p.x.abs() > lim || p.y.abs() > lim {
                continue;
            }
            let free = objects.iter().enumerate().all(|(i, o)| {
                i == target || i == reference || p.dist_xy(o.pos) >= rx + o.shape.collision_radius() + 0.03
            });
            if free {
                return Some(p);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_novel_shape_per_colour_and_every_shape_is_novel_somewhere() {
        for c in Color::ALL {
            assert_eq!(Shape::ALL.iter().filter(|&&s| is_novel(s, c)).count(), 1, "{c:?}");
        }
        for s in Shape::ALL {
            assert!(Color::ALL.iter().any(|&c| is_novel(s, c)), "{s:?}");
        }
    }

    #[test]
    fn stack_references_have_flat_tops_and_place_tasks_have_a_free_spot() {
        for seed in 0..200 {
            let s = sample_scene(TaskKind::Stack, Split::Train, seed);
            assert!(s.objects[s.task.reference.unwrap()].shape.flat_top());
            let p = sample_scene(TaskKind::Place, Split::Novel, seed);
            assert!(place_spot(&p.objects, p.task.target, p.task.reference.unwrap()).is_some());
            assert!(!success_of(&p), "place tasks do not start solved");
        }
    }

    fn success_of(s: &Scene) -> bool {
        let w = World::from_parts(s.objects.clone(), s.ee_pos, s.ee_yaw, s.task.clone());
        success(&w)
    }
}
