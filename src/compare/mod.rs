//! Comparing imagination with reality: image quality (PSNR, SSIM) of imagined frames against
//! the frames the robot (or the simulator) produces when the predicted actions are executed.

pub mod metrics;

pub use metrics::{psnr, ssim, ClipScores};
