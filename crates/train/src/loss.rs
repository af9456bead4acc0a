//! Causal-LM cross-entropy over the tokens marked trainable (the answers in SFT).

use crate::error::{Error, Result};
use candle_core::{D, DType, Tensor};
use candle_nn::ops::log_softmax;

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
