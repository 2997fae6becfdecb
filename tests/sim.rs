//! Integration tests for the built-in tabletop simulator (`videovla::sim`).

use videovla::sim::eval::{evaluate, run_episode, EpisodeConfig};
use videovla::sim::geom::{fnv1a, V3, FNV_OFFSET};
use videovla::sim::tasks::{is_novel, sample_scene, Task};
use videovla::sim::world::{Support, FINGER_H};
use videovla::sim::*;

const OPEN: f32 = 1.0;
const CLOSE: f32 = 0.0;

fn obj(shape: Shape, color: Color, x: f32, y: f32) -> Object {
    Object { shape, color, pos: V3::new(x, y, 0.0), yaw: 0.0, support: Support::Table }
}

fn pick_task(target: usize) -> Task {
    Task { kind: TaskKind::Pick, target, reference: None, instruction: "pick up the red cube".into() }
}

/// A red cube at (0.1, 0) and a blue cube at (-0.1, 0); gripper open, high above the origin.
fn two_cubes() -> World {
    World::from_parts(
        vec![obj(Shape::Cube, Color::Red, 0.1, 0.0), obj(Shape::Cube, Color::Blue, -0.1, 0.0)],
        V3::new(0.0, 0.0, 0.2),
        0.0,
        pick_task(0),
    )
}

fn mv(dx: f32, dy: f32, dz: f32, grip: f32) -> [f32; 7] {
    [0.0, 0.0, 0.0, dx, dy, dz, grip]
}

/// Drive the TCP to `goal` with legal steps (keeping the gripper command `grip`).
fn go_to(w: &mut World, goal: V3, grip: f32) {
    for _ in 0..100 {
        let d = goal - w.gripper.pos;
        if d.norm() < 1e-6 {
            return;
        }
        let c = |v: f32| v.clamp(-MAX_TRANS_STEP, MAX_TRANS_STEP);
        w.step(&mv(c(d.x), c(d.y), c(d.z), grip)).unwrap();
    }
    panic!("could not reach {goal:?}; stuck at {:?}", w.gripper.pos);
}

/// Grasp the red cube of [`two_cubes`] and lift it to TCP height `z`.
fn grasp_red(w: &mut World, z: f32) {
    go_to(w, V3::new(0.1, 0.0, 0.2), OPEN);
    go_to(w, V3::new(0.1, 0.0, 0.01), OPEN);
    w.step(&mv(0.0, 0.0, 0.0, CLOSE)).unwrap();
    assert_eq!(w.gripper.held, Some(0), "closing around the cube grasps it");
    go_to(w, V3::new(0.1, 0.0, z), CLOSE);
}

fn world_fingerprint(w: &World) -> (Vec<f32>, [f32; 7], usize, u64) {
    let objs = w.objects.iter().flat_map(|o| [o.pos.x, o.pos.y, o.pos.z, o.yaw]).collect();
    (objs, w.ee_pose().0, w.steps, fnv1a(&w.render(32, 32), FNV_OFFSET))
}

#[test]
fn translation_moves_tcp_by_exactly_the_action() {
    let mut w = two_cubes();
    let p0 = w.ee_pose().0;
    w.step(&mv(0.03, 0.0, 0.0, OPEN)).unwrap();
    let p1 = w.ee_pose().0;
    assert!((p1[0] - p0[0] - 0.03).abs() < 1e-6, "x moved {}", p1[0] - p0[0]);
    assert_eq!(&p1[1..], &p0[1..], "nothing but x changes");
    w.step(&mv(-0.01, 0.02, -0.035, OPEN)).unwrap();
    let p2 = w.ee_pose().0;
    assert!((p2[0] - p1[0] + 0.01).abs() < 1e-6);
    assert!((p2[1] - p1[1] - 0.02).abs() < 1e-6);
    assert!((p2[2] - p1[2] + 0.035).abs() < 1e-6);
}

#[test]
fn translation_is_clipped_at_the_documented_limits() {
    let mut w = two_cubes();
    let p0 = w.ee_pose().0;
    w.step(&mv(0.5, -0.5, 0.0, OPEN)).unwrap();
    let p1 = w.ee_pose().0;
    assert!((p1[0] - p0[0] - MAX_TRANS_STEP).abs() < 1e-6);
    assert!((p1[1] - p0[1] + MAX_TRANS_STEP).abs() < 1e-6);
    // Workspace bounds.
    for _ in 0..20 {
        w.step(&mv(0.04, 0.0, 0.04, OPEN)).unwrap();
    }
    let p = w.ee_pose().0;
    assert_eq!(p[0], WORKSPACE_HALF);
    assert_eq!(p[2], Z_MAX);
    // Rotation: per-step limit on yaw, tilt limit on roll.
    let yaw0 = p[5];
    w.step(&[2.0, 0.0, 1.0, 0.0, 0.0, 0.0, OPEN]).unwrap();
    let q = w.ee_pose().0;
    assert!((q[3] - MAX_ROT_STEP).abs() < 1e-6, "roll {}", q[3]);
    assert!((q[5] - yaw0 - MAX_ROT_STEP).abs() < 1e-6, "yaw {}", q[5]);
    w.step(&[0.25, 0.0, 0.0, 0.0, 0.0, 0.0, OPEN]).unwrap();
    assert_eq!(w.ee_pose().0[3], MAX_TILT);
    // Gripper command is clipped to [0, 1].
    w.step(&mv(0.0, 0.0, 0.0, 7.0)).unwrap();
    assert_eq!(w.ee_pose().0[6], 1.0);
}

