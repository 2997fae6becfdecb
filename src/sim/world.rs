//! World state and kinematics. The action convention, units, limits and
//! frames are documented once, in the [`crate::sim`] module header.

use super::geom::{rot2, wrap_angle, V3};
use super::tasks::{self, Split, Task, TaskKind};
use super::*;

/// Finger height (m): the fingers span `[tcp.z, tcp.z + FINGER_H]`.
pub const FINGER_H: f32 = 0.06;
/// Finger thickness along the closing axis (m).
pub const FINGER_T: f32 = 0.012;
/// Finger pad depth across the closing axis (m).
pub const FINGER_D: f32 = 0.024;
/// Palm height above the fingers (m).
pub const PALM_H: f32 = 0.025;
/// A grasp needs at least this much vertical overlap of fingers and object (m).
pub const GRASP_OVERLAP: f32 = 0.01;
/// A grasp needs |roll| and |pitch| at most this (rad).
pub const GRASP_MAX_TILT: f32 = 0.1;
const GRAVITY: f32 = 9.81;
const EPS: f32 = 1e-4;

/// An action: `[droll, dpitch, dyaw, dx, dy, dz, gripper]`.
pub type Action = [f32; ACTION_DIM];

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Shape {
    Cube,
    Bar,
    Cylinder,
    Ball,
    Cone,
}

impl Shape {
    pub const ALL: [Shape; 5] = [Shape::Cube, Shape::Bar, Shape::Cylinder, Shape::Ball, Shape::Cone];
    pub fn name(self) -> &'static str {
        match self {
            Shape::Cube => "cube",
            Shape::Bar => "bar",
            Shape::Cylinder => "cylinder",
            Shape::Ball => "ball",
            Shape::Cone => "cone",
        }
    }
    /// Words that may name this shape in an instruction.
    pub fn nouns(self) -> &'static [&'static str] {
        match self {
            Shape::Cube => &["cube", "block"],
            Shape::Bar => &["bar", "brick"],
            Shape::Cylinder => &["cylinder", "can"],
            Shape::Ball => &["ball", "sphere"],
            Shape::Cone => &["cone"],
        }
    }
    /// Box half extents (x, y) in the object frame, or `None` for round shapes.
    pub fn box_half(self) -> Option<(f32, f32)> {
        match self {
            Shape::Cube => Some((0.033, 0.033)),
            Shape::Bar => Some((0.06, 0.024)),
            _ => None,
        }
    }
    /// Radius of round shapes at their widest (m).
    pub fn radius(self) -> f32 {
        match self {
            Shape::Cylinder => 0.031,
            Shape::Ball => 0.036,
            Shape::Cone => 0.04,
            Shape::Cube | Shape::Bar => {
                let (a, b) = self.box_half().unwrap_or((0.0, 0.0));
                (a * a + b * b).sqrt()
            }
        }
    }
    pub fn height(self) -> f32 {
        match self {
            Shape::Cube => 0.066,
            Shape::Bar => 0.048,
            Shape::Cylinder => 0.085,
            Shape::Ball => 0.072,
            Shape::Cone => 0.08,
        }
    }
    /// Collision radius used between objects (circumscribed circle).
    pub fn collision_radius(self) -> f32 {
        self.radius()
    }
    /// Whether other objects can rest on this one's top.
    pub fn flat_top(self) -> bool {
        matches!(self, Shape::Cube | Shape::Bar | Shape::Cylinder)
    }
    /// Horizontal radius of a round shape at height `h` above its bottom.
    fn radius_at(self, h: f32) -> f32 {
        let r = self.radius();
        match self {
            Shape::Cone => r * (1.0 - (h / self.height()).clamp(0.0, 1.0)),
            Shape::Ball => {
                let d = (h - r).abs().min(r);
                (r * r - d * d).max(0.0).sqrt()
            }
            _ => r,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Color {
    Red,
    Green,
    Blue,
    Yellow,
    Purple,
    Orange,
    Cyan,
    White,
}

impl Color {
    pub const ALL: [Color; 8] = [
        Color::Red,
        Color::Green,
        Color::Blue,
        Color::Yellow,
        Color::Purple,
        Color::Orange,
        Color::Cyan,
        Color::White,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Color::Red => "red",
            Color::Green => "green",
            Color::Blue => "blue",
            Color::Yellow => "yellow",
            Color::Purple => "purple",
            Color::Orange => "orange",
            Color::Cyan => "cyan",
            Color::White => "white",
        }
    }
    /// Albedo in 0..1.
    pub fn rgb(self) -> [f32; 3] {
        match self {
            Color::Red => [0.90, 0.12, 0.10],
            Color::Green => [0.15, 0.75, 0.20],
            Color::Blue => [0.12, 0.30, 0.95],
            Color::Yellow => [0.98, 0.85, 0.10],
            Color::Purple => [0.60, 0.20, 0.85],
            Color::Orange => [1.00, 0.50, 0.05],
            Color::Cyan => [0.10, 0.85, 0.90],
            Color::White => [0.97, 0.97, 0.97],
        }
    }
}

/// What an object rests on.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Support {
    Table,
    On(usize),
    Held,
    /// Falling (vertical speed `vz` m/s downwards) towards `target_z`, landing on `onto`.
    Falling { target_z: f32, onto: Option<usize>, vz: f32 },
}

