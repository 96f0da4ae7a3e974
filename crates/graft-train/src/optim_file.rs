//! `optimizer.safetensors` written tensor by tensor, by one rank or by every rank of a sharded run
//! into the same file, and read back one rank's shard at a time through a memory map.
//!
//! The file is the one [`crate::optim_state`] describes (full-shape f32 tensors by parameter
//! name, `format = graft-adamw`, `version = 1`, per-name `steps`), so a checkpoint saved at any
//! stage or world size resumes at any other. Its layout is computed from the list of entries
//! alone ([`StateLayout`]): rank 0 writes the header, then every rank writes its own tensors at
//! their offsets; host memory stays near one tensor.

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

use burn::tensor::backend::Backend;
use safetensors::SafeTensors;

use crate::error::{Result, TrainError};
use crate::optim::{AdamW, ParamState};
use crate::optim_state::{state_from_safetensors, FORMAT, VERSION};

/// One parameter with optimizer state: name, shape, update count, whether it has a master copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateEntry {
    /// Parameter name ([`crate::optim_state::param_name`]).
    pub name: String,
    /// The parameter's shape.
    pub shape: Vec<usize>,
    /// Updates applied.
    pub step: u64,
    /// Whether `<name>.master` is stored.
    pub master: bool,
}

/// The entries of `optim` (all of them, or this rank's shard).
pub fn state_entries<B: Backend>(optim: &AdamW<B>) -> Vec<StateEntry> {
    optim
        .state()
        .iter()
        .map(|(name, st)| StateEntry {
            name: name.clone(),
            shape: st.shape.clone(),
            step: st.step,
            master: st.master.is_some(),
        })
        .collect()
}

/// Where every tensor of the file goes, and its header.
#[derive(Debug, Clone)]
pub struct StateLayout {
    header: Vec<u8>,
    offsets: HashMap<String, (u64, u64)>,
    len: u64,
}

impl StateLayout {
    /// The layout of a file holding `entries` (tensors in key order).
    pub fn new(entries: &[StateEntry]) -> Result<Self> {
        let mut tensors = BTreeMap::new();
        let mut steps = serde_json::Map::new();
        for e in entries {
            steps.insert(e.name.clone(), e.step.into());
            let suffixes: &[&str] = match e.master {
                true => &["exp_avg", "exp_avg_sq", "master"],
                false => &["exp_avg", "exp_avg_sq"],
            };
            for s in suffixes {
                tensors.insert(format!("{}.{s}", e.name), e.shape.clone());
            }
        }
        let mut json = serde_json::Map::new();
        let mut offsets = HashMap::new();
        let mut at = 0u64;
        for (key, shape) in tensors {
            let bytes = 4 * shape.iter().product::<usize>() as u64;
            json.insert(
                key.clone(),
                serde_json::json!({"dtype": "F32", "shape": shape, "data_offsets": [at, at + bytes]}),
            );
            offsets.insert(key, (at, at + bytes));
            at += bytes;
        }
        let metadata = serde_json::json!({
            "format": FORMAT,
            "version": VERSION,
            "steps": serde_json::Value::Object(steps).to_string(),
        });
        json.insert("__metadata__".into(), metadata);
        let mut text = serde_json::Value::Object(json).to_string().into_bytes();
        text.resize(text.len().div_ceil(8) * 8, b' ');
        let mut header = (text.len() as u64).to_le_bytes().to_vec();
        header.extend(text);
        let len = header.len() as u64 + at;
        Ok(Self {
            header,
            offsets,
            len,
        })
    }

    /// Total file size in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True for a file with no tensors.
    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }
}

/// Create `path` with the header of `layout`, sized to the whole file (rank 0, before the ranks
/// write their tensors).
pub fn create_state_file(path: &Path, layout: &StateLayout) -> Result<()> {
    let mut f = File::create(path).map_err(|e| TrainError::io("creating", path, e))?;
    f.write_all(&layout.header)
        .map_err(|e| TrainError::io("writing", path, e))?;
    f.set_len(layout.len)
        .map_err(|e| TrainError::io("sizing", path, e))?;
    f.sync_all().map_err(|e| TrainError::io("syncing", path, e))
}

/// Write the tensors of `optim` (this rank's shard) into `path` at their places in `layout`,
/// one tensor at a time, and fsync.
pub fn write_state_tensors<B: Backend>(
    path: &Path,
    layout: &StateLayout,
    optim: &AdamW<B>,
) -> Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| TrainError::io("opening", path, e))?;
    let base = layout.header.len() as u64;
    for (name, st) in optim.state() {
        let tensors = [
            ("exp_avg", Some(&st.exp_avg)),
            ("exp_avg_sq", Some(&st.exp_avg_sq)),
            ("master", st.master.as_ref()),
        ];
        for (suffix, t) in tensors.into_iter().filter_map(|(s, t)| Some((s, t?))) {
            let key = format!("{name}.{suffix}");
            let &(start, end) =
                layout
                    .offsets
                    .get(&key)
                    .ok_or_else(|| TrainError::OptimizerState {
                        param: key.clone(),
                        message: "not in the checkpoint's layout (the ranks disagree on the state)"
                            .into(),
                    })?;
            let values = t.to_data().convert::<f32>().to_vec::<f32>().map_err(|e| {
                TrainError::OptimizerState {
                    param: key.clone(),
                    message: format!("{e:?}"),
                }
            })?;
            let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            if bytes.len() as u64 != end - start {
                return Err(TrainError::OptimizerState {
                    param: key,
                    message: format!("{} bytes for a slot of {}", bytes.len(), end - start),
                });
            }
            f.seek(SeekFrom::Start(base + start))
                .and_then(|_| f.write_all(&bytes))
                .map_err(|e| TrainError::io("writing", path, e))?;
        }
    }
    f.sync_all().map_err(|e| TrainError::io("syncing", path, e))
}

/// Read the state of the parameters `keep` selects from `path`, memory-mapped: only their
/// tensors' pages are read. The whole header is still checked (every named parameter has its
/// tensors, nothing else is in the file).
pub fn read_state_file<B: Backend>(
    path: &Path,
    device: &B::Device,
    keep: &dyn Fn(&str) -> bool,
) -> Result<BTreeMap<String, ParamState<B>>> {
    let file = File::open(path).map_err(|e| TrainError::io("opening", path, e))?;
    // SAFETY: the checkpoint is not modified while it is read (a checkpoint directory is only
    // ever written under a temporary name and renamed into place).
    let map =
        unsafe { memmap2::Mmap::map(&file) }.map_err(|e| TrainError::io("mapping", path, e))?;
    let st = SafeTensors::deserialize(&map).map_err(|e| TrainError::Checkpoint {
        path: path.to_path_buf(),
        message: format!(
            "not a valid safetensors file ({e}). Hint: the checkpoint is damaged; resume from an older one"
        ),
    })?;
    let (_, meta) = SafeTensors::read_metadata(&map).map_err(|e| TrainError::Checkpoint {
        path: path.to_path_buf(),
        message: format!("not a safetensors file: {e}"),
    })?;
    state_from_safetensors(&st, meta.metadata().as_ref(), path, device, keep)
}
