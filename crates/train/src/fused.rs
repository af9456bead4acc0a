//! Fused CPU ops with hand-written backward passes: RMSNorm, SwiGLU's `silu(gate) * up`, rope
//! and masked softmax attention.
//!
//! Composed from candle ops, each of these keeps several full-size intermediates alive until
//! backward (attention kept six [b, heads, t, t] tensors per layer, plus the repeated k/v and the
//! head transposes), and each intermediate is another pass over memory. These ops keep only their
//! inputs; attention recomputes its probabilities in backward (as flash attention does) and reads
//! q/k/v in the projections' own [b, t, heads, head_dim] layout, grouped-query heads included, so
//! nothing is transposed or repeated. f32 for training, f64 for gradient checks.
//!
//! SwiGLU and attention can also apply the frozen projection that follows them (`then`: the
//! down and o projections when they carry no adapter). A frozen product's backward needs only
//! its weight, but as a separate op its input would stay alive until backward; inside the op it
//! never becomes a tensor (for SmolLM2 on q,v, 8.4 KB per token and layer: 250 MB of a 4 x 256
//! batch).

use crate::frozen::FrozenLinear;
use crate::kernels::{
    Mat, Real, dot, float_dtype, gemm, max, slice, storage_dtype, sum, with_data,
};
use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, DType, Device, Layout, Result};
use candle_core::{Shape, Tensor, bail};
use rayon::prelude::*;
use std::sync::Arc;

/// Elementwise work is split in chunks of this many values.
const CHUNK: usize = 1 << 14;

/// Rows per block of attention scores.
const BLOCK: usize = 64;

/// `x / sqrt(mean(x^2) + eps) * weight` over the last dimension; `weight` is frozen.
pub fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    let weight = weight.to_dtype(x.dtype())?.contiguous()?;
    if weight.dims() != [x.dims().last().copied().unwrap_or(0)] {
        bail!(
            "rms-norm: weight {:?} does not match input {:?}",
            weight.shape(),
            x.shape()
        )
    }
    x.contiguous()?.apply_op1(RmsNorm { weight, eps })
}

struct RmsNorm {
    weight: Tensor,
    eps: f64,
}

impl RmsNorm {
    fn fwd<T: Real>(&self, x: &[T]) -> Result<Vec<T>> {
        with_data(&self.weight, "rms-norm", |w: &[T]| {
            let h = w.len();
            let mut out = vec![T::ZERO; x.len()];
            out.par_chunks_mut(h)
                .zip(x.par_chunks(h))
                .for_each(|(y, x)| {
                    let r = self.inv_rms(x);
                    for ((y, &x), &w) in y.iter_mut().zip(x).zip(w) {
                        *y = x * r * w;
                    }
                });
            Ok(out)
        })
    }

    fn inv_rms<T: Real>(&self, x: &[T]) -> T {
        let ss = dot(x, x);
        T::ONE / (ss / T::from_f64(x.len() as f64) + T::from_f64(self.eps)).sqrt()
    }

    /// dx = r (g w) - x r^3 mean(g w x), with r = 1 / rms(x).
    fn bwd<T: Real>(&self, x: &Tensor, grad: &Tensor) -> Result<Tensor> {
        let dx = with_data(&self.weight, "rms-norm", |w: &[T]| {
            with_data(x, "rms-norm", |x: &[T]| {
                with_data(grad, "rms-norm", |g: &[T]| {
                    let h = w.len();
                    let mut dx = vec![T::ZERO; x.len()];
                    dx.par_chunks_mut(h)
                        .zip(x.par_chunks(h).zip(g.par_chunks(h)))
                        .for_each(|(dx, (x, g))| {
                            let r = self.inv_rms(x);
                            let dot = x
                                .iter()
                                .zip(g)
                                .zip(w)
                                .fold(T::ZERO, |acc, ((&x, &g), &w)| acc + g * w * x);
                            let c = dot * r * r * r / T::from_f64(h as f64);
                            for (((dx, &x), &g), &w) in dx.iter_mut().zip(x).zip(g).zip(w) {
                                *dx = r * g * w - x * c;
                            }
                        });
                    Ok(dx)
                })
            })
        })?;
        Tensor::from_vec(dx, x.shape(), &Device::Cpu)
    }
}

