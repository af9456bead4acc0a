//! LoRA adapters: `y = x W^T + (alpha / r) * dropout(x) A^T B^T` with `W` frozen.
//!
//! `A` ([r, in]) starts Kaiming-uniform as PEFT initialises it and `B` ([out, r]) starts at zero,
//! so a fresh adapter leaves the model unchanged. Only `A` and `B` are `Var`s.

use crate::error::{Error, Result};
use crate::frozen::FrozenLinear;
use candle_core::{DType, Device, Tensor, Var};
use ragtune_core::rng::SplitMix64;
use std::str::FromStr;

/// The llama projections LoRA can adapt, named as in transformers (and PEFT's `target_modules`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TargetModule {
    Q,
    K,
    V,
    O,
    Gate,
    Up,
    Down,
}

impl TargetModule {
    pub const ALL: [TargetModule; 7] = [
        Self::Q,
        Self::K,
        Self::V,
        Self::O,
        Self::Gate,
        Self::Up,
        Self::Down,
    ];

    /// The module name in the transformers llama model.
    pub fn hf_name(self) -> &'static str {
        match self {
            Self::Q => "q_proj",
            Self::K => "k_proj",
            Self::V => "v_proj",
            Self::O => "o_proj",
            Self::Gate => "gate_proj",
            Self::Up => "up_proj",
            Self::Down => "down_proj",
        }
    }

    /// The parent module in transformers: `self_attn` or `mlp`.
    pub fn hf_parent(self) -> &'static str {
        match self {
            Self::Q | Self::K | Self::V | Self::O => "self_attn",
            Self::Gate | Self::Up | Self::Down => "mlp",
        }
    }
}

impl FromStr for TargetModule {
    type Err = Error;

