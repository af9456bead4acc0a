//! `x W^T` for a frozen weight, with a backward pass that never computes a gradient for `W`.
//!
//! candle's `matmul` backward always builds both operand gradients, even when one operand is a
//! constant: for SmolLM2 that is a [out, in] product per projection per step (the token
//! embedding alone is 49152 x 576), which a LoRA run then throws away. Wrapping the product in a
//! custom op whose backward only returns the input gradient skips that work and the memory it
//! holds; the earlier CPU spike measured 2.3 GB saved on SmolLM2.
//!
//! On a CPU with Intel AMX a frozen weight can instead be held in bf16, packed for the tiles
//! twice (as `W^T` for the forward product and as `W` for the input gradient), and multiplied
//! with bf16 inputs and f32 accumulation: what PyTorch's CPU autocast does for `nn.Linear`. The
//! LoRA weights, their gradients, the optimizer and the loss stay f32. Two bf16 copies take the
//! memory of the one f32 copy they replace.

use crate::kernels::{Mat, Real, gemm, with_data};
use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, DType, Layout, Result, Shape, Tensor, bail};
use ragtune_amx::{PackedBf16, Precision};
use std::sync::Arc;

/// A frozen weight `[out, in]`, as f32 (or f64) or packed for AMX in bf16.
#[derive(Debug, Clone)]
enum Weight {
    Float(Tensor),
    Bf16(Arc<Packed>),
}

#[derive(Debug)]
struct Packed {
    /// `W^T` ([in, out]): `x W^T`.
    forward: PackedBf16,
    /// `W` ([out, in]): `dy W`.
    backward: PackedBf16,
}

/// A frozen linear layer without bias (llama has none): `y = x W^T`, `W` never trained.
#[derive(Debug, Clone)]
pub struct FrozenLinear {
    weight: Weight,
    out_dim: usize,
    in_dim: usize,
}

impl FrozenLinear {
    /// `weight` is [out, in] as in PyTorch's `nn.Linear`, f32 (or f64 for gradient checks).
    pub fn new(weight: Tensor) -> Result<Self> {
        let weight = weight.detach().contiguous()?;
        let (out_dim, in_dim) = weight.dims2()?;
        Ok(Self {
            weight: Weight::Float(weight),
            out_dim,
            in_dim,
        })
    }

    /// As [`FrozenLinear::new`], but in bf16 on AMX tiles when `precision` asks for it, this
    /// process can use them, the weight is f32, and both sides are multiples of 32; f32 (the
    /// weight as given) otherwise.
    pub fn with_precision(weight: Tensor, precision: Precision) -> Result<Self> {
        let linear = Self::new(weight)?;
        let Weight::Float(w) = &linear.weight else {
            return Ok(linear);
        };
        if !precision.uses_amx() || w.dtype() != DType::F32 {
            return Ok(linear);
        }
        let (out_dim, in_dim) = (linear.out_dim, linear.in_dim);
        let packed =
            with_data(w, "frozen-linear", |w: &[f32]| {
                Ok(PackedBf16::from_linear(w, out_dim, in_dim)
                    .zip(PackedBf16::new(w, out_dim, in_dim)))
            })?;
        Ok(match packed {
            Some((forward, backward)) => Self {
                weight: Weight::Bf16(Arc::new(Packed { forward, backward })),
                out_dim,
                in_dim,
            },
            None => linear,
        })
    }

    /// The weight `[out, in]` when it is held as f32 or f64 (`None` once packed in bf16).
    pub fn weight(&self) -> Option<&Tensor> {
        match &self.weight {
            Weight::Float(w) => Some(w),
            Weight::Bf16(_) => None,
        }
    }

    /// Whether the products run in bf16 on AMX tiles.
    pub fn is_bf16(&self) -> bool {
        matches!(self.weight, Weight::Bf16(_))
    }

    /// The dtype the layer's inputs and outputs have (f32 for a bf16 weight).
    pub fn dtype(&self) -> DType {
        match &self.weight {
            Weight::Float(w) => w.dtype(),
            Weight::Bf16(_) => DType::F32,
        }
    }

    pub fn in_dim(&self) -> usize {
        self.in_dim
    }