#[test]
fn bad_actions_are_rejected_and_leave_the_world_unchanged() {
    let mut w = two_cubes();
    w.step(&mv(0.01, 0.0, 0.0, OPEN)).unwrap();
    let before = world_fingerprint(&w);
    let bad: [Vec<f32>; 5] = [
        vec![0.0; 6],
        vec![0.0; 8],
        vec![],
        vec![0.0, 0.0, 0.0, f32::NAN, 0.0, 0.0, 1.0],
        vec![0.0, 0.0, f32::INFINITY, 0.0, 0.0, 0.0, 1.0],
    ];
    for a in &bad {
        let err = w.step(a).unwrap_err().to_string();
        assert!(err.contains("7") || err.contains("finite"), "unclear error: {err}");
    }
    assert_eq!(world_fingerprint(&w), before);
}

#[test]
fn closing_in_the_air_or_beside_an_object_grasps_nothing() {
    let mut w = two_cubes();
    // Above the cube, fingers well above its top.
    go_to(&mut w, V3::new(0.1, 0.0, 0.12), OPEN);
    w.step(&mv(0.0, 0.0, 0.0, CLOSE)).unwrap();
    assert_eq!(w.gripper.held, None);
    assert_eq!(w.gripper.opening, 0.0, "nothing between the fingers: they close fully");
    // Low, but 6 cm beside the cube (along the finger's depth axis).
    w.step(&mv(0.0, 0.0, 0.0, OPEN)).unwrap();
    go_to(&mut w, V3::new(0.1 + 0.07, 0.0, 0.12), OPEN);
    go_to(&mut w, V3::new(0.1 + 0.07, 0.0, 0.01), OPEN);
    w.step(&mv(0.0, 0.0, 0.0, CLOSE)).unwrap();
    assert_eq!(w.gripper.held, None);
    // Lifting afterwards leaves the cube where it was.
    go_to(&mut w, V3::new(0.17, 0.0, 0.15), CLOSE);
    assert_eq!(w.objects[0].pos, V3::new(0.1, 0.0, 0.0));
}

#[test]
fn closing_around_an_object_grasps_it_and_it_follows() {
    let mut w = two_cubes();
    grasp_red(&mut w, 0.01);
    let width = 2.0 * Shape::Cube.box_half().unwrap().1;
    assert!((w.gripper.opening - width).abs() < 1e-5, "fingers stop at the cube: {}", w.gripper.opening);
    let o0 = w.objects[0].pos;
    let g0 = w.gripper.pos;
    w.step(&mv(0.0, 0.03, 0.04, CLOSE)).unwrap();
    w.step(&mv(-0.02, 0.0, 0.04, CLOSE)).unwrap();
    let (dg, dobj) = (w.gripper.pos - g0, w.objects[0].pos - o0);
    assert!((dg - dobj).norm() < 1e-6, "object moved {dobj:?}, gripper {dg:?}");
    assert!(w.objects[0].pos.z > 0.07);
    assert!(w.success(), "pick succeeds once lifted");
}

#[test]
fn descending_onto_an_object_is_blocked() {
    let mut w = two_cubes();
    // A finger lands on the cube top (cube centre under the finger, not between the fingers).
    go_to(&mut w, V3::new(0.1, -0.05, 0.15), OPEN);
    for _ in 0..10 {
        w.step(&mv(0.0, 0.0, -0.04, OPEN)).unwrap();
    }
    let top = w.objects[0].top();
    assert!(w.gripper.pos.z >= top - 1e-5, "finger went into the cube: tcp z {} < top {}", w.gripper.pos.z, top);
    assert!(w.gripper.pos.z < top + 0.01, "stopped close to the top");
}

#[test]
fn release_over_another_cube_stacks() {
    let mut w = two_cubes();
    grasp_red(&mut w, 0.12);
    go_to(&mut w, V3::new(-0.1, 0.0, 0.12), CLOSE);
    w.step(&mv(0.0, 0.0, 0.0, OPEN)).unwrap();
    w.step(&mv(0.0, 0.0, 0.02, OPEN)).unwrap();
    let (red, blue) = (&w.objects[0], &w.objects[1]);
    assert_eq!(red.support, Support::On(1));
    assert!((red.pos.z - blue.top()).abs() < 1e-5, "resting on top: {} vs {}", red.pos.z, blue.top());
    assert!(w.interpenetrations().is_empty());
}

#[test]
fn release_over_the_table_falls_to_the_table() {
    let mut w = two_cubes();
    grasp_red(&mut w, 0.2);
    go_to(&mut w, V3::new(0.0, 0.12, 0.2), CLOSE);
    w.step(&mv(0.0, 0.0, 0.0, OPEN)).unwrap();
    // Falling takes a few sub-steps; it is in the air right after opening.
    for _ in 0..3 {
        w.step(&mv(0.0, 0.0, 0.0, OPEN)).unwrap();
    }
    let red = &w.objects[0];
    assert_eq!(red.support, Support::Table);
    assert_eq!(red.pos.z, 0.0);
    assert!((red.pos.x - 0.0).abs() < 1e-5 && (red.pos.y - 0.12).abs() < 1e-5);
}

#[test]
fn released_object_falls_step_by_step_not_instantly() {
    let mut w = two_cubes();
    grasp_red(&mut w, 0.25);
    let mut heights = Vec::new();
    w.step_with(&mv(0.0, 0.0, 0.0, OPEN), |w| heights.push(w.objects[0].pos.z)).unwrap();
    assert!(heights.windows(2).all(|p| p[1] <= p[0]), "monotone fall: {heights:?}");
    assert!(heights[0] > 0.2 && *heights.last().unwrap() > 0.0, "still falling after one action: {heights:?}");
}

