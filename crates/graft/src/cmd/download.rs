//! `graft download`: fetch a checkpoint from the HuggingFace Hub into the standard HF cache
//! (`HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`) and print its snapshot
//! directory, which every other command then accepts (or pass the repo id itself).
//!
//! With `HF_HUB_OFFLINE=1` nothing is fetched: the cached snapshot is printed, or an error says it
//! is not there.

use anyhow::Context;
use graft_llama::hub;

#[derive(clap::Args)]
pub struct Args {
    /// The Hub repo id, e.g. meta-llama/Llama-3.2-1B.
    pub repo_id: String,
    /// Branch, tag or commit hash.
    #[arg(long, default_value = hub::DEFAULT_REVISION)]
    pub revision: String,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if !hub::is_repo_id(&args.repo_id) {
        anyhow::bail!(
            "{}: not a Hub repo id; expected the form org/name (e.g. meta-llama/Llama-3.2-1B)",
            args.repo_id
        );
    }
    let snapshot = if hub::offline() {
        let cache = hub::hub_cache_dir()
            .context("cannot locate the HF cache: set HF_HUB_CACHE or HF_HOME")?;
        hub::resolve_in_cache(&cache, &args.repo_id, &args.revision).with_context(|| {
            format!(
                "{} (revision {}) is not in the HF cache at {} and HF_HUB_OFFLINE is set\n\
                 HINT: unset HF_HUB_OFFLINE to download it",
                args.repo_id,
                args.revision,
                cache.display()
            )
        })?
    } else {
        hub::download(&args.repo_id, Some(&args.revision))
            .with_context(|| format!("downloading {}", args.repo_id))?
    };
    println!("{}", snapshot.display());
    Ok(())
}
