//! Loading HuggingFace safetensors checkpoints (one file or a sharded set) into a [`Llama`].
//!
//! Files are memory-mapped and converted tensor by tensor: each tensor is copied out of the map,
//! converted to the device's float dtype, handed to the device and its host copy dropped, so
//! loading an N-byte checkpoint needs about N bytes of device memory and only one tensor's worth
//! of extra host memory. Every header is validated before any tensor is converted, so a bad
//! checkpoint fails fast and nothing is half-loaded.
//!
//! A tied model (`tie_word_embeddings: true`) needs no `lm_head.weight`; if the checkpoint has
//! one anyway it is ignored, as HF does (with a warning). Legacy `rotary_emb.inv_freq` buffers
//! are ignored too. Any other unknown tensor is an error.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;
use burn::tensor::TensorData;
use half::{bf16, f16};
use memmap2::Mmap;
use safetensors::{Dtype, SafeTensors};

use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::keymap::{param_keys, ParamKey};
use crate::model::Llama;

/// Name of the single-file checkpoint.
pub const SINGLE_FILE: &str = "model.safetensors";
/// Name of the shard index of a sharded checkpoint.
pub const INDEX_FILE: &str = "model.safetensors.index.json";
/// Name of the model config.
pub const CONFIG_FILE: &str = "config.json";

/// The weight files of a checkpoint directory.
#[derive(Debug, Clone)]
pub struct WeightFiles {
    /// The shard index, when the checkpoint is sharded.
    pub index: Option<PathBuf>,
    /// The safetensors files, in index order (or the single `model.safetensors`).
    pub files: Vec<PathBuf>,
}

/// Finds the weight files of `dir`: the shards named in `model.safetensors.index.json`
/// (each must exist), else `model.safetensors`.
pub fn weight_files(dir: &Path) -> Result<WeightFiles> {
    let index = dir.join(INDEX_FILE);
    if index.is_file() {
        let shards = read_index(&index)?;
        let mut files = Vec::with_capacity(shards.len());
        for shard in shards {
            let path = dir.join(&shard);
            if !path.is_file() {
                return Err(Error::MissingShard {
                    index: index.clone(),
                    shard,
                    dir: dir.to_path_buf(),
                });
            }
            files.push(path);
        }
        return Ok(WeightFiles {
            index: Some(index),
            files,
        });
    }
    let single = dir.join(SINGLE_FILE);
    if single.is_file() {
        return Ok(WeightFiles {
            index: None,
            files: vec![single],
        });
    }
    Err(Error::NoWeights {
        dir: dir.to_path_buf(),
    })
}

/// The distinct shard file names of an index, in first-seen order of its sorted `weight_map`.
pub fn read_index(index: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(index).map_err(|e| Error::io(index, e))?;
    let json_err = |message: String| Error::Json {
        path: index.to_path_buf(),
        message,
    };
    #[derive(serde::Deserialize)]
    struct Index {
        weight_map: BTreeMap<String, String>,
    }
    let parsed: Index = serde_json::from_str(&text).map_err(|e| json_err(e.to_string()))?;
    let mut shards: Vec<String> = Vec::new();
    for file in parsed.weight_map.into_values() {
        if file.contains('/') || file.contains('\\') || file.starts_with('.') {
            return Err(json_err(format!(
                "shard name {file:?} must be a plain file name"
            )));
        }
        if !shards.contains(&file) {
            shards.push(file);
        }
    }
    if shards.is_empty() {
        return Err(json_err("weight_map is empty".into()));
    }
    Ok(shards)
}

/// Reads `dir/config.json` and the weights of `dir` into a new model on `device`.
pub fn load<B: Backend>(
    dir: impl AsRef<Path>,
    device: &B::Device,
) -> Result<(Llama<B>, ModelConfig)> {
    let dir = dir.as_ref();
    let config = ModelConfig::from_file(dir.join(CONFIG_FILE))?;
    let mut model = config.llama.init::<B>(device);
    load_weights(&mut model, dir)?;
    Ok((model, config))
}

/// A memory-mapped safetensors file.
struct Shard {
    path: PathBuf,
    map: Mmap,
}