    pub fn out_dim(&self) -> usize {
        self.out_dim
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.contiguous()?.apply_op1(FrozenProduct {
            base: self.clone(),
            transposed: true,
        })
    }

    /// `y[rows, out] = x[rows, in] W^T`, overwriting `y`.
    pub(crate) fn matmul_t<T: Real>(&self, x: &[T], rows: usize, y: &mut [T]) -> Result<()> {
        self.product(x, rows, y, true)
    }

    /// `dx[rows, in] = dy[rows, out] W`, overwriting `dx`.
    pub(crate) fn matmul<T: Real>(&self, dy: &[T], rows: usize, dx: &mut [T]) -> Result<()> {
        self.product(dy, rows, dx, false)
    }

    /// [`matmul_t`](Self::matmul_t) into a new buffer, rows from the input's length.
    pub(crate) fn matmul_t_vec<T: Real>(&self, x: &[T]) -> Result<Vec<T>> {
        self.product_vec(x, true)
    }

    /// [`matmul`](Self::matmul) into a new buffer, rows from the input's length.
    pub(crate) fn matmul_vec<T: Real>(&self, dy: &[T]) -> Result<Vec<T>> {
        self.product_vec(dy, false)
    }

    fn product_vec<T: Real>(&self, a: &[T], transposed: bool) -> Result<Vec<T>> {
        let (k, n) = if transposed {
            (self.in_dim, self.out_dim)
        } else {
            (self.out_dim, self.in_dim)
        };
        let rows = a.len() / k.max(1);
        let mut c = vec![T::ZERO; rows * n];
        self.product(a, rows, &mut c, transposed)?;
        Ok(c)
    }

    fn product<T: Real>(&self, a: &[T], rows: usize, c: &mut [T], transposed: bool) -> Result<()> {
        let (k, n) = if transposed {
            (self.in_dim, self.out_dim)
        } else {
            (self.out_dim, self.in_dim)
        };
        if a.len() != rows * k || c.len() != rows * n {
            bail!(
                "frozen-linear: {} inputs and {} outputs for {rows} rows of a {k} -> {n} product",
                a.len(),
                c.len()
            )
        }
        let threads = rayon::current_num_threads();
        match &self.weight {
            Weight::Float(w) => with_data(w, "frozen-linear", |w: &[T]| {
                let b = if transposed {
                    Mat::t(w, k)
                } else {
                    Mat::rows(w, n)
                };
                gemm(
                    (rows, n, k),
                    Mat::rows(a, k),
                    b,
                    c,
                    n,
                    T::ONE,
                    false,
                    threads,
                )
            }),
            Weight::Bf16(p) => {
                let (Some(a), Some(c)) = (T::as_f32(a), T::as_f32_mut(c)) else {
                    bail!("frozen-linear: a bf16 weight multiplies f32 inputs only")
                };
                let w = if transposed { &p.forward } else { &p.backward };
                ragtune_amx::linear(a, rows, w, None, c, threads);
                Ok(())
            }
        }
    }
}

/// `x W^T` (`transposed`) or `x W`; the backward of each is the other.
struct FrozenProduct {
    base: FrozenLinear,
    transposed: bool,
}

