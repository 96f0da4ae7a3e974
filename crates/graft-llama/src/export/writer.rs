//! Sharded safetensors writer: headers first (from the plan), then each tensor's data streamed
//! into its place in small converted chunks, then fsync and the shard index.
//!
//! File format (as `safetensors` writes it): 8-byte little-endian header length N; N bytes of JSON
//! `{"__metadata__":{"format":"pt"},"<name>":{"dtype":..,"shape":[..],"data_offsets":[b,e]},..}`
//! padded with spaces to a multiple of 8; then the tensors' bytes back to back in header order.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::dtype::{convert_into, element_size, encode_f32_into};
use super::plan::{plan_shards, ShardLayout, INDEX_FILE};
use super::{Dtype, ExportError, Result, TensorData, TensorSource, TensorSpec};

/// Elements converted per write: bounds the writer's own memory to a few MiB.
const CHUNK_ELEMENTS: usize = 1 << 20;

/// What [`ShardWriter::finish`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenShards {
    /// File names (relative to the directory), in shard order.
    pub files: Vec<String>,
    /// Sum of the tensors' data bytes (the index's `metadata.total_size`).
    pub total_size: u64,
    /// Sum of the tensors' element counts.
    pub total_parameters: u64,
    /// Whether `model.safetensors.index.json` was written (more than one shard).
    pub index_written: bool,
}

struct OpenShard {
    layout: ShardLayout,
    path: PathBuf,
    file: File,
    data_start: u64,
    written: Vec<bool>,
}

/// Writes a planned set of tensors into one or more safetensors files in `dir`.
pub struct ShardWriter {
    dir: PathBuf,
    shards: Vec<OpenShard>,
    slots: HashMap<String, (usize, usize)>,
    scratch: Vec<u8>,
}

impl ShardWriter {
    /// Plans the shards for `specs` (state-dict order), creates the files in `dir` and writes
    /// their headers. Fails if a file already exists or a name repeats.
    pub fn create(dir: &Path, specs: &[TensorSpec], max_shard_size: u64) -> Result<Self> {
        let layouts = plan_shards(specs, max_shard_size)?;
        let mut slots = HashMap::with_capacity(specs.len());
        let mut shards = Vec::with_capacity(layouts.len());
        for (s, layout) in layouts.into_iter().enumerate() {
            for (t, placed) in layout.tensors.iter().enumerate() {
                if slots.insert(placed.spec.name.clone(), (s, t)).is_some() {
                    let message = "appears twice in the export plan".to_string();
                    return Err(ExportError::Plan {
                        tensor: placed.spec.name.clone(),
                        message,
                    });
                }
            }
            shards.push(open_shard(dir, layout)?);
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            shards,
            slots,
            scratch: Vec::new(),
        })
    }

    /// The shard layouts (file names and tensors in file order).
    pub fn layouts(&self) -> impl Iterator<Item = &ShardLayout> {
        self.shards.iter().map(|s| &s.layout)
    }

    /// Writes the data of tensor `name`, converting it to the planned dtype.
    pub fn write(&mut self, name: &str, data: TensorData<'_>) -> Result<()> {
        let plan_error = |message: &str| ExportError::Plan {
            tensor: name.to_string(),
            message: message.to_string(),
        };
        let &(s, t) = self
            .slots
            .get(name)
            .ok_or_else(|| plan_error("is not in the export plan"))?;
        let shard = &mut self.shards[s];
        if shard.written[t] {
            return Err(plan_error("was written twice"));
        }
        let placed = shard.layout.tensors[t].clone();
        let spec = &placed.spec;
        let mut pos = shard.data_start + placed.begin;
        seek(&mut shard.file, &shard.path, pos)?;
        pos += write_data(shard, spec, data, &mut self.scratch)?;
        debug_assert_eq!(pos, shard.data_start + placed.end);
        shard.written[t] = true;
        Ok(())
    }

    /// Pulls every planned tensor from `source`, shard by shard in file order, and writes it.
    /// `progress(done, total)` is called in bytes of tensor data after each tensor.
    pub fn write_all_from(
        &mut self,
        source: &mut dyn TensorSource,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<()> {
        let order: Vec<(String, u64)> = self
            .layouts()
            .flat_map(|l| {
                l.tensors
                    .iter()
                    .map(|t| (t.spec.name.clone(), t.end - t.begin))
            })
            .collect();
        let total = order.iter().map(|(_, bytes)| bytes).sum();
        let mut done = 0;
        for (name, bytes) in order {
            let data = source.read(&name)?;
            self.write(&name, data)?;
            done += bytes;
            progress(done, total);
        }
        Ok(())
    }

    /// Checks that every tensor was written, fsyncs the files and writes the index if sharded.
    pub fn finish(self) -> Result<WrittenShards> {
        let mut weight_map = BTreeMap::new();
        let (mut total_size, mut total_parameters) = (0u64, 0u64);
        for shard in &self.shards {
            for (placed, done) in shard.layout.tensors.iter().zip(&shard.written) {
                if !*done {
                    let message = "was planned but never written".to_string();
                    return Err(ExportError::Plan {
                        tensor: placed.spec.name.clone(),
                        message,
                    });
                }
                weight_map.insert(placed.spec.name.clone(), shard.layout.file_name.clone());
                total_size += placed.end - placed.begin;
                total_parameters += placed.spec.numel();
            }
            shard
                .file
                .sync_all()
                .map_err(|e| ExportError::io(&shard.path, e))?;
        }
        let files: Vec<String> = self
            .shards
            .iter()
            .map(|s| s.layout.file_name.clone())
            .collect();
        let index_written = files.len() > 1;
        if index_written {
            let index = serde_json::json!({
                "metadata": { "total_parameters": total_parameters, "total_size": total_size },
                "weight_map": weight_map,
            });
            write_json_file(&self.dir.join(INDEX_FILE), &index)?;
        }
        Ok(WrittenShards {
            files,
            total_size,
            total_parameters,
            index_written,
        })
    }
}

