//! The llama forward pass (transformers' `LlamaForCausalLM`) with frozen base weights and LoRA.
//!
//! Only ops with a candle backward are used: `rms_norm_slow`, `rope_slow` and the composed
//! `softmax` (candle-nn's fused `rms_norm`, `rope` and `softmax_last_dim` have no backward).

use crate::config::LlamaConfig;
use crate::error::{Error, Result};
use crate::frozen::FrozenLinear;
use crate::gguf::BaseWeights;
use crate::lora::{Lora, LoraConfig, LoraLinear, TargetModule};
use crate::rng::Rng;
use candle_core::{D, DType, Device, Tensor, Var};
use candle_nn::ops::{rms_norm_slow, softmax};
use candle_nn::rotary_emb::rope_slow;

#[derive(Debug)]
struct Layer {
    attn_norm: Tensor,
    q: LoraLinear,
    k: LoraLinear,
    v: LoraLinear,
    o: LoraLinear,
    ffn_norm: Tensor,
    gate: LoraLinear,
    up: LoraLinear,
    down: LoraLinear,
}

impl Layer {
    fn proj(&self, t: TargetModule) -> &LoraLinear {
        match t {
            TargetModule::Q => &self.q,
            TargetModule::K => &self.k,
            TargetModule::V => &self.v,
            TargetModule::O => &self.o,
            TargetModule::Gate => &self.gate,
            TargetModule::Up => &self.up,
            TargetModule::Down => &self.down,
        }
    }
}

#[derive(Debug)]
pub struct Llama {
    cfg: LlamaConfig,
    lora_cfg: LoraConfig,
    embed: Tensor,
    layers: Vec<Layer>,
    norm: Tensor,
    lm_head: FrozenLinear,
}

impl Llama {
    /// Builds the model over `weights` (GGUF names, HF layout) and adds fresh adapters drawn
    /// from `seed` on `lora.targets` in every layer.
    pub fn new(
        cfg: LlamaConfig,
        weights: &BaseWeights,
        lora: LoraConfig,
        seed: u64,
    ) -> Result<Self> {
        lora.validate()?;
        let get = |name: String| {
            weights
                .get(&name)
                .map(|t| t.detach())
                .ok_or(Error::MissingWeight(name))
        };
        let mut rng = Rng::new(seed);
        let dev = Device::Cpu;
        let mut layers = Vec::with_capacity(cfg.num_layers);
        for i in 0..cfg.num_layers {
            let mut linear = |part: &str, target: TargetModule| -> Result<LoraLinear> {
                let base = FrozenLinear::new(get(format!("blk.{i}.{part}.weight"))?)?;
                // Fork per module so the init of one does not shift when targets change.
                let mut module_rng = rng.fork();
                let lora = if lora.targets.contains(&target) {
                    Some(Lora::new(
                        base.in_dim(),
                        base.out_dim(),
                        &lora,
                        &mut module_rng,
                        base.weight().dtype(),
                        &dev,
                    )?)
                } else {
                    None
                };
                Ok(LoraLinear { base, lora })
            };
            layers.push(Layer {
                q: linear("attn_q", TargetModule::Q)?,
                k: linear("attn_k", TargetModule::K)?,
                v: linear("attn_v", TargetModule::V)?,
                o: linear("attn_output", TargetModule::O)?,
                gate: linear("ffn_gate", TargetModule::Gate)?,
                up: linear("ffn_up", TargetModule::Up)?,
                down: linear("ffn_down", TargetModule::Down)?,
                attn_norm: get(format!("blk.{i}.attn_norm.weight"))?,
                ffn_norm: get(format!("blk.{i}.ffn_norm.weight"))?,
            });
        }
        let embed = get("token_embd.weight".into())?;
        let lm_head = if cfg.tie_embeddings {
            FrozenLinear::new(embed.clone())?
        } else {
            FrozenLinear::new(get("output.weight".into())?)?
        };
        Ok(Self {
            norm: get("output_norm.weight".into())?,
            cfg,
            lora_cfg: lora,
            embed,
            layers,
            lm_head,
        })
    }

