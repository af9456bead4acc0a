//! Learning-rate schedule and gradient clipping around candle-nn's AdamW.

use crate::error::Result;
use candle_core::Var;
use candle_core::backprop::GradStore;

/// Linear warm-up from 0 to `peak` over `warmup` steps, then cosine decay to 0 at `total`
/// (transformers' `get_cosine_schedule_with_warmup`). `step` counts from 0.
pub fn warmup_cosine(step: usize, warmup: usize, total: usize, peak: f64) -> f64 {
    if step < warmup {
        return peak * (step + 1) as f64 / warmup as f64;
    }
    let span = total.saturating_sub(warmup).max(1);
    let progress = ((step - warmup) as f64 / span as f64).min(1.0);
    peak * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
}

/// Scales the gradients of `vars` so that their global L2 norm is at most `max_norm`
/// (torch's `clip_grad_norm_`). Returns the norm before clipping.
pub fn clip_grad_norm(vars: &[Var], grads: &mut GradStore, max_norm: f64) -> Result<f64> {
    let mut sq = 0f64;
    for v in vars {
        if let Some(g) = grads.get(v.as_tensor()) {
            sq += g.sqr()?.sum_all()?.to_scalar::<f32>()? as f64;
        }
    }
    let norm = sq.sqrt();
    if norm > max_norm {
        let scale = max_norm / (norm + 1e-6);
        for v in vars {
            if let Some(g) = grads.remove(v.as_tensor()) {
                grads.insert(v.as_tensor(), (g * scale)?);
            }
        }
    }
    Ok(norm)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_warms_up_then_decays_to_zero() {
        assert!((warmup_cosine(0, 10, 110, 1.0) - 0.1).abs() < 1e-12);
        assert!((warmup_cosine(9, 10, 110, 1.0) - 1.0).abs() < 1e-12);
        assert!((warmup_cosine(10, 10, 110, 1.0) - 1.0).abs() < 1e-12);
        assert!((warmup_cosine(60, 10, 110, 1.0) - 0.5).abs() < 1e-12);
        assert!(warmup_cosine(110, 10, 110, 1.0).abs() < 1e-12);
    }

    #[test]
    fn clipping_caps_the_global_norm() -> Result<()> {
        let dev = candle_core::Device::Cpu;
        let a = Var::new(&[3f32], &dev)?;
        let b = Var::new(&[4f32], &dev)?;
        // grads of a*x + b*y w.r.t. a, b are x = 3 and y = 4: norm 5.
        let loss = ((a.as_tensor() * 3.0)? + (b.as_tensor() * 4.0)?)?.sum_all()?;
        let mut grads = loss.backward()?;
        let vars = [a.clone(), b.clone()];
        assert!((clip_grad_norm(&vars, &mut grads, 1.0)? - 5.0).abs() < 1e-5);
        let ga = grads.get(a.as_tensor()).unwrap().to_vec1::<f32>()?[0];
        let gb = grads.get(b.as_tensor()).unwrap().to_vec1::<f32>()?[0];
        assert!(
            (ga - 0.6).abs() < 1e-5 && (gb - 0.8).abs() < 1e-5,
            "{ga} {gb}"
        );
        Ok(())
    }
}
