//! videovla: run VideoVLA and look at what it predicts.
//!
//! Data flow: `model` (network, samplers, weights) → `engine` (worker thread) →
//! `action` (semantics, stats, trajectory) → `ui` / `export`; beside them `sim`
//! (built-in robot), `robot`, `compare`, `cli`.

pub mod action;
pub mod cli;
pub mod compare;
pub mod convert;
pub mod engine;
pub mod export;
pub mod model;
pub mod robot;
pub mod sim;
pub mod ui;
pub mod util;
