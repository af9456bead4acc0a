//! Re-quantizes a GGUF model with llama.cpp's own quantizer (what `llama-quantize` does).
//!
//! Some shipped files use types without fast CPU matrix kernels: llama.cpp has repacked and
//! tiled GEMM paths for Q4_0, Q8_0 and the K-quants on x86, not for Q4_1. Re-quantizing such a
//! file to Q8_0 keeps its values within a fraction of its own rounding step and makes prompt
//! processing and batched decoding several times faster (see BENCHMARKS.md).

use super::{ModelError, backend};
use crate::gguf::GgufHeader;
use std::ffi::CString;
use std::path::Path;

/// Target weight types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuantType {
    Q8_0,
    Q4_0,
    Q4KM,
    F16,
}

impl QuantType {
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name.to_ascii_lowercase().as_str() {
            "q8_0" => QuantType::Q8_0,
            "q4_0" => QuantType::Q4_0,
            "q4_k_m" => QuantType::Q4KM,
            "f16" => QuantType::F16,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            QuantType::Q8_0 => "q8_0",
            QuantType::Q4_0 => "q4_0",
            QuantType::Q4KM => "q4_k_m",
            QuantType::F16 => "f16",
        }
    }

    fn ftype(self) -> llama_cpp_sys_2::llama_ftype {
        match self {
            QuantType::Q8_0 => llama_cpp_sys_2::LLAMA_FTYPE_MOSTLY_Q8_0,
            QuantType::Q4_0 => llama_cpp_sys_2::LLAMA_FTYPE_MOSTLY_Q4_0,
            QuantType::Q4KM => llama_cpp_sys_2::LLAMA_FTYPE_MOSTLY_Q4_K_M,
            QuantType::F16 => llama_cpp_sys_2::LLAMA_FTYPE_MOSTLY_F16,
        }
    }
}

/// Writes `input` re-quantized to `kind` at `output` (through a `.partial` file renamed
/// into place, so a killed run leaves no half-written model).
pub fn quantize(
    input: &Path,
    output: &Path,
    kind: QuantType,
    threads: usize,
) -> Result<(), ModelError> {
    GgufHeader::read(input)?;
    backend()?;
    let partial = output.with_extension("gguf.partial");
    let c_path = |p: &Path| {
        CString::new(p.as_os_str().as_encoded_bytes()).map_err(|_| ModelError::Load {
            path: p.to_path_buf(),
            reason: "the path contains a NUL byte".into(),
        })
    };
    let (c_in, c_out) = (c_path(input)?, c_path(&partial)?);
    // SAFETY: plain C call; params come from llama.cpp's defaults and outlive the call, and
    // the paths are NUL-terminated strings that outlive it too.
    let status = unsafe {
        let mut params = llama_cpp_sys_2::llama_model_quantize_default_params();
        params.nthread = i32::try_from(threads).unwrap_or(0);
        params.ftype = kind.ftype();
        params.allow_requantize = true;
        llama_cpp_sys_2::llama_model_quantize(c_in.as_ptr(), c_out.as_ptr(), &params)
    };
    if status != 0 {
        let _ = std::fs::remove_file(&partial);
        return Err(ModelError::Load {
            path: input.to_path_buf(),
            reason: format!(
                "llama.cpp could not quantize it to {} (code {status})",
                kind.as_str()
            ),
        });
    }
    fs_err::rename(&partial, output)?;
    Ok(())
}