#[test]
fn release_onto_a_ball_slides_off_without_interpenetration() {
    let mut w = World::from_parts(
        vec![obj(Shape::Cube, Color::Red, 0.1, 0.0), obj(Shape::Ball, Color::Blue, -0.1, 0.0)],
        V3::new(0.0, 0.0, 0.2),
        0.0,
        pick_task(0),
    );
    grasp_red(&mut w, 0.14);
    go_to(&mut w, V3::new(-0.1, 0.0, 0.14), CLOSE);
    for _ in 0..4 {
        w.step(&mv(0.0, 0.0, 0.0, OPEN)).unwrap();
    }
    let red = &w.objects[0];
    assert_eq!(red.support, Support::Table, "a ball's round top supports nothing");
    let touching = Shape::Cube.collision_radius() + Shape::Ball.collision_radius();
    assert!(red.pos.dist_xy(w.objects[1].pos) >= touching - 1e-4);
    assert!(w.interpenetrations().is_empty());
}

#[test]
fn objects_never_interpenetrate_under_random_actions() {
    let cfg = EpisodeConfig::default();
    for seed in 0..60u64 {
        let mut policy = RandomPolicy::new(cfg.chunk, seed);
        let mut w = World::reset(eval_task(seed), Split::Train, seed);
        let mut worst = Vec::new();
        run_episode(&mut w, &mut policy, &cfg, |w| {
            if worst.is_empty() {
                worst = w.interpenetrations();
            }
            for o in &w.objects {
                assert!(o.pos.z >= -1e-6, "object below the table");
            }
        })
        .unwrap();
        assert!(worst.is_empty(), "seed {seed}: objects {worst:?} interpenetrate");
    }
}

/// 70 % expert, 30 % random actions: grasps, carries and drops in odd places.
struct Chaos {
    rng: u64,
}

impl Policy for Chaos {
    fn name(&self) -> String {
        "chaos".into()
    }
    fn needs_image(&self) -> bool {
        false
    }
    fn act(&mut self, obs: &Observation) -> anyhow::Result<Vec<[f32; 7]>> {
        // xorshift: deterministic, no shared state.
        let mut next = || {
            self.rng ^= self.rng << 13;
            self.rng ^= self.rng >> 7;
            self.rng ^= self.rng << 17;
            (self.rng >> 40) as f32 / (1u64 << 24) as f32
        };
        let w = obs.world.as_ref().unwrap();
        let mut a = expert_action(w);
        if next() < 0.3 {
            for v in &mut a[3..6] {
                *v = (next() * 2.0 - 1.0) * MAX_TRANS_STEP;
            }
            a[6] = if next() < 0.3 { 1.0 } else { a[6] };
        }
        Ok(vec![a])
    }
}

#[test]
fn objects_never_interpenetrate_when_carried_and_dropped_anywhere() {
    let cfg = EpisodeConfig { chunk: 1, execute: 1, ..EpisodeConfig::default() };
    let mut grasps = 0;
    for seed in 0..150u64 {
        let mut policy = Chaos { rng: seed * 2654435761 + 1 };
        let mut w = World::reset(eval_task(seed), Split::Train, seed);
        let mut bad = Vec::new();
        let mut held = false;
        run_episode(&mut w, &mut policy, &cfg, |w| {
            if bad.is_empty() {
                bad = w.interpenetrations();
            }
            held |= w.gripper.held.is_some();
        })
        .unwrap();
        grasps += held as usize;
        assert!(bad.is_empty(), "seed {seed}: objects {bad:?} interpenetrate");
    }
    assert!(grasps > 60, "the fuzzing policy grasped in only {grasps} episodes");
}

fn eval_task(i: u64) -> TaskKind {
    TaskKind::ALL[(i % 3) as usize]
}

#[test]
fn grasp_needs_an_upright_gripper() {
    let mut w = two_cubes();
    go_to(&mut w, V3::new(0.1, 0.0, 0.2), OPEN);
    w.step(&[0.2, 0.0, 0.0, 0.0, 0.0, 0.0, OPEN]).unwrap();
    go_to(&mut w, V3::new(0.1, 0.0, 0.01), OPEN);
    w.step(&mv(0.0, 0.0, 0.0, CLOSE)).unwrap();
    assert_eq!(w.gripper.held, None, "tilted by 0.2 rad: no grasp");
}

#[test]
fn unknown_task_error_lists_the_valid_tasks() {
    let err = "fly".parse::<TaskKind>().unwrap_err().to_string();
    for t in ["pick", "stack", "place"] {
        assert!(err.contains(t), "{err}");
    }
    assert_eq!("Stack".parse::<TaskKind>().unwrap(), TaskKind::Stack);
    let err = "test".parse::<Split>().unwrap_err().to_string();
    assert!(err.contains("train") && err.contains("novel"), "{err}");
}

#[test]
fn novel_objects_never_appear_in_training_scenes() {
    let novel: usize = Shape::ALL.iter().flat_map(|&s| Color::ALL.map(move |c| is_novel(s, c))).filter(|&n| n).count();
    assert_eq!(novel, 8);
    for seed in 0..300u64 {
        let kind = eval_task(seed);
        let s = sample_scene(kind, Split::Train, seed);
        assert!(s.objects.iter().all(|o| !is_novel(o.shape, o.color)), "train seed {seed}");
        let n = sample_scene(kind, Split::Novel, seed);
        let t = &n.objects[n.task.target];
        assert!(is_novel(t.shape, t.color), "novel seed {seed}: target {}", t.name());
        // Referring expressions are unambiguous.
        let mut names: Vec<String> = n.objects.iter().map(|o| o.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), n.objects.len());
        assert!((3..=5).contains(&n.objects.len()));
    }
}

#[test]
fn every_task_has_several_phrasings() {
    for kind in TaskKind::ALL {
        let mut verbs: Vec<String> = (0..200u64)
            .map(|seed| {
                let s = sample_scene(kind, Split::Train, seed);
                s.task.instruction.split(" the ").next().unwrap_or("").to_string()
            })
            .collect();
        verbs.sort();
        verbs.dedup();
        assert!(verbs.len() >= 3, "{kind:?}: {verbs:?}");
    }
}

