//! The fused CPU kernels of the fast forward pass, over plain `f32` rows.
//!
//! Every kernel works on row-major `[rows, width]` slices and is written so that LLVM
//! vectorises it (no calls in inner loops: `exp` and `erf` are polynomial, branch-free).
//! Matrix products go through the `gemm` crate, the same kernels candle's CPU matmul uses,
//! but with the bias written into the destination first, so the bias add costs nothing.

/// `out[rows, n] = x[rows, k] · w[k, n] (+ bias[n])`, with `w` stored `[k, n]` row-major.
///
/// With a bias, the bias is written into `out` first and the product added to it; without,
/// the caller adds the bias in its next pass over `out` (activation, layer norm), which
/// saves a pass. `threads > 1` splits the product across the current rayon pool.
pub(crate) fn linear(
    x: &[f32],
    rows: usize,
    k: usize,
    w: &[f32],
    bias: Option<&[f32]>,
    out: &mut [f32],
    threads: usize,
) {
    let n = w.len() / k;
    assert_eq!(x.len(), rows * k, "linear: input is not [rows, k]");
    assert_eq!(w.len(), k * n, "linear: weight is not [k, n]");
    assert_eq!(out.len(), rows * n, "linear: output is not [rows, n]");
    if rows == 0 {
        return;
    }
    if let Some(bias) = bias {
        assert_eq!(bias.len(), n, "linear: bias is not [n]");
        for row in out.chunks_exact_mut(n) {
            row.copy_from_slice(bias);
        }
    }
    let parallelism = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the asserts above check that every slice holds exactly the elements that the
    // dimensions and unit/row strides below address; `out` does not alias the inputs.
    unsafe {
        gemm::gemm(
            rows,
            n,
            k,
            out.as_mut_ptr(),
            1,
            n as isize,
            bias.is_some(),
            x.as_ptr(),
            1,
            k as isize,
            w.as_ptr(),
            1,
            n as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// `e^x` to about 2 ulp over the range that matters here (inputs are clamped to
/// [-87, 88]), branch-free so that loops over it vectorise.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split in a part exact in f32 and the rest (Cody-Waite).
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    let x = x.clamp(-87.0, 88.0);
    let n = (x * LOG2E).round_ties_even();
    let r = n.mul_add(-LN2_LO, n.mul_add(-LN2_HI, x));
    // Taylor series of e^r on |r| <= ln2/2: the degree-7 remainder is below 2e-8.
    let mut p = 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    let scale = f32::from_bits(((n as i32 + 127) as u32) << 23);
    p * scale
}

/// The error function, as a rational approximation on [-4, 4] (beyond which erf is ±1 in
/// f32); maximum absolute error about 3e-7 (the approximation XLA and Eigen use).
#[inline(always)]
pub(crate) fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = -2.726_142_3e-10_f32;
    p = p.mul_add(x2, 2.770_681_4e-8);
    p = p.mul_add(x2, -2.101_024e-6);
    p = p.mul_add(x2, -5.692_506_4e-5);
    p = p.mul_add(x2, -7.349_906_3e-4);
    p = p.mul_add(x2, -2.954_6e-3);
    p = p.mul_add(x2, -1.609_603_3e-2);
    p *= x;
    let mut q = -1.456_607_2e-5_f32;
    q = q.mul_add(x2, -2.133_740_6e-4);
    q = q.mul_add(x2, -1.682_827e-3);
    q = q.mul_add(x2, -7.373_329e-3);
    q = q.mul_add(x2, -1.426_474e-2);
    p / q
}

/// `tanh(x)` through `exp`, for the tanh-approximated GELU.
#[inline(always)]
fn tanh(x: f32) -> f32 {
    let e = exp(-2.0 * x.abs());
    ((1.0 - e) / (1.0 + e)).copysign(x)
}

/// The activation between the two feed-forward matrices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Activation {
    /// `x/2 · (1 + erf(x/√2))`, BERT's `gelu`.
    Gelu,
    /// `x/2 · (1 + tanh(√(2/π)(x + 0.044715x³)))`, `gelu_new` / `gelu_pytorch_tanh`.
    GeluTanh,
    Relu,
}

/// `values = act(values + bias)` row by row, in place (`bias` is one row).
pub(crate) fn bias_activate(values: &mut [f32], bias: &[f32], act: Activation) {
    for row in values.chunks_exact_mut(bias.len()) {
        match act {
            Activation::Gelu => {
                for (v, b) in row.iter_mut().zip(bias) {
                    let x = *v + b;
                    *v = 0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2));
                }
            }
            Activation::GeluTanh => {
                const C: f32 = 0.797_884_6; // √(2/π)
                for (v, b) in row.iter_mut().zip(bias) {
                    let x = *v + b;
                    *v = 0.5 * x * (1.0 + tanh(C * (x + 0.044_715 * x * x * x)));
                }
            }
            Activation::Relu => {
                for (v, b) in row.iter_mut().zip(bias) {
                    *v = (*v + b).max(0.0);
                }
            }
        }
    }
}

