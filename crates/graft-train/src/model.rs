//! The model a recipe names, resolved in one place for every command (`train`, `prepare`, `plan`,
//! `bench memory`): a base checkpoint (local HF directory, or Hub id in the HF cache through
//! [`graft_llama::hub::resolve_for`]), or a randomly initialised Llama built from `[model.init]`,
//! seeded with `train.seed`. Resolved once ([`resolve_model`], or [`resolve_config`] when only the
//! architecture is needed), then built on each training device ([`ModelSpec::build`]).
//!
//! Commands that take a model argument instead of a recipe (`inspect`, `export`, `eval`,
//! `generate`) call [`graft_llama::hub::resolve`], the same lookup without the recipe's layer.

use std::path::{Path, PathBuf};

use burn::tensor::backend::AutodiffBackend;
use graft_data::TokenizerSource;
use graft_llama::hub::Need;
use graft_llama::{Llama, ModelConfig};

use crate::error::{Result, ResultExt, TrainError};
use crate::recipe::ModelInit;
use crate::{ModelDtype, Recipe};

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

/// Resolve the recipe's model (reading only `config.json`; the base's weights must be there).
/// `recipe_path` locates relative paths and names the recipe in errors.
pub fn resolve_model(recipe: &Recipe, recipe_path: &Path) -> Result<ModelSpec> {
    resolve(recipe, recipe_path, Need::Weights)
}

/// The recipe's architecture and where it came from (the base's `config.json`, or
/// `[model.init]`); a Hub base need not have its weights downloaded yet.
pub fn resolve_config(recipe: &Recipe, recipe_path: &Path) -> Result<(ModelConfig, String)> {
    let spec = resolve(recipe, recipe_path, Need::Config)?;
    let what = match (&spec.origin, &recipe.model.base) {
        (ModelOrigin::Base(dir), Some(base)) if !Path::new(base).exists() => {
            format!("{base} ({})", dir.join("config.json").display())
        }
        (ModelOrigin::Base(dir), _) => dir.join("config.json").display().to_string(),
        (ModelOrigin::Init(_), _) => "[model.init]".into(),
    };
    Ok((spec.config, what))
}

fn resolve(recipe: &Recipe, recipe_path: &Path, need: Need) -> Result<ModelSpec> {
    let mut tokenizer = TokenizerSource {
        data_tokenizer: recipe.data.tokenizer.clone(),
        model_tokenizer: recipe.model.tokenizer.clone(),
        ..Default::default()
    };
    let (origin, config) = match (&recipe.model.base, &recipe.model.init) {
        (Some(base), _) => {
            let dir = resolve_base(base, None, recipe_path, need)?;
            let config = ModelConfig::from_file(dir.join("config.json")).context_with(|| {
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
        (None, None) => {
            return Err(TrainError::Recipe {
                path: recipe_path.to_path_buf(),
                message: "[model] needs `base` or a [model.init] table".into(),
            })
        }
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
    /// (see `crate::run::peer`) so that seeding and drawing are not interleaved.
    pub fn build<AB: AutodiffBackend>(&self, device: &AB::Device) -> Result<Llama<AB>> {
        match &self.origin {
            ModelOrigin::Base(dir) => {
                tracing::info!(dir = %dir.display(), "loading the base model");
                let (model, _) = graft_llama::load::<AB>(dir, device)
                    .context_with(|| format!("loading the base model from {}", dir.display()))?;
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

/// Resolve a model named by a recipe (`[model].base`, a synthesizer's `model`): a local directory
/// (relative to the recipe's directory) or a Hub id in the HF cache.
pub fn resolve_base(
    base: &str,
    revision: Option<&str>,
    recipe: &Path,
    need: Need,
) -> Result<PathBuf> {
    let local = recipe.parent().unwrap_or(Path::new(".")).join(base);
    let base = if local.exists() {
        local.to_string_lossy().into_owned()
    } else {
        base.to_string()
    };
    graft_llama::hub::resolve_for(&base, revision, need).context_with(|| {
        format!("resolving [model].base = {base:?} (download a Hub model first with `graft download {base}`)")
    })
}

/// `[model.init]` as an HF `config.json` (so checkpoints of a new model load in `transformers`).
pub fn init_config(init: &ModelInit, dtype: ModelDtype, recipe_path: &Path) -> Result<ModelConfig> {
    let invalid = |message: String| TrainError::Recipe {
        path: recipe_path.to_path_buf(),
        message: format!("invalid [model.init]: {message}"),
    };
    let mut json = serde_json::to_value(init).map_err(|e| invalid(e.to_string()))?;
    let map = json
        .as_object_mut()
        .ok_or_else(|| invalid("not a table".into()))?;
    for (key, value) in [
        ("architectures", serde_json::json!(["LlamaForCausalLM"])),
        ("model_type", "llama".into()),
        ("hidden_act", "silu".into()),
        ("torch_dtype", dtype_name(dtype).into()),
    ] {
        map.insert(key.into(), value);
    }
    let origin = PathBuf::from(format!("{} [model.init]", recipe_path.display()));
    let text = serde_json::to_string_pretty(&json).map_err(|e| invalid(e.to_string()))?;
    ModelConfig::from_json_str(&text, &origin).map_err(|e| invalid(e.to_string()))
}

/// The `torch_dtype` spelling of a recipe dtype.
fn dtype_name(dtype: ModelDtype) -> &'static str {
    match dtype {
        ModelDtype::F32 => "float32",
        ModelDtype::Bf16 => "bfloat16",
        ModelDtype::F16 => "float16",
    }
}