impl Shard {
    fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        // SAFETY: the map is read-only and lives no longer than this loader; a checkpoint file
        // modified while being loaded is outside what any loader can guard against.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        Ok(Self {
            path: path.to_path_buf(),
            map,
        })
    }

    /// Drops this process's resident pages of `bytes` (a slice of the map) once its tensor is
    /// converted, so peak memory is the model plus one tensor, not the model plus the file.
    /// The page cache keeps them; touching them again reads the same bytes. A no-op off Unix.
    fn release(&self, bytes: &[u8]) {
        #[cfg(unix)]
        {
            let start = bytes.as_ptr() as usize - self.map.as_ptr() as usize;
            // SAFETY: a read-only file mapping; MADV_DONTNEED only drops pages, which read back
            // the same file contents if touched again (`unchecked_advise_range` aligns `start`).
            let advice = memmap2::UncheckedAdvice::DontNeed;
            if let Err(e) = unsafe { self.map.unchecked_advise_range(advice, start, bytes.len()) } {
                tracing::debug!(file = %self.path.display(), "madvise(DONTNEED): {e}");
            }
        }
        #[cfg(not(unix))]
        let _ = bytes;
    }

    fn tensors(&self) -> Result<SafeTensors<'_>> {
        SafeTensors::deserialize(&self.map).map_err(|e| Error::Safetensors {
            path: self.path.clone(),
            message: e.to_string(),
        })
    }
}

/// Loads every parameter of `model` from the safetensors files of `dir`, replacing its values.
pub fn load_weights<B: Backend>(model: &mut Llama<B>, dir: &Path) -> Result<()> {
    let files = weight_files(dir)?;
    let shards = files
        .files
        .iter()
        .map(|p| Shard::open(p))
        .collect::<Result<Vec<_>>>()?;
    let plan = plan(model, dir, &shards)?;
    let mut loaded = 0usize;
    for (shard, names) in shards.iter().zip(plan) {
        let tensors = shard.tensors()?;
        for (name, key) in names {
            let view = tensors.tensor(&name).map_err(|e| Error::Safetensors {
                path: shard.path.clone(),
                message: e.to_string(),
            })?;
            let release = |bytes: &[u8]| shard.release(bytes);
            let source = (view.dtype(), view.shape(), view.data());
            let data = to_float_data::<B>(&shard.path, &name, source, &release)?;
            model.set_param_data(key, data)?;
            shard.release(view.data());
            loaded += 1;
        }
    }
    tracing::info!(dir = %dir.display(), tensors = loaded, files = shards.len(), "loaded checkpoint");
    Ok(())
}

/// Validates every header against the model and returns, per shard, the tensors to load.
fn plan<B: Backend>(
    model: &Llama<B>,
    dir: &Path,
    shards: &[Shard],
) -> Result<Vec<Vec<(String, ParamKey)>>> {
    let config = model.config();
    let mut seen: HashSet<ParamKey> = HashSet::new();
    let mut plan = Vec::with_capacity(shards.len());
    for shard in shards {
        let tensors = shard.tensors()?;
        let mut names = Vec::new();
        for (name, view) in tensors.iter() {
            let Some(key) = accept(&shard.path, name, view.shape(), config)? else {
                continue;
            };
            let expected = key.shape(config);
            if view.shape() != expected.as_slice() {
                return Err(Error::ShapeMismatch {
                    path: shard.path.clone(),
                    tensor: name.to_string(),
                    expected,
                    actual: view.shape().to_vec(),
                });
            }
            check_dtype(&shard.path, name, view.dtype())?;
            if !seen.insert(key) {
                return Err(Error::UnexpectedTensor {
                    path: shard.path.clone(),
                    tensor: format!("{name} (a second copy)"),
                    shape: view.shape().to_vec(),
                });
            }
            names.push((name.to_string(), key));
        }
        plan.push(names);
    }
    if let Some(missing) = param_keys(config).into_iter().find(|k| !seen.contains(k)) {
        return Err(Error::MissingTensor {
            dir: dir.to_path_buf(),
            tensor: missing.hf_name(),
            expected: missing.shape(config),
        });
    }
    Ok(plan)
}

/// The parameter a checkpoint tensor loads into; `None` for tensors deliberately ignored.
fn accept(
    path: &Path,
    name: &str,
    shape: &[usize],
    config: &crate::LlamaConfig,
) -> Result<Option<ParamKey>> {
    if let Ok(key) = ParamKey::lookup(name, config) {
        return Ok(Some(key));
    }
    if name == "lm_head.weight" && config.tie_word_embeddings {
        tracing::warn!(file = %path.display(), "ignoring lm_head.weight: the model ties it to embed_tokens");
        return Ok(None);
    }
    if name.ends_with(".rotary_emb.inv_freq") {
        return Ok(None);
    }
    Err(Error::UnexpectedTensor {
        path: path.to_path_buf(),
        tensor: name.to_string(),
        shape: shape.to_vec(),
    })
}

fn check_dtype(path: &Path, name: &str, dtype: Dtype) -> Result<()> {
    match dtype {
        Dtype::F32 | Dtype::BF16 | Dtype::F16 => Ok(()),
        other => Err(Error::UnsupportedDtype {
            path: path.to_path_buf(),
            tensor: name.to_string(),
            dtype: format!("{other:?}"),
        }),
    }
}

