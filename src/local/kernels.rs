//! Which GGUF tensor types this build's CPU kernels have SIMD for.
//!
//! candle's quantized matmul on the CPU has AVX2 (x86-64) and NEON (arm64)
//! dot products for Q4_0, Q8_0 and the K-quants (Q2_K..Q8_K); Q4_1, Q5_0,
//! Q5_1 and Q8_1 fall back to scalar code, several times slower. The SIMD
//! paths are compiled in only when the binary is built for a CPU that has
//! them (`.cargo/config.toml`: `target-cpu=x86-64-v3`), so both the file's
//! types and the build decide.

use std::collections::BTreeMap;

use candle_core::quantized::{gguf_file, GgmlDType};

/// The CPU this binary's kernels were compiled for.
pub fn target_cpu() -> &'static str {
    if cfg!(all(
        target_arch = "x86_64",
        target_feature = "avx2",
        target_feature = "fma"
    )) {
        "x86-64 with AVX2 and FMA (x86-64-v3)"
    } else if cfg!(target_arch = "x86_64") {
        "x86-64 without AVX2 (baseline)"
    } else if cfg!(all(target_arch = "aarch64", target_feature = "neon")) {
        "arm64 with NEON"
    } else {
        "a CPU without SIMD kernels"
    }
}

fn simd_build() -> bool {
    cfg!(any(target_feature = "avx2", target_feature = "neon"))
}

/// Whether tensors of type `t` get a SIMD dot product in this build.
pub fn has_simd(t: GgmlDType) -> bool {
    match t {
        // Dense types go through gemm, which dispatches at run time.
        GgmlDType::F32 | GgmlDType::F16 | GgmlDType::BF16 => true,
        GgmlDType::Q4_0
        | GgmlDType::Q8_0
        | GgmlDType::Q2K
        | GgmlDType::Q3K
        | GgmlDType::Q4K
        | GgmlDType::Q5K
        | GgmlDType::Q6K
        | GgmlDType::Q8K => simd_build(),
        GgmlDType::Q4_1 | GgmlDType::Q5_0 | GgmlDType::Q5_1 | GgmlDType::Q8_1 => false,
    }
}

/// The tensor types of a GGUF file without a SIMD kernel here, with how
/// many tensors each, e.g. `[("Q4_1", 210)]`.
pub fn slow_types(file: &str) -> anyhow::Result<Vec<(String, usize)>> {
    let mut f = std::fs::File::open(file)?;
    let content = gguf_file::Content::read(&mut f)
        .map_err(|e| anyhow::anyhow!("reading the GGUF header of {file}: {e}"))?;
    let mut slow: BTreeMap<String, usize> = BTreeMap::new();
    for info in content.tensor_infos.values() {
        if !has_simd(info.ggml_dtype) {
            *slow.entry(name(info.ggml_dtype)).or_default() += 1;
        }
    }
    Ok(slow.into_iter().collect())
}

/// GGML's own spelling (`Q4_1`, `Q4_K`).
fn name(t: GgmlDType) -> String {
    let s = format!("{t:?}");
    match s.strip_suffix('K') {
        Some(head) if head.starts_with('Q') => format!("{head}_K"),
        _ => s,
    }
}

/// The warning for a file whose types are slow on this CPU, if any.
pub fn warning(file: &str) -> Option<String> {
    let slow = match slow_types(file) {
        Ok(s) => s,
        Err(e) => return Some(format!("{e:#}")),
    };
    if slow.is_empty() {
        return None;
    }
    let list: Vec<String> = slow
        .iter()
        .map(|(t, n)| format!("{t} ({n} tensors)"))
        .collect();
    Some(format!(
        "{} have no SIMD kernel on this CPU (built for {}): generation runs several times slower than it could; \
         Q4_0, Q8_0 or a K-quant such as Q4_K_M run with SIMD",
        list.join(", "),
        target_cpu()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q4_1_and_q5_have_no_simd_kernel_and_k_quants_follow_the_build() {
        assert!(!has_simd(GgmlDType::Q4_1));
        assert!(!has_simd(GgmlDType::Q5_0));
        assert!(!has_simd(GgmlDType::Q5_1));
        assert!(has_simd(GgmlDType::F32));
        assert_eq!(has_simd(GgmlDType::Q4K), simd_build());
        assert_eq!(has_simd(GgmlDType::Q8_0), simd_build());
        assert_eq!(name(GgmlDType::Q4K), "Q4_K");
        assert_eq!(name(GgmlDType::Q4_1), "Q4_1");
        assert_eq!(name(GgmlDType::BF16), "BF16");
    }

    #[test]
    fn a_file_that_is_not_gguf_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.gguf");
        std::fs::write(&p, b"not a gguf file").unwrap();
        let w = warning(&p.display().to_string()).unwrap();
        assert!(w.contains("reading the GGUF header"), "{w}");
    }
}
