//! `x W^T + scale * dropout(x) A^T B^T` as one op with a hand-written backward.
//!
//! Composed from candle ops, an adapted projection keeps seven tensors of the output's or the
//! input's size alive until backward (the dropout mask, the dropped input, the base and adapter
//! outputs, the scaled adapter output, the sum, ...): for SmolLM2's q projection 14 MB per layer
//! where the output itself is 2.4 MB. This op keeps its input, the dropout mask as bits, and
//! nothing else; backward recomputes the dropped input and the rank-r product (r x cheaper than
//! the projection). The mask is drawn from the same stream in the same order as
//! [`Lora::forward`], so a run's randomness does not depend on which path computed it.

use crate::frozen::FrozenLinear;
use crate::kernels::{Real, dot, float_dtype, slice, storage_dtype, with_data};
use crate::lora::Lora;
use candle_core::{CpuStorage, CustomOp3, DType, Device, Layout, Result, Shape, Tensor, bail};
use ragtune_core::rng::SplitMix64;
use rayon::prelude::*;
use std::sync::Arc;

/// Rows per task of the adapter's loops. Fixed rather than per thread, so that the gradient
/// sums, added task by task in order, are the same whatever the thread count.
const TASK_ROWS: usize = 64;

/// Mask words (64 inputs each) per task when drawing a dropout mask.
const MASK_TASK_WORDS: usize = 1024;

/// `base(x) + lora(x)` for `x` [.., in]; `rng` is `Some` in training (dropout on).
pub fn lora_linear(
    x: &Tensor,
    base: &FrozenLinear,
    lora: &Lora,
    rng: Option<&mut SplitMix64>,
) -> Result<Tensor> {
    let dropout = match rng {
        Some(rng) if lora.dropout > 0.0 => {
            let keep = 1.0 - lora.dropout;
            Some(Dropout {
                bits: Arc::new(dropout_mask(rng, x.elem_count(), keep)),
                // The scale as the composed path has it: an f32 mask value.
                inv_keep: f64::from(1.0 / keep),
            })
        }
        _ => None,
    };
    let a = lora.a.as_tensor();
    let b = lora.b.as_tensor();
    let in_dim = base.in_dim();
    if x.dims().last() != Some(&in_dim) || a.dims() != [b.dim(1)?, in_dim] {
        bail!(
            "lora-linear: input {:?}, A {:?}, B {:?}, W {:?} do not fit",
            x.shape(),
            a.shape(),
            b.shape(),
            (base.out_dim(), in_dim)
        )
    }
    if b.dim(0)? != base.out_dim() {
        bail!(
            "lora-linear: B {:?} does not fit W {:?}",
            b.shape(),
            (base.out_dim(), in_dim)
        )
    }
    x.contiguous()?.apply_op3(
        &a.contiguous()?,
        &b.contiguous()?,
        LoraOp {
            base: base.clone(),
            scale: lora.scale,
            dropout,
        },
    )
}

/// The dropout mask of `n` inputs as bits (bit i set: input i kept), equal to drawing
/// `rng.next_f32() < keep` for each input in turn, and leaving `rng` where those draws would:
/// the draws are computed in parallel from their positions in the stream.
fn dropout_mask(rng: &mut SplitMix64, n: usize, keep: f32) -> Vec<u64> {
    // next_f32() is (draw >> 40) / 2^24 exactly, so it is below `keep` exactly when the integer
    // draw >> 40 is below keep * 2^24 (exact in f64), that is below its ceiling.
    let threshold = (f64::from(keep) * f64::from(1u32 << 24)).ceil() as u64;
    let mut bits = vec![0u64; n.div_ceil(64)];
    let stream = &*rng;
    bits.par_chunks_mut(MASK_TASK_WORDS)
        .enumerate()
        .for_each(|(t, words)| {
            for (w, word) in words.iter_mut().enumerate() {
                let first = (t * MASK_TASK_WORDS + w) * 64;
                let mut v = 0u64;
                for j in 0..(n - first).min(64) {
                    let kept = stream.peek_u64((first + j) as u64) >> 40 < threshold;
                    v |= u64::from(kept) << j;
                }
                *word = v;
            }
        });
    rng.skip(n as u64);
    bits
}

