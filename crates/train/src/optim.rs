//! AdamW with state that checkpoints can save, the learning-rate schedule, gradient clipping.

use crate::error::Result;
use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};

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

/// Global L2 norm of `grads`, scaled down in place to `max_norm` when above it.
pub fn clip_grads(grads: &mut [Tensor], max_norm: f64) -> Result<f64> {
    let mut sq = 0f64;
    for g in grads.iter() {
        sq += g.sqr()?.sum_all()?.to_scalar::<f32>()? as f64;
    }
    let norm = sq.sqrt();
    if norm > max_norm {
        let scale = max_norm / (norm + 1e-6);
        for g in grads.iter_mut() {
            *g = (&*g * scale)?;
        }
    }
    Ok(norm)
}

/// torch.optim.AdamW (decoupled weight decay, bias-corrected moments). Written here rather than
/// candle-nn's so that its moments can be saved in a checkpoint and restored on resume.
#[derive(Debug)]
pub struct AdamW {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    /// Steps taken (the bias correction's t).
    pub t: usize,
    pub m: Vec<Tensor>,
    pub v: Vec<Tensor>,
}

impl AdamW {
    pub fn new(vars: &[Var], weight_decay: f64) -> Result<Self> {
        let zeros = || -> Result<Vec<Tensor>> {
            Ok(vars
                .iter()
                .map(|v| v.as_tensor().zeros_like())
                .collect::<candle_core::Result<_>>()?)
        };
        Ok(Self {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay,
            t: 0,
            m: zeros()?,
            v: zeros()?,
        })
    }

    /// One update of every var with its gradient (same order as at `new`).
    pub fn step(&mut self, vars: &[Var], grads: &[Tensor], lr: f64) -> Result<()> {
        self.t += 1;
        let c1 = 1.0 - self.beta1.powi(self.t as i32);
        let c2 = 1.0 - self.beta2.powi(self.t as i32);
        for (i, (var, g)) in vars.iter().zip(grads).enumerate() {
            self.m[i] = ((&self.m[i] * self.beta1)? + (g * (1.0 - self.beta1))?)?;
            self.v[i] = ((&self.v[i] * self.beta2)? + (g.sqr()? * (1.0 - self.beta2))?)?;
            let m_hat = (&self.m[i] / c1)?;
            let v_hat = (&self.v[i] / c2)?;
            let update = (m_hat / (v_hat.sqrt()? + self.eps)?)?;
            let decayed = (var.as_tensor() * (1.0 - lr * self.weight_decay))?;
            var.set(&(decayed - (update * lr)?)?)?;
        }
        Ok(())
    }
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

    #[test]
    fn adamw_matches_torch_on_a_quadratic() -> Result<()> {
        // torch.optim.AdamW([p], lr=0.1, weight_decay=0.01) on loss = sum(p^2), p = [1, -2],
        // three steps give [0.6989112, -1.6949446] (computed with torch 2.15).
        let dev = candle_core::Device::Cpu;
        let p = Var::new(&[1f32, -2.0], &dev)?;
        let mut opt = AdamW::new(std::slice::from_ref(&p), 0.01)?;
        for _ in 0..3 {
            let g = (p.as_tensor() * 2.0)?;
            opt.step(std::slice::from_ref(&p), &[g], 0.1)?;
        }
        let got = p.as_tensor().to_vec1::<f32>()?;
        let want = [0.698_911_25f32, -1.694_944_6];
        assert!(
            (got[0] - want[0]).abs() < 1e-5 && (got[1] - want[1]).abs() < 1e-5,
            "{got:?}"
        );
        Ok(())
    }
}
