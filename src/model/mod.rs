//! The VideoVLA network, its samplers and weight loading.
//!
//! `dit` (the joint video + action transformer), `vae` + `conv3d` (CogVideoX 3D causal VAE),
//! `text` (T5), `schedule` + `sampler` (zero-SNR v-prediction, DPM-Solver++(2M) SDE and DDIM
//! with DynamicCFG), `preprocess` (the released image preprocessing), `pipeline` (the one
//! predict API every front end uses).

pub mod conv3d;
pub mod dit;
#[cfg(feature = "download")]
pub mod download;
pub mod flops;
pub mod hub;
pub mod pipeline;
pub mod preprocess;
pub mod sampler;
pub mod schedule;
pub mod text;
pub mod vae;