    /// Accepts the short names (`q`, `gate`) and the transformers ones (`q_proj`, `gate_proj`).
    fn from_str(s: &str) -> Result<Self> {
        let short = s.trim().trim_end_matches("_proj");
        Ok(match short {
            "q" => Self::Q,
            "k" => Self::K,
            "v" => Self::V,
            "o" => Self::O,
            "gate" => Self::Gate,
            "up" => Self::Up,
            "down" => Self::Down,
            _ => {
                return Err(Error::LoraConfig(format!(
                    "unknown target module {s:?}; use q, k, v, o, gate, up or down"
                )));
            }
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct LoraConfig {
    pub rank: usize,
    pub alpha: f64,
    pub dropout: f32,
    pub targets: Vec<TargetModule>,
}

impl Default for LoraConfig {
    fn default() -> Self {
        Self {
            rank: 8,
            alpha: 16.0,
            dropout: 0.05,
            targets: vec![TargetModule::Q, TargetModule::V],
        }
    }
}

impl LoraConfig {
    pub fn validate(&self) -> Result<()> {
        if self.rank == 0 {
            return Err(Error::LoraConfig("rank must be at least 1".into()));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(Error::LoraConfig(format!(
                "dropout {} must be in [0, 1)",
                self.dropout
            )));
        }
        if self.targets.is_empty() {
            return Err(Error::LoraConfig(
                "no target modules; name at least one of q, k, v, o, gate, up, down".into(),
            ));
        }
        Ok(())
    }

    pub fn scale(&self) -> f64 {
        self.alpha / self.rank as f64
    }
}

/// One adapter pair.
#[derive(Debug, Clone)]
pub struct Lora {
    /// [r, in]
    pub a: Var,
    /// [out, r]
    pub b: Var,
    pub scale: f64,
    pub dropout: f32,
}

impl Lora {
    /// A fresh adapter in `dtype` (f32 for training, f64 for gradient checks).
    pub fn new(
        in_dim: usize,
        out_dim: usize,
        cfg: &LoraConfig,
        rng: &mut SplitMix64,
        dtype: DType,
        dev: &Device,
    ) -> Result<Self> {
        // PEFT: kaiming_uniform_(A, a=sqrt(5)) => U(-1/sqrt(in), 1/sqrt(in)).
        let bound = 1.0 / (in_dim as f32).sqrt();
        let a = Tensor::from_vec(
            rng.uniform(cfg.rank * in_dim, -bound, bound),
            (cfg.rank, in_dim),
            dev,
        )?
        .to_dtype(dtype)?;
        let b = Tensor::zeros((out_dim, cfg.rank), dtype, dev)?;
        Ok(Self {
            a: Var::from_tensor(&a)?,
            b: Var::from_tensor(&b)?,
            scale: cfg.scale(),
            dropout: cfg.dropout,
        })
    }

    /// An adapter from given matrices (e.g. loaded from a checkpoint, or f64 for gradient checks).
    pub fn from_tensors(a: &Tensor, b: &Tensor, scale: f64, dropout: f32) -> Result<Self> {
        let (r, _) = a.dims2()?;
        let (_, rb) = b.dims2()?;
        if r != rb {
            return Err(Error::LoraConfig(format!(
                "lora_A has rank {r} but lora_B has rank {rb}"
            )));
        }
        Ok(Self {
            a: Var::from_tensor(a)?,
            b: Var::from_tensor(b)?,
            scale,
            dropout,
        })
    }

    /// `scale * dropout(x) A^T B^T`. `rng` is `Some` in training (dropout on), `None` in eval.
    pub fn forward(&self, x: &Tensor, rng: Option<&mut SplitMix64>) -> Result<Tensor> {
        let x = match rng {
            Some(rng) if self.dropout > 0.0 => {
                let keep = 1.0 - self.dropout;
                let mask: Vec<f32> = (0..x.elem_count())
                    .map(|_| {
                        if rng.next_f32() < keep {
                            1.0 / keep
                        } else {
                            0.0
                        }
                    })
                    .collect();
                (x * Tensor::from_vec(mask, x.shape(), x.device())?.to_dtype(x.dtype())?)?
            }
            _ => x.clone(),
        };
        let h = x.broadcast_matmul(&self.a.as_tensor().t()?)?;
        Ok((h.broadcast_matmul(&self.b.as_tensor().t()?)? * self.scale)?)
    }
}

/// A frozen projection with an optional adapter.
#[derive(Debug, Clone)]
pub struct LoraLinear {
    pub base: FrozenLinear,
    pub lora: Option<Lora>,
}

impl LoraLinear {
    /// The base weight alone when there is no adapter (ops can then apply it themselves).
    pub fn frozen(&self) -> Option<&FrozenLinear> {
        match self.lora {
            None => Some(&self.base),
            Some(_) => None,
        }
    }

    /// `base(x) + lora(x)` as one fused op (see [`crate::fused_lora`]).
    pub fn forward(&self, x: &Tensor, rng: Option<&mut SplitMix64>) -> Result<Tensor> {
        match &self.lora {
            Some(lora) => Ok(crate::fused_lora::lora_linear(x, &self.base, lora, rng)?),
            None => Ok(self.base.forward(x)?),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_names_parse_both_ways_and_reject_unknown() {
        for t in TargetModule::ALL {
            assert_eq!(t.hf_name().parse::<TargetModule>().unwrap(), t);
        }
        assert_eq!("gate".parse::<TargetModule>().unwrap(), TargetModule::Gate);
        let err = "qkv".parse::<TargetModule>().unwrap_err().to_string();
        assert!(err.contains("q, k, v, o, gate, up or down"), "{err}");
    }

    #[test]
    fn fresh_adapter_is_a_no_op_and_a_is_peft_bounded() -> Result<()> {
        let dev = Device::Cpu;
        let cfg = LoraConfig {
            rank: 4,
            alpha: 8.0,
            dropout: 0.0,
            targets: vec![TargetModule::Q],
        };
        let lora = Lora::new(16, 6, &cfg, &mut SplitMix64::new(1), DType::F32, &dev)?;
        let a = lora.a.as_tensor().flatten_all()?.to_vec1::<f32>()?;
        assert!(a.iter().all(|v| v.abs() <= 0.25) && a.iter().any(|v| v.abs() > 0.2));
        let x = Tensor::ones((2, 3, 16), DType::F32, &dev)?;
        let y = lora.forward(&x, None)?;
        assert_eq!(y.dims(), &[2, 3, 6]);
        assert_eq!(y.abs()?.sum_all()?.to_scalar::<f32>()?, 0.0);
        Ok(())
    }

    #[test]
    fn dropout_zeroes_about_p_of_inputs_and_rescales() -> Result<()> {
        let dev = Device::Cpu;
        let cfg = LoraConfig {
            rank: 1,
            alpha: 1.0,
            dropout: 0.25,
            targets: vec![TargetModule::Q],
        };
        let mut lora = Lora::new(1000, 1, &cfg, &mut SplitMix64::new(1), DType::F32, &dev)?;
        // A = 1, B = 1: the output is the sum of the dropped-out inputs.
        lora.a = Var::from_tensor(&Tensor::ones((1, 1000), DType::F32, &dev)?)?;
        lora.b = Var::from_tensor(&Tensor::ones((1, 1), DType::F32, &dev)?)?;
        let x = Tensor::ones((1, 1000), DType::F32, &dev)?;
        let y = lora
            .forward(&x, Some(&mut SplitMix64::new(3)))?
            .flatten_all()?
            .to_vec1::<f32>()?[0];
        // Kept inputs count 1/0.75 each; expectation 1000, std about 18.
        assert!((y - 1000.0).abs() < 80.0, "{y}");
        assert_ne!(y, 1000.0, "dropout left the input untouched");
        let eval = lora.forward(&x, None)?.flatten_all()?.to_vec1::<f32>()?[0];
        assert_eq!(eval, 1000.0, "no dropout in eval");
        let again = lora
            .forward(&x, Some(&mut SplitMix64::new(3)))?
            .flatten_all()?
            .to_vec1::<f32>()?[0];
        assert_eq!(y, again);
        Ok(())
    }
}