/// One tensor as host data for a backend of float element `B::FloatElem`: bf16/f16 weights for an
/// f32 backend are widened here, straight from the map into the tensor's own buffer ([`widen`]:
/// one pass, in parallel, as PyTorch's `.float()`); anything else is [`to_tensor_data`] and
/// converted on upload. `release` gets each widened slab of `bytes` (the loader drops its mapped
/// pages), so that a large tensor's source and f32 copy coexist only one slab at a time.
fn to_float_data<B: Backend>(
    path: &Path,
    name: &str,
    (dtype, shape, bytes): (Dtype, &[usize], &[u8]),
    release: &(dyn Fn(&[u8]) + Sync),
) -> Result<TensorData> {
    use burn::tensor::{DType, Element};
    if B::FloatElem::dtype() != DType::F32 {
        return to_tensor_data(path, name, dtype, shape, bytes);
    }
    let half = match dtype {
        Dtype::BF16 => Half::Bf16,
        Dtype::F16 => Half::F16,
        _ => return to_tensor_data(path, name, dtype, shape, bytes),
    };
    // `TensorData::new` takes the Vec's allocation as is: the tensor is this buffer, no copy.
    Ok(TensorData::new(
        widen_releasing(half, bytes, release),
        shape,
    ))
}

/// A 16-bit float format of checkpoint bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Half {
    /// bfloat16: the upper half of an f32.
    Bf16,
    /// IEEE binary16.
    F16,
}

/// Elements converted per parallel task (256 KiB of f32 out): large enough that scheduling costs
/// nothing, small enough that both cores share even a small tensor.
const WIDEN_CHUNK: usize = 1 << 16;

/// [`widen_releasing`] without a release (tests).
#[cfg(test)]
fn widen(half: Half, bytes: &[u8]) -> Vec<f32> {
    widen_releasing(half, bytes, &|_| ())
}

/// Elements per slab of [`widen_releasing`] (8 MB of 16-bit source); a multiple of `WIDEN_CHUNK`.
const WIDEN_SLAB: usize = 64 * WIDEN_CHUNK;

/// Widens little-endian 16-bit floats to f32, in parallel over chunks (rayon's pool, i.e.
/// `RAYON_NUM_THREADS`), writing straight into the returned buffer: no intermediate copy. The
/// buffer comes from `calloc`, so its pages are first touched (faulted in) by the converting
/// threads, in parallel too. A trailing odd byte is ignored (safetensors sizes are checked
/// before this is called).
///
/// Slab by slab ([`WIDEN_SLAB`]): each converted slab of `bytes` goes to `release` (the loader
/// drops its mapped pages), so the source and the f32 copy of a large tensor coexist one slab at
/// a time.
pub(crate) fn widen_releasing(
    half: Half,
    bytes: &[u8],
    release: &(dyn Fn(&[u8]) + Sync),
) -> Vec<f32> {
    use rayon::prelude::*;
    let mut out = vec![0f32; bytes.len() / 2];
    advise_huge_pages(&mut out);
    for (dst, src) in out.chunks_mut(WIDEN_SLAB).zip(bytes.chunks(2 * WIDEN_SLAB)) {
        dst.par_chunks_mut(WIDEN_CHUNK)
            .zip(src.par_chunks(2 * WIDEN_CHUNK))
            .for_each(|(dst, src)| widen_chunk(half, src, dst));
        release(src);
    }
    out
}