#[test]
fn a_chunk_of_six_actions_spans_forty_nine_frames() {
    let mut w = two_cubes();
    let mut frames = 1; // the current frame
    for _ in 0..6 {
        w.step_with(&mv(0.01, 0.0, 0.0, OPEN), |_| frames += 1).unwrap();
    }
    assert_eq!(frames, 49);
    // With 4 sub-frames: 6 × 4 + 1.
    w.substeps = 4;
    let mut n = 1;
    for _ in 0..6 {
        w.step_with(&mv(0.0, 0.01, 0.0, OPEN), |_| n += 1).unwrap();
    }
    assert_eq!(n, 25);
}

#[test]
fn closed_loop_executes_a_prefix_of_each_chunk() {
    struct Counting {
        calls: usize,
    }
    impl Policy for Counting {
        fn name(&self) -> String {
            "counting".into()
        }
        fn act(&mut self, obs: &Observation) -> anyhow::Result<Vec<[f32; 7]>> {
            assert_eq!(obs.image.len(), obs.width * obs.height * 3);
            assert_eq!(obs.width, 64);
            self.calls += 1;
            Ok(vec![[0.0; 7]; 6])
        }
    }
    let mut p = Counting { calls: 0 };
    let mut w = World::reset(TaskKind::Pick, Split::Train, 3);
    let out = run_episode(&mut w, &mut p, &EpisodeConfig::default(), |_| {}).unwrap();
    assert_eq!(out.steps, TaskKind::Pick.max_steps());
    assert_eq!(p.calls, TaskKind::Pick.max_steps().div_ceil(3));
    assert!(!out.success);
}

/// Hash of every 64×64 frame of one expert stack episode. Changing the renderer,
/// physics, scene sampler or expert changes it; update deliberately.
const GOLDEN_HASH: u64 = 0xe765_62c6_3bd1_c4f8;

#[test]
fn same_seed_gives_the_same_frames() {
    let run = || {
        let mut w = World::reset(TaskKind::Stack, Split::Novel, 1_000_123);
        let mut p = ExpertPolicy::new(6);
        let mut h = FNV_OFFSET;
        let mut n = 0;
        run_episode(&mut w, &mut p, &EpisodeConfig::default(), |w| {
            h = fnv1a(&w.render(64, 64), h);
            n += 1;
        })
        .unwrap();
        (h, n)
    };
    let (a, n) = run();
    assert_eq!(run(), (a, n));
    assert!(n > 49);
    assert_eq!(a, GOLDEN_HASH, "frame hash changed: {a:#x}");
}

#[test]
fn different_seeds_give_different_scenes() {
    let a = World::reset(TaskKind::Pick, Split::Train, 1).render(64, 64);
    let b = World::reset(TaskKind::Pick, Split::Train, 2).render(64, 64);
    assert!(a != b);
}

#[test]
fn scene_is_readable_at_64_pixels() {
    // Every object and the gripper cover a reasonable number of pixels.
    let w = World::reset(TaskKind::Stack, Split::Train, 7);
    let img = w.render(64, 64);
    let mut empty = w.clone();
    for (i, o) in w.objects.iter().enumerate() {
        let mut without = w.clone();
        without.objects.remove(i);
        let diff = img.chunks(3).zip(without.render(64, 64).chunks(3)).filter(|(a, b)| a != b).count();
        assert!(diff >= 12, "{} covers only {diff} pixels", o.name());
    }
    empty.gripper.pos = V3::new(0.0, 0.0, 5.0);
    let diff = img.chunks(3).zip(empty.render(64, 64).chunks(3)).filter(|(a, b)| a != b).count();
    assert!(diff >= 25, "gripper covers only {diff} pixels");
    // Open and closed grippers look different.
    let mut closed = w.clone();
    closed.step(&[0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]).unwrap();
    assert!(closed.render(64, 64) != w.render(64, 64));
}

#[test]
fn expert_solves_at_least_99_percent_on_train_and_novel() {
    let mut p = ExpertPolicy::new(6);
    let report =
        evaluate(&mut p, &Split::ALL, 300, EVAL_SEED_START, &EpisodeConfig::default(), || {}).unwrap();
    for c in &report.results {
        println!("sim expert {} {}: {}% of {}", c.split, c.task, c.success_rate, c.episodes);
        assert!(c.success_rate >= 99.0, "{} / {}: {}%", c.task, c.split, c.success_rate);
    }
    // Expert episodes are short: a pick takes 10-25 actions.
    let picks: Vec<usize> = report.episodes.iter().filter(|e| e.task == TaskKind::Pick).map(|e| e.steps).collect();
    let mean = picks.iter().sum::<usize>() as f64 / picks.len() as f64;
    assert!((8.0..=25.0).contains(&mean), "mean pick length {mean}");
}

#[test]
fn random_policy_scores_at_most_10_percent() {
    let mut p = RandomPolicy::new(6, 1);
    let report =
        evaluate(&mut p, &Split::ALL, 150, EVAL_SEED_START, &EpisodeConfig::default(), || {}).unwrap();
    let all: Vec<_> = report.results.iter().filter(|c| c.task == "all").collect();
    assert_eq!(all.len(), 2);
    for c in all {
        println!(
            "sim random {} all: {}% of {}, reached {}, grasped {}, closest {} cm",
            c.split, c.success_rate, c.episodes, c.reached, c.grasped, c.mean_closest_cm
        );
        assert!(c.success_rate <= 10.0, "{}: {}%", c.split, c.success_rate);
        assert!(c.mean_closest_cm > 1.0, "random motion rarely ends over the target: {c:?}");
    }
}