#[derive(Clone, Debug)]
pub struct Object {
    pub shape: Shape,
    pub color: Color,
    /// Centre of the bottom face, base frame (m).
    pub pos: V3,
    /// Rotation about z (rad).
    pub yaw: f32,
    pub support: Support,
}

impl Object {
    pub fn name(&self) -> String {
        format!("{} {}", self.color.name(), self.shape.name())
    }
    pub fn top(&self) -> f32 {
        self.pos.z + self.shape.height()
    }
    /// Whether a circle (centre `cx, cy`, radius `r`) overlaps the exact footprint.
    pub fn footprint_hits(&self, cx: f32, cy: f32, r: f32) -> bool {
        let (dx, dy) = (cx - self.pos.x, cy - self.pos.y);
        match self.shape.box_half() {
            Some((hx, hy)) => {
                let (lx, ly) = rot2(dx, dy, -self.yaw);
                let qx = lx.abs() - hx;
                let qy = ly.abs() - hy;
                let ox = qx.max(0.0);
                let oy = qy.max(0.0);
                ox * ox + oy * oy < r * r
            }
            None => {
                let rr = self.shape.radius() + r;
                dx * dx + dy * dy < rr * rr
            }
        }
    }
    /// Whether `(x, y)` lies over this object's flat top.
    pub fn supports_point(&self, x: f32, y: f32) -> bool {
        if !self.shape.flat_top() {
            return false;
        }
        self.footprint_hits(x, y, 1e-6)
    }
    /// Half extents (along, across) the gripper's closing axis for a gripper at `yaw`,
    /// taken at the widest point between heights `z0..z1` (base frame).
    pub fn half_extents_in(&self, yaw: f32, z0: f32, z1: f32) -> (f32, f32) {
        match self.shape.box_half() {
            Some((hx, hy)) => {
                let t = self.yaw - yaw;
                let (s, c) = (geom::sin(t).abs(), geom::cos(t).abs());
                (c * hx + s * hy, s * hx + c * hy)
            }
            None => {
                let widest = match self.shape {
                    Shape::Ball => self.shape.radius(),
                    _ => 0.0,
                };
                let h = widest.clamp(z0 - self.pos.z, (z1 - self.pos.z).max(z0 - self.pos.z));
                let r = self.shape.radius_at(h);
                (r, r)
            }
        }
    }
}

/// The gripper (floating end-effector).
#[derive(Clone, Debug)]
pub struct Gripper {
    /// TCP position (m), base frame.
    pub pos: V3,
    pub roll: f32,
    pub pitch: f32,
    pub yaw: f32,
    /// Finger gap (m), `0..=MAX_OPENING`.
    pub opening: f32,
    pub held: Option<usize>,
    /// Held object's bottom centre in the gripper frame (lx, ly, dz).
    hold_offset: V3,
    hold_dyaw: f32,
}