/// `x = layer_norm(x + sublayer + sublayer_bias)` row by row, in place in `x`: the
/// residual connection, the bias of the sublayer's last product, and the norm in one pass.
pub(crate) fn add_layer_norm(
    x: &mut [f32],
    sublayer: &[f32],
    sublayer_bias: &[f32],
    weight: &[f32],
    bias: &[f32],
    eps: f32,
) {
    let width = weight.len();
    for (row, out) in x.chunks_exact_mut(width).zip(sublayer.chunks_exact(width)) {
        for ((v, o), b) in row.iter_mut().zip(out).zip(sublayer_bias) {
            *v += o + b;
        }
        layer_norm_row(row, weight, bias, eps);
    }
}

/// Layer norm of one row in place: two passes, as PyTorch computes it.
#[inline]
pub(crate) fn layer_norm_row(row: &mut [f32], weight: &[f32], bias: &[f32], eps: f32) {
    let n = row.len() as f32;
    let mean = sum(row) / n;
    let mut var = 0.0;
    for lane in row.chunks(16) {
        let mut acc = [0.0f32; 16];
        for (a, v) in acc.iter_mut().zip(lane) {
            *a = (v - mean) * (v - mean);
        }
        var += acc.iter().sum::<f32>();
    }
    let inv = 1.0 / (var / n + eps).sqrt();
    for ((v, w), b) in row.iter_mut().zip(weight).zip(bias) {
        *v = (*v - mean) * inv * w + b;
    }
}

/// Sum with 16 independent accumulators (vectorises and is more accurate than a chain).
#[inline]
fn sum(values: &[f32]) -> f32 {
    let mut acc = [0.0f32; 16];
    let mut chunks = values.chunks_exact(16);
    for c in &mut chunks {
        for (a, v) in acc.iter_mut().zip(c) {
            *a += v;
        }
    }
    acc.iter().sum::<f32>() + chunks.remainder().iter().sum::<f32>()
}