#[test]
fn eval_report_json_parses_back() {
    let mut p = ExpertPolicy::new(6);
    let report = evaluate(&mut p, &[Split::Novel], 6, EVAL_SEED_START, &EpisodeConfig::default(), || {}).unwrap();
    let text = serde_json::to_string(&report).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["policy"], "expert");
    assert_eq!(v["episodes_per_split"], 6);
    assert_eq!(v["config"]["chunk"], 6);
    assert_eq!(v["config"]["execute"], 3);
    assert_eq!(v["config"]["substeps"], 8);
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 4, "pick, stack, place, all");
    let all = results.iter().find(|c| c["task"] == "all").unwrap();
    assert_eq!(all["split"], "novel");
    assert_eq!(all["episodes"], 6);
    assert!(all["success_rate"].as_f64().unwrap() >= 0.0);
    assert!(all["mean_success_steps"].as_f64().unwrap() > 5.0, "expert episodes take several actions");
    let eps = v["episodes"].as_array().unwrap();
    assert_eq!(eps.len(), 6);
    assert!(eps[0]["instruction"].as_str().unwrap().contains("the"));
    assert!(eps.iter().all(|e| e["success"].is_boolean() && e["steps"].as_u64().unwrap() > 0));
    // Progress measures: the expert goes right over every target and grasps it.
    assert_eq!((all["reached"].as_u64(), all["grasped"].as_u64()), (Some(6), Some(6)), "{all}");
    assert!(all["mean_closest_cm"].as_f64().unwrap() < 1.0, "{all}");
    assert!(eps.iter().all(|e| e["grasped"] == true && e["closest_cm"].as_f64().unwrap() < 1.0));
    let table = report.table();
    assert!(table.contains("pick") && table.contains("novel") && table.contains('%'));
    assert!(table.contains("progress") && table.contains("6/6"), "{table}");
}

#[test]
fn model_folders_run_as_policies_through_the_pipeline() {
    // A folder without a model is a clear error; a real model folder runs closed loop.
    let dir = std::env::temp_dir();
    let err = format!("{:#}", make_policy(dir.to_str().unwrap(), 6, 0).err().unwrap());
    assert!(err.contains("config.json"), "{err}");
    let err = make_policy("/no/such/model", 6, 0).err().unwrap().to_string();
    assert!(err.contains("expert") && err.contains("random"), "{err}");
    assert_eq!(make_policy("expert", 6, 0).unwrap().name(), "expert");
    assert_eq!(make_policy("random", 6, 0).unwrap().name(), "random");
    assert!(make_policy("expert:0.3", 6, 0).unwrap().name().contains("perturbed, p = 0.3"));
    assert!(make_policy("expert:x", 6, 0).err().unwrap().to_string().contains("expert:0.3"));
    assert!(make_policy("expert:2", 6, 0).err().unwrap().to_string().contains("between 0 and 1"));
    let model = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tiny_model");
    let mut policy = make_policy(model, 6, 0).unwrap();
    assert!(policy.name().starts_with("model:"));
    let mut world = World::reset(TaskKind::Pick, Split::Train, 1_000_123);
    let cfg = EpisodeConfig::default();
    let outcome = run_episode(&mut world, policy.as_mut(), &cfg, |_| {}).unwrap();
    assert!(outcome.steps > 0 && outcome.actions.iter().all(|a| a.iter().all(|v| v.is_finite())));
    assert!(outcome.actions.iter().all(|a| a[6] == 0.0 || a[6] == 1.0), "gripper is binarised");
}

#[test]
fn recorded_dataset_has_aligned_frames_actions_and_metadata() {
    use videovla::sim::dataset::{record, RecordConfig};
    let out = std::env::temp_dir().join(format!("videovla-sim-test-{}", std::process::id()));
    let cfg = RecordConfig {
        episodes: 4,
        split: Split::Train,
        seed: 10,
        out: out.clone(),
        size: 32,
        episode: EpisodeConfig { image_size: 32, ..EpisodeConfig::default() },
        episodes_per_shard: 3,
        perturb: 0.0,
        expert: Default::default(),
        lead: None,
    };
    let meta = record(&cfg, || {}).unwrap();
    assert_eq!(meta.shards.len(), 2);
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("meta.json")).unwrap()).unwrap();
    assert_eq!(json["expert"], "waypoints");
    let eps = json["episodes"].as_array().unwrap();
    assert_eq!(eps.len(), 4);
    for (i, e) in eps.iter().enumerate() {
        let shard = json["shards"][e["shard"].as_u64().unwrap() as usize].as_str().unwrap();
        let bytes = std::fs::read(out.join(shard)).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let frames = st.tensor("frames").unwrap();
        let actions = st.tensor("actions").unwrap();
        let poses = st.tensor("ee_pose").unwrap();
        assert_eq!(frames.dtype(), safetensors::Dtype::U8);
        assert_eq!(&frames.shape()[1..], &[32, 32, 3]);
        assert_eq!(actions.dtype(), safetensors::Dtype::F32);
        assert_eq!(actions.shape()[1], 7);
        assert_eq!(poses.shape(), &[frames.shape()[0], 7]);
        let (fc, ac) = (e["frame_count"].as_u64().unwrap(), e["action_count"].as_u64().unwrap());
        assert_eq!(fc, 1 + 8 * ac, "frames align with actions");
        assert_eq!(e["task"], eval_task(i as u64).name());
        assert_eq!(e["seed"], 10 + i as u64);
        assert_eq!(e["split"], "train");
        assert!(e["success"].as_bool().unwrap());
        assert!(!e["instruction"].as_str().unwrap().is_empty());
        // The recorded first action replays to the recorded second key frame pose.
        let fs = e["frame_start"].as_u64().unwrap() as usize;
        let as_ = e["action_start"].as_u64().unwrap() as usize;
        let f32s = |b: &[u8]| b.chunks(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect::<Vec<f32>>();
        let act = f32s(actions.data());
        let pose = f32s(poses.data());
        let mut w = World::reset(eval_task(i as u64), Split::Train, 10 + i as u64);
        assert_eq!(&pose[fs * 7..fs * 7 + 7], &w.ee_pose().0);
        w.step(&act[as_ * 7..as_ * 7 + 7]).unwrap();
        assert_eq!(&pose[(fs + 8) * 7..(fs + 8) * 7 + 7], &w.ee_pose().0);
        let img = w.render(32, 32);
        let fbytes = frames.data();
        assert!(fbytes[(fs + 8) * 32 * 32 * 3..(fs + 9) * 32 * 32 * 3] == img[..], "recorded frame differs");
    }
    assert!(!out.join("shard-00000.safetensors.tmp").exists());
    std::fs::remove_dir_all(&out).unwrap();
}

