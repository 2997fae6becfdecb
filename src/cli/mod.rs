//! Command-line front end. Each subcommand lives in its own file and owns its clap `Args`.

use clap::{Parser, Subcommand};

pub mod bench;
pub mod compare;
pub mod convert;
pub mod flops;
pub mod predict;
pub mod serve;
pub mod sim;
pub mod viewer;

#[derive(Parser, Debug)]
#[command(name = "videovla", version, about = "Run VideoVLA and look at what it imagines")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// The built-in tabletop robot: record datasets, evaluate policies, show rollouts.
    Sim(sim::SimArgs),
    /// Predict the imagined video and the action chunk for one image and instruction.
    Predict(predict::PredictArgs),
    /// Time one full predict stage by stage (optionally beside the PyTorch reference).
    Bench(bench::BenchArgs),
    /// Convert an official PyTorch checkpoint (DiT or SAT VAE) into a model folder.
    Convert(convert::ConvertArgs),
    /// FLOPs per denoising step of a model and the floor they imply on a given peak.
    Flops(flops::FlopsArgs),
    /// Open the desktop imagination viewer (also what `videovla` with no arguments does).
    Viewer(viewer::ViewerArgs),
    /// Serve the model over openpi's websocket policy protocol (robots connect unchanged).
    Serve(serve::ServeArgs),
    /// Motion similarity (and PSNR/SSIM) of an imagined clip and an executed clip.
    Compare(compare::CompareArgs),
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Some(Command::Sim(args)) => sim::run(args),
        Some(Command::Bench(args)) => bench::run(args),
        Some(Command::Predict(args)) => predict::run(args),
        Some(Command::Convert(args)) => convert::run(args),
        Some(Command::Flops(args)) => flops::run(args),
        Some(Command::Viewer(args)) => viewer::run(args),
        Some(Command::Serve(args)) => serve::run(args),
        Some(Command::Compare(args)) => compare::run(args),
        None => viewer::run(viewer::ViewerArgs::default()),
    }
}
