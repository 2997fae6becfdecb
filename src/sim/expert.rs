//! The scripted expert: a state-based controller with privileged access to
//! the world. It moves in straight lines at a constant speed
//! ([`EXPERT_SPEED`]) between a few way-points (hover above X, descend, close,
//! lift, carry at a safe height, descend, open), so its motion is smooth and
//! the same in every episode. Being a function of the state alone it also
//! serves as a closed-loop upper bound: re-planning never confuses it.
//!
//! Two styles ([`ExpertStyle`]) differ only in how they come down onto the object (to grasp) and
//! onto the destination (to release): `waypoints` aligns to 3 mm and 0.02 rad at hover height
//! and then descends vertically; `funnel` descends while it aligns, along a cone whose height
//! above the grasp (release) point grows with the remaining horizontal and yaw error, and closes
//! (opens) once it is at the bottom. Both succeed on every episode; they differ in what a policy
//! learning from their demonstrations has to see — the way-point expert's "aligned yet?" decision
//! turns on a few millimetres, under one pixel of the 64×64 camera, while the funnel's action is a
//! continuous function of the offset (README, "Embedded model").

use super::geom::{wrap_angle, V3};
use super::tasks::{place_spot, TaskKind, LIFT_HEIGHT};
use super::world::{Action, Object, Shape, World, FINGER_H};
use super::*;

/// TCP speed (m per action).
pub const EXPERT_SPEED: f32 = 0.03;
/// Yaw speed (rad per action).
pub const EXPERT_YAW_SPEED: f32 = 0.15;
/// Clearance above the tallest object while travelling (m).
const CLEARANCE: f32 = 0.025;
const XY_TOL: f32 = 0.003;
const YAW_TOL: f32 = 0.02;

/// How the expert comes down onto what it grasps or where it releases (see the module header).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ExpertStyle {
    /// Align at hover height, then descend vertically.
    #[default]
    Waypoints,
    /// Descend while aligning, along a cone.
    Funnel,
}

impl ExpertStyle {
    pub const ALL: [ExpertStyle; 2] = [ExpertStyle::Waypoints, ExpertStyle::Funnel];

    pub fn name(self) -> &'static str {
        match self {
            ExpertStyle::Waypoints => "waypoints",
            ExpertStyle::Funnel => "funnel",
        }
    }

    pub fn parse(s: &str) -> anyhow::Result<ExpertStyle> {
        Self::ALL
            .into_iter()
            .find(|e| e.name() == s)
            .ok_or_else(|| anyhow::anyhow!("unknown expert style {s:?}: write waypoints or funnel"))
    }
}

/// Funnel: height gained per metre of horizontal error, and per radian of yaw error.
const FUNNEL_SLOPE: f32 = 1.5;
const FUNNEL_YAW_SLOPE: f32 = 0.2;
/// Funnel: errors below these cost no height.
const FUNNEL_XY: f32 = 0.004;
const FUNNEL_YAW: f32 = 0.05;

/// Height allowed above `bottom` with horizontal error `exy` and yaw error `dyaw`.
fn funnel_z(bottom: f32, top: f32, exy: f32, dyaw: f32) -> f32 {
    (bottom + FUNNEL_SLOPE * (exy - FUNNEL_XY).max(0.0) + FUNNEL_YAW_SLOPE * (dyaw.abs() - FUNNEL_YAW).max(0.0)).min(top)
}

/// The (way-point) expert's next action in `w`.
pub fn expert_action(w: &World) -> Action {
    expert_action_in(ExpertStyle::Waypoints, w)
}

