//! The llama forward pass (transformers' `LlamaForCausalLM`, and `Qwen2ForCausalLM`, which adds
//! q/k/v biases) with frozen base weights and LoRA.
//!
//! RMSNorm, rope, attention and SwiGLU are the fused ops of [`crate::fused`] (candle-nn's fused
//! ones have no backward, and the composed ones keep many full-size intermediates).

use crate::config::{Architecture, LlamaConfig};
use crate::error::{Error, Result};
use crate::frozen::FrozenLinear;
use crate::fused;
use crate::gguf::BaseWeights;
use crate::lora::{Lora, LoraConfig, LoraLinear, TargetModule};
use crate::loss::head_cross_entropy;
use candle_core::{DType, Device, Tensor, Var};
use ragtune_amx::Precision;
use ragtune_core::rng::SplitMix64;
use std::sync::Arc;

#[derive(Debug)]
struct Layer {
    attn_norm: Tensor,
    q: LoraLinear,
    k: LoraLinear,
    v: LoraLinear,
    /// Qwen2's q, k and v biases (frozen), added after the projections and their adapters.
    qkv_bias: Option<[Tensor; 3]>,
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
    /// from `seed` on `lora.targets` in every layer. Every product runs in the weights' own
    /// dtype (f32, or f64 for gradient checks).
    pub fn new(
        cfg: LlamaConfig,
        weights: &BaseWeights,
        lora: LoraConfig,
        seed: u64,
    ) -> Result<Self> {
        Self::with_precision(cfg, weights, lora, seed, Precision::F32)
    }

