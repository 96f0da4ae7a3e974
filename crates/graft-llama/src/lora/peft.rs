//! PEFT adapter directories: `adapter_config.json` (LoRA settings and the base model) and
//! `adapter_model.safetensors` (the `lora_A`/`lora_B` tensors under PEFT names), as
//! `PeftModel.save_pretrained` writes them and `PeftModel.from_pretrained` reads them.
//!
//! Directories are written atomically (built in a staging directory, fsynced, renamed).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::module::Param;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;
use safetensors::SafeTensors;
use serde_json::{json, Value};

use super::{
    adapter_shape, apply_lora, lora_config, parse_peft_name, proj_mut, LoraConfig, LoraPart,
};
use crate::error::{Error, Result};
use crate::export::{
    ExportDtype, ExportError, ExportOptions, ShardWriter, StagingDir, TensorData, TensorSource,
    TensorSpec, WrittenShards, SINGLE_FILE,
};
use crate::keymap::LayerParam;
use crate::model::Llama;

/// The adapter's settings file.
pub const ADAPTER_CONFIG_FILE: &str = "adapter_config.json";
/// The adapter's weights file.
pub const ADAPTER_WEIGHTS_FILE: &str = "adapter_model.safetensors";

/// A parsed `adapter_config.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct AdapterConfig {
    /// `base_model_name_or_path`: the base model's local directory or Hub id.
    pub base_model: Option<String>,
    /// The LoRA settings.
    pub lora: LoraConfig,
    /// The file's JSON, kept so that an export can copy it unchanged.
    pub raw: Value,
}

impl AdapterConfig {
    /// The `adapter_config.json` PEFT writes for `lora` on `base_model`.
    pub fn to_json(lora: &LoraConfig, base_model: &str) -> Value {
        json!({
            "alpha_pattern": {},
            "auto_mapping": null,
            "base_model_name_or_path": base_model,
            "bias": "none",
            "fan_in_fan_out": false,
            "inference_mode": true,
            "init_lora_weights": true,
            "layers_pattern": null,
            "layers_to_transform": null,
            "lora_alpha": lora.alpha,
            "lora_dropout": lora.dropout,
            "modules_to_save": null,
            "peft_type": "LORA",
            "r": lora.rank,
            "rank_pattern": {},
            "revision": null,
            "target_modules": lora.target_names(),
            "task_type": "CAUSAL_LM",
            "use_dora": false,
            "use_rslora": false,
        })
    }

    /// Parses the JSON of `adapter_config.json` (`path` names errors). Settings graft does not
    /// implement (DoRA, rsLoRA, biases, per-module ranks, extra trained modules) are errors.
    pub fn from_json(raw: Value, path: &Path) -> Result<Self> {
        let bad = |message: String| Error::Adapter {
            path: path.to_path_buf(),
            message,
        };
        let get = |key: &str| raw.get(key).filter(|v| !v.is_null());
        if get("peft_type").and_then(Value::as_str) != Some("LORA") {
            return Err(bad("peft_type must be \"LORA\"".into()));
        }
        type Supported = fn(&Value) -> bool;
        let unsupported: [(&str, Supported); 7] = [
            ("bias", |v| v.as_str() == Some("none")),
            ("use_dora", |v| v.as_bool() == Some(false)),
            ("use_rslora", |v| v.as_bool() == Some(false)),
            ("fan_in_fan_out", |v| v.as_bool() == Some(false)),
            ("rank_pattern", |v| {
                v.as_object().is_some_and(|o| o.is_empty())
            }),
            ("alpha_pattern", |v| {
                v.as_object().is_some_and(|o| o.is_empty())
            }),
            ("modules_to_save", |v| {
                v.as_array().is_some_and(|a| a.is_empty())
            }),
        ];
        for (key, ok) in unsupported {
            if let Some(v) = get(key) {
                if !ok(v) {
                    return Err(bad(format!("{key} = {v} is not supported by graft")));
                }
            }
        }
        if get("layers_to_transform").is_some() {
            return Err(bad("layers_to_transform is not supported by graft".into()));
        }
        let rank = get("r")
            .and_then(Value::as_u64)
            .ok_or_else(|| bad("`r` must be a positive integer".into()))?;
        let alpha = get("lora_alpha")
            .and_then(Value::as_f64)
            .ok_or_else(|| bad("`lora_alpha` must be a number".into()))?;
        let dropout = get("lora_dropout").and_then(Value::as_f64).unwrap_or(0.0);
        let modules: Vec<String> = match get("target_modules") {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect::<Option<_>>()
                .ok_or_else(|| bad("target_modules must be a list of names".into()))?,
            _ => return Err(bad("target_modules is missing".into())),
        };
        let lora = LoraConfig::new(rank as usize, alpha, dropout, &modules)
            .map_err(|e| bad(e.to_string()))?;
        let base_model = get("base_model_name_or_path")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        Ok(Self {
            base_model,
            lora,
            raw,
        })
    }
}