impl Gripper {
    /// An open, upright gripper at `pos` turned by `yaw`.
    pub fn new(pos: V3, yaw: f32) -> Gripper {
        Gripper {
            pos,
            roll: 0.0,
            pitch: 0.0,
            yaw,
            opening: MAX_OPENING,
            held: None,
            hold_offset: V3::default(),
            hold_dyaw: 0.0,
        }
    }
}

/// The end-effector pose: `[x, y, z, roll, pitch, yaw, gripper]`, gripper =
/// finger gap / `MAX_OPENING` (1 open, 0 closed).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EePose(pub [f32; 7]);

#[derive(thiserror::Error, Debug, Clone, PartialEq)]
pub enum SimError {
    #[error("action has {0} values; it needs exactly 7: [droll, dpitch, dyaw, dx, dy, dz, gripper]")]
    WrongLength(usize),
    #[error("action component {index} is {value}; every component must be a finite number")]
    NotFinite { index: usize, value: f32 },
}

#[derive(Clone, Debug)]
pub struct World {
    pub objects: Vec<Object>,
    pub gripper: Gripper,
    pub task: Task,
    pub split: Split,
    pub seed: u64,
    /// Sub-frames per action.
    pub substeps: usize,
    /// Actions executed since reset.
    pub steps: usize,
}

impl World {
    /// A new scene for `task` drawn from `split` with `seed`.
    pub fn reset(task: TaskKind, split: Split, seed: u64) -> World {
        Self::reset_from(tasks::sample_scene(task, split, seed), split, seed)
    }

    /// A new scene for a task given by name or sentence (see [`tasks::TaskRequest`]).
    pub fn reset_request(request: &tasks::TaskRequest, split: Split, seed: u64) -> World {
        Self::reset_from(tasks::sample_scene_for(request, split, seed), split, seed)
    }

    fn reset_from(scene: tasks::Scene, split: Split, seed: u64) -> World {
        World {
            objects: scene.objects,
            gripper: Gripper::new(scene.ee_pos, scene.ee_yaw),
            task: scene.task,
            split,
            seed,
            substeps: DEFAULT_SUBSTEPS,
            steps: 0,
        }
    }

    /// A scene from explicit parts (tests, custom setups).
    pub fn from_parts(objects: Vec<Object>, ee_pos: V3, ee_yaw: f32, task: Task) -> World {
        World {
            objects,
            gripper: Gripper::new(ee_pos, ee_yaw),
            task,
            split: Split::Train,
            seed: 0,
            substeps: DEFAULT_SUBSTEPS,
            steps: 0,
        }
    }

    pub fn instruction(&self) -> &str {
        &self.task.instruction
    }

    pub fn success(&self) -> bool {
        tasks::success(self)
    }

    pub fn ee_pose(&self) -> EePose {
        let g = &self.gripper;
        EePose([g.pos.x, g.pos.y, g.pos.z, g.roll, g.pitch, g.yaw, g.opening / MAX_OPENING])
    }

    /// Render the default camera view (supersampled by `render::DEFAULT_SSAA`):
    /// `width*height*3` RGB bytes, row-major, top row first.
    pub fn render(&self, width: usize, height: usize) -> Vec<u8> {
        let mut out = Vec::new();
        render::Renderer::default().render_into(self, width, height, &mut out);
        out
    }

    /// The observation a policy sees (image at `size`×`size`).
    pub fn observation(&self, size: usize) -> Observation {
        self.observation_with(&mut render::Renderer::default(), size)
    }

    /// The observation a policy sees, rendered with `renderer`.
    pub fn observation_with(&self, renderer: &mut render::Renderer, size: usize) -> Observation {
        let mut image = Vec::new();
        renderer.render_into(self, size, size, &mut image);
        Observation {
            image,
            width: size,
            height: size,
            instruction: self.instruction().to_string(),
            ee_pose: self.ee_pose().0,
            world: Some(self.clone()),
        }
    }