/// Creates the shard file, writes its header and sizes it to its final length.
fn open_shard(dir: &Path, layout: ShardLayout) -> Result<OpenShard> {
    let path = dir.join(&layout.file_name);
    let header = header_bytes(&layout);
    let mut file = File::options()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| ExportError::io(&path, e))?;
    let mut head = Vec::with_capacity(8 + header.len());
    head.extend_from_slice(&(header.len() as u64).to_le_bytes());
    head.extend_from_slice(&header);
    file.write_all(&head)
        .map_err(|e| ExportError::io(&path, e))?;
    let data_start = head.len() as u64;
    file.set_len(data_start + layout.data_len())
        .map_err(|e| ExportError::io(&path, e))?;
    let written = vec![false; layout.tensors.len()];
    Ok(OpenShard {
        layout,
        path,
        file,
        data_start,
        written,
    })
}

/// The JSON header of a shard, space-padded to a multiple of 8 bytes, exactly as `safetensors` writes it.
pub(crate) fn header_bytes(layout: &ShardLayout) -> Vec<u8> {
    let mut json = String::from(r#"{"__metadata__":{"format":"pt"}"#);
    for placed in &layout.tensors {
        let spec = &placed.spec;
        let name = serde_json::Value::String(spec.name.clone()).to_string();
        let shape: Vec<String> = spec.shape.iter().map(|d| d.to_string()).collect();
        json.push_str(&format!(
            r#",{name}:{{"dtype":"{}","shape":[{}],"data_offsets":[{},{}]}}"#,
            spec.dtype,
            shape.join(","),
            placed.begin,
            placed.end
        ));
    }
    json.push('}');
    let mut bytes = json.into_bytes();
    bytes.resize(bytes.len().next_multiple_of(8), b' ');
    bytes
}

/// Writes pretty JSON (2-space indent, trailing newline, as HF does) to `path` and fsyncs it.
pub(crate) fn write_json_file(path: &Path, value: &serde_json::Value) -> Result<()> {
    let mut text =
        serde_json::to_string_pretty(value).map_err(|e| ExportError::io(path, e.into()))?;
    text.push('\n');
    write_file_synced(path, text.as_bytes())
}

/// Writes `bytes` to a new file at `path` and fsyncs it.
pub(crate) fn write_file_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    graft_fs::write_synced(path, bytes).map_err(|e| crate::Error::from(e).into())
}

