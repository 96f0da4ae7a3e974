//! `graft plan RECIPE [--gpu-mem 80GB] [--devices N] [--config config.json] [--json]`: per-GPU
//! memory of the recipe's model (weights, gradients, AdamW state, activations with and without
//! checkpointing, the logits/loss buffer, ZeRO stages 0/1/2) for full training and LoRA, and
//! whether it fits the GPU. Reads only the model's `config.json` (`--config`, a local directory,
//! a Hub id in the HF cache — fetching only `config.json` when it is not — or `[model.init]`).

use std::path::PathBuf;

use anyhow::Context;
use graft_llama::hub;
use graft_train::plan::{plan, render_text, PlanOptions};
use graft_train::Recipe;

#[derive(clap::Args)]
pub struct Args {
    /// Recipe TOML file.
    pub recipe: PathBuf,
    /// Memory of one GPU: bytes or a size with a unit (80GB, 24GiB) [default: 80GB].
    #[arg(long, value_name = "SIZE")]
    pub gpu_mem: Option<String>,
    /// Data-parallel devices [default: the recipe's train.devices, else 1].
    #[arg(long, value_name = "N")]
    pub devices: Option<usize>,
    /// The model's config.json, in place of the recipe's model.base (no weights needed).
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Print the report as JSON (bytes) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Override a recipe key, e.g. `--set data.seq_len=2048` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let recipe = Recipe::load(&args.recipe, &args.set)
        .with_context(|| format!("loading recipe {}", args.recipe.display()))?;
    let gpu_mem = args
        .gpu_mem
        .as_deref()
        .map(graft_llama::export::parse_size)
        .transpose()
        .context("--gpu-mem")?;
    if args.devices == Some(0) {
        anyhow::bail!("--devices must be at least 1");
    }
    if let (None, Some(base)) = (&args.config, recipe.model.base.as_deref()) {
        hub::ensure_config(base, None).with_context(|| {
            format!("fetching config.json of [model].base = {base:?} (planning needs no weights)")
        })?;
    }
    let report = plan(
        &recipe,
        &PlanOptions {
            gpu_mem,
            devices: args.devices,
            config: args.config,
        },
    )
    .with_context(|| format!("planning {}", args.recipe.display()))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render_text(&report));
    }
    Ok(())
}