impl CustomOp1 for FrozenProduct {
    fn name(&self) -> &'static str {
        "frozen-matmul"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let Some((start, end)) = layout.contiguous_offsets() else {
            bail!("frozen-matmul: input must be contiguous")
        };
        let (k, n) = if self.transposed {
            (self.base.in_dim, self.base.out_dim)
        } else {
            (self.base.out_dim, self.base.in_dim)
        };
        let dims = layout.shape().dims();
        let last = *dims.last().unwrap_or(&0);
        if last != k {
            bail!("frozen-matmul: input has {last} features, the weight expects {k}")
        }
        let mut out_dims = dims.to_vec();
        if let Some(last) = out_dims.last_mut() {
            *last = n;
        }
        // Straight into the output buffer: no copy of the input or the product.
        let (base, transposed) = (&self.base, self.transposed);
        let storage = match storage {
            CpuStorage::F32(data) => {
                CpuStorage::F32(base.product_vec(&data[start..end], transposed)?)
            }
            // f64 for gradient checks.
            CpuStorage::F64(data) => {
                CpuStorage::F64(base.product_vec(&data[start..end], transposed)?)
            }
            other => bail!(
                "frozen-matmul: f32 or f64 input expected, got {:?}",
                other.dtype()
            ),
        };
        Ok((storage, Shape::from(out_dims)))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> Result<Option<Tensor>> {
        let grad_in = grad_res.contiguous()?.apply_op1(FrozenProduct {
            base: self.base.clone(),
            transposed: !self.transposed,
        })?;
        Ok(Some(grad_in))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn matches_plain_matmul_and_its_input_gradient() -> Result<()> {
        let dev = Device::Cpu;
        let w = Tensor::new(&[[1f32, 2., 3.], [-1., 0.5, 2.]], &dev)?; // [2, 3]
        let x = Var::new(&[[[0.5f32, -1., 2.], [1., 1., 1.]]], &dev)?; // [1, 2, 3]
        let frozen = FrozenLinear::new(w.clone())?;
        let y = frozen.forward(x.as_tensor())?;
        let reference = x.as_tensor().broadcast_matmul(&w.t()?)?;
        assert_eq!(y.to_vec3::<f32>()?, reference.to_vec3::<f32>()?);

        // d(sum(y * c))/dx = c W for both paths.
        let c = Tensor::new(&[[[1f32, -2.], [0.5, 3.]]], &dev)?;
        let g1 = (y * &c)?.sum_all()?.backward()?;
        let g2 = (reference * &c)?.sum_all()?.backward()?;
        let a = g1
            .get(x.as_tensor())
            .expect("input gradient")
            .to_vec3::<f32>()?;
        let b = g2
            .get(x.as_tensor())
            .expect("input gradient")
            .to_vec3::<f32>()?;
        assert_eq!(a, b);
        // The frozen weight gets no gradient at all.
        assert!(g1.get(frozen.weight().expect("an f32 weight")).is_none());
        Ok(())
    }

    /// In bf16 on AMX: the forward product and the input gradient equal f32 products of the
    /// bf16-rounded operands, to f32 summation order.
    #[test]
    fn bf16_products_and_input_gradient_match_f32_of_the_rounded_operands() -> Result<()> {
        if !ragtune_amx::available() {
            eprintln!("no AMX on this CPU: frozen weights stay f32 here");
            return Ok(());
        }
        let dev = Device::Cpu;
        let round = |t: &Tensor| t.to_dtype(DType::BF16)?.to_dtype(DType::F32);
        let mut rng = ragtune_core::rng::SplitMix64::new(5);
        let mut rand = |n: usize| -> Vec<f32> { (0..n).map(|_| rng.next_f32() - 0.5).collect() };
        let (rows, din, dout) = (45, 64, 96);
        let w = Tensor::from_vec(rand(dout * din), (dout, din), &dev)?;
        let x = Var::from_tensor(&Tensor::from_vec(rand(rows * din), (rows, din), &dev)?)?;
        let c = Tensor::from_vec(rand(rows * dout), (rows, dout), &dev)?;
        let frozen = FrozenLinear::with_precision(w.clone(), Precision::Auto)?;
        assert!(frozen.is_bf16());
        let y = frozen.forward(x.as_tensor())?;
        let want = round(x.as_tensor())?.matmul(&round(&w)?.t()?)?;
        let close = |a: &Tensor, b: &Tensor| -> Result<f32> {
            (a - b)?.abs()?.max_all()?.to_scalar::<f32>()
        };
        assert!(close(&y, &want)? < 1e-4, "forward");
        let g = (y * &c)?.sum_all()?.backward()?;
        let dx = g.get(x.as_tensor()).expect("input gradient");
        let want_dx = round(&c)?.matmul(&round(&w)?)?;
        assert!(close(dx, &want_dx)? < 1e-4, "input gradient");
        // A side that is not a multiple of 32 keeps the weight in f32.
        let odd = FrozenLinear::with_precision(w.narrow(0, 0, 40)?, Precision::Auto)?;
        assert!(!odd.is_bf16());
        assert!(!FrozenLinear::with_precision(w, Precision::F32)?.is_bf16());
        Ok(())
    }
}