/// `sim record --lead POLICY`: the policy drives each episode for 0..=N plans, then the expert's
/// part is recorded from the state it left (DAgger-style hand-over data).
#[test]
fn recording_with_a_lead_in_starts_where_the_policy_left_the_arm() {
    use videovla::sim::dataset::{record, Lead, RecordConfig};
    let out = std::env::temp_dir().join(format!("videovla-sim-lead-{}", std::process::id()));
    let cfg = RecordConfig {
        episodes: 6,
        split: Split::Train,
        seed: 40,
        out: out.clone(),
        size: 16,
        episode: EpisodeConfig { image_size: 16, substeps: 1, ..EpisodeConfig::default() },
        episodes_per_shard: 10,
        perturb: 0.0,
        expert: Default::default(),
        lead: Some(Lead { policy: "random".into(), max_plans: 3 }),
    };
    let meta = record(&cfg, || {}).unwrap();
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("meta.json")).unwrap()).unwrap();
    assert_eq!((json["lead"].as_str(), json["lead_max_plans"].as_u64()), (Some("random"), Some(3)));
    let bytes = std::fs::read(out.join(&meta.shards[0])).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let pose: Vec<f32> =
        st.tensor("ee_pose").unwrap().data().chunks(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    let mut led = 0;
    for (i, e) in meta.episodes.iter().enumerate() {
        assert!(e.lead_actions <= 3 * 3, "{e:?}");
        assert_eq!(e.frame_count, 1 + e.action_count, "frames align with actions");
        let start = World::reset(eval_task(i as u64), Split::Train, 40 + i as u64).ee_pose().0;
        let first = &pose[e.frame_start * 7..e.frame_start * 7 + 7];
        if e.lead_actions > 0 {
            led += 1;
            assert_ne!(first, &start, "episode {i} should start where the lead-in left the arm");
        } else {
            assert_eq!(first, &start, "episode {i} had no lead-in");
        }
    }
    assert!(led >= 2, "the lead-in plan counts are drawn from 0..=3: {led} of 6 episodes were led");
    assert!(meta.episodes.iter().filter(|e| e.success).count() >= 4, "the expert recovers from random lead-ins");
    // Deterministic: the same config records the same hand-over points.
    let again = record(&cfg, || {}).unwrap();
    let counts = |m: &videovla::sim::dataset::DatasetMeta| m.episodes.iter().map(|e| e.lead_actions).collect::<Vec<_>>();
    assert_eq!(counts(&meta), counts(&again));
    // A lead policy that does not exist is a clear error.
    let bad = RecordConfig { lead: Some(Lead { policy: "no/such/model".into(), max_plans: 2 }), ..cfg };
    let err = record(&bad, || {}).unwrap_err().to_string();
    assert!(err.contains("no/such/model"), "{err}");
    std::fs::remove_dir_all(&out).unwrap();
}

/// `sim record --max-actions K` records the first K actions of each episode (the approach) and says
/// so in meta.json; the frames still align with the actions.
#[test]
fn recording_cut_after_k_actions() {
    use videovla::sim::dataset::{record, RecordConfig};
    let out = std::env::temp_dir().join(format!("videovla-sim-cut-{}", std::process::id()));
    let cfg = RecordConfig {
        episodes: 3,
        split: Split::Train,
        seed: 20,
        out: out.clone(),
        size: 16,
        episode: EpisodeConfig { image_size: 16, max_actions: 4, ..EpisodeConfig::default() },
        episodes_per_shard: 10,
        perturb: 0.0,
        expert: Default::default(),
        lead: None,
    };
    let meta = record(&cfg, || {}).unwrap();
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("meta.json")).unwrap()).unwrap();
    assert_eq!(json["max_actions"], 4);
    for e in &meta.episodes {
        assert_eq!((e.action_count, e.frame_count, e.success), (4, 1 + 8 * 4, false), "{e:?}");
    }
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
fn grasp_needs_a_centimetre_of_finger_overlap() {
    let mut w = two_cubes();
    let top = Shape::Cube.height();
    // Fingertips just above the top: nothing between the fingers.
    go_to(&mut w, V3::new(0.1, 0.0, top + 1e-4), OPEN);
    w.step(&mv(0.0, 0.0, 0.0, CLOSE)).unwrap();
    assert_eq!((w.gripper.held, w.gripper.opening), (None, 0.0));
    // 5 mm of overlap: the fingers touch the cube and stall, but do not hold it.
    w.step(&mv(0.0, 0.0, 0.0, OPEN)).unwrap();
    go_to(&mut w, V3::new(0.1, 0.0, top - 0.005), OPEN);
    w.step(&mv(0.0, 0.0, 0.0, CLOSE)).unwrap();
    assert_eq!(w.gripper.held, None);
    assert!((w.gripper.opening - 2.0 * Shape::Cube.box_half().unwrap().1).abs() < 1e-5);
    // 2 cm of overlap: a grasp.
    w.step(&mv(0.0, 0.0, 0.0, OPEN)).unwrap();
    go_to(&mut w, V3::new(0.1, 0.0, top - 0.02), OPEN);
    w.step(&mv(0.0, 0.0, 0.0, CLOSE)).unwrap();
    assert_eq!(w.gripper.held, Some(0));
    assert!(top - 0.02 + FINGER_H > top, "the palm stays above the cube");
}