    /// Check an action without applying it.
    pub fn validate(action: &[f32]) -> Result<Action, SimError> {
        if action.len() != ACTION_DIM {
            return Err(SimError::WrongLength(action.len()));
        }
        let mut a = [0.0; ACTION_DIM];
        for (i, (&v, o)) in action.iter().zip(a.iter_mut()).enumerate() {
            if !v.is_finite() {
                return Err(SimError::NotFinite { index: i, value: v });
            }
            *o = v;
        }
        Ok(a)
    }

    /// Execute one action (see the module header for its meaning).
    pub fn step(&mut self, action: &[f32]) -> Result<(), SimError> {
        self.step_with(action, |_| {})
    }

    /// Execute one action, calling `on_substep` after each of the `substeps` sub-frames.
    pub fn step_with(&mut self, action: &[f32], mut on_substep: impl FnMut(&World)) -> Result<(), SimError> {
        let a = Self::validate(action)?;
        let n = self.substeps.max(1);
        let g = &self.gripper;
        let p0 = g.pos;
        let lim = |v: f32, m: f32| v.clamp(-m, m);
        let target = V3::new(
            (p0.x + lim(a[3], MAX_TRANS_STEP)).clamp(-WORKSPACE_HALF, WORKSPACE_HALF),
            (p0.y + lim(a[4], MAX_TRANS_STEP)).clamp(-WORKSPACE_HALF, WORKSPACE_HALF),
            (p0.z + lim(a[5], MAX_TRANS_STEP)).clamp(Z_MIN, Z_MAX),
        );
        let r0 = [g.roll, g.pitch, g.yaw];
        let r1 = [
            (g.roll + lim(a[0], MAX_ROT_STEP)).clamp(-MAX_TILT, MAX_TILT),
            (g.pitch + lim(a[1], MAX_ROT_STEP)).clamp(-MAX_TILT, MAX_TILT),
            g.yaw + lim(a[2], MAX_ROT_STEP),
        ];
        let open_target = a[6].clamp(0.0, 1.0) * MAX_OPENING;
        let stroke = MAX_OPENING / n as f32;
        let dt = ACTION_SECONDS / n as f32;
        for k in 1..=n {
            let (pos, rpy) = if k == n {
                (target, r1)
            } else {
                let t = k as f32 / n as f32;
                let lerp = |a: f32, b: f32| a + (b - a) * t;
                (
                    p0 + (target - p0) * t,
                    [lerp(r0[0], r1[0]), lerp(r0[1], r1[1]), lerp(r0[2], r1[2])],
                )
            };
            self.move_gripper(pos, rpy);
            self.actuate_fingers(open_target, stroke);
            self.update_falling(dt);
            on_substep(self);
        }
        self.steps += 1;
        Ok(())
    }

    /// Indices carried along when `root` moves: `root` and everything resting on it.
    pub fn carried_by(&self, root: usize) -> Vec<bool> {
        let mut carried = vec![false; self.objects.len()];
        carried[root] = true;
        // Support chains are at most objects.len() long.
        for _ in 0..self.objects.len() {
            let mut changed = false;
            for (j, o) in self.objects.iter().enumerate() {
                if let Support::On(k) = o.support {
                    if carried[k] && !carried[j] {
                        carried[j] = true;
                        changed = true;
                    }
                }
            }
            if !changed {
                break;
            }
        }
        carried
    }

