//! LoRA in training: `train.method = "lora"` attaches adapters from the recipe's `[lora]` table to
//! the loaded base (freezing it), and checkpoints hold the adapter only.
//!
//! The trainer calls [`write_adapter_checkpoint`] for a model with adapters (a PEFT adapter
//! directory, `adapter_config.json` + `adapter_model.safetensors`, plus the tokenizer files,
//! instead of a full HF directory) and [`load_checkpoint_model`] when resuming (the adapter is
//! loaded into the adapted base). The
//! optimizer needs nothing special: frozen parameters get no gradient, hence no AdamW state.

use std::path::Path;

use burn::tensor::backend::Backend;
use graft_llama::export::{
    write_hf_dir, ExportOptions, HfDirFiles, ModelSource, LICENSE_FILES, TOKENIZER_FILES,
};
use graft_llama::lora::{self, LoraConfig};
use graft_llama::{Llama, ModelConfig};

use crate::error::{Result, TrainError};
use crate::precision::{adapters_dtype, weights_dtype};
use crate::recipe::{LoraSection, Method, Recipe};

/// The adapter settings of a `[lora]` table.
pub fn lora_config(section: &LoraSection) -> Result<LoraConfig> {
    LoraConfig::new(
        section.rank,
        section.alpha,
        section.dropout,
        &section.target_modules,
    )
    .map_err(|e| TrainError::Config(format!("[lora]: {e}")))
}

/// The model a recipe trains, from its loaded base: unchanged for `method = "full"`; for
/// `method = "lora"` frozen, with adapters from `[lora]` (`A` seeded with `train.seed`).
pub fn prepare_model<B: Backend>(model: Llama<B>, recipe: &Recipe) -> Result<Llama<B>> {
    if recipe.train.method != Method::Lora {
        return Ok(model);
    }
    let section = recipe
        .lora
        .as_ref()
        .ok_or_else(|| TrainError::Config("train.method = \"lora\" needs a [lora] table".into()))?;
    let config = lora_config(section)?;
    let trainable = lora::trainable_param_count(model.config(), &config);
    let model = lora::apply_lora(model, &config, recipe.train.seed)
        .map_err(|e| TrainError::Model(e.to_string()))?;
    tracing::info!(
        rank = config.rank,
        alpha = config.alpha,
        targets = ?config.target_names(),
        trainable,
        "LoRA: base frozen, adapters attached"
    );
    Ok(model)
}

/// Writes the model part of a LoRA checkpoint into `out`: the PEFT adapter (in the adapters' own
/// dtype, f32, so that a resumed run continues from exactly the trained values) and the tokenizer
/// files. `adapter_config.json` names the base as [`base_model_name`] gives it; a base that exists
/// only in memory (a `[model.init]` model) is written beside the adapter in `out/base/` (named
/// `"base"`, in the dtype the model holds it in), so that the adapter can always be merged and
/// resumed. `out` is replaced if it exists.
pub fn write_adapter_checkpoint<B: Backend>(
    model: &Llama<B>,
    out: &Path,
    files: &HfDirFiles,
) -> Result<()> {
    let mut base = base_model_name(&files.config);
    if base.is_empty() {
        base = BASE_DIR.to_string();
    }
    let options = |dtype| ExportOptions {
        dtype,
        force: true,
        ..Default::default()
    };
    lora::save_adapter(model, out, &base, &options(adapters_dtype(model)))
        .map_err(|e| TrainError::Model(format!("writing the LoRA adapter: {e}")))?;
    if base == BASE_DIR {
        write_hf_dir(
            &out.join(BASE_DIR),
            files,
            &mut ModelSource::new(model),
            &options(weights_dtype(model)),
            &mut |_, _| {},
        )
        .map_err(|e| {
            TrainError::Model(format!("writing the frozen base beside the adapter: {e}"))
        })?;
    }
    let Some(dir) = &files.tokenizer_dir else {
        return Ok(());
    };
    for name in TOKENIZER_FILES.iter().chain(&LICENSE_FILES) {
        let src = dir.join(name);
        if src.is_file() {
            std::fs::copy(&src, out.join(name)).map_err(|e| TrainError::io("copying", &src, e))?;
        }
    }
    Ok(())
}

/// Where a LoRA checkpoint keeps a base that has no directory of its own.
pub const BASE_DIR: &str = "base";

/// The `base_model_name_or_path` of a base whose `config.json` was read from `config.path`: the
/// Hub id for a snapshot in the HF cache (`.../models--org--name/snapshots/<rev>/config.json`),
/// else the absolute directory; empty for a model initialised from a recipe.
pub fn base_model_name(config: &ModelConfig) -> String {
    let path = &config.path;
    if path.file_name().is_none_or(|n| n != "config.json") {
        return String::new();
    }
    let Some(dir) = path.parent() else {
        return String::new();
    };
    let mut parts = dir
        .components()
        .rev()
        .map(|c| c.as_os_str().to_string_lossy().into_owned());
    let (_rev, snapshots, repo) = (parts.next(), parts.next(), parts.next());
    if let (Some("snapshots"), Some(repo)) = (snapshots.as_deref(), repo) {
        if let Some((org, name)) = repo
            .strip_prefix("models--")
            .and_then(|r| r.split_once("--"))
        {
            return format!("{org}/{name}");
        }
    }
    std::path::absolute(dir)
        .unwrap_or_else(|_| dir.to_path_buf())
        .to_string_lossy()
        .into_owned()
}

/// Loads the model part of the checkpoint `dir` into `model`: its adapter when `dir` holds one
/// (the model must carry adapters of the same shape; a base stored in `dir/base/` is loaded
/// first), else every weight.
pub fn load_checkpoint_model<B: Backend>(
    model: &mut Llama<B>,
    dir: &Path,
) -> graft_llama::Result<()> {
    if lora::is_adapter_dir(dir) {
        let base = dir.join(BASE_DIR);
        if base.join("config.json").is_file() {
            graft_llama::load_weights(model, &base)?;
        }
        lora::load_adapter_weights(model, dir).map(|_| ())
    } else {
        graft_llama::load_weights(model, dir)
    }
}
