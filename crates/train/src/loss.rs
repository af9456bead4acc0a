//! Causal-LM cross-entropy over the tokens marked trainable (the answers in SFT).

use crate::error::{Error, Result};
use crate::frozen::FrozenLinear;
use crate::kernels::{Real, max, slice, storage_dtype};
use candle_core::{CpuStorage, CustomOp1, D, DType, Layout, Shape, Tensor, bail};
use candle_nn::ops::log_softmax;
use rayon::prelude::*;
use std::sync::Mutex;

/// Mean negative log-likelihood of `targets` [b, t] (u32) under `logits` [b, t, vocab], over the
/// positions where `weights` [b, t] is non-zero (1 for answer tokens, 0 for prompt and padding).
///
/// `targets[i, j]` is the token that follows position j, i.e. inputs and targets are already
/// shifted by one (see [`shift_for_causal_lm`]).
pub fn masked_cross_entropy(logits: &Tensor, targets: &Tensor, weights: &Tensor) -> Result<Tensor> {
    let (b, t, v) = logits.dims3()?;
    let logp = log_softmax(&logits.reshape((b * t, v))?, D::Minus1)?;
    let picked = logp
        .gather(&targets.reshape((b * t, 1))?, 1)?
        .reshape(b * t)?;
    let w = weights.to_dtype(logits.dtype())?.reshape(b * t)?;
    let count = w.sum_all()?.to_dtype(DType::F64)?.to_scalar::<f64>()?;
    if count <= 0.0 {
        return Err(Error::NoTrainableTokens);
    }
    Ok(((picked * w)?.sum_all()?.neg()? / count)?)
}

/// The same loss as [`masked_cross_entropy`] over `head(hidden)`, for `hidden` [n, h] (the final
/// hidden states of the weighted positions only), `head` [vocab, h] frozen, and `targets` and
/// `weights` (n each).
///
/// The logits are made a chunk of rows at a time and never all at once: for SmolLM2 a batch of
/// 4 x 256 has [1024, 49152] logits, 200 MB in f32, and composed candle ops keep several copies
/// of them (logits, log-softmax and its pieces, and as many again in backward). Because the loss
/// is a scalar, its gradient with respect to `hidden` is computed in the same pass (softmax
/// minus one-hot, times the head) and kept, [n, h], for backward to scale: no recomputation.
pub fn head_cross_entropy(
    hidden: &Tensor,
    head: &FrozenLinear,
    targets: &[u32],
    weights: &[f64],
) -> Result<Tensor> {
    let (n, h) = hidden.dims2()?;
    let (vocab, head_h) = (head.out_dim(), head.in_dim());
    if head_h != h || targets.len() != n || weights.len() != n || head.dtype() != hidden.dtype() {
        return Err(Error::Batch(format!(
            "hidden {:?} ({:?}), head {:?} ({:?}), {} targets and {} weights do not fit",
            hidden.shape(),
            hidden.dtype(),
            (vocab, head_h),
            head.dtype(),
            targets.len(),
            weights.len()
        )));
    }
    if let Some(t) = targets.iter().find(|&&t| t as usize >= vocab) {
        return Err(Error::Batch(format!(
            "target id {t} is outside the vocabulary ({vocab})"
        )));
    }
    let count: f64 = weights.iter().sum();
    if count <= 0.0 {
        return Err(Error::NoTrainableTokens);
    }
    let op = HeadCrossEntropy {
        head: head.clone(),
        targets: targets.to_vec(),
        coef: weights.iter().map(|w| w / count).collect(),
        want_grad: hidden.track_op(),
        grad: Mutex::new(None),
    };
    Ok(hidden.contiguous()?.apply_op1(op)?)
}

struct HeadCrossEntropy {
    head: FrozenLinear,
    targets: Vec<u32>,
    /// Each position's weight over the weights' sum.
    coef: Vec<f64>,
    want_grad: bool,
    /// d loss / d hidden, filled by the forward pass when `want_grad`.
    grad: Mutex<Option<Tensor>>,
}

/// Logits per chunk: about 32 MB.
const LOGIT_CHUNK_VALUES: usize = 1 << 23;