#[derive(Clone)]
struct Dropout {
    /// Bit i set: input element i is kept (and scaled by `inv_keep`).
    bits: Arc<Vec<u64>>,
    inv_keep: f64,
}

impl Dropout {
    /// The bits of inputs `first..first + 64` (bit j: input `first + j`), 0 past the end.
    fn word(&self, first: usize) -> u64 {
        let (w, shift) = (first / 64, first % 64);
        let low = self.bits.get(w).map_or(0, |&b| b >> shift);
        match shift {
            0 => low,
            _ => low | self.bits.get(w + 1).map_or(0, |&b| b << (64 - shift)),
        }
    }

    /// `out[j] += t[j] / keep` where input `first + j` is kept.
    fn add_kept<T: Real>(&self, first: usize, t: &[T], out: &mut [T]) {
        let s = T::from_f64(self.inv_keep);
        // A word of the mask per 64 inputs, so the inner loop vectorizes.
        for (c, (out, t)) in out.chunks_mut(64).zip(t.chunks(64)).enumerate() {
            let word = self.word(first + c * 64);
            for (j, (o, &v)) in out.iter_mut().zip(t).enumerate() {
                if word >> j & 1 == 1 {
                    *o += v * s;
                }
            }
        }
    }

    /// `x` with dropout applied (dropped inputs 0, kept ones divided by keep) into `out`.
    fn apply<T: Real>(&self, first: usize, x: &[T], out: &mut [T]) {
        out.fill(T::ZERO);
        self.add_kept(first, x, out);
    }
}

/// `y += alpha x`.
#[inline]
fn axpy<T: Real>(alpha: T, x: &[T], y: &mut [T]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y += alpha * x;
    }
}

/// `m` [rows, cols] transposed to [cols, rows].
fn transpose<T: Real>(m: &[T], rows: usize, cols: usize) -> Vec<T> {
    let mut t = vec![T::ZERO; m.len()];
    for (i, row) in m.chunks_exact(cols.max(1)).enumerate() {
        for (j, &v) in row.iter().enumerate() {
            t[j * rows + i] = v;
        }
    }
    t
}

struct LoraOp {
    /// W, [out, in], frozen.
    base: FrozenLinear,
    scale: f64,
    dropout: Option<Dropout>,
}

/// One task's rows of the adapter: the rank-r products are thin (r is 8 or 16 where the
/// projections are hundreds wide), so they run row by row with A and Bᵀ in cache and the
/// dropped input made one row at a time, instead of as matrix products over whole buffers.
struct Rows<'a, T> {
    op: &'a LoraOp,
    /// A [r, in] and Bᵀ [r, out].
    a: &'a [T],
    bt: &'a [T],
    dm: Dims,
    /// One row of the dropped input, and of `du A` in backward.
    xd: Vec<T>,
    t: Vec<T>,
    /// `u = xd Aᵀ` and `du = scale dy B` of the current row.
    u: Vec<T>,
    du: Vec<T>,
}

impl<'a, T: Real> Rows<'a, T> {
    fn new(op: &'a LoraOp, a: &'a [T], bt: &'a [T], dm: Dims) -> Self {
        Self {
            op,
            a,
            bt,
            dm,
            xd: vec![T::ZERO; dm.din],
            t: vec![T::ZERO; dm.din],
            u: vec![T::ZERO; dm.r],
            du: vec![T::ZERO; dm.r],
        }
    }

    /// Row `row` of the input, `x`: sets `u = dropout(x) Aᵀ` (the dropped row, if any, is
    /// kept for [`dropped`](Self::dropped)).
    fn project(&mut self, row: usize, x: &[T]) {
        let din = self.dm.din;
        if let Some(d) = &self.op.dropout {
            d.apply(row * din, x, &mut self.xd);
        }
        // Fields, not `dropped`, so that the borrows of `xd` and `u` stay apart.
        let xd: &[T] = match self.op.dropout {
            None => x,
            Some(_) => &self.xd,
        };
        for (u, a) in self.u.iter_mut().zip(self.a.chunks_exact(din)) {
            *u = dot(xd, a);
        }
    }