impl CustomOp1 for RmsNorm {
    fn name(&self) -> &'static str {
        "rms-norm"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let out = match storage_dtype(s, self.name())? {
            DType::F32 => CpuStorage::F32(self.fwd(slice::<f32>(s, l, self.name())?)?),
            _ => CpuStorage::F64(self.fwd(slice::<f64>(s, l, self.name())?)?),
        };
        Ok((out, l.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let grad = grad.contiguous()?;
        Ok(Some(match float_dtype(self.name(), &[x, &grad])? {
            DType::F32 => self.bwd::<f32>(x, &grad)?,
            _ => self.bwd::<f64>(x, &grad)?,
        }))
    }
}

/// `silu(gate) * up`, SwiGLU's gating, in one pass; with `then`, that times `thenᵀ`.
pub fn silu_mul(gate: &Tensor, up: &Tensor, then: Option<&FrozenLinear>) -> Result<Tensor> {
    if gate.shape() != up.shape() {
        bail!(
            "silu-mul: gate {:?} and up {:?} differ",
            gate.shape(),
            up.shape()
        )
    }
    fits_then(gate.dims().last().copied().unwrap_or(0), then, "silu-mul")?;
    gate.contiguous()?.apply_op2(
        &up.contiguous()?,
        SiluMul {
            then: then.cloned(),
        },
    )
}

/// `then` must take the op's output rows (`width` values each) as its input.
fn fits_then(width: usize, then: Option<&FrozenLinear>, op: &str) -> Result<()> {
    match then {
        Some(w) if w.in_dim() != width => bail!(
            "{op}: output width {width} does not fit the following projection's {} inputs",
            w.in_dim()
        ),
        _ => Ok(()),
    }
}

/// `shape` with its trailing `from` dimensions replaced by `then`'s output width.
fn then_shape(shape: &Shape, from: usize, then: &FrozenLinear) -> Shape {
    let dims = shape.dims();
    let mut out = dims[..dims.len().saturating_sub(from)].to_vec();
    out.push(then.out_dim());
    Shape::from(out)
}

struct SiluMul {
    then: Option<FrozenLinear>,
}

fn sigmoid<T: Real>(x: T) -> T {
    T::ONE / (T::ONE + (-x).exp())
}

fn silu_mul_fwd<T: Real>(g: &[T], u: &[T]) -> Vec<T> {
    let mut out = vec![T::ZERO; g.len()];
    out.par_chunks_mut(CHUNK)
        .zip(g.par_chunks(CHUNK).zip(u.par_chunks(CHUNK)))
        .for_each(|(y, (g, u))| {
            for ((y, &g), &u) in y.iter_mut().zip(g).zip(u) {
                *y = g * sigmoid(g) * u;
            }
        });
    out
}

/// d gate = dy u s (1 + g (1 - s)), d up = dy g s, with s = sigmoid(gate).
fn silu_mul_bwd<T: Real>(g: &[T], u: &[T], dy: &[T]) -> (Vec<T>, Vec<T>) {
    let mut dg = vec![T::ZERO; g.len()];
    let mut du = vec![T::ZERO; g.len()];
    dg.par_chunks_mut(CHUNK)
        .zip(du.par_chunks_mut(CHUNK))
        .zip(
            g.par_chunks(CHUNK)
                .zip(u.par_chunks(CHUNK))
                .zip(dy.par_chunks(CHUNK)),
        )
        .for_each(|((dg, du), ((g, u), dy))| {
            for i in 0..g.len() {
                let s = sigmoid(g[i]);
                dg[i] = dy[i] * u[i] * s * (T::ONE + g[i] * (T::ONE - s));
                du[i] = dy[i] * g[i] * s;
            }
        });
    (dg, du)
}

impl CustomOp2 for SiluMul {
    fn name(&self) -> &'static str {
        "silu-mul"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let n = self.name();
        fn run<T: Real>(op: &SiluMul, g: &[T], u: &[T]) -> Result<Vec<T>> {
            let h = silu_mul_fwd(g, u);
            match &op.then {
                Some(then) => then.matmul_t_vec(&h),
                None => Ok(h),
            }
        }
        let out = match (storage_dtype(s1, n)?, storage_dtype(s2, n)?) {
            (DType::F32, DType::F32) => {
                CpuStorage::F32(run::<f32>(self, slice(s1, l1, n)?, slice(s2, l2, n)?)?)
            }
            (DType::F64, DType::F64) => {
                CpuStorage::F64(run::<f64>(self, slice(s1, l1, n)?, slice(s2, l2, n)?)?)
            }
            (a, b) => bail!("{n}: mixed dtypes {a:?} and {b:?}"),
        };
        let shape = match &self.then {
            Some(then) => then_shape(l1.shape(), 1, then),
            None => l1.shape().clone(),
        };
        Ok((out, shape))
    }