/// Self-attention of one sequence, all heads, no mask (the sequence has no padding).
///
/// `qkv` holds `len` rows of `[q | k | v]` (each `heads · head_dim` wide); the context
/// vectors go to `out`, `len` rows of `heads · head_dim`. Per head, the scores `Q·Kᵀ` and the
/// context `P·V` are two small single-threaded `gemm` calls reading Q, K and V in place
/// (strided), with a softmax over rows in between. `scratch` is reused between calls.
pub(crate) fn attention(
    qkv: &[f32],
    len: usize,
    heads: usize,
    head_dim: usize,
    out: &mut [f32],
    scratch: &mut Vec<f32>,
) {
    let hidden = heads * head_dim;
    assert_eq!(
        qkv.len(),
        len * 3 * hidden,
        "attention: qkv is not [len, 3H]"
    );
    assert_eq!(out.len(), len * hidden, "attention: out is not [len, H]");
    if len == 0 {
        return;
    }
    let scale = 1.0 / (head_dim as f32).sqrt();
    scratch.clear();
    scratch.resize(len * len, 0.0);
    let scores = &mut scratch[..];
    let row = (3 * hidden) as isize;
    for h in 0..heads {
        let q = qkv[h * head_dim..].as_ptr();
        let k = qkv[hidden + h * head_dim..].as_ptr();
        let v = qkv[2 * hidden + h * head_dim..].as_ptr();
        // SAFETY: Q, K and V of head h are `len` rows of `head_dim` floats, `3·hidden` apart,
        // inside `qkv` (checked above: the last row ends at (len-1)·3H + 3H ≤ qkv.len()).
        // scores is [len, len]; the context of head h is `len` rows of `head_dim` floats,
        // `hidden` apart, inside `out`. Nothing aliases a destination.
        unsafe {
            // scores[i, j] = scale · Σ_c q[i, c] k[j, c]
            gemm::gemm(
                len,
                len,
                head_dim,
                scores.as_mut_ptr(),
                1,
                len as isize,
                false,
                q,
                1,
                row,
                k,
                row,
                1,
                0.0,
                scale,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
        for s in scores.chunks_exact_mut(len) {
            softmax(s);
        }
        unsafe {
            // out[i, c] = Σ_j p[i, j] v[j, c]
            gemm::gemm(
                len,
                head_dim,
                len,
                out[h * head_dim..].as_mut_ptr(),
                1,
                hidden as isize,
                false,
                scores.as_ptr(),
                1,
                len as isize,
                v,
                1,
                row,
                0.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
    }
}

/// Softmax of one row in place.
#[inline]
pub(crate) fn softmax(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    for s in row.iter_mut() {
        *s = exp(*s - max);
    }
    let inv = 1.0 / sum(row);
    for s in row.iter_mut() {
        *s *= inv;
    }
}

/// Scales `v` to unit L2 norm (a zero vector stays zero).
pub(crate) fn l2_normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        let inv = 1.0 / norm;
        for x in v {
            *x *= inv;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// erf in f64 from its series with positive terms only (no cancellation):
    /// erf(x) = 2/√π · e^{-x²} · Σ 2ⁿ x^{2n+1} / (1·3·…·(2n+1)).
    fn erf_f64(x: f64) -> f64 {
        let mut term = x;
        let mut total = x;
        let mut n = 0.0;
        while term.abs() > 1e-17 * total.abs() {
            n += 1.0;
            term *= 2.0 * x * x / (2.0 * n + 1.0);
            total += term;
        }
        2.0 / std::f64::consts::PI.sqrt() * (-x * x).exp() * total
    }

    #[test]
    fn erf_matches_the_series_within_5e7() {
        let mut worst = 0.0f64;
        for i in -6000..=6000 {
            let x = i as f32 / 1000.0;
            let err = (erf(x) as f64 - erf_f64(x as f64)).abs();
            worst = worst.max(err);
        }
        assert!(worst < 5e-7, "worst erf error {worst}");
    }

    #[test]
    fn exp_is_within_3_ulp_on_softmax_range() {
        let mut worst = 0.0f64;
        for i in -87_000..=20_000 {
            let x = i as f32 / 1000.0;
            let want = (x as f64).exp();
            let rel = ((exp(x) as f64 - want) / want).abs();
            worst = worst.max(rel);
        }
        assert!(
            worst < 3.0 * f32::EPSILON as f64,
            "worst relative exp error {worst}"
        );
        assert_eq!(exp(0.0), 1.0);
        assert!(exp(-1000.0) < 1e-37);
    }

    #[test]
    fn gelu_tanh_is_close_to_gelu() {
        let xs: Vec<f32> = (-50..=50).map(|i| i as f32 / 10.0).collect();
        let mut a = xs.clone();
        let mut b = xs.clone();
        let zero = vec![0.0; xs.len()];
        bias_activate(&mut a, &zero, Activation::Gelu);
        bias_activate(&mut b, &zero, Activation::GeluTanh);
        for ((x, a), b) in xs.iter().zip(&a).zip(&b) {
            assert!((a - b).abs() < 1e-3, "gelu({x}) = {a}, tanh form {b}");
        }
        let mut r = vec![-1.0, 2.0, 1.0, -3.0];
        bias_activate(&mut r, &[0.5, -0.5], Activation::Relu);
        assert_eq!(r, [0.0, 1.5, 1.5, 0.0]);
    }

    #[test]
    fn layer_norm_centres_and_scales() {
        let mut x: Vec<f32> = (0..40).map(|i| i as f32).collect();
        let zeros = vec![0.0; 40];
        let ones = vec![1.0; 40];
        add_layer_norm(&mut x, &zeros, &zeros, &ones, &zeros, 1e-12);
        let mean: f32 = x.iter().sum::<f32>() / 40.0;
        let var: f32 = x.iter().map(|v| v * v).sum::<f32>() / 40.0;
        assert!(
            mean.abs() < 1e-5 && (var - 1.0).abs() < 1e-4,
            "{mean} {var}"
        );
    }

    #[test]
    fn linear_adds_bias_to_product() {
        // x [2, 3], w [3, 2]
        let x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let w = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0];
        let mut out = [0.0; 4];
        linear(&x, 2, 3, &w, Some(&[10.0, 20.0]), &mut out, 1);
        assert_eq!(out, [14.0, 25.0, 20.0, 31.0]);
        // Without a bias, whatever was in `out` is overwritten.
        linear(&x, 2, 3, &w, None, &mut out, 1);
        assert_eq!(out, [4.0, 5.0, 10.0, 11.0]);
    }

    #[test]
    fn attention_of_one_token_returns_its_value() {
        let (heads, d) = (2, 4);
        let qkv: Vec<f32> = (0..3 * heads * d).map(|i| i as f32).collect();
        let mut out = vec![0.0; heads * d];
        attention(&qkv, 1, heads, d, &mut out, &mut Vec::new());
        assert_eq!(out, qkv[2 * heads * d..]);
    }

    #[test]
    fn attention_matches_naive_softmax() {
        let (len, heads, d) = (5, 3, 4);
        let hidden = heads * d;
        let qkv: Vec<f32> = (0..len * 3 * hidden)
            .map(|i| ((i * 37 % 23) as f32 - 11.0) / 7.0)
            .collect();
        let mut out = vec![0.0; len * hidden];
        attention(&qkv, len, heads, d, &mut out, &mut Vec::new());
        for h in 0..heads {
            for i in 0..len {
                let q = &qkv[i * 3 * hidden + h * d..][..d];
                let scores: Vec<f64> = (0..len)
                    .map(|j| {
                        let k = &qkv[j * 3 * hidden + hidden + h * d..][..d];
                        q.iter().zip(k).map(|(a, b)| (a * b) as f64).sum::<f64>()
                            / (d as f64).sqrt()
                    })
                    .collect();
                let max = scores.iter().cloned().fold(f64::MIN, f64::max);
                let e: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                let total: f64 = e.iter().sum();
                for c in 0..d {
                    let want: f64 = (0..len)
                        .map(|j| e[j] / total * qkv[j * 3 * hidden + 2 * hidden + h * d + c] as f64)
                        .sum();
                    let got = out[i * hidden + h * d + c] as f64;
                    assert!(
                        (got - want).abs() < 1e-5,
                        "head {h} row {i} col {c}: {got} vs {want}"
                    );
                }
            }
        }
    }
}
