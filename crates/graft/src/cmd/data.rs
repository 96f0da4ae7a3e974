//! `graft data preview RECIPE --source NAME -n 3`: print a source's first documents as they will
//! be tokenized (templates applied, no BOS/EOS).

use std::path::PathBuf;

use anyhow::Context;
use graft_train::Recipe;

#[derive(clap::Subcommand)]
pub enum DataCommand {
    /// Print the first documents of a recipe's source, rendered exactly as training will see them.
    Preview(PreviewArgs),
}

#[derive(clap::Args)]
pub struct PreviewArgs {
    /// Recipe TOML file (read and checked as `graft train` reads it).
    pub recipe: PathBuf,
    /// Source name (a `[[data.sources]]` entry); default: every source.
    #[arg(long)]
    pub source: Option<String>,
    /// Number of documents per source.
    #[arg(short = 'n', long, default_value_t = 3)]
    pub n: usize,
    /// Override a recipe key, e.g. `--set data.seed=7` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

pub fn run(c: DataCommand) -> anyhow::Result<()> {
    match c {
        DataCommand::Preview(args) => preview(args),
    }
}

fn preview(args: PreviewArgs) -> anyhow::Result<()> {
    let recipe = Recipe::load(&args.recipe, &args.set)
        .with_context(|| format!("loading recipe {}", args.recipe.display()))?;
    let config = recipe.data;
    let names: Vec<String> = match args.source {
        Some(name) => vec![name],
        None => config.sources.iter().map(|s| s.name.clone()).collect(),
    };
    for name in names {
        let docs = graft_data::preview(&config, &name, args.n)
            .with_context(|| format!("previewing source `{name}`"))?;
        for (i, doc) in docs.iter().enumerate() {
            println!("===== {name} · document {} of {} =====", i + 1, docs.len());
            println!("{doc}\n");
        }
    }
    Ok(())
}