    fn bwd(
        &self,
        gate: &Tensor,
        up: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        fn run<T: Real>(
            op: &SiluMul,
            g: &Tensor,
            u: &Tensor,
            dy: &Tensor,
        ) -> Result<(Tensor, Tensor)> {
            let (dg, du) = with_data(g, "silu-mul", |g: &[T]| {
                with_data(u, "silu-mul", |u: &[T]| {
                    with_data(dy, "silu-mul", |dy: &[T]| match &op.then {
                        Some(then) => Ok(silu_mul_bwd(g, u, &then.matmul_vec(dy)?)),
                        None => Ok(silu_mul_bwd(g, u, dy)),
                    })
                })
            })?;
            Ok((
                Tensor::from_vec(dg, g.shape(), &Device::Cpu)?,
                Tensor::from_vec(du, g.shape(), &Device::Cpu)?,
            ))
        }
        let grad = grad.contiguous()?;
        let (dg, du) = match float_dtype(self.name(), &[gate, up, &grad])? {
            DType::F32 => run::<f32>(self, gate, up, &grad)?,
            _ => run::<f64>(self, gate, up, &grad)?,
        };
        Ok((Some(dg), Some(du)))
    }
}

/// HF-style rope (rotate-half) on `x` [b, t, heads, head_dim], with `cos`/`sin` [b * t,
/// head_dim / 2]: one row per token, so every token can have its own position.
pub fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let (b, t, _, d) = x.dims4()?;
    let tables = |c: &Tensor| c.to_dtype(x.dtype())?.contiguous();
    let (cos, sin) = (tables(cos)?, tables(sin)?);
    if cos.dims() != [b * t, d / 2] || sin.dims() != cos.dims() || d % 2 != 0 {
        bail!(
            "rope: tables {:?} do not fit input {:?}",
            cos.shape(),
            x.shape()
        )
    }
    x.contiguous()?.apply_op1(Rope {
        cos,
        sin,
        inverse: false,
    })
}

struct Rope {
    cos: Tensor,
    sin: Tensor,
    /// Rotates the other way: the transpose, which is the backward of the rotation.
    inverse: bool,
}

impl Rope {
    fn fwd<T: Real>(&self, x: &[T], heads: usize, d: usize) -> Result<Vec<T>> {
        let half = d / 2;
        with_data(&self.cos, "rope", |cos: &[T]| {
            with_data(&self.sin, "rope", |sin: &[T]| {
                let mut out = vec![T::ZERO; x.len()];
                out.par_chunks_mut(d)
                    .zip(x.par_chunks(d))
                    .enumerate()
                    .for_each(|(row, (y, x))| {
                        let tok = row / heads;
                        let (c, s) = (&cos[tok * half..][..half], &sin[tok * half..][..half]);
                        for i in 0..half {
                            let s = if self.inverse { -s[i] } else { s[i] };
                            y[i] = x[i] * c[i] - x[i + half] * s;
                            y[i + half] = x[i + half] * c[i] + x[i] * s;
                        }
                    });
                Ok(out)
            })
        })
    }
}

