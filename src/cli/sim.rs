//! `videovla sim ...` (owned by the simulator work).

#[derive(clap::Args, Debug)]
pub struct SimArgs {}

pub fn run(_args: SimArgs) -> anyhow::Result<()> {
    anyhow::bail!("`videovla sim` is not implemented yet")
}
