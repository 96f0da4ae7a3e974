//! Exporting a LoRA checkpoint (a PEFT adapter directory): merged into its base model as a full
//! HF model directory, or as the adapter alone.
//!
//! The merge streams the base checkpoint tensor by tensor from its memory map: each targeted
//! weight is read in pieces, `scale·B·A` is added to the rows of the piece in f32, and the result
//! is converted to the export dtype; every other tensor is copied. Memory stays at one piece plus
//! the adapters (a few MB to a few hundred MB), whatever the model's size.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use half::{bf16, f16};
use safetensors::{Dtype, SafeTensors};

use super::peft::{read_adapter_config, resolve_base, write_adapter_dir, AdapterConfig};
use super::{adapter_shape, parse_peft_name, LoraPart, ADAPTER_WEIGHTS_FILE};
use crate::export::{
    write_hf_dir, CheckpointSource, ChunkStream, ExportDtype, ExportError, ExportOptions,
    ExportSummary, HfDirFiles, Result, TensorData, TensorSource, TensorSpec, TOKENIZER_FILES,
};
use crate::keymap::ParamKey;
use crate::Error;

/// Exports any graft checkpoint as `graft export` does: a plain checkpoint as is; a LoRA checkpoint
/// merged into its base (`base`, else the adapter's `base_model_name_or_path`), or with
/// `adapter_only` as the PEFT adapter alone. `base`/`adapter_only` on a plain checkpoint are errors.
pub fn export_any(
    src: &Path,
    base: Option<&Path>,
    adapter_only: bool,
    out: &Path,
    options: &ExportOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<ExportSummary> {
    let lora = super::is_adapter_dir(src);
    if !lora && (adapter_only || base.is_some()) {
        return Err(ExportError::NotLora {
            path: src.to_path_buf(),
        });
    }
    match (lora, adapter_only) {
        (false, _) => crate::export::export_checkpoint(src, out, options, progress),
        (true, true) => export_adapter(src, out, options),
        (true, false) => export_merged(src, base, out, options, progress),
    }
}

/// Writes the adapter in `adapter_dir` to `out` as a PEFT adapter directory
/// (`adapter_config.json` copied, `adapter_model.safetensors` in `options.dtype`).
pub fn export_adapter(
    adapter_dir: &Path,
    out: &Path,
    options: &ExportOptions,
) -> Result<ExportSummary> {
    let config = read_adapter_config(adapter_dir)?;
    let mut source = AdapterFile::open(adapter_dir)?;
    let shards = write_adapter_dir(out, &config.raw, &mut source, options)?;
    Ok(ExportSummary {
        out_dir: out.to_path_buf(),
        dtype: options.dtype,
        shards,
        tokenizer_files: Vec::new(),
    })
}

/// Merges the adapter in `adapter_dir` into its base model (`base`, else the adapter's
/// `base_model_name_or_path`) and writes the result to `out` as a full HF model directory.
/// Tokenizer files come from `options.tokenizer_dir`, else the adapter directory, else the base.
pub fn export_merged(
    adapter_dir: &Path,
    base: Option<&Path>,
    out: &Path,
    options: &ExportOptions,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<ExportSummary> {
    let config = read_adapter_config(adapter_dir)?;
    let base_dir = resolve_base(adapter_dir, &config, base)?;
    let mut source = MergedSource::open(adapter_dir, &config, &base_dir)?;
    let gen_path = base_dir.join("generation_config.json");
    let generation_config = if gen_path.is_file() {
        let text = std::fs::read_to_string(&gen_path).map_err(|e| Error::io(&gen_path, e))?;
        let value = serde_json::from_str(&text).map_err(|e| Error::Json {
            path: gen_path.clone(),
            message: e.to_string(),
        })?;
        Some(value)
    } else {
        None
    };
    let tokenizer_dir = match &options.tokenizer_dir {
        Some(dir) => Some(dir.clone()),
        None => [adapter_dir, base_dir.as_path()]
            .into_iter()
            .find(|d| TOKENIZER_FILES.iter().any(|f| d.join(f).is_file()))
            .map(Path::to_path_buf),
    };
    let files = HfDirFiles {
        config: source.base.config().clone(),
        generation_config,
        tokenizer_dir,
    };
    tracing::info!(adapter = %adapter_dir.display(), base = %base_dir.display(), "merging LoRA adapter");
    write_hf_dir(out, &files, &mut source, options, progress)
}

/// The adapter of one projection, on the host in f32.
struct Delta {
    /// `[rank, cols]`.
    a: Vec<f32>,
    /// `[rows, rank]`.
    b: Vec<f32>,
    rank: usize,
    cols: usize,
    scale: f32,
}

impl Delta {
    /// Adds `scale·(B·A)[e]` to `values`, which hold elements `start..` of the row-major weight.
    fn add_to(&self, start: usize, values: &mut [f32], row_delta: &mut Vec<f32>) {
        let mut i = 0;
        while i < values.len() {
            let (row, col) = ((start + i) / self.cols, (start + i) % self.cols);
            let n = (self.cols - col).min(values.len() - i);
            row_delta.clear();
            row_delta.resize(n, 0.0);
            for k in 0..self.rank {
                let bk = self.b[row * self.rank + k];
                let a = &self.a[k * self.cols + col..k * self.cols + col + n];
                row_delta
                    .iter_mut()
                    .zip(a)
                    .for_each(|(d, &av)| *d += bk * av);
            }
            let out = &mut values[i..i + n];
            out.iter_mut()
                .zip(row_delta.iter())
                .for_each(|(w, d)| *w += d * self.scale);
            i += n;
        }
    }
}

/// The base checkpoint with adapters added to the targeted weights.
struct MergedSource {
    base: CheckpointSource,
    deltas: HashMap<String, Delta>,
}

impl MergedSource {
    fn open(adapter_dir: &Path, config: &AdapterConfig, base_dir: &Path) -> Result<Self> {
        let base = CheckpointSource::open(base_dir)?;
        base.check_complete()?;
        let llama = &base.config().llama;
        let adapter = AdapterFile::open(adapter_dir)?;
        let path = adapter.path.clone();
        let bad = |message: String| Error::Adapter {
            path: path.clone(),
            message,
        };
        let mut parts: HashMap<(usize, crate::LayerParam), [Option<Vec<f32>>; 2]> = HashMap::new();
        for (name, dtype, shape, bytes) in adapter.tensors()? {
            let (layer, target, part) = parse_peft_name(&name)
                .filter(|(l, t, _)| *l < llama.num_hidden_layers && config.lora.targets.contains(t))
                .ok_or_else(|| bad(format!("unexpected tensor {name}")))?;
            let want = adapter_shape(llama, target, config.lora.rank, part);
            if shape != want {
                return Err(bad(format!(
                    "tensor {name} has shape {shape:?}, expected {want:?} for the base model"
                ))
                .into());
            }
            let values = decode_f32(dtype, bytes)
                .ok_or_else(|| bad(format!("tensor {name}: unsupported dtype {dtype}")))?;
            parts.entry((layer, target)).or_default()[part as usize] = Some(values);
        }
        let mut deltas = HashMap::new();
        for layer in 0..llama.num_hidden_layers {
            for &target in &config.lora.targets {
                let [a, b] = parts.remove(&(layer, target)).unwrap_or_default();
                let name = |p| super::peft_name(layer, target, p);
                let a = a.ok_or_else(|| bad(format!("missing tensor {}", name(LoraPart::A))))?;
                let b = b.ok_or_else(|| bad(format!("missing tensor {}", name(LoraPart::B))))?;
                let cols = adapter_shape(llama, target, config.lora.rank, LoraPart::A)[1];
                let scale = config.lora.scale() as f32;
                let delta = Delta {
                    a,
                    b,
                    rank: config.lora.rank,
                    cols,
                    scale,
                };
                deltas.insert(ParamKey::Layer(layer, target).hf_name(), delta);
            }
        }
        Ok(Self { base, deltas })
    }
}

impl TensorSource for MergedSource {
    fn specs(&self, dtype: ExportDtype) -> Vec<TensorSpec> {
        self.base.specs(dtype)
    }

    fn read(&mut self, name: &str) -> Result<TensorData<'_>> {
        let Self { base, deltas } = self;
        let data = base.read(name)?;
        let Some(delta) = deltas.get(name) else {
            return Ok(data);
        };
        let (dtype, chunks): (Dtype, ChunkStream<'_>) = match data {
            TensorData::Stream { dtype, chunks } => (dtype, chunks),
            TensorData::Bytes { dtype, bytes } => (dtype, Box::new(std::iter::once(Ok(bytes)))),
            TensorData::F32(values) => {
                let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
                (Dtype::F32, Box::new(std::iter::once(Ok(Cow::Owned(bytes)))))
            }
        };
        let tensor = name.to_string();
        let mut pos = 0usize;
        let mut row_delta = Vec::new();
        let merged = chunks.map(move |chunk| {
            let chunk = chunk?;
            let mut values =
                decode_f32(dtype, &chunk).ok_or_else(|| ExportError::UnsupportedDtype {
                    tensor: tensor.clone(),
                    dtype: dtype.to_string(),
                })?;
            delta.add_to(pos, &mut values, &mut row_delta);
            pos += values.len();
            let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            Ok(Cow::Owned(bytes))
        });
        Ok(TensorData::Stream {
            dtype: Dtype::F32,
            chunks: Box::new(merged),
        })
    }
}

/// `(name, dtype, shape, bytes)` of a tensor in a safetensors file.
type RawTensor<'a> = (String, Dtype, Vec<usize>, &'a [u8]);