/// Whether `dir` holds a PEFT adapter (an `adapter_config.json`).
pub fn is_adapter_dir(dir: &Path) -> bool {
    dir.join(ADAPTER_CONFIG_FILE).is_file()
}

/// Reads and checks `dir/adapter_config.json`.
pub fn read_adapter_config(dir: &Path) -> Result<AdapterConfig> {
    let path = dir.join(ADAPTER_CONFIG_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let raw: Value = serde_json::from_str(&text).map_err(|e| Error::Json {
        path: path.clone(),
        message: e.to_string(),
    })?;
    AdapterConfig::from_json(raw, &path)
}

/// Writes the adapters of `model` as a PEFT adapter directory at `dir` (`adapter_config.json`
/// naming `base_model`, `adapter_model.safetensors` in `options.dtype`), atomically; an existing
/// non-empty `dir` is replaced only with `options.force`.
pub fn save_adapter<B: Backend>(
    model: &Llama<B>,
    dir: &Path,
    base_model: &str,
    options: &ExportOptions,
) -> crate::export::Result<WrittenShards> {
    let lora = lora_config(model).ok_or_else(|| Error::Lora {
        message: "the model has no LoRA adapters to save".into(),
    })?;
    let config = AdapterConfig::to_json(&lora, base_model);
    write_adapter_dir(dir, &config, &mut AdapterSource { model }, options)
}

/// Writes an adapter directory from any tensor source (PEFT names), atomically.
pub fn write_adapter_dir(
    dir: &Path,
    config: &Value,
    source: &mut dyn TensorSource,
    options: &ExportOptions,
) -> crate::export::Result<WrittenShards> {
    let staging = StagingDir::create(dir, options.force)?;
    let specs = source.specs(options.dtype);
    let mut writer = ShardWriter::create(staging.path(), &specs, u64::MAX)?;
    writer.write_all_from(source, &mut |_, _| {})?;
    let mut shards = writer.finish()?;
    let (from, to) = (
        staging.path().join(SINGLE_FILE),
        staging.path().join(ADAPTER_WEIGHTS_FILE),
    );
    std::fs::rename(&from, &to).map_err(|e| ExportError::io(&from, e))?;
    shards.files = vec![ADAPTER_WEIGHTS_FILE.to_string()];
    let mut text =
        serde_json::to_string_pretty(config).map_err(|e| ExportError::io(dir, e.into()))?;
    text.push('\n');
    crate::export::writer::write_file_synced(
        &staging.path().join(ADAPTER_CONFIG_FILE),
        text.as_bytes(),
    )?;
    staging.commit()?;
    tracing::info!(dir = %dir.display(), tensors = specs.len(), "saved LoRA adapter");
    Ok(shards)
}

/// The adapter tensors of an in-memory model, under PEFT names.
struct AdapterSource<'a, B: Backend> {
    model: &'a Llama<B>,
}

impl<B: Backend> TensorSource for AdapterSource<'_, B> {
    fn specs(&self, dtype: ExportDtype) -> Vec<TensorSpec> {
        super::adapter_tensors(self.model)
            .into_iter()
            .map(|(name, t)| TensorSpec {
                name,
                shape: t.dims().to_vec(),
                dtype: dtype.safetensors(),
            })
            .collect()
    }

    fn read(&mut self, name: &str) -> crate::export::Result<TensorData<'_>> {
        let tensor = super::adapter_tensors(self.model)
            .into_iter()
            .find_map(|(n, t)| (n == name).then_some(t))
            .ok_or_else(|| ExportError::Plan {
                tensor: name.to_string(),
                message: "is not an adapter of this model".into(),
            })?;
        TensorData::from_burn(name, tensor.into_data())
    }
}

/// Loads the PEFT adapter in `dir` into `model`: attaches adapters (freezing the base) if the
/// model has none, then sets them from the file as [`load_adapter_weights`] does. Returns the
/// model and the adapter's settings.
pub fn load_adapter<B: Backend>(model: Llama<B>, dir: &Path) -> Result<(Llama<B>, AdapterConfig)> {
    let mut model = match lora_config(&model) {
        None => apply_lora(model, &read_adapter_config(dir)?.lora, 0)?,
        Some(_) => model,
    };
    let config = load_adapter_weights(&mut model, dir)?;
    Ok((model, config))
}

