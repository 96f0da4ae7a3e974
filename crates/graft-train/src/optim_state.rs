//! Saving and restoring [`AdamW`] state as safetensors, keyed by parameter name.
//!
//! Layout: for each parameter `<name>` with state, two f32 tensors `<name>.exp_avg` and
//! `<name>.exp_avg_sq` in the parameter's shape, plus `<name>.master` (the f32 master copy) for a
//! parameter stored in bf16/f16; the metadata holds `format = graft-adamw`,
//! `version = 2` and `steps` (a JSON object mapping each name to its update count). Values are
//! stored bit-exactly, so a resumed run continues exactly where it stopped.
//!
//! Names are those of the model's own checkpoint ([`param_name`]): HF names
//! (`model.layers.0.self_attn.q_proj.weight.exp_avg`) beside `model.safetensors`, PEFT names
//! beside `adapter_model.safetensors` for LoRA. Version 1 files named parameters by Burn module
//! path (`layers.0.self_attn.q_proj.weight.exp_avg`); they are translated when read.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::backend::Backend;
use burn::tensor::{DType, Tensor, TensorData};
use safetensors::{tensor::TensorView, Dtype, SafeTensors};

use crate::error::{Result, TrainError};
use crate::optim::{AdamW, ParamState};

pub(crate) const FORMAT: &str = "graft-adamw";
pub(crate) const VERSION: &str = "2";
/// The version whose names are Burn module paths, translated on read.
const VERSION_MODULE_PATHS: &str = "1";

/// The name of the parameter at Burn module path `path`, in optimizer state and its file: the
/// name the model's checkpoint gives it ([`graft_llama::checkpoint_name`]: HF name, or PEFT name
/// for a LoRA adapter) for a Llama's parameters; any other module's parameters keep their path.
pub fn param_name(path: &str) -> String {
    graft_llama::checkpoint_name(path).unwrap_or_else(|| path.to_string())
}

/// Serialise the optimizer state to safetensors bytes.
pub fn optimizer_to_bytes<B: Backend>(optim: &AdamW<B>) -> Result<Vec<u8>> {
    let mut buffers: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    let mut steps = serde_json::Map::new();
    for (name, st) in optim.state() {
        steps.insert(name.clone(), serde_json::Value::from(st.step));
        let tensors = [
            ("exp_avg", Some(&st.exp_avg)),
            ("exp_avg_sq", Some(&st.exp_avg_sq)),
            ("master", st.master.as_ref()),
        ];
        for (suffix, t) in tensors.into_iter().filter_map(|(s, t)| Some((s, t?))) {
            let values = t
                .to_data()
                .convert::<f32>()
                .to_vec::<f32>()
                .map_err(|e| state_err(name, format!("{e:?}")))?;
            let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            buffers.push((format!("{name}.{suffix}"), st.shape.clone(), bytes));
        }
    }
    let mut views = Vec::with_capacity(buffers.len());
    for (key, shape, bytes) in &buffers {
        let view = TensorView::new(Dtype::F32, shape.clone(), bytes)
            .map_err(|e| state_err(key, e.to_string()))?;
        views.push((key.clone(), view));
    }
    let metadata = HashMap::from([
        ("format".to_string(), FORMAT.to_string()),
        ("version".to_string(), VERSION.to_string()),
        (
            "steps".to_string(),
            serde_json::Value::Object(steps).to_string(),
        ),
    ]);
    safetensors::serialize(views, Some(metadata)).map_err(|e| state_err("*", e.to_string()))
}

/// Read optimizer state from safetensors bytes (`path` is only used in error messages).
pub fn optimizer_from_bytes<B: Backend>(
    bytes: &[u8],
    path: &Path,
    device: &B::Device,
) -> Result<BTreeMap<String, ParamState<B>>> {
    let bad = |message: String| TrainError::Checkpoint {
        path: path.to_path_buf(),
        message,
    };
    let (_, meta) = SafeTensors::read_metadata(bytes)
        .map_err(|e| bad(format!("not a safetensors file: {e}")))?;
    let st = SafeTensors::deserialize(bytes).map_err(|e| bad(e.to_string()))?;
    state_from_safetensors(&st, meta.metadata().as_ref(), path, device, &|_| true)
}