impl CustomOp1 for Rope {
    fn name(&self) -> &'static str {
        "rope"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (_, _, heads, d) = l.shape().dims4()?;
        let n = self.name();
        let out = match storage_dtype(s, n)? {
            DType::F32 => CpuStorage::F32(self.fwd(slice::<f32>(s, l, n)?, heads, d)?),
            _ => CpuStorage::F64(self.fwd(slice::<f64>(s, l, n)?, heads, d)?),
        };
        Ok((out, l.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let back = Rope {
            cos: self.cos.clone(),
            sin: self.sin.clone(),
            inverse: !self.inverse,
        };
        Ok(Some(grad.contiguous()?.apply_op1(back)?))
    }
}

/// `softmax(q k^T * scale + mask) v` per head, for q [b, t, heads, d] and k, v [b, t, kv_heads,
/// d] (query head h reads kv head h / (heads / kv_heads), as transformers' `repeat_kv`).
/// The mask is causal; with `starts` ([b * t], the index in its row where each token's segment
/// begins) a token also sees nothing before its segment's start: packed examples stay apart.
pub fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    scale: f64,
    starts: Option<Arc<Vec<u32>>>,
    then: Option<&FrozenLinear>,
) -> Result<Tensor> {
    let (b, t, heads, d) = q.dims4()?;
    fits_then(heads * d, then, "attention")?;
    let (kb, kt, kv_heads, kd) = k.dims4()?;
    if (kb, kt, kd) != (b, t, d) || v.shape() != k.shape() || kv_heads == 0 {
        bail!(
            "attention: q {:?}, k {:?}, v {:?} do not fit",
            q.shape(),
            k.shape(),
            v.shape()
        )
    }
    if heads % kv_heads != 0 {
        bail!("attention: {heads} heads are not a multiple of {kv_heads} kv heads")
    }
    // The row blocks rely on starts never decreasing along a row.
    let valid = |s: &[u32]| {
        s.len() == b * t
            && (0..b * t).all(|i| s[i] as usize <= i % t && (i % t == 0 || s[i] >= s[i - 1]))
    };
    if starts.as_deref().is_some_and(|s| !valid(s)) {
        bail!(
            "attention: segment starts must be [b * t], non-decreasing along each row, each at or before its token"
        )
    }
    q.contiguous()?.apply_op3(
        &k.contiguous()?,
        &v.contiguous()?,
        Attention {
            scale,
            starts,
            then: then.cloned(),
        },
    )
}

struct Attention {
    scale: f64,
    starts: Option<Arc<Vec<u32>>>,
    /// Applied to the [b, t, heads * head_dim] output, inside the op.
    then: Option<FrozenLinear>,
}

#[derive(Clone, Copy)]
struct Dims {
    b: usize,
    t: usize,
    heads: usize,
    kv_heads: usize,
    d: usize,
}

impl Dims {
    /// Query heads per kv head.
    fn group(&self) -> usize {
        self.heads / self.kv_heads
    }
}