fn seek(file: &mut File, path: &Path, pos: u64) -> Result<()> {
    file.seek(SeekFrom::Start(pos))
        .map(|_| ())
        .map_err(|e| ExportError::io(path, e))
}

fn write_chunk(file: &mut File, path: &Path, bytes: &[u8]) -> Result<u64> {
    file.write_all(bytes)
        .map_err(|e| ExportError::io(path, e))?;
    Ok(bytes.len() as u64)
}

/// Converts `data` to the planned dtype piece by piece and writes it at the file's current
/// position; returns the bytes written.
fn write_data(
    shard: &mut OpenShard,
    spec: &TensorSpec,
    data: TensorData<'_>,
    scratch: &mut Vec<u8>,
) -> Result<u64> {
    let numel = spec.numel() as usize;
    let mut written = 0;
    match data {
        TensorData::F32(values) => {
            check_len(spec, values.len(), numel, "values")?;
            for chunk in values.chunks(CHUNK_ELEMENTS) {
                scratch.clear();
                if !encode_f32_into(chunk, spec.dtype, scratch) {
                    return Err(conversion_error(spec, "F32"));
                }
                written += write_chunk(&mut shard.file, &shard.path, scratch)?;
            }
        }
        TensorData::Bytes { dtype, bytes } => {
            let width = width_of(spec, dtype)?;
            check_len(spec, bytes.len(), numel * width, "bytes")?;
            for chunk in bytes.chunks(CHUNK_ELEMENTS * width) {
                written += convert_chunk(shard, spec, dtype, chunk, scratch)?;
            }
        }
        TensorData::Stream { dtype, chunks } => {
            let width = width_of(spec, dtype)?;
            let mut seen = 0usize;
            for chunk in chunks {
                let chunk = chunk?;
                seen += chunk.len();
                if chunk.len() % width != 0 || seen > numel * width {
                    let message = format!(
                        "stream piece of {} bytes does not fit shape {:?}",
                        chunk.len(),
                        spec.shape
                    );
                    return Err(ExportError::Shape {
                        tensor: spec.name.clone(),
                        message,
                    });
                }
                written += convert_chunk(shard, spec, dtype, &chunk, scratch)?;
            }
            check_len(spec, seen, numel * width, "bytes")?;
        }
    }
    Ok(written)
}

fn width_of(spec: &TensorSpec, dtype: Dtype) -> Result<usize> {
    element_size(dtype).ok_or_else(|| conversion_error(spec, &dtype.to_string()))
}

/// Converts one piece of source bytes to the planned dtype and appends it to the shard file.
fn convert_chunk(
    shard: &mut OpenShard,
    spec: &TensorSpec,
    dtype: Dtype,
    chunk: &[u8],
    scratch: &mut Vec<u8>,
) -> Result<u64> {
    scratch.clear();
    if !convert_into(dtype, chunk, spec.dtype, scratch) {
        return Err(conversion_error(spec, &dtype.to_string()));
    }
    write_chunk(&mut shard.file, &shard.path, scratch)
}

fn check_len(spec: &TensorSpec, actual: usize, expected: usize, unit: &str) -> Result<()> {
    if actual == expected {
        return Ok(());
    }
    let message = format!(
        "got {actual} {unit}, expected {expected} for shape {:?}",
        spec.shape
    );
    Err(ExportError::Shape {
        tensor: spec.name.clone(),
        message,
    })
}

fn conversion_error(spec: &TensorSpec, from: &str) -> ExportError {
    ExportError::UnsupportedDtype {
        tensor: spec.name.clone(),
        dtype: format!("{from} (cannot convert to {})", spec.dtype),
    }
}