    /// As [`Llama::new`], with the frozen base weights' products in bf16 on AMX tiles where
    /// `precision` asks for it and the CPU has them ([`FrozenLinear::with_precision`]); the
    /// adapters, attention, norms, optimizer state and loss stay f32.
    pub fn with_precision(
        cfg: LlamaConfig,
        weights: &BaseWeights,
        lora: LoraConfig,
        seed: u64,
        precision: Precision,
    ) -> Result<Self> {
        lora.validate()?;
        let get = |name: String| {
            weights
                .get(&name)
                .map(|t| t.detach())
                .ok_or(Error::MissingWeight(name))
        };
        let mut rng = SplitMix64::new(seed);
        let dev = Device::Cpu;
        let mut layers = Vec::with_capacity(cfg.num_layers);
        for i in 0..cfg.num_layers {
            let mut linear = |part: &str, target: TargetModule| -> Result<LoraLinear> {
                let base = FrozenLinear::with_precision(
                    get(format!("blk.{i}.{part}.weight"))?,
                    precision,
                )?;
                // Fork per module so the init of one does not shift when targets change.
                let mut module_rng = rng.fork();
                let lora = if lora.targets.contains(&target) {
                    Some(Lora::new(
                        base.in_dim(),
                        base.out_dim(),
                        &lora,
                        &mut module_rng,
                        base.dtype(),
                        &dev,
                    )?)
                } else {
                    None
                };
                Ok(LoraLinear { base, lora })
            };
            let qkv_bias = if cfg.architecture.qkv_bias() {
                let bias = |part: &str| get(format!("blk.{i}.{part}.bias"));
                Some([bias("attn_q")?, bias("attn_k")?, bias("attn_v")?])
            } else {
                None
            };
            layers.push(Layer {
                qkv_bias,
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
            FrozenLinear::with_precision(embed.clone(), precision)?
        } else {
            FrozenLinear::with_precision(get("output.weight".into())?, precision)?
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

    /// Whether any frozen base product runs in bf16 on AMX tiles.
    pub fn base_in_bf16(&self) -> bool {
        self.lm_head.is_bf16()
            || self
                .layers
                .iter()
                .any(|l| TargetModule::ALL.iter().any(|&t| l.proj(t).base.is_bf16()))
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
    pub fn forward(&self, ids: &Tensor, rng: Option<&mut SplitMix64>) -> Result<Tensor> {
        let x = self.hidden(ids, None, rng)?;
        let x = fused::rms_norm(&x, &self.norm, self.cfg.rms_norm_eps)?;
        Ok(self.lm_head.forward(&x)?)
    }

    /// The training loss: mean masked cross-entropy of `targets` [b, t] (u32) given `inputs`
    /// [b, t] (u32), over the positions where `weights` [b, t] (f32) is non-zero; the same value
    /// as `masked_cross_entropy(&self.forward(inputs, rng)?, targets, weights)`.
    ///
    /// `segments` (u32 [b, t], non-decreasing along each row) marks packed rows: a row holds
    /// several examples one after another, each with its own segment id. Positions restart at 0
    /// and attention does not cross from one segment into another, so each example sees exactly
    /// what it would alone in its own row (trailing padding can be a segment of weight 0).
    ///
    /// Only the weighted positions go through the final norm and the vocabulary head, a chunk
    /// at a time (see [`head_cross_entropy`]): the [b, t, vocab] logits never exist.
    pub fn loss(
        &self,
        inputs: &Tensor,
        targets: &Tensor,
        weights: &Tensor,
        segments: Option<&Tensor>,
        rng: Option<&mut SplitMix64>,
    ) -> Result<Tensor> {
        let (b, t) = inputs.dims2()?;
        if targets.dims() != [b, t] || weights.dims() != [b, t] {
            return Err(Error::Batch(format!(
                "inputs {:?}, targets {:?} and weights {:?} must have the same [batch, seq] shape",
                inputs.shape(),
                targets.shape(),
                weights.shape()
            )));
        }
        let starts = segments.map(|s| segment_starts(s, b, t)).transpose()?;
        let x = self.hidden(inputs, starts.map(Arc::new), rng)?;
        let w = weights
            .to_dtype(DType::F64)?
            .flatten_all()?
            .to_vec1::<f64>()?;
        let all_targets = targets.flatten_all()?.to_vec1::<u32>()?;
        let keep: Vec<u32> = (0..(b * t) as u32)
            .filter(|&i| w[i as usize] != 0.0)
            .collect();
        if keep.is_empty() {
            return Err(Error::NoTrainableTokens);
        }
        let kept_targets: Vec<u32> = keep.iter().map(|&i| all_targets[i as usize]).collect();
        let kept_weights: Vec<f64> = keep.iter().map(|&i| w[i as usize]).collect();
        let rows = x
            .reshape((b * t, self.cfg.hidden_size))?
            .index_select(&Tensor::new(keep.as_slice(), inputs.device())?, 0)?;
        let rows = fused::rms_norm(&rows, &self.norm, self.cfg.rms_norm_eps)?;
        head_cross_entropy(&rows, &self.lm_head, &kept_targets, &kept_weights)
    }

    /// The hidden states [b, t, hidden] after the last layer, before the final norm. `starts`
    /// ([b * t]) is where each token's segment begins in its row; `None` means one segment.
    fn hidden(
        &self,
        ids: &Tensor,
        starts: Option<Arc<Vec<u32>>>,
        mut rng: Option<&mut SplitMix64>,
    ) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        let cfg = &self.cfg;
        let positions: Vec<u32> = match &starts {
            Some(s) => (0..b * t).map(|i| (i % t) as u32 - s[i]).collect(),
            None => (0..b * t).map(|i| (i % t) as u32).collect(),
        };
        let (cos, sin) = rope_tables(cfg, &positions, ids.device())?;
        let mut x =
            self.embed
                .index_select(&ids.flatten_all()?, 0)?
                .reshape((b, t, cfg.hidden_size))?;
        for layer in &self.layers {
            let h = fused::rms_norm(&x, &layer.attn_norm, cfg.rms_norm_eps)?;
            let att = self.attention(layer, &h, &cos, &sin, starts.clone(), rng.as_deref_mut())?;
            x = (x + att)?;
            let h = fused::rms_norm(&x, &layer.ffn_norm, cfg.rms_norm_eps)?;
            let gate = layer.gate.forward(&h, rng.as_deref_mut())?;
            let up = layer.up.forward(&h, rng.as_deref_mut())?;
            let down = match layer.down.frozen() {
                // A frozen down projection inside the op: its input is never kept.
                Some(down) => fused::silu_mul(&gate, &up, Some(down))?,
                None => {
                    let y = fused::silu_mul(&gate, &up, None)?;
                    layer.down.forward(&y, rng.as_deref_mut())?
                }
            };
            x = (x + down)?;
        }
        Ok(x)
    }

    fn attention(
        &self,
        layer: &Layer,
        h: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        starts: Option<Arc<Vec<u32>>>,
        mut rng: Option<&mut SplitMix64>,
    ) -> Result<Tensor> {
        let cfg = &self.cfg;
        let (b, t, _) = h.dims3()?;
        let hd = cfg.head_dim();
        // The projections' [b, t, heads * hd] is already the [b, t, heads, hd] layout the
        // fused attention reads: no transposes.
        let q = layer.q.forward(h, rng.as_deref_mut())?;
        let k = layer.k.forward(h, rng.as_deref_mut())?;
        let v = layer.v.forward(h, rng.as_deref_mut())?;
        let (q, k, v) = match &layer.qkv_bias {
            Some([bq, bk, bv]) => (
                q.broadcast_add(bq)?,
                k.broadcast_add(bk)?,
                v.broadcast_add(bv)?,
            ),
            None => (q, k, v),
        };
        let q = fused::rope(&q.reshape((b, t, cfg.num_heads, hd))?, cos, sin)?;
        let k = fused::rope(&k.reshape((b, t, cfg.num_kv_heads, hd))?, cos, sin)?;
        let v = v.reshape((b, t, cfg.num_kv_heads, hd))?;
        let scale = 1.0 / (hd as f64).sqrt();
        match layer.o.frozen() {
            // A frozen o projection inside the op: its input is never kept.
            Some(o) => Ok(fused::attention(&q, &k, &v, scale, starts, Some(o))?),
            None => {
                let y = fused::attention(&q, &k, &v, scale, starts, None)?;
                layer
                    .o
                    .forward(&y.reshape((b, t, cfg.num_heads * hd))?, rng)
            }
        }
    }
}

/// cos/sin [positions, head_dim/2] as transformers computes them (f32 inverse frequencies and
/// angles), in the model's dtype.
fn rope_tables(cfg: &LlamaConfig, positions: &[u32], dev: &Device) -> Result<(Tensor, Tensor)> {
    let half = cfg.head_dim() / 2;
    let inv: Vec<f32> = (0..half)
        .map(|i| 1.0 / (cfg.rope_theta as f32).powf(2.0 * i as f32 / (2 * half) as f32))
        .collect();
    let angles: Vec<f32> = positions
        .iter()
        .flat_map(|&p| inv.iter().map(move |&f| p as f32 * f))
        .collect();
    let n = positions.len();
    let cos = angles.iter().map(|a| a.cos()).collect::<Vec<_>>();
    let sin = angles.iter().map(|a| a.sin()).collect::<Vec<_>>();
    Ok((
        Tensor::from_vec(cos, (n, half), dev)?,
        Tensor::from_vec(sin, (n, half), dev)?,
    ))
}

/// For segment ids [b, t] (u32, non-decreasing along each row), the index in its row where each
/// token's segment begins, flattened to [b * t].
fn segment_starts(segments: &Tensor, b: usize, t: usize) -> Result<Vec<u32>> {
    if segments.dims() != [b, t] || segments.dtype() != DType::U32 {
        return Err(Error::Batch(format!(
            "segments must be u32 [{b}, {t}] like the inputs, got {:?} {:?}",
            segments.dtype(),
            segments.shape()
        )));
    }
    let rows = segments.to_vec2::<u32>()?;
    let mut starts = Vec::with_capacity(b * t);
    for (r, row) in rows.iter().enumerate() {
        let mut start = 0;
        for (i, &s) in row.iter().enumerate() {
            if i > 0 && s != row[i - 1] {
                if s < row[i - 1] {
                    return Err(Error::Batch(format!(
                        "segment ids must not decrease along a row (row {r}, position {i}: {} after {})",
                        s,
                        row[i - 1]
                    )));
                }
                start = i as u32;
            }
            starts.push(start);
        }
    }
    Ok(starts)
}

/// A tiny llama configuration (2 layers, hidden 32, GQA 4/2, vocab 64) for tests and examples,
/// shaped like the one tests/fixtures/make_peft_reference.py builds.
pub fn tiny_config() -> LlamaConfig {
    LlamaConfig {
        architecture: Architecture::Llama,
        vocab_size: 64,
        hidden_size: 32,
        intermediate_size: 64,
        num_layers: 2,
        num_heads: 4,
        num_kv_heads: 2,
        rms_norm_eps: 1e-5,
        rope_theta: 10_000.0,
        tie_embeddings: true,
    }
}

/// Random base weights for a configuration (GGUF names), for tests and experiments without a
/// model file. Norm weights are near 1 and projections scaled by 1/sqrt(in) so activations stay
/// in range.
pub fn random_base_weights(cfg: &LlamaConfig, seed: u64) -> Result<BaseWeights> {
    let mut rng = SplitMix64::new(seed);
    let dev = Device::Cpu;
    let mut w = BaseWeights::new();
    let (h, kv, ff) = (cfg.hidden_size, cfg.kv_dim(), cfg.intermediate_size);
    let mat = |rows: usize, cols: usize, rng: &mut SplitMix64| -> candle_core::Result<Tensor> {
        let s = 1.0 / (cols as f32).sqrt();
        Tensor::from_vec(rng.uniform(rows * cols, -s, s), (rows, cols), &dev)
    };
    let norm = |n: usize, rng: &mut SplitMix64| {
        Tensor::from_vec(rng.uniform(n, 0.9, 1.1), n, &Device::Cpu)
    };
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
        if cfg.architecture.qkv_bias() {
            for (part, rows) in [("attn_q", h), ("attn_k", kv), ("attn_v", kv)] {
                let b = Tensor::from_vec(rng.uniform(rows, -0.5, 0.5), rows, &dev)?;
                w.insert(format!("blk.{i}.{part}.bias"), b);
            }
        }
        w.insert(format!("blk.{i}.attn_norm.weight"), norm(h, &mut rng)?);
        w.insert(format!("blk.{i}.ffn_norm.weight"), norm(h, &mut rng)?);
    }
    Ok(w)
}