impl Attention {
    /// Row blocks of the [t, t] score matrix: (first row, end row, first column). Columns at
    /// or past the block's end row are masked for every row in it (causal), and so are those
    /// before its first row's segment start: only [first column, end row) is ever computed,
    /// about half of the matrix.
    fn blocks(&self, t: usize, bi: usize) -> impl Iterator<Item = (usize, usize, usize)> + '_ {
        (0..t).step_by(BLOCK).map(move |r0| {
            let c0 = self.starts.as_ref().map_or(0, |s| s[bi * t + r0] as usize);
            (r0, (r0 + BLOCK).min(t), c0)
        })
    }

    /// Masked probabilities of query head `h` in batch row `bi` into `p` [t, t]; within each
    /// row block only the computed columns are valid (zero where masked).
    fn probs<T: Real>(
        &self,
        q: &[T],
        k: &[T],
        dm: Dims,
        bi: usize,
        h: usize,
        p: &mut [T],
    ) -> Result<()> {
        let (t, d) = (dm.t, dm.d);
        let g = h / dm.group();
        let (qs, ks) = (dm.heads * d, dm.kv_heads * d);
        let scale = T::from_f64(self.scale);
        for (r0, r1, c0) in self.blocks(t, bi) {
            let qh = Mat::rows(&q[(bi * t + r0) * qs + h * d..], qs);
            let kh = Mat::t(&k[(bi * t + c0) * ks + g * d..], ks);
            gemm(
                (r1 - r0, r1 - c0, d),
                qh,
                kh,
                &mut p[r0 * t + c0..],
                t,
                scale,
                false,
                1,
            )?;
            for i in r0..r1 {
                let row = &mut p[i * t + c0..i * t + r1];
                let lo = self.starts.as_ref().map_or(0, |s| s[bi * t + i] as usize) - c0;
                let hi = i - c0;
                let m = max(&row[lo..=hi]);
                for v in &mut row[lo..=hi] {
                    *v = (*v - m).exp();
                }
                let sum = sum(&row[lo..=hi]);
                for v in &mut row[lo..=hi] {
                    *v /= sum;
                }
                row[..lo].fill(T::ZERO);
                row[hi + 1..].fill(T::ZERO);
            }
        }
        Ok(())
    }

    /// The output, times `thenᵀ` when the op has one.
    fn fwd_then<T: Real>(&self, q: &[T], k: &[T], v: &[T], dm: Dims) -> Result<Vec<T>> {
        let o = self.fwd(q, k, v, dm)?;
        match &self.then {
            Some(then) => then.matmul_t_vec(&o),
            None => Ok(o),
        }
    }

    fn fwd<T: Real>(&self, q: &[T], k: &[T], v: &[T], dm: Dims) -> Result<Vec<T>> {
        let Dims {
            b,
            t,
            heads,
            kv_heads,
            d,
        } = dm;
        let (n, ks) = (dm.group(), kv_heads * d);
        // One task per (batch row, kv head); each returns its query heads' outputs [n, t, d].
        let parts = (0..b * kv_heads)
            .into_par_iter()
            .map(|item| {
                let (bi, g) = (item / kv_heads, item % kv_heads);
                let mut p = vec![T::ZERO; t * t];
                let mut o = vec![T::ZERO; n * t * d];
                for j in 0..n {
                    self.probs(q, k, dm, bi, g * n + j, &mut p)?;
                    for (r0, r1, c0) in self.blocks(t, bi) {
                        let (pb, vh) = (&p[r0 * t + c0..], &v[(bi * t + c0) * ks + g * d..]);
                        let ob = &mut o[(j * t + r0) * d..];
                        gemm(
                            (r1 - r0, d, r1 - c0),
                            Mat::rows(pb, t),
                            Mat::rows(vh, ks),
                            ob,
                            d,
                            T::ONE,
                            false,
                            1,
                        )?;
                    }
                }
                Ok(o)
            })
            .collect::<Result<Vec<_>>>()?;
        let mut out = vec![T::ZERO; b * t * heads * d];
        for (item, o) in parts.iter().enumerate() {
            let (bi, g) = (item / kv_heads, item % kv_heads);
            scatter(&mut out, o, dm, bi, g * n, heads);
        }
        Ok(out)
    }

    /// With P the probabilities and dO the output gradient: dV = P^T dO, dP = dO V^T,
    /// dS = P * (dP - rowsum(P * dP)), dQ = scale dS K, dK = scale dS^T Q, summed over each
    /// kv head's query heads; block by block as in `probs`.
    #[allow(clippy::type_complexity)]
    fn bwd<T: Real>(
        &self,
        q: &[T],
        k: &[T],
        v: &[T],
        go: &[T],
        dm: Dims,
    ) -> Result<(Vec<T>, Vec<T>, Vec<T>)> {
        let Dims {
            b,
            t,
            heads,
            kv_heads,
            d,
        } = dm;
        let (n, qs, ks) = (dm.group(), heads * d, kv_heads * d);
        let scale = T::from_f64(self.scale);
        let parts = (0..b * kv_heads)
            .into_par_iter()
            .map(|item| {
                let (bi, g) = (item / kv_heads, item % kv_heads);
                let mut p = vec![T::ZERO; t * t];
                let mut ds = vec![T::ZERO; t * t];
                let mut dq = vec![T::ZERO; n * t * d];
                let mut dk = vec![T::ZERO; t * d];
                let mut dv = vec![T::ZERO; t * d];
                for j in 0..n {
                    let h = g * n + j;
                    self.probs(q, k, dm, bi, h, &mut p)?;
                    for (r0, r1, c0) in self.blocks(t, bi) {
                        let (rows, cols) = (r1 - r0, r1 - c0);
                        let goh = &go[(bi * t + r0) * qs + h * d..];
                        let qh = &q[(bi * t + r0) * qs + h * d..];
                        let kh = &k[(bi * t + c0) * ks + g * d..];
                        let vh = &v[(bi * t + c0) * ks + g * d..];
                        let at = r0 * t + c0;
                        gemm(
                            (cols, d, rows),
                            Mat::t(&p[at..], t),
                            Mat::rows(goh, qs),
                            &mut dv[c0 * d..],
                            d,
                            T::ONE,
                            true,
                            1,
                        )?;
                        gemm(
                            (rows, cols, d),
                            Mat::rows(goh, qs),
                            Mat::t(vh, ks),
                            &mut ds[at..],
                            t,
                            T::ONE,
                            false,
                            1,
                        )?;
                        for i in r0..r1 {
                            let pr = &p[i * t + c0..i * t + r1];
                            let dr = &mut ds[i * t + c0..i * t + r1];
                            let pd = dot(pr, dr);
                            for (&p, g) in pr.iter().zip(dr.iter_mut()) {
                                *g = p * (*g - pd);
                            }
                        }
                        let dqb = &mut dq[(j * t + r0) * d..];
                        gemm(
                            (rows, d, cols),
                            Mat::rows(&ds[at..], t),
                            Mat::rows(kh, ks),
                            dqb,
                            d,
                            scale,
                            false,
                            1,
                        )?;
                        gemm(
                            (cols, d, rows),
                            Mat::t(&ds[at..], t),
                            Mat::rows(qh, qs),
                            &mut dk[c0 * d..],
                            d,
                            scale,
                            true,
                            1,
                        )?;
                    }
                }
                Ok((dq, dk, dv))
            })
            .collect::<Result<Vec<_>>>()?;
        let mut dq = vec![T::ZERO; b * t * qs];
        let mut dk = vec![T::ZERO; b * t * ks];
        let mut dv = vec![T::ZERO; b * t * ks];
        for (item, (pq, pk, pv)) in parts.iter().enumerate() {
            let (bi, g) = (item / kv_heads, item % kv_heads);
            scatter(&mut dq, pq, dm, bi, g * n, heads);
            scatter(&mut dk, pk, dm, bi, g, kv_heads);
            scatter(&mut dv, pv, dm, bi, g, kv_heads);
        }
        Ok((dq, dk, dv))
    }
}