    /// Whether the gripper at (`pos`, `yaw`) with the current opening and load collides.
    pub fn gripper_collides(&self, pos: V3, yaw: f32) -> bool {
        let g = &self.gripper;
        let carried = match g.held {
            Some(h) => self.carried_by(h),
            None => vec![false; self.objects.len()],
        };
        if let Some(h) = g.held {
            let held = &self.objects[h];
            let (ox, oy) = rot2(g.hold_offset.x, g.hold_offset.y, yaw);
            let c = V3::new(pos.x + ox, pos.y + oy, pos.z + g.hold_offset.z);
            if c.z < -EPS {
                return true;
            }
            let (top, r) = (c.z + held.shape.height(), held.shape.collision_radius());
            for (j, o) in self.objects.iter().enumerate() {
                if carried[j] {
                    continue;
                }
                let vert = c.z < o.top() - EPS && o.pos.z < top - EPS;
                if vert && c.dist_xy(o.pos) < r + o.shape.collision_radius() {
                    return true;
                }
            }
        }
        // Fingers (two discs each) and palm (a row of discs).
        let half = g.opening * 0.5 + FINGER_T * 0.5;
        let fr = FINGER_T * 0.5;
        let mut probes: Vec<(f32, f32, f32, f32, f32)> = Vec::with_capacity(9);
        for side in [-1.0f32, 1.0] {
            for lx in [-FINGER_D * 0.25, FINGER_D * 0.25] {
                probes.push((lx, side * half, fr, pos.z, pos.z + FINGER_H));
            }
        }
        let palm_z = pos.z + FINGER_H;
        for j in -2i32..=2 {
            probes.push((0.0, half * j as f32 * 0.5, FINGER_D * 0.5, palm_z, palm_z + PALM_H));
        }
        for (lx, ly, r, z0, z1) in probes {
            let (dx, dy) = rot2(lx, ly, yaw);
            let (px, py) = (pos.x + dx, pos.y + dy);
            for (j, o) in self.objects.iter().enumerate() {
                if carried[j] {
                    continue;
                }
                if z0 < o.top() - EPS && o.pos.z < z1 - EPS && o.footprint_hits(px, py, r) {
                    return true;
                }
            }
        }
        false
    }

    /// Move the TCP towards (`pos`, `rpy`); blocked motion falls back to its
    /// horizontal or vertical part, else stays.
    fn move_gripper(&mut self, pos: V3, rpy: [f32; 3]) {
        let g = &self.gripper;
        let cur = g.pos;
        let cur_yaw = g.yaw;
        let candidates = [
            (pos, rpy[2]),
            (V3::new(pos.x, pos.y, cur.z), rpy[2]),
            (V3::new(cur.x, cur.y, pos.z), cur_yaw),
        ];
        self.gripper.roll = rpy[0];
        self.gripper.pitch = rpy[1];
        for (p, yaw) in candidates {
            if !self.gripper_collides(p, yaw) {
                self.set_gripper_pose(p, yaw);
                return;
            }
        }
        // Already overlapping (an object slid against the fingers): rising is always allowed.
        if pos.z > cur.z && self.gripper_collides(cur, cur_yaw) {
            self.set_gripper_pose(V3::new(cur.x, cur.y, pos.z), cur_yaw);
        }
    }

    fn set_gripper_pose(&mut self, pos: V3, yaw: f32) {
        let g = &mut self.gripper;
        g.pos = pos;
        g.yaw = wrap_angle(yaw);
        let Some(h) = g.held else { return };
        let (ox, oy) = rot2(g.hold_offset.x, g.hold_offset.y, g.yaw);
        let new = V3::new(pos.x + ox, pos.y + oy, pos.z + g.hold_offset.z);
        let new_yaw = wrap_angle(g.yaw + g.hold_dyaw);
        let delta = new - self.objects[h].pos;
        let carried = self.carried_by(h);
        for (j, o) in self.objects.iter_mut().enumerate() {
            if j == h {
                o.pos = new;
                o.yaw = new_yaw;
            } else if carried[j] {
                o.pos = o.pos + delta;
            }
        }
    }

