//! The model a recipe trains: a base checkpoint (local HF directory or cached Hub id), or a
//! randomly initialised Llama built from `[model.init]`, seeded with `train.seed`. Resolved once
//! ([`resolve_model`]), then built on each training device ([`ModelSpec::build`]).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use burn::tensor::backend::AutodiffBackend;
use graft_llama::{Llama, ModelConfig};
use graft_train::recipe::ModelInit;
use graft_train::{ModelDtype, Recipe};

use crate::prep::{self, TokenizerSource};

/// Where the recipe's model comes from, resolved once before any weights are read.
#[derive(Debug, Clone)]
pub enum ModelOrigin {
    /// A base checkpoint directory (`[model].base`).
    Base(PathBuf),
    /// `[model.init]`: random weights from the backend RNG seeded with this seed.
    Init(u64),
}

/// The model to train, resolved but not yet built: its origin, its config (written into every
/// checkpoint) and where its tokenizer is. Built once per device with [`ModelSpec::build`].
#[derive(Debug, Clone)]
pub struct ModelSpec {
    pub origin: ModelOrigin,
    pub config: ModelConfig,
    pub tokenizer: TokenizerSource,
}

/// Resolve the recipe's model (reading only `config.json`). `recipe_path` locates relative paths
/// and names the recipe in errors.
pub fn resolve_model(recipe: &Recipe, recipe_path: &Path) -> anyhow::Result<ModelSpec> {
    let mut tokenizer = TokenizerSource {
        data_tokenizer: recipe.data.tokenizer.clone(),
        model_tokenizer: recipe.model.tokenizer.clone(),
        ..Default::default()
    };
    let (origin, config) = match (&recipe.model.base, &recipe.model.init) {
        (Some(base), _) => {
            let dir = prep::resolve_base(base, None, recipe_path)?;
            let config = ModelConfig::from_file(dir.join("config.json")).with_context(|| {
                format!(
                    "reading the config of [model].base = {base:?} in {}",
                    dir.display()
                )
            })?;
            tokenizer.model_dir = Some(dir.clone());
            (ModelOrigin::Base(dir), config)
        }
        (None, Some(init)) => (
            ModelOrigin::Init(recipe.train.seed),
            init_config(init, recipe.model.dtype, recipe_path)?,
        ),
        (None, None) => bail!(
            "{}: [model] needs `base` or a [model.init] table",
            recipe_path.display()
        ),
    };
    tokenizer.bos = config.llama.bos_token_id;
    tokenizer.eos = config.llama.eos_token_ids.first().copied();
    Ok(ModelSpec {
        origin,
        config,
        tokenizer,
    })
}

impl ModelSpec {
    /// Load the base weights, or initialise new ones from the seeded backend RNG, on `device`.
    ///
    /// The backend RNG is process-wide: data-parallel peers build their models one at a time
    /// (see `super::peer`) so that seeding and drawing are not interleaved.
    pub fn build<AB: AutodiffBackend>(&self, device: &AB::Device) -> anyhow::Result<Llama<AB>> {
        match &self.origin {
            ModelOrigin::Base(dir) => {
                tracing::info!(dir = %dir.display(), "loading the base model");
                let (model, _) = graft_llama::load::<AB>(dir, device)
                    .with_context(|| format!("loading the base model from {}", dir.display()))?;
                Ok(model)
            }
            ModelOrigin::Init(seed) => {
                AB::seed(device, *seed);
                tracing::info!(seed, "initialising a new model from [model.init]");
                // draw the weights now, from this seed (the trainer reseeds the RNG every step)
                Ok(self.config.llama.init::<AB>(device).materialize())
            }
        }
    }
}

/// `[model.init]` as an HF `config.json` (so checkpoints of a new model load in `transformers`).
pub fn init_config(
    init: &ModelInit,
    dtype: ModelDtype,
    recipe_path: &Path,
) -> anyhow::Result<ModelConfig> {
    let mut json = serde_json::to_value(init).context("serialising [model.init]")?;
    let map = json
        .as_object_mut()
        .context("[model.init] is not a table")?;
    for (key, value) in [
        ("architectures", serde_json::json!(["LlamaForCausalLM"])),
        ("model_type", "llama".into()),
        ("hidden_act", "silu".into()),
        ("torch_dtype", dtype_name(dtype).into()),
    ] {
        map.insert(key.into(), value);
    }
    let origin = PathBuf::from(format!("{} [model.init]", recipe_path.display()));
    let text = serde_json::to_string_pretty(&json).context("serialising [model.init]")?;
    ModelConfig::from_json_str(&text, &origin)
        .with_context(|| format!("{}: invalid [model.init]", recipe_path.display()))
}

/// The `torch_dtype` spelling of a recipe dtype.
fn dtype_name(dtype: ModelDtype) -> &'static str {
    match dtype {
        ModelDtype::F32 => "float32",
        ModelDtype::Bf16 => "bfloat16",
        ModelDtype::F16 => "float16",
    }
}