/// Copies heads `h0..` given as [n, t, d] into `dst` [b, t, heads, d] at batch row `bi`.
fn scatter<T: Real>(dst: &mut [T], src: &[T], dm: Dims, bi: usize, h0: usize, heads: usize) {
    let (t, d) = (dm.t, dm.d);
    for (j, head) in src.chunks(t * d).enumerate() {
        for (i, row) in head.chunks(d).enumerate() {
            let at = ((bi * t + i) * heads + h0 + j) * d;
            dst[at..at + d].copy_from_slice(row);
        }
    }
}

impl CustomOp3 for Attention {
    fn name(&self) -> &'static str {
        "attention"
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
        let (b, t, heads, d) = l1.shape().dims4()?;
        let kv_heads = l2.shape().dims4()?.2;
        let dm = Dims {
            b,
            t,
            heads,
            kv_heads,
            d,
        };
        let n = self.name();
        let out = match (
            storage_dtype(s1, n)?,
            storage_dtype(s2, n)?,
            storage_dtype(s3, n)?,
        ) {
            (DType::F32, DType::F32, DType::F32) => CpuStorage::F32(self.fwd_then::<f32>(
                slice(s1, l1, n)?,
                slice(s2, l2, n)?,
                slice(s3, l3, n)?,
                dm,
            )?),
            (DType::F64, DType::F64, DType::F64) => CpuStorage::F64(self.fwd_then::<f64>(
                slice(s1, l1, n)?,
                slice(s2, l2, n)?,
                slice(s3, l3, n)?,
                dm,
            )?),
            (a, b, c) => bail!("{n}: mixed dtypes {a:?}, {b:?}, {c:?}"),
        };
        let shape = match &self.then {
            Some(then) => then_shape(l1.shape(), 2, then),
            None => l1.shape().clone(),
        };
        Ok((out, shape))
    }

    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        fn run<T: Real>(
            op: &Attention,
            q: &Tensor,
            k: &Tensor,
            v: &Tensor,
            go: &Tensor,
        ) -> Result<(Tensor, Tensor, Tensor)> {
            let (b, t, heads, d) = q.dims4()?;
            let kv_heads = k.dims4()?.2;
            let dm = Dims {
                b,
                t,
                heads,
                kv_heads,
                d,
            };
            let (dq, dk, dv) = with_data(q, "attention", |q: &[T]| {
                with_data(k, "attention", |k: &[T]| {
                    with_data(v, "attention", |v: &[T]| {
                        with_data(go, "attention", |go: &[T]| match &op.then {
                            Some(then) => op.bwd(q, k, v, &then.matmul_vec(go)?, dm),
                            None => op.bwd(q, k, v, go, dm),
                        })
                    })
                })
            })?;
            let cpu = &Device::Cpu;
            Ok((
                Tensor::from_vec(dq, q.shape(), cpu)?,
                Tensor::from_vec(dk, k.shape(), cpu)?,
                Tensor::from_vec(dv, v.shape(), cpu)?,
            ))
        }
        let grad = grad.contiguous()?;
        let (dq, dk, dv) = match float_dtype(self.name(), &[q, k, v, &grad])? {
            DType::F32 => run::<f32>(self, q, k, v, &grad)?,
            _ => run::<f64>(self, q, k, v, &grad)?,
        };
        Ok((Some(dq), Some(dk), Some(dv)))
    }
}