    /// Move the fingers towards `target` gap by at most `stroke`; grasp or release.
    fn actuate_fingers(&mut self, target: f32, stroke: f32) {
        let g = &self.gripper;
        let open = g.opening;
        if let Some(h) = g.held {
            if target > open + EPS {
                self.gripper.opening = (open + stroke).min(target);
                self.release(h);
            }
            return;
        }
        if target >= open {
            self.gripper.opening = (open + stroke).min(target);
            return;
        }
        let mut new_open = (open - stroke).max(target);
        // The object between the pads with the most vertical overlap stops the fingers.
        let mut best: Option<(usize, f32, f32, bool)> = None; // (index, overlap, width, secure)
        for (i, o) in self.objects.iter().enumerate() {
            if matches!(o.support, Support::Falling { .. } | Support::Held) {
                continue;
            }
            let overlap = (g.pos.z + FINGER_H).min(o.top()) - g.pos.z.max(o.pos.z);
            if overlap <= EPS {
                continue;
            }
            let (lx, ly) = rot2(o.pos.x - g.pos.x, o.pos.y - g.pos.y, -g.yaw);
            let (ex, ey) = o.half_extents_in(g.yaw, g.pos.z, g.pos.z + FINGER_H);
            let between = ly.abs() + ey <= open * 0.5 + EPS;
            if !between || lx.abs() >= ex + FINGER_D * 0.5 {
                continue;
            }
            let secure = overlap >= GRASP_OVERLAP
                && lx.abs() <= 0.5 * ex + FINGER_D * 0.5
                && g.roll.abs() <= GRASP_MAX_TILT
                && g.pitch.abs() <= GRASP_MAX_TILT;
            let width = 2.0 * (ly.abs() + ey);
            if best.is_none_or(|b| overlap > b.1) {
                best = Some((i, overlap, width, secure));
            }
        }
        if let Some((i, _, width, secure)) = best {
            if new_open <= width {
                new_open = width.min(open);
                if secure {
                    let o = &self.objects[i];
                    let (lx, ly) = rot2(o.pos.x - g.pos.x, o.pos.y - g.pos.y, -g.yaw);
                    let g = &mut self.gripper;
                    g.held = Some(i);
                    g.hold_offset = V3::new(lx, ly, o.pos.z - g.pos.z);
                    g.hold_dyaw = o.yaw - g.yaw;
                    self.objects[i].support = Support::Held;
                }
            }
        }
        self.gripper.opening = new_open;
    }

    /// Let go of object `h`: it starts falling towards its landing place.
    fn release(&mut self, h: usize) {
        self.gripper.held = None;
        let (pos, onto) = self.landing(h);
        let o = &mut self.objects[h];
        o.pos.x = pos.x;
        o.pos.y = pos.y;
        o.support = Support::Falling { target_z: pos.z, onto, vz: 0.0 };
        if o.pos.z <= pos.z + EPS {
            o.pos.z = pos.z;
            o.support = onto.map_or(Support::Table, Support::On);
        }
    }

