//! Which tensor goes into which shard, and where in that shard's file: HF `save_pretrained` rules.
//!
//! Tensors are taken in state-dict order. A tensor bigger than the limit gets a shard of its own
//! (placed, as `huggingface_hub` places it, before the shard still being filled); otherwise a new
//! shard starts when adding the tensor would push the current one over the limit. Inside a file
//! tensors are laid out as the `safetensors` library lays them out: by descending dtype, then name.

use safetensors::Dtype;

use super::{ExportError, Result, TensorSpec};

pub use crate::load::{INDEX_FILE, SINGLE_FILE};

/// HF's default `max_shard_size` ("5GB").
pub const DEFAULT_MAX_SHARD_SIZE: u64 = 5_000_000_000;

/// One tensor placed in a shard file.
#[derive(Debug, Clone)]
pub struct PlacedTensor {
    pub spec: TensorSpec,
    /// Byte range of the data, relative to the start of the data section.
    pub begin: u64,
    pub end: u64,
}

/// One output file: its name and tensors in file order.
#[derive(Debug, Clone)]
pub struct ShardLayout {
    pub file_name: String,
    pub tensors: Vec<PlacedTensor>,
}

impl ShardLayout {
    /// Bytes of tensor data in this shard.
    pub fn data_len(&self) -> u64 {
        self.tensors.last().map_or(0, |t| t.end)
    }
}

/// Splits `specs` (in state-dict order) into shards of at most `max_shard_size` bytes of data.
pub fn plan_shards(specs: &[TensorSpec], max_shard_size: u64) -> Result<Vec<ShardLayout>> {
    let mut groups: Vec<Vec<TensorSpec>> = Vec::new();
    let mut current: Vec<TensorSpec> = Vec::new();
    let mut current_size = 0u64;
    for spec in specs {
        let size = spec.byte_len()?;
        if size > max_shard_size {
            groups.push(vec![spec.clone()]);
            continue;
        }
        if current_size + size > max_shard_size && !current.is_empty() {
            groups.push(std::mem::take(&mut current));
            current_size = 0;
        }
        current.push(spec.clone());
        current_size += size;
    }
    if !current.is_empty() || groups.is_empty() {
        groups.push(current);
    }
    let count = groups.len();
    groups
        .into_iter()
        .enumerate()
        .map(|(i, group)| layout(shard_file_name(i, count), group))
        .collect()
}

/// `model.safetensors` for a single file, else `model-0000i-of-0000n.safetensors` (1-based).
pub fn shard_file_name(index: usize, count: usize) -> String {
    if count == 1 {
        SINGLE_FILE.to_string()
    } else {
        format!("model-{:05}-of-{:05}.safetensors", index + 1, count)
    }
}

/// Orders a shard's tensors as `safetensors` does (descending dtype, then name) and assigns offsets.
fn layout(file_name: String, mut group: Vec<TensorSpec>) -> Result<ShardLayout> {
    group.sort_by(|a, b| b.dtype.cmp(&a.dtype).then_with(|| a.name.cmp(&b.name)));
    let mut offset = 0u64;
    let mut tensors = Vec::with_capacity(group.len());
    for spec in group {
        let end = offset + spec.byte_len()?;
        tensors.push(PlacedTensor {
            spec,
            begin: offset,
            end,
        });
        offset = end;
    }
    Ok(ShardLayout { file_name, tensors })
}

/// Parses a shard size the way `huggingface_hub` does: an integer number of bytes, or a number
/// with a unit: `KB`/`MB`/`GB` are powers of 1000, `KiB`/`MiB`/`GiB` powers of 1024 (case-insensitive).
/// Fractions are allowed (`1.5GB`).
pub fn parse_size(text: &str) -> Result<u64> {
    let invalid = |message: &str| ExportError::InvalidSize {
        text: text.to_string(),
        message: message.to_string(),
    };
    let trimmed = text.trim();
    let upper = trimmed.to_ascii_uppercase();
    const UNITS: [(&str, u64); 7] = [
        ("GIB", 1 << 30),
        ("MIB", 1 << 20),
        ("KIB", 1 << 10),
        ("GB", 1_000_000_000),
        ("MB", 1_000_000),
        ("KB", 1_000),
        ("B", 1),
    ];
    let (number, scale) = UNITS
        .iter()
        .find_map(|(unit, scale)| upper.strip_suffix(unit).map(|n| (n.trim(), *scale)))
        .unwrap_or((upper.as_str(), 1));
    let value: f64 = number
        .parse()
        .map_err(|_| invalid("not a number followed by KB, MB, GB, KiB, MiB or GiB"))?;
    if !value.is_finite() || value <= 0.0 {
        return Err(invalid("the size must be positive"));
    }
    let bytes = (value * scale as f64).round();
    if bytes < 1.0 || bytes > u64::MAX as f64 {
        return Err(invalid("the size is out of range"));
    }
    Ok(bytes as u64)
}

/// Bytes of a tensor of `shape` in `dtype`.
pub fn byte_len(name: &str, dtype: Dtype, shape: &[usize]) -> Result<u64> {
    let width = super::dtype::element_size(dtype).ok_or_else(|| ExportError::UnsupportedDtype {
        tensor: name.to_string(),
        dtype: dtype.to_string(),
    })?;
    shape
        .iter()
        .try_fold(width as u64, |acc, &d| acc.checked_mul(d as u64))
        .ok_or_else(|| ExportError::Shape {
            tensor: name.to_string(),
            message: format!("shape {shape:?} is too large"),
        })
}
