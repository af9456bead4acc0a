//! Plumbing shared by the fused CPU ops: a float trait over f32/f64, slice access to candle
//! storages, and a bounds-checked call into the `gemm` crate (the kernels behind candle's own
//! CPU matmul) for strided matrices that candle would first have to copy.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, DType, Layout, Result, Storage, Tensor, WithDType, bail};
use std::ops::Neg;

/// The float types the fused ops run in: f32 for training, f64 for gradient checks.
pub(crate) trait Real: WithDType + Neg<Output = Self> {
    const ZERO: Self;
    const ONE: Self;
    const NEG_INFINITY: Self;
    fn exp(self) -> Self;
    fn sqrt(self) -> Self;
    fn fmax(self, other: Self) -> Self;
    /// The slice as f32, when `Self` is f32 (the AMX kernels take f32 only).
    fn as_f32(x: &[Self]) -> Option<&[f32]>;
    fn as_f32_mut(x: &mut [Self]) -> Option<&mut [f32]>;
}

macro_rules! real {
    ($t:ty, $exp:expr, $as_f32:expr, $as_f32_mut:expr) => {
        impl Real for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            const NEG_INFINITY: Self = <$t>::NEG_INFINITY;
            #[inline(always)]
            fn exp(self) -> Self {
                $exp(self)
            }
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
            fn fmax(self, other: Self) -> Self {
                <$t>::max(self, other)
            }
            fn as_f32(x: &[Self]) -> Option<&[f32]> {
                $as_f32(x)
            }
            fn as_f32_mut(x: &mut [Self]) -> Option<&mut [f32]> {
                $as_f32_mut(x)
            }
        }
    };
}
real!(f32, exp_f32, Some, Some);
real!(f64, f64::exp, |_| None, |_| None);

/// `e^x` in f32 without a call into libm, so the loops of softmax and SiLU vectorize: `x`
/// split as `n ln 2 + r` with |r| <= ln 2 / 2, `e^r` by its Taylor series to degree 7 (error
/// below 1e-8 there), times `2^n` built in the exponent bits. Relative error within 2e-7
/// (test); 0 below -87 (where f32 stops being normal; softmax's masked -inf lands there),
/// `e^88` above 88, NaN for NaN.
#[inline(always)]
pub(crate) fn exp_f32(x: f32) -> f32 {
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    let c = x.clamp(-87.0, 88.0);
    let n = (c * std::f32::consts::LOG2_E).round();
    let r = c - n * LN2_HI - n * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (1.0 / 2.0
                + r * (1.0 / 6.0
                    + r * (1.0 / 24.0
                        + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
    let scale = f32::from_bits(((n as i32 + 127) as u32) << 23);
    if x < -87.0 { 0.0 } else { p * scale }
}

/// Partial results the reductions below keep: four AVX-512 registers of f32. A running fold
/// would not vectorize (float addition is not associative, so the compiler keeps its order)
/// and would wait on its own additions: a softmax row of 256 or an RMSNorm row of 576 took
/// longer to sum than to compute.
const PARTIALS: usize = 64;

/// `a · b`.
#[inline]
pub(crate) fn dot<T: Real>(a: &[T], b: &[T]) -> T {
    let n = a.len().min(b.len());
    let split = n / PARTIALS * PARTIALS;
    let mut acc = [T::ZERO; PARTIALS];
    for (x, y) in a[..split]
        .chunks_exact(PARTIALS)
        .zip(b[..split].chunks_exact(PARTIALS))
    {
        for l in 0..PARTIALS {
            acc[l] += x[l] * y[l];
        }
    }
    let rest = a[split..n]
        .iter()
        .zip(&b[split..n])
        .fold(T::ZERO, |s, (&x, &y)| s + x * y);
    fold_halves(acc, |a, b| a + b) + rest
}

/// The sum of `x`.
#[inline]
pub(crate) fn sum<T: Real>(x: &[T]) -> T {
    reduce(x, T::ZERO, |a, b| a + b)
}

/// The largest element of `x` (NaNs ignored, as `f32::max` does); -inf when empty.
#[inline]
pub(crate) fn max<T: Real>(x: &[T]) -> T {
    reduce(x, T::NEG_INFINITY, T::fmax)
}

#[inline(always)]
fn reduce<T: Real>(x: &[T], init: T, f: impl Fn(T, T) -> T + Copy) -> T {
    let split = x.len() / PARTIALS * PARTIALS;
    let mut acc = [init; PARTIALS];
    for c in x[..split].chunks_exact(PARTIALS) {
        for l in 0..PARTIALS {
            acc[l] = f(acc[l], c[l]);
        }
    }
    x[split..].iter().fold(fold_halves(acc, f), |a, &v| f(a, v))
}

/// The partial results combined by folding halves onto halves: six vector steps.
#[inline(always)]
fn fold_halves<T: Real>(mut acc: [T; PARTIALS], f: impl Fn(T, T) -> T) -> T {
    let mut width = PARTIALS;
    while width > 1 {
        width /= 2;
        let (low, high) = acc.split_at_mut(width);
        for (l, &h) in low.iter_mut().zip(&high[..width]) {
            *l = f(*l, h);
        }
    }
    acc[0]
}

/// The contiguous elements of a storage seen through `layout`.
pub(crate) fn slice<'a, T: Real>(s: &'a CpuStorage, layout: &Layout, op: &str) -> Result<&'a [T]> {
    let data = T::cpu_storage_as_slice(s)?;
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => bail!("{op}: input must be contiguous"),
    }
}