    /// Where object `i` comes to rest if dropped now: (position, supporting object).
    pub fn landing(&self, i: usize) -> (V3, Option<usize>) {
        let carried = self.carried_by(i);
        let o = &self.objects[i];
        let (r, h) = (o.shape.collision_radius(), o.shape.height());
        let mut p = o.pos;
        let lim = TABLE_HALF - r;
        for attempt in 0..12 {
            let (z, onto) = self.support_below(&carried, p);
            let hit = self.objects.iter().enumerate().find(|(j, q)| {
                !carried[*j]
                    && Some(*j) != onto
                    && z < q.top() - EPS
                    && q.pos.z < z + h - EPS
                    && p.dist_xy(q.pos) < r + q.shape.collision_radius()
            });
            let Some((_, q)) = hit else {
                return (V3::new(p.x, p.y, z), onto);
            };
            // Slide off: away from the obstacle's centre, then spiral outwards if stuck.
            let (mut dx, mut dy) = (p.x - q.pos.x, p.y - q.pos.y);
            let d = (dx * dx + dy * dy).sqrt();
            if d < 1e-6 || attempt >= 6 {
                let ang = attempt as f32 * 0.9;
                (dx, dy) = (geom::cos(ang), geom::sin(ang));
            } else {
                (dx, dy) = (dx / d, dy / d);
            }
            let reach = r + q.shape.collision_radius() + 0.003;
            p.x = (q.pos.x + dx * reach).clamp(-lim, lim);
            p.y = (q.pos.y + dy * reach).clamp(-lim, lim);
        }
        // Last resort: the first free table spot on a grid scan (deterministic).
        let mut best = (p, None);
        'scan: for iy in 0..16 {
            for ix in 0..16 {
                let c = V3::new(-lim + 2.0 * lim * ix as f32 / 15.0, -lim + 2.0 * lim * iy as f32 / 15.0, 0.0);
                let free = self.objects.iter().enumerate().all(|(j, q)| {
                    carried[j] || c.dist_xy(q.pos) >= r + q.shape.collision_radius()
                });
                if free {
                    best = (c, None);
                    break 'scan;
                }
            }
        }
        best
    }

    /// Highest surface under `p` at or below `p.z`: (height, supporting object).
    fn support_below(&self, carried: &[bool], p: V3) -> (f32, Option<usize>) {
        let mut best = (0.0f32, None);
        for (j, q) in self.objects.iter().enumerate() {
            if carried[j] || matches!(q.support, Support::Held | Support::Falling { .. }) {
                continue;
            }
            let top = q.top();
            if top <= p.z + EPS && top > best.0 && q.supports_point(p.x, p.y) {
                best = (top, Some(j));
            }
        }
        best
    }

    fn update_falling(&mut self, dt: f32) {
        for i in 0..self.objects.len() {
            let Support::Falling { mut target_z, mut onto, vz } = self.objects[i].support else { continue };
            // The object it was falling onto has been picked up meanwhile: fall further.
            if onto.is_some_and(|j| matches!(self.objects[j].support, Support::Held | Support::Falling { .. })) {
                let (p, below) = self.landing(i);
                (self.objects[i].pos.x, self.objects[i].pos.y) = (p.x, p.y);
                (target_z, onto) = (p.z, below);
            }
            let vz = vz + GRAVITY * dt;
            let z0 = self.objects[i].pos.z;
            let z1 = (z0 - vz * dt).max(target_z);
            let dz = z1 - z0;
            let carried = self.carried_by(i);
            for (j, o) in self.objects.iter_mut().enumerate() {
                if carried[j] {
                    o.pos.z += dz;
                }
            }
            let o = &mut self.objects[i];
            if z1 <= target_z {
                o.pos.z = target_z;
                o.support = onto.map_or(Support::Table, Support::On);
            } else {
                o.support = Support::Falling { target_z, onto, vz };
            }
        }
    }

    /// Pairs of objects whose volumes overlap (should always be empty).
    pub fn interpenetrations(&self) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        for i in 0..self.objects.len() {
            for j in i + 1..self.objects.len() {
                let (a, b) = (&self.objects[i], &self.objects[j]);
                let vert = a.pos.z < b.top() - 1e-3 && b.pos.z < a.top() - 1e-3;
                let r = a.shape.collision_radius() + b.shape.collision_radius();
                if vert && a.pos.dist_xy(b.pos) < r - 1e-3 {
                    out.push((i, j));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cube(yaw: f32) -> Object {
        Object { shape: Shape::Cube, color: Color::Red, pos: V3::new(0.0, 0.0, 0.0), yaw, support: Support::Table }
    }

    #[test]
    fn grasp_width_depends_on_relative_yaw() {
        let half = Shape::Cube.box_half().unwrap().0;
        let (ex, ey) = cube(0.0).half_extents_in(0.0, 0.0, 0.06);
        assert!((ex - half).abs() < 1e-6 && (ey - half).abs() < 1e-6);
        let (_, ey) = cube(std::f32::consts::FRAC_PI_4).half_extents_in(0.0, 0.0, 0.06);
        assert!((ey - half * std::f32::consts::SQRT_2).abs() < 1e-5);
        let cone = Object { shape: Shape::Cone, ..cube(0.0) };
        let (low, _) = cone.half_extents_in(0.0, 0.0, 0.06);
        let (high, _) = cone.half_extents_in(0.0, 0.04, 0.1);
        assert!(low > high, "a cone is widest at its base");
    }

    #[test]
    fn footprint_and_support_tests_use_the_exact_shape() {
        let c = cube(0.0);
        let half = Shape::Cube.box_half().unwrap().0;
        assert!(c.supports_point(half - 1e-3, half - 1e-3));
        assert!(!c.supports_point(half + 1e-3, 0.0));
        // Diagonal: inside the circumscribed circle but outside the square.
        assert!(!c.footprint_hits(half + 0.004, half + 0.004, 0.004));
        let ball = Object { shape: Shape::Ball, ..cube(0.0) };
        assert!(!ball.supports_point(0.0, 0.0), "round tops support nothing");
    }
}