/// The next action in `w` of the expert of style `style`.
pub fn expert_action_in(style: ExpertStyle, w: &World) -> Action {
    let funnel = style == ExpertStyle::Funnel;
    let g = &w.gripper;
    let t = &w.task;
    let mut a = [0.0 - g.roll, 0.0 - g.pitch, 0.0, 0.0, 0.0, 0.0, 1.0];
    if w.success() {
        // Done: hold a picked object, back off upwards after placing.
        if t.kind == TaskKind::Pick {
            a[6] = 0.0;
        } else {
            a[5] = EXPERT_SPEED;
        }
        return a;
    }
    let x = &w.objects[t.target];
    if g.held != Some(t.target) {
        if g.held.is_some() || g.opening < MAX_OPENING - 1e-4 {
            // Holding the wrong thing, or fingers closed on nothing: open and back off.
            a[5] = 0.5 * EXPERT_SPEED;
            return a;
        }
        let hover = (highest_top(w, None) + CLEARANCE).max(0.10);
        let grasp = (x.pos.z + 0.008).max(x.top() - FINGER_H + 0.008).max(Z_MIN);
        let dyaw = wrap_angle(grasp_yaw(x, g.yaw) - g.yaw);
        let exy = g.pos.dist_xy(x.pos);
        if funnel {
            a[2] = dyaw.clamp(-EXPERT_YAW_SPEED, EXPERT_YAW_SPEED);
            if g.pos.z <= grasp + 0.002 && exy <= 1.5 * FUNNEL_XY && dyaw.abs() <= FUNNEL_YAW {
                a[2] = 0.0;
                a[6] = 0.0;
                return a;
            }
            let z = funnel_z(grasp, hover, exy, dyaw);
            let goal = if g.pos.z < z - 0.01 { V3::new(g.pos.x, g.pos.y, z) } else { V3::new(x.pos.x, x.pos.y, z) };
            set_motion(&mut a, goal - g.pos);
            return a;
        }
        let goal = if exy > XY_TOL || dyaw.abs() > YAW_TOL {
            a[2] = dyaw.clamp(-EXPERT_YAW_SPEED, EXPERT_YAW_SPEED);
            if g.pos.z < hover - 0.01 && exy > 0.01 {
                V3::new(g.pos.x, g.pos.y, hover)
            } else {
                V3::new(x.pos.x, x.pos.y, hover)
            }
        } else if g.pos.z > grasp + 1e-4 {
            V3::new(x.pos.x, x.pos.y, grasp)
        } else {
            a[6] = 0.0;
            return a;
        };
        set_motion(&mut a, goal - g.pos);
        return a;
    }
    // Holding X.
    a[6] = 0.0;
    let bottom = x.pos.z;
    let (dest, release) = match t.kind {
        TaskKind::Pick => {
            set_motion(&mut a, V3::new(0.0, 0.0, LIFT_HEIGHT + 0.03 - bottom));
            return a;
        }
        TaskKind::Stack => {
            let y = &w.objects[t.reference.unwrap_or(t.target)];
            (y.pos, y.top() + 0.006)
        }
        TaskKind::Place => {
            let spot = place_spot(&w.objects, t.target, t.reference.unwrap_or(t.target));
            (spot.unwrap_or(x.pos), 0.006)
        }
    };
    let carry = (highest_top(w, Some(t.target)) + CLEARANCE).max(release);
    let exy = x.pos.dist_xy(dest);
    if funnel {
        if bottom <= release + 0.002 && exy <= 1.5 * FUNNEL_XY {
            a[6] = 1.0;
            return a;
        }
        let z = funnel_z(release, carry, exy, 0.0);
        let goal = if bottom < z - 0.01 { V3::new(x.pos.x, x.pos.y, z) } else { V3::new(dest.x, dest.y, z) };
        set_motion(&mut a, goal - x.pos);
        return a;
    }
    let goal = if exy > XY_TOL {
        if bottom < carry - 0.01 && exy > 0.01 {
            V3::new(x.pos.x, x.pos.y, carry)
        } else {
            V3::new(dest.x, dest.y, carry)
        }
    } else if bottom > release + 1e-4 {
        V3::new(dest.x, dest.y, release)
    } else {
        a[6] = 1.0;
        return a;
    };
    set_motion(&mut a, goal - x.pos);
    a
}

/// Straight-line motion towards `d`, at most `EXPERT_SPEED` long.
fn set_motion(a: &mut Action, d: V3) {
    let n = d.norm();
    let d = if n > EXPERT_SPEED { d * (EXPERT_SPEED / n) } else { d };
    a[3] = d.x;
    a[4] = d.y;
    a[5] = d.z;
}

/// Highest object top, ignoring `skip` and whatever it carries.
fn highest_top(w: &World, skip: Option<usize>) -> f32 {
    let carried = skip.map(|s| w.carried_by(s));
    w.objects
        .iter()
        .enumerate()
        .filter(|(i, _)| !carried.as_ref().is_some_and(|c| c[*i]))
        .map(|(_, o)| o.top())
        .fold(0.0, f32::max)
}

/// Gripper yaw for grasping `o`: across a box's short side, nearest to `cur`.
fn grasp_yaw(o: &Object, cur: f32) -> f32 {
    let period = match o.shape {
        Shape::Cube => std::f32::consts::FRAC_PI_2,
        // The gripper is symmetric under a half turn.
        _ => std::f32::consts::PI,
    };
    if o.shape.box_half().is_none() {
        return cur;
    }
    let k = ((cur - o.yaw) / period).round();
    o.yaw + k * period
}