#[cfg(test)]
mod tests {
    //! Each op against the same function composed from candle ops (whose backward candle
    //! derives), in f64: values and input gradients of `sum(op(..) * c)` for a random `c`.
    use super::*;
    use candle_core::{D, Var};
    use ragtune_core::rng::SplitMix64;

    fn rand(rng: &mut SplitMix64, shape: &[usize]) -> Tensor {
        let n = shape.iter().product();
        let v: Vec<f64> = rng
            .uniform(n, -1.0, 1.0)
            .into_iter()
            .map(f64::from)
            .collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
        assert_eq!(a.shape(), b.shape());
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
    }

    /// Compares `fused` and `composed` (both of `inputs`) in value and gradient.
    fn check(inputs: &[&Var], fused: impl Fn() -> Tensor, composed: impl Fn() -> Tensor) {
        let (a, b) = (fused(), composed());
        assert!(
            max_diff(&a, &b) < 1e-10,
            "values differ by {}",
            max_diff(&a, &b)
        );
        let c = rand(&mut SplitMix64::new(99), a.dims());
        let ga = (a * &c).unwrap().sum_all().unwrap().backward().unwrap();
        let gb = (b * &c).unwrap().sum_all().unwrap().backward().unwrap();
        for v in inputs {
            let (x, y) = (
                ga.get(v.as_tensor()).unwrap(),
                gb.get(v.as_tensor()).unwrap(),
            );
            assert!(
                max_diff(x, y) < 1e-10,
                "gradients differ by {}",
                max_diff(x, y)
            );
        }
    }

    #[test]
    fn rms_norm_matches_composed() {
        let mut rng = SplitMix64::new(1);
        let x = Var::from_tensor(&rand(&mut rng, &[2, 3, 8])).unwrap();
        let w = rand(&mut rng, &[8]);
        check(
            &[&x],
            || rms_norm(x.as_tensor(), &w, 1e-5).unwrap(),
            || candle_nn::ops::rms_norm_slow(x.as_tensor(), &w, 1e-5).unwrap(),
        );
    }

    #[test]
    fn silu_mul_matches_composed() {
        let mut rng = SplitMix64::new(2);
        let g = Var::from_tensor(&rand(&mut rng, &[3, 40000]).affine(4.0, 0.0).unwrap()).unwrap();
        let u = Var::from_tensor(&rand(&mut rng, &[3, 40000])).unwrap();
        check(
            &[&g, &u],
            || silu_mul(g.as_tensor(), u.as_tensor(), None).unwrap(),
            || (g.as_tensor().silu().unwrap() * u.as_tensor()).unwrap(),
        );
    }

    #[test]
    fn rope_matches_composed_rotate_half() {
        let mut rng = SplitMix64::new(3);
        let (b, t, h, d) = (2, 3, 2, 8);
        let x = Var::from_tensor(&rand(&mut rng, &[b, t, h, d])).unwrap();
        let angles = rand(&mut rng, &[b * t, d / 2]).affine(3.0, 0.0).unwrap();
        let (cos, sin) = (angles.cos().unwrap(), angles.sin().unwrap());
        let composed = || {
            let c = cos.reshape((b, t, 1, d / 2)).unwrap();
            let s = sin.reshape((b, t, 1, d / 2)).unwrap();
            let x1 = x.as_tensor().narrow(3, 0, d / 2).unwrap();
            let x2 = x.as_tensor().narrow(3, d / 2, d / 2).unwrap();
            let y1 = (x1.broadcast_mul(&c).unwrap() - x2.broadcast_mul(&s).unwrap()).unwrap();
            let y2 = (x2.broadcast_mul(&c).unwrap() + x1.broadcast_mul(&s).unwrap()).unwrap();
            Tensor::cat(&[y1, y2], 3).unwrap()
        };
        check(&[&x], || rope(x.as_tensor(), &cos, &sin).unwrap(), composed);
    }

