//! Export dtypes and element conversion between the float formats of a safetensors file.
//!
//! Narrowing (f32 → bf16/f16) rounds to nearest, ties to even, as PyTorch's `tensor.to(dtype)` does;
//! infinities stay infinite, values beyond the target's range become infinite, and a NaN stays a NaN
//! (quiet, sign kept). The `half` crate implements exactly this; `tests/export_dtype.rs` checks it
//! against an independent bit-level reference. Widening (bf16/f16 → f32) is exact.

use safetensors::Dtype;

/// The float format of an exported checkpoint (`--dtype`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportDtype {
    F32,
    BF16,
    F16,
}

impl ExportDtype {
    /// Parses `bf16`/`bfloat16`, `f16`/`fp16`/`float16`, `f32`/`fp32`/`float32` (case-insensitive).
    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_lowercase().as_str() {
            "f32" | "fp32" | "float32" => Some(Self::F32),
            "bf16" | "bfloat16" => Some(Self::BF16),
            "f16" | "fp16" | "float16" | "half" => Some(Self::F16),
            _ => None,
        }
    }

    /// The spelling of `torch_dtype` in an HF `config.json`.
    pub fn torch_name(self) -> &'static str {
        match self {
            Self::F32 => "float32",
            Self::BF16 => "bfloat16",
            Self::F16 => "float16",
        }
    }

    /// The dtype tag written in the safetensors header.
    pub fn safetensors(self) -> Dtype {
        match self {
            Self::F32 => Dtype::F32,
            Self::BF16 => Dtype::BF16,
            Self::F16 => Dtype::F16,
        }
    }
}

impl std::str::FromStr for ExportDtype {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::parse(s).ok_or_else(|| format!("unknown dtype {s:?}; use bf16, f16 or f32"))
    }
}

/// Whether `dtype` is a float format the exporter converts (others are copied unchanged).
pub fn is_convertible_float(dtype: Dtype) -> bool {
    matches!(dtype, Dtype::F32 | Dtype::BF16 | Dtype::F16 | Dtype::F64)
}

/// The dtype a source tensor gets in the export: floats take the export dtype, everything else
/// (integer buffers) keeps its own.
pub fn output_dtype(source: Dtype, export: ExportDtype) -> Dtype {
    if is_convertible_float(source) {
        export.safetensors()
    } else {
        source
    }
}

/// Bytes of one element, or `None` for sub-byte dtypes the exporter does not handle.
pub fn element_size(dtype: Dtype) -> Option<usize> {
    (dtype.bitsize().is_multiple_of(8) && dtype.bitsize() > 0).then(|| dtype.bitsize() / 8)
}

/// Converts little-endian `src` elements of dtype `from` into `to`, appending the bytes to `out`.
///
/// Returns `false` (and appends nothing) if the pair is not convertible: `from == to` is always
/// a plain copy; otherwise both must be float formats and `to` must be F32, BF16 or F16.
/// `src.len()` must be a multiple of the element size of `from` (the caller checks lengths).
pub fn convert_into(from: Dtype, src: &[u8], to: Dtype, out: &mut Vec<u8>) -> bool {
    if from == to {
        out.extend_from_slice(src);
        return true;
    }
    if !is_convertible_float(from) || !matches!(to, Dtype::F32 | Dtype::BF16 | Dtype::F16) {
        return false;
    }
    let Some(width) = element_size(from) else {
        return false;
    };
    out.reserve(src.len() / width * element_size(to).unwrap_or(4));
    for element in src.chunks_exact(width) {
        let value = decode(from, element);
        match to {
            Dtype::F32 => out.extend_from_slice(&value.to_le_bytes()),
            Dtype::BF16 => out.extend_from_slice(&f32_to_bf16_bits(value).to_le_bytes()),
            _ => out.extend_from_slice(&f32_to_f16_bits(value).to_le_bytes()),
        }
    }
    true
}

/// Appends `values` to `out` in dtype `to` (F32, BF16 or F16; anything else returns `false`).
pub fn encode_f32_into(values: &[f32], to: Dtype, out: &mut Vec<u8>) -> bool {
    match to {
        Dtype::F32 => values
            .iter()
            .for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
        Dtype::BF16 => values
            .iter()
            .for_each(|v| out.extend_from_slice(&f32_to_bf16_bits(*v).to_le_bytes())),
        Dtype::F16 => values
            .iter()
            .for_each(|v| out.extend_from_slice(&f32_to_f16_bits(*v).to_le_bytes())),
        _ => return false,
    }
    true
}

/// bf16 bits of `value`, rounded to nearest even (NaN stays a quiet NaN with its sign).
pub fn f32_to_bf16_bits(value: f32) -> u16 {
    half::bf16::from_f32(value).to_bits()
}

/// f16 bits of `value`, rounded to nearest even (NaN stays a quiet NaN with its sign).
pub fn f32_to_f16_bits(value: f32) -> u16 {
    half::f16::from_f32(value).to_bits()
}

/// Reads one little-endian float element of dtype `from` (F32, F64, BF16 or F16) as f32.
///
/// F64 narrows with Rust's `as`, which rounds to nearest even.
fn decode(from: Dtype, element: &[u8]) -> f32 {
    match (from, element) {
        (Dtype::F32, &[a, b, c, d]) => f32::from_le_bytes([a, b, c, d]),
        (Dtype::BF16, &[a, b]) => half::bf16::from_bits(u16::from_le_bytes([a, b])).to_f32(),
        (Dtype::F16, &[a, b]) => half::f16::from_bits(u16::from_le_bytes([a, b])).to_f32(),
        (Dtype::F64, bytes) if bytes.len() == 8 => {
            let mut raw = [0u8; 8];
            raw.copy_from_slice(bytes);
            f64::from_le_bytes(raw) as f32
        }
        _ => f32::NAN,
    }
}