/// The state of the parameters `keep` selects, from a parsed file with `metadata`. Every
/// parameter named in `steps` must have its tensors and the file nothing else, whatever `keep`
/// selects; only the selected tensors are read.
pub(crate) fn state_from_safetensors<B: Backend>(
    st: &SafeTensors,
    metadata: Option<&HashMap<String, String>>,
    path: &Path,
    device: &B::Device,
    keep: &dyn Fn(&str) -> bool,
) -> Result<BTreeMap<String, ParamState<B>>> {
    let bad = |message: String| TrainError::Checkpoint {
        path: path.to_path_buf(),
        message,
    };
    let meta = metadata.cloned().unwrap_or_default();
    let version = meta.get("version").map(String::as_str);
    if meta.get("format").map(String::as_str) != Some(FORMAT)
        || !matches!(version, Some(VERSION | VERSION_MODULE_PATHS))
    {
        return Err(bad(format!(
            "expected metadata format={FORMAT} version={VERSION} (or {VERSION_MODULE_PATHS}), found {meta:?}"
        )));
    }
    let module_paths = version == Some(VERSION_MODULE_PATHS);
    let steps: BTreeMap<String, u64> =
        serde_json::from_str(meta.get("steps").map(String::as_str).unwrap_or("")).map_err(|e| {
            bad(format!(
                "metadata `steps` is not a JSON object of counts: {e}"
            ))
        })?;
    let mut out = BTreeMap::new();
    let mut tensors = 0;
    let known = |key: &str| {
        ["exp_avg", "exp_avg_sq", "master"].iter().any(|s| {
            key.strip_suffix(s)
                .and_then(|k| k.strip_suffix('.'))
                .is_some_and(|name| steps.contains_key(name))
        })
    };
    if let Some(key) = st.names().into_iter().find(|k| !known(k)) {
        return Err(bad(format!(
            "tensor `{key}` is not the state of a parameter named in metadata `steps`"
        )));
    }
    for (name, step) in steps {
        let keys = [
            format!("{name}.exp_avg"),
            format!("{name}.exp_avg_sq"),
            format!("{name}.master"),
        ];
        let shapes: Vec<Option<Vec<usize>>> = keys
            .iter()
            .map(|k| st.tensor(k).ok().map(|v| v.shape().to_vec()))
            .collect();
        let [Some(m_shape), Some(v_shape), master_shape] = &shapes[..] else {
            return Err(bad(format!(
                "tensor `{name}.exp_avg` or `{name}.exp_avg_sq` is missing (named in metadata `steps`)"
            )));
        };
        for (what, shape) in [
            ("exp_avg_sq", Some(v_shape)),
            ("master", master_shape.as_ref()),
        ] {
            if let Some(shape) = shape.filter(|s| *s != m_shape) {
                return Err(bad(format!(
                    "`{name}`: {what} shape {shape:?} != exp_avg shape {m_shape:?}"
                )));
            }
        }
        tensors += 2 + usize::from(master_shape.is_some());
        let name = match module_paths {
            true => param_name(&name),
            false => name,
        };
        if !keep(&name) {
            continue;
        }
        let m = read_f32(st, &keys[0], device).map_err(&bad)?;
        let v = read_f32(st, &keys[1], device).map_err(&bad)?;
        let master = match master_shape {
            Some(_) => Some(read_f32(st, &keys[2], device).map_err(&bad)?.1),
            None => None,
        };
        out.insert(
            name,
            ParamState {
                step,
                shape: m.0,
                exp_avg: m.1,
                exp_avg_sq: v.1,
                master,
            },
        );
    }
    if st.len() != tensors {
        return Err(bad(format!(
            "{} tensors but `steps` names parameters with {tensors} state tensors",
            st.len(),
        )));
    }
    Ok(out)
}

fn read_f32<B: Backend>(
    st: &SafeTensors,
    key: &str,
    device: &B::Device,
) -> std::result::Result<(Vec<usize>, Tensor<B, 1>), String> {
    let view = st.tensor(key).map_err(|e| format!("tensor `{key}`: {e}"))?;
    if view.dtype() != Dtype::F32 {
        return Err(format!(
            "tensor `{key}` is {:?}, expected F32",
            view.dtype()
        ));
    }
    let values: Vec<f32> = view
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let n = values.len();
    let t = Tensor::from_data(TensorData::new(values, [n]), (device, DType::F32));
    Ok((view.shape().to_vec(), t))
}

/// Check that every state entry names a trainable parameter of `module` with the same shape.
pub fn check_state_matches<B: Backend, M: Module<B>>(
    state: &BTreeMap<String, ParamState<impl Backend>>,
    module: &M,
) -> Result<()> {
    let params: BTreeMap<String, Vec<usize>> = named_params::<B, M>(module)
        .into_iter()
        .map(|p| (p.name, p.shape))
        .collect();
    for (name, st) in state {
        match params.get(name) {
            None => {
                return Err(state_err(
                    name,
                    "no parameter of this name in the model (was the model or method changed?)"
                        .into(),
                ))
            }
            Some(shape) if shape != &st.shape => {
                return Err(state_err(
                    name,
                    format!("saved shape {:?} but the model's is {shape:?}", st.shape),
                ));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

fn state_err(param: &str, message: String) -> TrainError {
    TrainError::OptimizerState {
        param: param.to_string(),
        message,
    }
}

/// A float parameter of a module: its name ([`param_name`]), shape and whether it requires grad.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedParam {
    /// Its [`param_name`], e.g. `model.layers.0.self_attn.q_proj.weight`.
    pub name: String,
    /// Shape.
    pub shape: Vec<usize>,
    /// Whether the parameter is trainable (requires grad).
    pub trainable: bool,
}

/// Every float parameter of `module`, in visiting order, named by [`param_name`].
pub fn named_params<B: Backend, M: Module<B>>(module: &M) -> Vec<NamedParam> {
    struct V(Vec<String>, Vec<NamedParam>);
    impl<B: Backend> ModuleVisitor<B> for V {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.0.push(name.to_string());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.0.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
            let t = param.val();
            self.1.push(NamedParam {
                name: param_name(&self.0.join(".")),
                shape: t.shape().to_vec(),
                trainable: t.is_require_grad(),
            });
        }
    }
    let mut v = V(Vec::new(), Vec::new());
    module.visit(&mut v);
    v.1
}