/// Sets the adapters of `model` from the PEFT adapter in `dir`. The model's adapters must have
/// the file's rank, alpha and targets (their dropout is kept); every `lora_A`/`lora_B` must be in
/// the file with its shape, and nothing else. Nothing is changed when the check fails.
pub fn load_adapter_weights<B: Backend>(model: &mut Llama<B>, dir: &Path) -> Result<AdapterConfig> {
    let config = read_adapter_config(dir)?;
    let path = dir.join(ADAPTER_WEIGHTS_FILE);
    let bad = |message: String| Error::Adapter {
        path: path.clone(),
        message,
    };
    let (want, file) = (lora_config(model), &config.lora);
    let matches = want
        .as_ref()
        .is_some_and(|w| w.rank == file.rank && w.alpha == file.alpha && w.targets == file.targets);
    if !matches {
        let have = want.map_or("no adapters".to_string(), |w| {
            format!(
                "rank {}, alpha {}, targets {:?}",
                w.rank,
                w.alpha,
                w.target_names()
            )
        });
        return Err(bad(format!(
            "the model's adapters ({have}) differ from the file's (rank {}, alpha {}, targets {:?})",
            file.rank,
            file.alpha,
            file.target_names()
        )));
    }
    let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
    let tensors = SafeTensors::deserialize(&bytes).map_err(|e| Error::Safetensors {
        path: path.clone(),
        message: e.to_string(),
    })?;
    let expected = expected_tensors(model.config(), &config.lora);
    let mut plan = Vec::with_capacity(expected.len());
    for (name, view) in tensors.iter() {
        let Some(&shape) = expected.get(name) else {
            return Err(bad(format!(
                "unexpected tensor {name} (shape {:?})",
                view.shape()
            )));
        };
        if view.shape() != shape.as_slice() {
            return Err(bad(format!(
                "tensor {name} has shape {:?}, expected {shape:?}",
                view.shape()
            )));
        }
        let parsed = parse_peft_name(name).ok_or_else(|| bad(format!("bad name {name}")))?;
        plan.push((name, view, parsed));
    }
    if let Some(missing) = expected.keys().find(|n| tensors.tensor(n).is_err()) {
        return Err(bad(format!("missing tensor {missing}")));
    }
    for (name, view, (layer, target, part)) in plan {
        let data =
            crate::load::to_tensor_data(&path, name, view.dtype(), view.shape(), view.data())?;
        set_adapter_tensor(model, layer, target, part, data);
    }
    tracing::info!(dir = %dir.display(), "loaded LoRA adapter");
    Ok(config)
}

/// PEFT name → shape of every adapter tensor of a model of `config` adapted with `lora`.
fn expected_tensors(config: &crate::LlamaConfig, lora: &LoraConfig) -> HashMap<String, [usize; 2]> {
    let mut out = HashMap::new();
    for layer in 0..config.num_hidden_layers {
        for &target in &lora.targets {
            for part in [LoraPart::A, LoraPart::B] {
                let shape = adapter_shape(config, target, lora.rank, part);
                out.insert(super::peft_name(layer, target, part), shape);
            }
        }
    }
    out
}

/// Replaces one adapter matrix, keeping its id, device, dtype and `require_grad`.
fn set_adapter_tensor<B: Backend>(
    model: &mut Llama<B>,
    layer: usize,
    target: LayerParam,
    part: LoraPart,
    data: burn::tensor::TensorData,
) {
    let Some(adapter) = model
        .layers
        .get_mut(layer)
        .and_then(|l| proj_mut(l, target))
        .and_then(|p| p.lora.as_mut())
    else {
        return;
    };
    let param: &mut Param<Tensor<B, 2>> = match part {
        LoraPart::A => &mut adapter.lora_a,
        LoraPart::B => &mut adapter.lora_b,
    };
    let current = param.val();
    let value = Tensor::<B, 2>::from_data(data, &current.device()).cast(current.dtype());
    let id = param.id;
    *param = param.clone().transform_for_load(value, id);
}

/// The directory an adapter's base model lives in: `explicit` if given, else
/// `base_model_name_or_path` as a local directory (absolute, or relative to the working
/// directory, the adapter directory or its parent) or a Hub repo in the local cache.
pub fn resolve_base(
    adapter_dir: &Path,
    config: &AdapterConfig,
    explicit: Option<&Path>,
) -> Result<PathBuf> {
    if let Some(dir) = explicit {
        return crate::hub::resolve(&dir.to_string_lossy(), None);
    }
    let name = config.base_model.as_deref().ok_or_else(|| Error::Adapter {
        path: adapter_dir.join(ADAPTER_CONFIG_FILE),
        message: "no base_model_name_or_path; pass --base DIR".into(),
    })?;
    if Path::new(name).is_relative() && !Path::new(name).exists() {
        let inside = Some(adapter_dir.join(name));
        let beside = adapter_dir.parent().map(|p| p.join(name));
        if let Some(dir) = [inside, beside].into_iter().flatten().find(|d| d.is_dir()) {
            return Ok(dir);
        }
    }
    crate::hub::resolve(name, None).map_err(|e| Error::Adapter {
        path: adapter_dir.join(ADAPTER_CONFIG_FILE),
        message: format!("base model {name} not found ({e}); pass --base DIR"),
    })
}