#[test]
fn a_gripper_overlapping_an_object_can_always_rise() {
    // A cube right where the left finger is (as after an object slid off another one).
    let mut w = World::from_parts(
        vec![obj(Shape::Cube, Color::Red, 0.0, 0.051)],
        V3::new(0.0, 0.0, 0.02),
        0.0,
        pick_task(0),
    );
    assert!(w.gripper_collides(w.gripper.pos, 0.0));
    w.step(&mv(0.03, 0.0, 0.0, OPEN)).unwrap();
    assert_eq!(w.gripper.pos, V3::new(0.0, 0.0, 0.02), "sideways is blocked");
    w.step(&mv(0.0, 0.0, 0.04, OPEN)).unwrap();
    assert!((w.gripper.pos.z - 0.06).abs() < 1e-6, "rising is allowed");
    assert_eq!(w.objects[0].pos, V3::new(0.0, 0.051, 0.0));
}

#[test]
fn show_accepts_a_sentence_and_builds_the_scene_around_it() {
    use videovla::sim::tasks::TaskRequest;
    let r: TaskRequest = "Put the red cube on the blue bar".parse().unwrap();
    assert_eq!(r.kind, TaskKind::Stack);
    assert_eq!((r.target, r.reference), (Some((Shape::Cube, Color::Red)), Some((Shape::Bar, Color::Blue))));
    let r: TaskRequest = "set the green ball down by the white can".parse().unwrap();
    assert_eq!(r.kind, TaskKind::Place);
    let r: TaskRequest = "lift the orange sphere".parse().unwrap();
    assert_eq!((r.kind, r.target), (TaskKind::Pick, Some((Shape::Ball, Color::Orange))));
    assert_eq!("place".parse::<TaskRequest>().unwrap().target, None);
    let err = "dance with the robot".parse::<TaskRequest>().unwrap_err().to_string();
    assert!(err.contains("pick") && err.contains("stack") && err.contains("place"), "{err}");
    assert!("put the red cube on the blue ball".parse::<TaskRequest>().is_err(), "balls support nothing");
    for seed in 0..30 {
        let r: TaskRequest = "put the red cube on the blue bar".parse().unwrap();
        let mut w = World::reset_request(&r, Split::Train, seed);
        assert_eq!(w.instruction(), "put the red cube on the blue bar");
        assert_eq!(w.objects[w.task.target].name(), "red cube");
        assert_eq!(w.objects[w.task.reference.unwrap()].name(), "blue bar");
        let mut p = ExpertPolicy::new(6);
        assert!(run_episode(&mut w, &mut p, &EpisodeConfig::default(), |_| {}).unwrap().success);
    }
}

#[test]
fn imagination_quality_compares_imagined_and_executed_clips() {
    use videovla::sim::imagine::evaluate_imagination;
    use videovla::sim::model_policy::ModelPolicy;
    let model = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tiny_model");
    let mut policy = ModelPolicy::load(std::path::Path::new(model), 6, 0).unwrap();
    let cfg = EpisodeConfig::default();
    let mut clips = 0;
    let report = evaluate_imagination(&mut policy, Split::Novel, 2, EVAL_SEED_START, 2, &cfg, |_, imagined, real| {
        assert_eq!(imagined.len(), real.len());
        assert_eq!(real[0].dimensions(), (64, 64));
        clips += 1;
    })
    .unwrap();
    assert_eq!(report.samples.len(), clips);
    assert!(clips >= 2);
    // A random-weight model imagines noise: far below the "nothing moves" baseline.
    assert!(report.mean_psnr.is_finite() && report.mean_psnr < report.static_psnr, "{report:?}");
    assert!(report.static_ssim > 0.5 && report.mean_ssim < report.static_ssim);
}

#[test]
fn sim_show_runs_a_model_folder_and_writes_a_contact_sheet() {
    // `sim show` takes the same policies as `sim eval`, model folders included.
    let model = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tiny_model");
    let out = std::env::temp_dir().join(format!("videovla-show-{}.png", std::process::id()));
    let run = |policy: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_videovla"))
            .args(["sim", "show", "--task", "pick", "--seed", "1000123", "--policy", policy, "--out"])
            .arg(&out)
            .output()
            .unwrap()
    };
    let o = run(model);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout.contains("Pick task, seed 1000123") && stdout.contains("after"), "{stdout}");
    let sheet = image::open(&out).unwrap().to_rgb8();
    assert_eq!(sheet.width(), 8 * 64, "8 actions per row of 64-px frames");
    assert!(sheet.height() >= 2 * 64 && sheet.height() % 64 == 0);
    std::fs::remove_file(&out).unwrap();
    let o = run("/no/such/model");
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("nor an existing model directory"));
    assert!(!out.exists(), "nothing written on error");
}

#[test]
fn perturbed_expert_is_pushed_off_course_and_recovers() {
    use videovla::sim::policy::PerturbedExpert;
    assert!(PerturbedExpert::new(6, 1.5).err().unwrap().to_string().contains("--perturb"));
    let cfg = EpisodeConfig::default();
    let mut plain = ExpertPolicy::new(6);
    let mut pushed = PerturbedExpert::new(6, 0.3).unwrap();
    let (n, mut ok, mut ok_plain, mut differ) = (30u64, 0, 0, 0);
    for i in 0..n {
        let run = |p: &mut dyn Policy| {
            let mut w = World::reset(eval_task(i), Split::Train, EVAL_SEED_START + i);
            run_episode(&mut w, p, &cfg, |_| {}).unwrap()
        };
        let (a, b, b2) = (run(&mut plain), run(&mut pushed), run(&mut pushed));
        assert_eq!(b.actions, b2.actions, "the same seed gives the same pushes");
        ok_plain += a.success as usize;
        ok += b.success as usize;
        differ += (a.actions != b.actions) as usize;
    }
    println!("sim perturbed expert (p = 0.3): {ok}/{n} successes (plain {ok_plain}/{n}), {differ} episodes changed");
    assert!(differ >= n as usize / 2, "pushes happen: {differ}/{n}");
    assert!(ok * 10 >= n as usize * 8, "the expert recovers from its pushes: {ok}/{n}");
}