/// Asks the kernel for transparent huge pages under the 2 MiB-aligned interior of a fresh,
/// untouched buffer (where THP is in `madvise` mode, the common default): first touches then fault
/// in 2 MiB at a time instead of 4 KiB, which at checkpoint sizes is most of a load's time.
/// Advisory only; a no-op off Linux.
fn advise_huge_pages(buf: &mut [f32]) {
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let start = buf.as_mut_ptr() as usize;
        let end = start + std::mem::size_of_val(buf);
        let (lo, hi) = (start.next_multiple_of(HUGE), end / HUGE * HUGE);
        if hi > lo {
            // SAFETY: [lo, hi) lies inside `buf`, which this function borrows mutably;
            // MADV_HUGEPAGE changes how pages are backed, never their contents.
            let rc =
                unsafe { libc::madvise(lo as *mut libc::c_void, hi - lo, libc::MADV_HUGEPAGE) };
            if rc != 0 {
                tracing::debug!(
                    "madvise(MADV_HUGEPAGE): {}",
                    std::io::Error::last_os_error()
                );
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = buf;
}

/// Widens one chunk: `src` holds `2 * dst.len()` bytes. Uses `half`'s slice conversion (SIMD F16C
/// for f16 where the CPU has it; bf16 is a shift that the compiler vectorises) when `src` is
/// 2-byte aligned (any safetensors file written by safetensors itself) on a little-endian CPU;
/// otherwise decodes byte pairs one by one.
fn widen_chunk(half: Half, src: &[u8], dst: &mut [f32]) {
    use half::slice::HalfFloatSliceExt;
    let aligned = bytemuck::try_cast_slice::<u8, u16>(src)
        .ok()
        .filter(|_| cfg!(target_endian = "little"));
    match (aligned, half) {
        (Some(bits), Half::Bf16) => {
            bytemuck::cast_slice::<u16, bf16>(bits).convert_to_f32_slice(dst)
        }
        (Some(bits), Half::F16) => bytemuck::cast_slice::<u16, f16>(bits).convert_to_f32_slice(dst),
        (None, _) => {
            for (d, c) in dst.iter_mut().zip(src.chunks_exact(2)) {
                let b = u16::from_le_bytes([c[0], c[1]]);
                *d = match half {
                    Half::Bf16 => f32::from_bits(u32::from(b) << 16),
                    Half::F16 => f16::from_bits(b).to_f32(),
                };
            }
        }
    }
}

/// Copies one tensor out of the map into host data of its own dtype (the device conversion
/// happens when it is uploaded). Handles any alignment of the source bytes.
pub(crate) fn to_tensor_data(
    path: &Path,
    name: &str,
    dtype: Dtype,
    shape: &[usize],
    bytes: &[u8],
) -> Result<TensorData> {
    let data = match dtype {
        Dtype::F32 => TensorData::new(bytemuck::pod_collect_to_vec::<u8, f32>(bytes), shape),
        Dtype::BF16 => TensorData::new(bytemuck::pod_collect_to_vec::<u8, bf16>(bytes), shape),
        Dtype::F16 => TensorData::new(bytemuck::pod_collect_to_vec::<u8, f16>(bytes), shape),
        other => {
            return Err(Error::UnsupportedDtype {
                path: path.to_path_buf(),
                tensor: name.to_string(),
                dtype: format!("{other:?}"),
            })
        }
    };
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Little-endian bytes of `n` varied 16-bit patterns (normals, subnormals, ±0, ±inf, NaN),
    /// placed at byte offset `skew` of the returned buffer.
    fn patterns(n: usize, skew: usize) -> (Vec<u8>, Vec<u16>) {
        let bits: Vec<u16> = (0..n as u32)
            .map(|i| (i.wrapping_mul(40_503) ^ (i >> 3)) as u16)
            .collect();
        let mut bytes = vec![0u8; skew];
        bytes.extend(bits.iter().flat_map(|b| b.to_le_bytes()));
        (bytes, bits)
    }

    /// Both formats, aligned and misaligned sources, lengths spanning several parallel chunks and
    /// a partial last one: every element widens to exactly the scalar conversion's bits.
    #[test]
    fn widen_matches_scalar_conversion() {
        let n = 3 * WIDEN_CHUNK + 17;
        for skew in [0, 1] {
            let (bytes, bits) = patterns(n, skew);
            let src = &bytes[skew..];
            for half in [Half::Bf16, Half::F16] {
                let wide = widen(half, src);
                assert_eq!(wide.len(), n);
                for (i, (&w, &b)) in wide.iter().zip(&bits).enumerate() {
                    let want = match half {
                        Half::Bf16 => bf16::from_bits(b).to_f32(),
                        Half::F16 => f16::from_bits(b).to_f32(),
                    };
                    // NaN payloads may differ between conversions: compare NaN-ness for those.
                    assert!(
                        w.to_bits() == want.to_bits() || (w.is_nan() && want.is_nan()),
                        "{half:?} skew {skew} element {i}: {b:#06x} -> {w} (want {want})"
                    );
                }
            }
        }
    }

    /// Over several slabs and a partial last one: every source byte is released exactly once, in
    /// order, and only after its slab was widened (the values equal one-pass widening).
    #[test]
    fn widen_releases_each_slab_once() {
        let n = 2 * WIDEN_SLAB + 5;
        let (bytes, _) = patterns(n, 0);
        let released = std::sync::Mutex::new(Vec::new());
        let base = bytes.as_ptr() as usize;
        let release = |b: &[u8]| {
            released
                .lock()
                .unwrap()
                .push((b.as_ptr() as usize - base, b.len()))
        };
        let wide = widen_releasing(Half::Bf16, &bytes, &release);
        let want = widen(Half::Bf16, &bytes);
        assert!(wide
            .iter()
            .zip(&want)
            .all(|(a, b)| a.to_bits() == b.to_bits() || a.is_nan()));
        let released = released.into_inner().unwrap();
        assert_eq!(released.len(), 3);
        let mut next = 0;
        for (start, len) in released {
            assert_eq!(
                start, next,
                "slabs released in order, without gaps or overlaps"
            );
            next += len;
        }
        assert_eq!(next, bytes.len());
    }

    #[test]
    fn widen_empty() {
        assert!(widen(Half::Bf16, &[]).is_empty());
    }
}
