//! The VideoVLA network, its samplers and weight loading.

pub mod conv3d;
pub mod vae;