/// The funnel expert comes down onto the object while it aligns (the way-point expert never moves
/// down and sideways at once before its first grasp); both succeed, pushed or not.
#[test]
fn funnel_expert_descends_while_aligning_and_succeeds() {
    use videovla::sim::policy::make_policy;
    let cfg = EpisodeConfig::default();
    let n = 24u64;
    // Below hover height (the way-point expert's is at least 10 cm), before the first close, an
    // action that moves down and sideways (more than the way-point expert's 3 mm alignment).
    let diagonal = |i: u64, split: Split, actions: &[[f32; 7]]| {
        let mut w = World::reset(eval_task(i), split, EVAL_SEED_START + i);
        for a in actions.iter().take_while(|a| a[6] > 0.5) {
            if w.gripper.pos.z < 0.09 && a[5] < -0.003 && (a[3] * a[3] + a[4] * a[4]).sqrt() > 0.004 {
                return true;
            }
            w.step(a).unwrap();
        }
        false
    };
    for (spec, min_ok, want_diagonal) in
        [("expert-funnel", n, true), ("expert-funnel:0.3", n * 8 / 10, true), ("expert", n, false)]
    {
        let mut p = make_policy(spec, 6, 0).unwrap();
        let (mut ok, mut diag) = (0, 0);
        for i in 0..n {
            let split = if i % 2 == 0 { Split::Train } else { Split::Novel };
            let mut w = World::reset(eval_task(i), split, EVAL_SEED_START + i);
            let out = run_episode(&mut w, p.as_mut(), &cfg, |_| {}).unwrap();
            ok += out.success as u64;
            diag += diagonal(i, split, &out.actions) as u64;
        }
        println!("sim {}: {ok}/{n} successes, {diag} episodes descend while aligning", p.name());
        assert!(ok >= min_ok, "{spec}: {ok}/{n}");
        if want_diagonal {
            assert!(diag * 4 >= n * 3, "{spec}: the funnel descends while aligning in {diag}/{n}");
        } else {
            assert_eq!(diag, 0, "{spec}: the way-point expert aligns first");
        }
    }
    assert_eq!(make_policy("expert-funnel:0.3", 6, 0).unwrap().name(), "expert-funnel (perturbed, p = 0.3)");
    let err = make_policy("expert-sideways", 6, 0).err().unwrap().to_string();
    assert!(err.contains("waypoints or funnel"), "{err}");
}

#[test]
fn parallel_evaluation_reports_what_the_serial_one_does() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use videovla::sim::eval::evaluate_parallel;
    use videovla::sim::policy::make_policy;
    let cfg = EpisodeConfig::default();
    let model = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tiny_model");
    let cases: [(&str, &[Split], usize); 3] =
        [("random", &Split::ALL, 12), ("expert:0.3", &Split::ALL, 12), (model, &[Split::Novel], 3)];
    for (spec, splits, n) in cases {
        let mut p = make_policy(spec, 6, 7).unwrap();
        let serial = evaluate(p.as_mut(), splits, n, EVAL_SEED_START, &cfg, || {}).unwrap();
        let ticks = AtomicUsize::new(0);
        let tick = || {
            ticks.fetch_add(1, Ordering::Relaxed);
        };
        let mut first = make_policy(spec, 6, 7).unwrap();
        let make = || make_policy(spec, 6, 7);
        let par = evaluate_parallel(2, 1, first.as_mut(), make, splits, n, EVAL_SEED_START, &cfg, tick).unwrap();
        assert_eq!(ticks.load(Ordering::Relaxed), n * splits.len(), "{spec}: one progress tick per episode");
        assert_eq!(par.policy, serial.policy);
        assert_eq!(par.episodes, serial.episodes, "{spec}: same episodes in the same order");
        assert_eq!(par.results, serial.results);
    }
    // A helper whose policy cannot be built fails the evaluation with its own message.
    let mut first = make_policy("random", 6, 0).unwrap();
    let make = || make_policy("/no/such/model", 6, 0);
    let err = evaluate_parallel(2, 1, first.as_mut(), make, &Split::ALL, 40, EVAL_SEED_START, &cfg, || {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("nor an existing model directory"), "{err}");
}

#[test]
fn sim_eval_cli_runs_jobs_writes_json_and_survives_a_closed_pipe() {
    use std::process::{Command, Stdio};
    let json = std::env::temp_dir().join(format!("videovla-eval-{}.json", std::process::id()));
    let eval = |extra: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_videovla"));
        c.args(["sim", "eval", "--policy", "expert", "--episodes", "6", "--split", "novel"]).args(extra);
        c
    };
    let o = eval(&["--jobs", "2", "--json", json.to_str().unwrap()]).output().unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout.contains("100.0% (   6/6   )"), "{stdout}");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(v["episodes"].as_array().unwrap().len(), 6);
    std::fs::remove_file(&json).unwrap();
    let o = eval(&["--jobs", "0"]).output().unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--jobs must be between 1 and 256"));
    // `videovla sim eval … | head -0`: the reader is gone before the table is printed.
    let mut child = eval(&[]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success() && !stderr.contains("panicked"), "{:?}: {stderr}", o.status);
}