/// An `adapter_model.safetensors`, read into memory (adapters are small).
struct AdapterFile {
    path: PathBuf,
    bytes: Vec<u8>,
}

impl AdapterFile {
    fn open(dir: &Path) -> Result<Self> {
        let path = dir.join(ADAPTER_WEIGHTS_FILE);
        let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        let file = Self { path, bytes };
        file.parsed()?;
        Ok(file)
    }

    fn parsed(&self) -> Result<SafeTensors<'_>> {
        SafeTensors::deserialize(&self.bytes).map_err(|e| {
            Error::Safetensors {
                path: self.path.clone(),
                message: e.to_string(),
            }
            .into()
        })
    }

    /// `(name, dtype, shape, bytes)` of every tensor, in PEFT order (layer, module, A before B).
    fn tensors(&self) -> Result<Vec<RawTensor<'_>>> {
        let parsed = self.parsed()?;
        let mut out: Vec<_> = parsed
            .iter()
            .map(|(n, v)| (n.to_string(), v.dtype(), v.shape().to_vec(), v.data()))
            .collect();
        out.sort_by_key(|(n, ..)| {
            let key = parse_peft_name(n).map(|(l, t, p)| (l, super::target_index(t), p as usize));
            (key, n.clone())
        });
        Ok(out)
    }
}