    pub fn config(&self) -> &LlamaConfig {
        &self.cfg
    }

    pub fn lora_config(&self) -> &LoraConfig {
        &self.lora_cfg
    }

    /// Every adapter with its layer index and module, layer-major, in `TargetModule::ALL` order.
    pub fn adapters(&self) -> Vec<(usize, TargetModule, &Lora)> {
        let mut out = Vec::new();
        for (i, layer) in self.layers.iter().enumerate() {
            for t in TargetModule::ALL {
                if let Some(lora) = &layer.proj(t).lora {
                    out.push((i, t, lora));
                }
            }
        }
        out
    }

    /// The trainable variables (A and B of every adapter).
    pub fn trainable_vars(&self) -> Vec<Var> {
        self.adapters()
            .into_iter()
            .flat_map(|(_, _, l)| [l.a.clone(), l.b.clone()])
            .collect()
    }

    /// Logits [batch, seq, vocab] for token ids [batch, seq] (u32). `rng` is `Some` while
    /// training (LoRA dropout on) and `None` for evaluation. Computes in the base weights' dtype
    /// (f32; f64 base weights give an f64 model for gradient checks).
    /// Mean masked cross-entropy of `targets` given `inputs` (see `loss::masked_cross_entropy`).
    pub fn loss(
        &self,
        inputs: &Tensor,
        targets: &Tensor,
        weights: &Tensor,
        segments: Option<&Tensor>,
        rng: Option<&mut Rng>,
    ) -> Result<Tensor> {
        if segments.is_some() {
            return Err(Error::Options(
                "packed rows (--pack) are not supported by this forward pass yet".into(),
            ));
        }
        crate::loss::masked_cross_entropy(&self.forward(inputs, rng)?, targets, weights)
    }

    pub fn forward(&self, ids: &Tensor, mut rng: Option<&mut Rng>) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        let cfg = &self.cfg;
        let dtype = self.embed.dtype();
        let (cos, sin) = rope_tables(cfg, t, ids.device())?;
        let (cos, sin) = (cos.to_dtype(dtype)?, sin.to_dtype(dtype)?);
        let mask = causal_mask(t, ids.device())?.to_dtype(dtype)?;
        let mut x =
            self.embed
                .index_select(&ids.flatten_all()?, 0)?
                .reshape((b, t, cfg.hidden_size))?;
        for layer in &self.layers {
            let h = rms_norm_slow(&x, &layer.attn_norm, cfg.rms_norm_eps as f32)?;
            let att = self.attention(layer, &h, &cos, &sin, &mask, rng.as_deref_mut())?;
            x = (x + att)?;
            let h = rms_norm_slow(&x, &layer.ffn_norm, cfg.rms_norm_eps as f32)?;
            let gate = layer.gate.forward(&h, rng.as_deref_mut())?.silu()?;
            let up = layer.up.forward(&h, rng.as_deref_mut())?;
            x = (x + layer.down.forward(&(gate * up)?, rng.as_deref_mut())?)?;
        }
        let x = rms_norm_slow(&x, &self.norm, cfg.rms_norm_eps as f32)?;
        Ok(self.lm_head.forward(&x)?)
    }

    fn attention(
        &self,
        layer: &Layer,
        h: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        mask: &Tensor,
        mut rng: Option<&mut Rng>,
    ) -> Result<Tensor> {
        let cfg = &self.cfg;
        let (b, t, _) = h.dims3()?;
        let hd = cfg.head_dim();
        let heads = |y: Tensor, n: usize| -> candle_core::Result<Tensor> {
            y.reshape((b, t, n, hd))?.transpose(1, 2)?.contiguous()
        };
        let q = heads(layer.q.forward(h, rng.as_deref_mut())?, cfg.num_heads)?;
        let k = heads(layer.k.forward(h, rng.as_deref_mut())?, cfg.num_kv_heads)?;
        let v = heads(layer.v.forward(h, rng.as_deref_mut())?, cfg.num_kv_heads)?;
        let q = rope_slow(&q, cos, sin)?;
        let k = repeat_kv(rope_slow(&k, cos, sin)?, cfg.num_heads / cfg.num_kv_heads)?;
        let v = repeat_kv(v, cfg.num_heads / cfg.num_kv_heads)?;
        let scores = (q.matmul(&k.t()?)? * (1.0 / (hd as f64).sqrt()))?.broadcast_add(mask)?;
        let y = softmax(&scores, D::Minus1)?.matmul(&v)?;
        let y = y.transpose(1, 2)?.reshape((b, t, cfg.num_heads * hd))?;
        layer.o.forward(&y, rng)
    }
}

