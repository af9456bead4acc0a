//! `x W^T` for a frozen weight, with a backward pass that never computes a gradient for `W`.
//!
//! candle's `matmul` backward always builds both operand gradients, even when one operand is a
//! constant: for SmolLM2 that is a [out, in] product per projection per step (the token
//! embedding alone is 49152 x 576), which a LoRA run then throws away. Wrapping the product in a
//! custom op whose backward only returns `grad W` (the input gradient) skips that work and the
//! memory it holds; the earlier CPU spike measured 2.3 GB saved on SmolLM2.

use crate::kernels::{Mat, Real, gemm, with_data};
use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};

struct FrozenMatmul {
    /// [out, in], contiguous, same dtype as the input.
    weight: Tensor,
}

impl CustomOp1 for FrozenMatmul {
    fn name(&self) -> &'static str {
        "frozen-matmul"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("frozen-matmul: input must be contiguous")
        };
        let dims = layout.shape().dims();
        let in_dim = *dims.last().unwrap_or(&0);
        let (out_dim, w_in) = self.weight.dims2()?;
        if in_dim != w_in {
            candle_core::bail!("frozen-matmul: input has {in_dim} features, weight expects {w_in}")
        }
        let rows = layout.shape().elem_count() / in_dim.max(1);
        let mut out_dims = dims.to_vec();
        if let Some(last) = out_dims.last_mut() {
            *last = out_dim;
        }
        // Straight into the output buffer: no copy of the input or the product.
        fn run<T: Real>(w: &Tensor, x: &[T], rows: usize) -> candle_core::Result<Vec<T>> {
            let (out_dim, in_dim) = w.dims2()?;
            with_data(w, "frozen-matmul", |w: &[T]| {
                let mut y = vec![T::ZERO; rows * out_dim];
                let threads = rayon::current_num_threads();
                let (x, w) = (Mat::rows(x, in_dim), Mat::t(w, in_dim));
                gemm(
                    (rows, out_dim, in_dim),
                    x,
                    w,
                    &mut y,
                    out_dim,
                    T::ONE,
                    false,
                    threads,
                )?;
                Ok(y)
            })
        }
        let storage = match storage {
            CpuStorage::F32(data) => CpuStorage::F32(run(&self.weight, &data[start..end], rows)?),
            // f64 for gradient checks.
            CpuStorage::F64(data) => CpuStorage::F64(run(&self.weight, &data[start..end], rows)?),
            other => candle_core::bail!(
                "frozen-matmul: f32 or f64 input expected, got {:?}",
                other.dtype()
            ),
        };
        Ok((storage, Shape::from(out_dims)))
    }

    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let (out_dim, in_dim) = self.weight.dims2()?;
        let rows = grad_res.elem_count() / out_dim.max(1);
        let grad_in = grad_res.reshape((rows, out_dim))?.matmul(&self.weight)?;
        debug_assert_eq!(grad_in.dim(1)?, in_dim);
        Ok(Some(grad_in.reshape(arg.shape())?))
    }
}

/// A frozen linear layer without bias (llama has none): `y = x W^T`, `W` never trained.
#[derive(Debug, Clone)]
pub struct FrozenLinear {
    weight: Tensor,
}

impl FrozenLinear {
    /// `weight` is [out, in] as in PyTorch's `nn.Linear`, f32 (or f64 for gradient checks).
    pub fn new(weight: Tensor) -> candle_core::Result<Self> {
        let weight = weight.detach().contiguous()?;
        weight.dims2()?;
        Ok(Self { weight })
    }

    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    pub fn in_dim(&self) -> usize {
        self.weight.dims()[1]
    }

    pub fn out_dim(&self) -> usize {
        self.weight.dims()[0]
    }

    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        x.contiguous()?.apply_op1(FrozenMatmul {
            weight: self.weight.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn matches_plain_matmul_and_its_input_gradient() -> candle_core::Result<()> {
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
        assert!(g1.get(frozen.weight()).is_none());
        Ok(())
    }
}
