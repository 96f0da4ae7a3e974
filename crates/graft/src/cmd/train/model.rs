//! The model a recipe trains: a base checkpoint (local HF directory or cached Hub id), or a
//! randomly initialised Llama built from `[model.init]`, seeded with `train.seed`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use burn::tensor::backend::AutodiffBackend;
use graft_llama::{Llama, ModelConfig};
use graft_train::recipe::ModelInit;
use graft_train::{ModelDtype, Recipe};

use crate::prep::{self, TokenizerSource};

/// The model to train, its config (written into every checkpoint) and where its tokenizer is.
pub struct LoadedModel<AB: AutodiffBackend> {
    pub model: Llama<AB>,
    pub config: ModelConfig,
    pub tokenizer: TokenizerSource,
}

/// Load or initialise the recipe's model on `device`. `recipe_path` locates relative paths and
/// names the recipe in errors.
pub fn load_model<AB: AutodiffBackend>(
    recipe: &Recipe,
    recipe_path: &Path,
    device: &AB::Device,
) -> anyhow::Result<LoadedModel<AB>> {
    let mut tokenizer = TokenizerSource {
        data_tokenizer: recipe.data.tokenizer.clone(),
        model_tokenizer: recipe.model.tokenizer.clone(),
        ..Default::default()
    };
    let (model, config) = match (&recipe.model.base, &recipe.model.init) {
        (Some(base), _) => {
            let dir = prep::resolve_base(base, None, recipe_path)?;
            tracing::info!(dir = %dir.display(), "loading the base model");
            let (model, config) = graft_llama::load::<AB>(&dir, device).with_context(|| {
                format!("loading [model].base = {base:?} from {}", dir.display())
            })?;
            tokenizer.model_dir = Some(dir);
            (model, config)
        }
        (None, Some(init)) => {
            let config = init_config(init, recipe.model.dtype, recipe_path)?;
            AB::seed(device, recipe.train.seed);
            tracing::info!(
                seed = recipe.train.seed,
                "initialising a new model from [model.init]"
            );
            (config.llama.init::<AB>(device), config)
        }
        (None, None) => bail!(
            "{}: [model] needs `base` or a [model.init] table",
            recipe_path.display()
        ),
    };
    tokenizer.bos = config.llama.bos_token_id;
    tokenizer.eos = config.llama.eos_token_ids.first().copied();
    Ok(LoadedModel {
        model,
        config,
        tokenizer,
    })
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