    /// The row [`project`](Self::project) was last given, after dropout.
    fn dropped<'x>(&'x self, x: &'x [T]) -> &'x [T] {
        match self.op.dropout {
            None => x,
            Some(_) => &self.xd,
        }
    }

    /// `y += scale u Bᵀ` for one row, after [`project`](Self::project).
    fn add_output(&self, y: &mut [T]) {
        let scale = T::from_f64(self.op.scale);
        for (&u, bt) in self.u.iter().zip(self.bt.chunks_exact(self.dm.dout)) {
            axpy(scale * u, bt, y);
        }
    }
}

impl LoraOp {
    /// y = x W^T + scale (xd A^T) B^T, with xd the dropped input.
    fn fwd<T: Real>(&self, x: &[T], a: &[T], b: &[T], dm: Dims) -> Result<Vec<T>> {
        let Dims { rows, din, dout, r } = dm;
        let mut y = self.base.matmul_t_vec(x)?;
        if rows == 0 || din == 0 || dout == 0 || r == 0 {
            return Ok(y);
        }
        let bt = transpose(b, dout, r);
        y.par_chunks_mut(TASK_ROWS * dout)
            .zip(x.par_chunks(TASK_ROWS * din))
            .enumerate()
            .for_each(|(t, (y, x))| {
                let mut buf = Rows::new(self, a, &bt, dm);
                for (i, (y, x)) in y
                    .chunks_exact_mut(dout)
                    .zip(x.chunks_exact(din))
                    .enumerate()
                {
                    buf.project(t * TASK_ROWS + i, x);
                    buf.add_output(y);
                }
            });
        Ok(y)
    }

    /// With u = xd A^T and du = scale dy B: dB = scale dy^T u, dA = du^T xd,
    /// dx = dy W + mask * (du A).
    #[allow(clippy::type_complexity)]
    fn bwd<T: Real>(
        &self,
        x: &[T],
        a: &[T],
        b: &[T],
        dy: &[T],
        dm: Dims,
        need_dx: bool,
    ) -> Result<(Option<Vec<T>>, Vec<T>, Vec<T>)> {
        let Dims { rows, din, dout, r } = dm;
        let mut dx = if need_dx {
            self.base.matmul_vec(dy)?
        } else {
            Vec::new()
        };
        if rows == 0 || din == 0 || dout == 0 || r == 0 {
            let (da, db) = (vec![T::ZERO; r * din], vec![T::ZERO; dout * r]);
            return Ok((need_dx.then_some(dx), da, db));
        }
        let (mut da, mut dbt) = (vec![T::ZERO; r * din], vec![T::ZERO; r * dout]);
        let bt = transpose(b, dout, r);
        let scale = T::from_f64(self.scale);
        // One task's rows: their shares of dA and dBᵀ, and their rows of dx.
        let task = |t: usize, mut dx: Option<&mut [T]>| -> (Vec<T>, Vec<T>) {
            let mut buf = Rows::new(self, a, &bt, dm);
            let (mut da, mut dbt) = (vec![T::ZERO; r * din], vec![T::ZERO; r * dout]);
            for row in t * TASK_ROWS..rows.min((t + 1) * TASK_ROWS) {
                let dy = &dy[row * dout..][..dout];
                for (du, bt) in buf.du.iter_mut().zip(bt.chunks_exact(dout)) {
                    *du = scale * dot(dy, bt);
                }
                let x = &x[row * din..][..din];
                buf.project(row, x);
                let xd = buf.dropped(x);
                for (k, (da, dbt)) in da
                    .chunks_exact_mut(din)
                    .zip(dbt.chunks_exact_mut(dout))
                    .enumerate()
                {
                    axpy(buf.du[k], xd, da);
                    axpy(scale * buf.u[k], dy, dbt);
                }
                let Some(dx) = dx.as_deref_mut() else {
                    continue;
                };
                let dx = &mut dx[(row - t * TASK_ROWS) * din..][..din];
                match &self.dropout {
                    None => {
                        for (&du, a) in buf.du.iter().zip(a.chunks_exact(din)) {
                            axpy(du, a, dx);
                        }
                    }
                    Some(d) => {
                        buf.t.fill(T::ZERO);
                        for (&du, a) in buf.du.iter().zip(a.chunks_exact(din)) {
                            axpy(du, a, &mut buf.t);
                        }
                        d.add_kept(row * din, &buf.t, dx);
                    }
                }
            }
            (da, dbt)
        };
        let partials: Vec<(Vec<T>, Vec<T>)> = if need_dx {
            dx.par_chunks_mut(TASK_ROWS * din)
                .enumerate()
                .map(|(t, dx)| task(t, Some(dx)))
                .collect()
        } else {
            (0..rows.div_ceil(TASK_ROWS))
                .into_par_iter()
                .map(|t| task(t, None))
                .collect()
        };
        for (pa, pb) in &partials {
            axpy(T::ONE, pa, &mut da);
            axpy(T::ONE, pb, &mut dbt);
        }
        Ok((need_dx.then_some(dx), da, transpose(&dbt, r, dout)))
    }
}