/// cos/sin [seq, head_dim/2] as transformers computes them (f32 inverse frequencies).
fn rope_tables(cfg: &LlamaConfig, t: usize, dev: &Device) -> Result<(Tensor, Tensor)> {
    let hd = cfg.head_dim();
    let inv: Vec<f32> = (0..hd / 2)
        .map(|i| 1.0 / (cfg.rope_theta as f32).powf(2.0 * i as f32 / hd as f32))
        .collect();
    let inv = Tensor::from_vec(inv, (1, hd / 2), dev)?;
    let pos = Tensor::arange(0u32, t as u32, dev)?
        .to_dtype(DType::F32)?
        .reshape((t, 1))?;
    let freqs = pos.broadcast_mul(&inv)?;
    Ok((freqs.cos()?, freqs.sin()?))
}

fn causal_mask(t: usize, dev: &Device) -> Result<Tensor> {
    let m: Vec<f32> = (0..t * t)
        .map(|i| {
            if i % t > i / t {
                f32::NEG_INFINITY
            } else {
                0.0
            }
        })
        .collect();
    Ok(Tensor::from_vec(m, (t, t), dev)?)
}

/// [b, kv, t, d] -> [b, kv * n, t, d], query head j reading kv head j / n as transformers does.
fn repeat_kv(x: Tensor, n: usize) -> candle_core::Result<Tensor> {
    if n == 1 {
        return Ok(x);
    }
    let (b, kv, t, d) = x.dims4()?;
    x.unsqueeze(2)?
        .expand((b, kv, n, t, d))?
        .reshape((b, kv * n, t, d))
}

/// Random base weights for a configuration (GGUF names), for tests and experiments without a
/// model file. Norm weights are near 1 and projections scaled by 1/sqrt(in) so activations stay
/// in range.
pub fn random_base_weights(cfg: &LlamaConfig, seed: u64) -> Result<BaseWeights> {
    let mut rng = Rng::new(seed);
    let dev = Device::Cpu;
    let mut w = BaseWeights::new();
    let (h, kv, ff) = (cfg.hidden_size, cfg.kv_dim(), cfg.intermediate_size);
    let mat = |rows: usize, cols: usize, rng: &mut Rng| -> candle_core::Result<Tensor> {
        let s = 1.0 / (cols as f32).sqrt();
        Tensor::from_vec(rng.uniform(rows * cols, -s, s), (rows, cols), &dev)
    };
    let norm =
        |n: usize, rng: &mut Rng| Tensor::from_vec(rng.uniform(n, 0.9, 1.1), n, &Device::Cpu);
    w.insert(
        "token_embd.weight".into(),
        mat(cfg.vocab_size, h, &mut rng)?,
    );
    w.insert("output_norm.weight".into(), norm(h, &mut rng)?);
    if !cfg.tie_embeddings {
        w.insert("output.weight".into(), mat(cfg.vocab_size, h, &mut rng)?);
    }
    for i in 0..cfg.num_layers {
        for (part, rows, cols) in [
            ("attn_q", h, h),
            ("attn_k", kv, h),
            ("attn_v", kv, h),
            ("attn_output", h, h),
            ("ffn_gate", ff, h),
            ("ffn_up", ff, h),
            ("ffn_down", h, ff),
        ] {
            w.insert(format!("blk.{i}.{part}.weight"), mat(rows, cols, &mut rng)?);
        }
        w.insert(format!("blk.{i}.attn_norm.weight"), norm(h, &mut rng)?);
        w.insert(format!("blk.{i}.ffn_norm.weight"), norm(h, &mut rng)?);
    }
    Ok(w)
}