impl HeadCrossEntropy {
    fn run<T: Real>(&self, x: &[T]) -> candle_core::Result<(f64, Option<Vec<T>>)> {
        let (vocab, h) = (self.head.out_dim(), self.head.in_dim());
        let n = self.targets.len();
        let chunk = (LOGIT_CHUNK_VALUES / vocab).clamp(1, n.max(1));
        let mut logits = vec![T::ZERO; chunk * vocab];
        let mut dx = if self.want_grad {
            vec![T::ZERO; n * h]
        } else {
            Vec::new()
        };
        let mut loss = 0f64;
        for c0 in (0..n).step_by(chunk) {
            let m = chunk.min(n - c0);
            self.head
                .matmul_t(&x[c0 * h..][..m * h], m, &mut logits[..m * vocab])?;
            // Per row: the NLL, and the row turned into coef * (softmax - one-hot).
            loss += logits[..m * vocab]
                .par_chunks_mut(vocab)
                .enumerate()
                .map(|(r, row)| {
                    let (tgt, coef) = (self.targets[c0 + r] as usize, self.coef[c0 + r]);
                    let picked = row[tgt];
                    let mx = max(row);
                    for v in row.iter_mut() {
                        *v = (*v - mx).exp();
                    }
                    // Summed in f64 (49k positive f32 terms drift by ~1e-4 otherwise), in
                    // eight lanes so the loop vectorizes.
                    let mut lanes = [0f64; 8];
                    let mut chunks = row.chunks_exact(8);
                    for c in &mut chunks {
                        for (l, v) in lanes.iter_mut().zip(c) {
                            *l += v.to_f64();
                        }
                    }
                    let rest: f64 = chunks.remainder().iter().map(|v| v.to_f64()).sum();
                    let sum = lanes.iter().sum::<f64>() + rest;
                    let c = T::from_f64(coef / sum);
                    for v in row.iter_mut() {
                        *v *= c;
                    }
                    row[tgt] -= T::from_f64(coef);
                    coef * (mx.to_f64() + sum.ln() - picked.to_f64())
                })
                .sum::<f64>();
            if self.want_grad {
                self.head
                    .matmul(&logits[..m * vocab], m, &mut dx[c0 * h..][..m * h])?;
            }
        }
        Ok((loss, self.want_grad.then_some(dx)))
    }

    fn keep_grad<T: Real>(
        &self,
        dx: Option<Vec<T>>,
        n: usize,
        h: usize,
    ) -> candle_core::Result<()> {
        if let Some(dx) = dx {
            let dx = Tensor::from_vec(dx, (n, h), &candle_core::Device::Cpu)?;
            match self.grad.lock() {
                Ok(mut g) => *g = Some(dx),
                Err(_) => bail!("head-cross-entropy: gradient lock poisoned"),
            }
        }
        Ok(())
    }
}

impl CustomOp1 for HeadCrossEntropy {
    fn name(&self) -> &'static str {
        "head-cross-entropy"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let (n, h) = l.shape().dims2()?;
        let out = match storage_dtype(s, self.name())? {
            DType::F32 => {
                let (loss, dx) = self.run::<f32>(slice(s, l, self.name())?)?;
                self.keep_grad(dx, n, h)?;
                CpuStorage::F32(vec![loss as f32])
            }
            _ => {
                let (loss, dx) = self.run::<f64>(slice(s, l, self.name())?)?;
                self.keep_grad(dx, n, h)?;
                CpuStorage::F64(vec![loss])
            }
        };
        Ok((out, Shape::from(())))
    }

    fn bwd(
        &self,
        _x: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let dx = match self.grad.lock() {
            Ok(g) => g.clone(),
            Err(_) => bail!("head-cross-entropy: gradient lock poisoned"),
        };
        let Some(dx) = dx else {
            bail!("head-cross-entropy: backward through a loss computed without gradient tracking")
        };
        Ok(Some(dx.broadcast_mul(&grad.to_dtype(dx.dtype())?)?))
    }
}

/// Splits token ids and their trainable flags into model inputs, targets and target weights:
/// input `ids[..n-1]`, target `ids[1..]`, weight 1 where the *target* is trainable.
pub fn shift_for_causal_lm(ids: &[u32], trainable: &[bool]) -> (Vec<u32>, Vec<u32>, Vec<f32>) {
    let n = ids.len().min(trainable.len());
    if n < 2 {
        return (Vec::new(), Vec::new(), Vec::new());
    }
    let inputs = ids[..n - 1].to_vec();
    let targets = ids[1..n].to_vec();
    let weights = trainable[1..n]
        .iter()
        .map(|&t| if t { 1.0 } else { 0.0 })
        .collect();
    (inputs, targets, weights)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn only_weighted_positions_count() -> Result<()> {
        let dev = Device::Cpu;
        // vocab 3; position 0 predicts token 2 with p = 0.5, position 1 predicts token 0 badly.
        let l0 = [0.0f32, 0.0, (2.0f32).ln()]; // softmax = [.25, .25, .5]
        let l1 = [-5.0f32, 5.0, 0.0];
        let logits = Tensor::new(&[[l0, l1]], &dev)?;
        let targets = Tensor::new(&[[2u32, 0]], &dev)?;
        let only_first =
            masked_cross_entropy(&logits, &targets, &Tensor::new(&[[1f32, 0.]], &dev)?)?;
        assert!((only_first.to_scalar::<f32>()? - 2f32.ln()).abs() < 1e-6);
        let both = masked_cross_entropy(&logits, &targets, &Tensor::new(&[[1f32, 1.]], &dev)?)?;
        let lse1 = (l1.iter().map(|v| v.exp()).sum::<f32>()).ln();
        let expected = (2f32.ln() + (lse1 - l1[0])) / 2.0;
        assert!((both.to_scalar::<f32>()? - expected).abs() < 1e-5);
        let none = masked_cross_entropy(&logits, &targets, &Tensor::new(&[[0f32, 0.]], &dev)?);
        assert!(none.is_err());
        Ok(())
    }

    #[test]
    fn shift_weights_follow_targets() {
        let (i, t, w) = shift_for_causal_lm(&[10, 11, 12, 13], &[false, false, true, true]);
        assert_eq!(i, vec![10, 11, 12]);
        assert_eq!(t, vec![11, 12, 13]);
        assert_eq!(w, vec![0.0, 1.0, 1.0]);
    }
}