/// Runs `f` over the contiguous CPU data of `t` (a read guard is held meanwhile).
pub(crate) fn with_data<T: Real, R>(
    t: &Tensor,
    op: &str,
    f: impl FnOnce(&[T]) -> Result<R>,
) -> Result<R> {
    let (storage, layout) = t.storage_and_layout();
    match &*storage {
        Storage::Cpu(cpu) => f(slice(cpu, layout, op)?),
        _ => bail!("{op}: only the CPU is supported"),
    }
}

/// The dtype all the `tensors` share, which must be f32 or f64.
pub(crate) fn float_dtype(op: &str, tensors: &[&Tensor]) -> Result<DType> {
    let dtype = tensors.first().map(|t| t.dtype()).unwrap_or(DType::F32);
    if let Some(t) = tensors.iter().find(|t| t.dtype() != dtype) {
        bail!("{op}: mixed dtypes {dtype:?} and {:?}", t.dtype())
    }
    if !matches!(dtype, DType::F32 | DType::F64) {
        bail!("{op}: f32 or f64 expected, got {dtype:?}")
    }
    Ok(dtype)
}

pub(crate) fn storage_dtype(s: &CpuStorage, op: &str) -> Result<DType> {
    let dtype = s.dtype();
    if !matches!(dtype, DType::F32 | DType::F64) {
        bail!("{op}: f32 or f64 expected, got {dtype:?}")
    }
    Ok(dtype)
}

/// A matrix view: element (i, j) is `data[i * rs + j * cs]`.
#[derive(Clone, Copy)]
pub(crate) struct Mat<'a, T> {
    pub data: &'a [T],
    pub rs: usize,
    pub cs: usize,
}

impl<'a, T> Mat<'a, T> {
    pub fn rows(data: &'a [T], row_stride: usize) -> Self {
        Self {
            data,
            rs: row_stride,
            cs: 1,
        }
    }

    /// The transpose of a row-major matrix with row stride `row_stride`.
    pub fn t(data: &'a [T], row_stride: usize) -> Self {
        Self {
            data,
            rs: 1,
            cs: row_stride,
        }
    }

    fn fits(&self, rows: usize, cols: usize) -> bool {
        rows == 0 || cols == 0 || (rows - 1) * self.rs + (cols - 1) * self.cs < self.data.len()
    }
}

/// `c = a b` (or `c += a b` with `accumulate`), times `alpha`; a [m, k], b [k, n], c row-major
/// [m, n] with row stride `ldc`. `threads` > 1 splits the product over rayon's pool.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm<T: Real>(
    (m, n, k): (usize, usize, usize),
    a: Mat<T>,
    b: Mat<T>,
    c: &mut [T],
    ldc: usize,
    alpha: T,
    accumulate: bool,
    threads: usize,
) -> Result<()> {
    if !(a.fits(m, k) && b.fits(k, n) && (m == 0 || n == 0 || (m - 1) * ldc + n <= c.len())) {
        bail!("gemm: a {m}x{k} * {k}x{n} product does not fit its buffers")
    }
    if m == 0 || n == 0 {
        return Ok(());
    }
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                c[i * ldc..i * ldc + n].fill(T::ZERO);
            }
        }
        return Ok(());
    }
    let parallelism = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the checks above keep every index the kernel touches inside the three slices,
    // and `c` is borrowed mutably, so it aliases neither input.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            ldc as isize,
            accumulate,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            T::ONE,
            alpha,
            false,
            false,
            false,
            parallelism,
        )
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{dot, exp_f32, max, sum};

    #[test]
    fn reductions_equal_sequential_ones_at_every_tail_length() {
        for n in [0, 1, 63, 64, 65, 200, 576] {
            let a: Vec<f64> = (0..n).map(|i| ((i * 37) % 101) as f64 - 50.0).collect();
            let b: Vec<f64> = (0..n).map(|i| ((i * 53) % 89) as f64 - 44.0).collect();
            // Small integers: exact in f64 whatever the order of the additions.
            let want_dot: f64 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert_eq!(dot(&a, &b), want_dot, "n {n}");
            assert_eq!(sum(&a), a.iter().sum::<f64>(), "n {n}");
            let want_max = a.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            assert_eq!(max(&a), want_max, "n {n}");
        }
    }

    #[test]
    fn exp_f32_is_within_2e_7_of_exp_and_saturates_where_f32_does() {
        let mut worst = 0f64;
        let mut x = -87.0f32;
        while x <= 88.0 {
            let want = (x as f64).exp();
            worst = worst.max(((exp_f32(x) as f64) - want).abs() / want);
            x += 0.000_73;
        }
        assert!(worst < 2e-7, "worst relative error {worst}");
        assert_eq!(exp_f32(0.0), 1.0);
        assert_eq!(exp_f32(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_f32(-100.0), 0.0);
        assert!(exp_f32(1e6).is_finite());
        assert!(exp_f32(f32::NAN).is_nan());
    }
}