#[derive(Clone, Copy)]
struct Dims {
    rows: usize,
    din: usize,
    dout: usize,
    r: usize,
}

fn dims(x: &Shape, b: &Shape) -> Result<Dims> {
    let din = x.dims().last().copied().unwrap_or(0);
    let (dout, r) = b.dims2()?;
    Ok(Dims {
        rows: x.elem_count() / din.max(1),
        din,
        dout,
        r,
    })
}

impl CustomOp3 for LoraOp {
    fn name(&self) -> &'static str {
        "lora-linear"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let n = self.name();
        let dm = dims(l1.shape(), l3.shape())?;
        let out = match (
            storage_dtype(s1, n)?,
            storage_dtype(s2, n)?,
            storage_dtype(s3, n)?,
        ) {
            (DType::F32, DType::F32, DType::F32) => CpuStorage::F32(self.fwd::<f32>(
                slice(s1, l1, n)?,
                slice(s2, l2, n)?,
                slice(s3, l3, n)?,
                dm,
            )?),
            (DType::F64, DType::F64, DType::F64) => CpuStorage::F64(self.fwd::<f64>(
                slice(s1, l1, n)?,
                slice(s2, l2, n)?,
                slice(s3, l3, n)?,
                dm,
            )?),
            (a, b, c) => bail!("{n}: mixed dtypes {a:?}, {b:?}, {c:?}"),
        };
        let mut shape = l1.shape().dims().to_vec();
        if let Some(last) = shape.last_mut() {
            *last = dm.dout;
        }
        Ok((out, Shape::from(shape)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        a: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        fn run<T: Real>(
            op: &LoraOp,
            x: &Tensor,
            a: &Tensor,
            b: &Tensor,
            dy: &Tensor,
        ) -> Result<(Option<Tensor>, Tensor, Tensor)> {
            let dm = dims(x.shape(), b.shape())?;
            // The first layer's input depends on no variable: no product for its gradient.
            let need_dx = x.track_op();
            let (dx, da, db) = with_data(x, "lora-linear", |x: &[T]| {
                with_data(a, "lora-linear", |a: &[T]| {
                    with_data(b, "lora-linear", |b: &[T]| {
                        with_data(dy, "lora-linear", |dy: &[T]| {
                            op.bwd(x, a, b, dy, dm, need_dx)
                        })
                    })
                })
            })?;
            let cpu = &Device::Cpu;
            Ok((
                dx.map(|dx| Tensor::from_vec(dx, x.shape(), cpu))
                    .transpose()?,
                Tensor::from_vec(da, a.shape(), cpu)?,
                Tensor::from_vec(db, b.shape(), cpu)?,
            ))
        }
        let grad = grad.contiguous()?;
        let (dx, da, db) = match float_dtype(self.name(), &[x, a, b, &grad])? {
            DType::F32 => run::<f32>(self, x, a, b, &grad)?,
            _ => run::<f64>(self, x, a, b, &grad)?,
        };
        Ok((dx, Some(da), Some(db)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lora::{LoraConfig, LoraLinear, TargetModule};
    use candle_core::Var;

    /// Same mask stream as the composed path: equal values and gradients with dropout on,
    /// within one task of rows and across several (rows whose mask bits straddle words).
    #[test]
    fn matches_composed_lora_with_dropout() -> crate::Result<()> {
        for (batch, seq) in [(2, 2), (3, 50)] {
            matches_composed(batch, seq)?;
        }
        Ok(())
    }

    fn matches_composed(batch: usize, seq: usize) -> crate::Result<()> {
        let dev = Device::Cpu;
        let mut rng = SplitMix64::new(7);
        let rand = |rng: &mut SplitMix64, r: usize, c: usize| -> crate::Result<Tensor> {
            let v: Vec<f64> = rng
                .uniform(r * c, -1.0, 1.0)
                .into_iter()
                .map(f64::from)
                .collect();
            Ok(Tensor::from_vec(v, (r, c), &dev)?)
        };
        let cfg = LoraConfig {
            rank: 3,
            alpha: 6.0,
            dropout: 0.3,
            targets: vec![TargetModule::Q],
        };
        let lora = Lora::from_tensors(
            &rand(&mut rng, 3, 70)?,
            &rand(&mut rng, 5, 3)?,
            cfg.scale(),
            cfg.dropout,
        )?;
        let base = FrozenLinear::new(rand(&mut rng, 5, 70)?)?;
        let x = Var::from_tensor(&rand(&mut rng, batch * seq, 70)?.reshape((batch, seq, 70))?)?;
        let c = rand(&mut rng, batch * seq, 5)?.reshape((batch, seq, 5))?;
        let (mut fused_rng, mut composed_rng) = (SplitMix64::new(3), SplitMix64::new(3));
        let fused = lora_linear(x.as_tensor(), &base, &lora, Some(&mut fused_rng))?;
        let composed = (base.forward(x.as_tensor())?
            + lora.forward(x.as_tensor(), Some(&mut composed_rng))?)?;
        assert_eq!(fused_rng.state(), composed_rng.state(), "draws consumed");
        let diff = |a: &Tensor, b: &Tensor| -> crate::Result<f64> {
            Ok((a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f64>()?)
        };
        assert!(diff(&fused, &composed)? < 1e-12);
        let g1 = (fused * &c)?.sum_all()?.backward()?;
        let g2 = (composed * &c)?.sum_all()?.backward()?;
        for t in [x.as_tensor(), lora.a.as_tensor(), lora.b.as_tensor()] {
            assert!(diff(g1.get(t).expect("grad"), g2.get(t).expect("grad"))? < 1e-12);
        }
        // Without dropout the layer goes through the fused path too.
        let layer = LoraLinear {
            base,
            lora: Some(lora),
        };
        let eval = layer.forward(x.as_tensor(), None)?;
        let lora = layer.lora.as_ref().expect("adapter");
        let want = (layer.base.forward(x.as_tensor())? + lora.forward(x.as_tensor(), None)?)?;
        assert_eq!(eval.dims(), &[batch, seq, 5]);
        assert!(diff(&eval, &want)? < 1e-12);
        Ok(())
    }

    /// The mask drawn in parallel is the sequential draw `next_f32() < keep`, bit for bit,
    /// at lengths that do and do not fill the last word and span several tasks.
    #[test]
    fn dropout_mask_equals_sequential_draws() {
        for (n, keep) in [(1, 0.5), (70, 0.95), (64 * MASK_TASK_WORDS + 129, 0.7)] {
            let mut parallel = SplitMix64::new(11);
            let mut sequential = parallel.clone();
            let bits = dropout_mask(&mut parallel, n, keep);
            let mut want = vec![0u64; n.div_ceil(64)];
            for i in 0..n {
                if sequential.next_f32() < keep {
                    want[i / 64] |= 1 << (i % 64);
                }
            }
            assert_eq!(bits, want, "n {n}");
            assert_eq!(parallel.state(), sequential.state(), "n {n}");
        }
    }
}