    #[test]
    fn attention_matches_composed_with_segments_and_gqa() {
        let mut rng = SplitMix64::new(4);
        // Long enough for several row blocks, with segments starting inside and across them.
        let (b, t, heads, kv, d) = (2, 150, 4, 2, 5);
        let q = Var::from_tensor(&rand(&mut rng, &[b, t, heads, d])).unwrap();
        let k = Var::from_tensor(&rand(&mut rng, &[b, t, kv, d])).unwrap();
        let v = Var::from_tensor(&rand(&mut rng, &[b, t, kv, d])).unwrap();
        // Row 0 packs segments starting at 0, 2, 70 and 128; row 1 is one sequence.
        let starts: Vec<u32> = (0..b * t)
            .map(|i| match (i / t, i % t) {
                (0, p) => [0, 2, 70, 128]
                    .into_iter()
                    .filter(|&s| s <= p as u32)
                    .max()
                    .unwrap_or(0),
                _ => 0,
            })
            .collect();
        let mask: Vec<f64> = (0..b * t * t)
            .map(|idx| {
                let (bi, i, j) = (idx / (t * t), idx / t % t, idx % t);
                let ok = j <= i && j >= starts[bi * t + i] as usize;
                if ok { 0.0 } else { f64::NEG_INFINITY }
            })
            .collect();
        let mask = Tensor::from_vec(mask, (b, 1, t, t), &Device::Cpu).unwrap();
        let scale = 0.7;
        let composed = || {
            let heads_first = |x: &Tensor| x.transpose(1, 2).unwrap().contiguous().unwrap();
            let rep = |x: Tensor| {
                x.unsqueeze(2)
                    .unwrap()
                    .expand((b, kv, heads / kv, t, d))
                    .unwrap()
                    .reshape((b, heads, t, d))
                    .unwrap()
            };
            let qh = heads_first(q.as_tensor());
            let kh = rep(heads_first(k.as_tensor()));
            let vh = rep(heads_first(v.as_tensor()));
            let s = (qh.matmul(&kh.t().unwrap()).unwrap() * scale)
                .unwrap()
                .broadcast_add(&mask)
                .unwrap();
            let p = candle_nn::ops::softmax(&s, D::Minus1).unwrap();
            p.matmul(&vh)
                .unwrap()
                .transpose(1, 2)
                .unwrap()
                .contiguous()
                .unwrap()
        };
        let starts = Arc::new(starts.clone());
        check(
            &[&q, &k, &v],
            || {
                attention(
                    q.as_tensor(),
                    k.as_tensor(),
                    v.as_tensor(),
                    scale,
                    Some(starts.clone()),
                    None,
                )
                .unwrap()
            },
            composed,
        );
    }

    /// With a frozen projection after it, SwiGLU and attention equal the projection applied
    /// to their output, in value and in the gradients of their inputs.
    #[test]
    fn ops_with_a_frozen_projection_after_them_match_the_projection_of_their_output() {
        let mut rng = SplitMix64::new(6);
        let g = Var::from_tensor(&rand(&mut rng, &[2, 3, 6])).unwrap();
        let u = Var::from_tensor(&rand(&mut rng, &[2, 3, 6])).unwrap();
        let down = FrozenLinear::new(rand(&mut rng, &[7, 6])).unwrap();
        check(
            &[&g, &u],
            || silu_mul(g.as_tensor(), u.as_tensor(), Some(&down)).unwrap(),
            || {
                let h = silu_mul(g.as_tensor(), u.as_tensor(), None).unwrap();
                down.forward(&h).unwrap()
            },
        );

        let (b, t, heads, kv, d) = (2, 70, 4, 2, 5);
        let q = Var::from_tensor(&rand(&mut rng, &[b, t, heads, d])).unwrap();
        let k = Var::from_tensor(&rand(&mut rng, &[b, t, kv, d])).unwrap();
        let v = Var::from_tensor(&rand(&mut rng, &[b, t, kv, d])).unwrap();
        let o = FrozenLinear::new(rand(&mut rng, &[9, heads * d])).unwrap();
        let (q, k, v) = (&q, &k, &v);
        check(
            &[q, k, v],
            || {
                attention(
                    q.as_tensor(),
                    k.as_tensor(),
                    v.as_tensor(),
                    0.7,
                    None,
                    Some(&o),
                )
                .unwrap()
            },
            || {
                let y = attention(q.as_tensor(), k.as_tensor(), v.as_tensor(), 0.7, None, None);
                o.forward(&y.unwrap().reshape((b, t, heads * d)).unwrap())
                    .unwrap()
            },
        );
        // A projection of another width is refused, not misread.
        assert!(silu_mul(g.as_tensor(), u.as_tensor(), Some(&o)).is_err());
    }
}