impl TensorSource for AdapterFile {
    fn specs(&self, dtype: ExportDtype) -> Vec<TensorSpec> {
        self.tensors()
            .unwrap_or_default()
            .into_iter()
            .map(|(name, _, shape, _)| TensorSpec {
                name,
                shape,
                dtype: dtype.safetensors(),
            })
            .collect()
    }

    fn read(&mut self, name: &str) -> Result<TensorData<'_>> {
        let path = self.path.clone();
        let (_, dtype, _, bytes) = self
            .tensors()?
            .into_iter()
            .find(|(n, ..)| n == name)
            .ok_or_else(|| Error::MissingTensor {
                dir: path,
                tensor: name.to_string(),
                expected: Vec::new(),
            })?;
        Ok(TensorData::Bytes {
            dtype,
            bytes: Cow::Borrowed(bytes),
        })
    }
}

/// Little-endian F32/BF16/F16/F64 bytes as f32 values (`None` for other dtypes).
fn decode_f32(dtype: Dtype, bytes: &[u8]) -> Option<Vec<f32>> {
    let values = match dtype {
        Dtype::F32 => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::BF16 => bytes
            .chunks_exact(2)
            .map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::F16 => bytes
            .chunks_exact(2)
            .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::F64 => bytes
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as f32)
            .collect(),
        _ => return None,
    };
    Some(values)
}
