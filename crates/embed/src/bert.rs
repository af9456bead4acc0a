//! BERT, the encoder of all-MiniLM-L6-v2 and most sentence-transformers models.
//!
//! Anatomy as in candle: a serde [`BertConfig`] mirroring config.json, blocks with
//! `load(vb, cfg)` whose names follow the checkpoint's tensors, weights held as candle
//! tensors. Two forward passes share those weights:
//!
//! - [`BertModel::forward_packed`], the fast one: the sequences of a batch are packed one
//!   after another with no padding, the matrix products go through `gemm` (the kernels
//!   behind candle's CPU matmul) with the bias pre-written into the output, and attention,
//!   bias + GELU and residual + layer norm are fused loops over reused buffers.
//! - [`BertModel::forward_padded`], candle's stock tensor ops on a padded batch with an
//!   attention mask, as candle-transformers runs BERT. Kept as an independent cross-check of
//!   the fused kernels and as the baseline of the benchmark.

use candle_core::{D, DType, Module, Storage, StorageRef, Tensor};
use candle_nn::VarBuilder;
use rayon::prelude::*;
use serde::Deserialize;
use std::ops::Range;

use crate::kernels::{self, Activation};

/// config.json of a BERT checkpoint (the fields the encoder needs).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    #[serde(default = "default_act")]
    pub hidden_act: String,
    pub max_position_embeddings: usize,
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: usize,
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    #[serde(default = "default_position_type")]
    pub position_embedding_type: String,
}

fn default_act() -> String {
    "gelu".into()
}
fn default_type_vocab() -> usize {
    2
}
fn default_eps() -> f64 {
    1e-12
}
fn default_position_type() -> String {
    "absolute".into()
}

impl BertConfig {
    /// Why this config cannot be run, if it cannot.
    pub(crate) fn unsupported(&self) -> Option<(&'static str, String)> {
        if self.position_embedding_type != "absolute" {
            return Some((
                "position_embedding_type",
                format!(
                    "`{}`; only `absolute` is implemented",
                    self.position_embedding_type
                ),
            ));
        }
        if self.activation().is_none() {
            return Some((
                "hidden_act",
                format!(
                    "`{}`; gelu, gelu_new, gelu_pytorch_tanh and relu are implemented",
                    self.hidden_act
                ),
            ));
        }
        if self.num_attention_heads == 0
            || !self.hidden_size.is_multiple_of(self.num_attention_heads)
        {
            return Some((
                "num_attention_heads",
                format!(
                    "{} heads do not divide hidden_size {}",
                    self.num_attention_heads, self.hidden_size
                ),
            ));
        }
        None
    }

    pub(crate) fn activation(&self) -> Option<Activation> {
        match self.hidden_act.as_str() {
            "gelu" => Some(Activation::Gelu),
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Some(Activation::GeluTanh),
            "relu" => Some(Activation::Relu),
            _ => None,
        }
    }

    fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }
}

/// A linear layer with its weight stored transposed, `[in, out]`, as the fast kernel reads it.
#[derive(Debug, Clone)]
struct Linear {
    weight_t: Tensor,
    bias: Tensor,
    /// The weight in AMX tile order, when the products run in bf16 (`BertModel::use_amx`).
    amx: Option<ragtune_amx::PackedBf16>,
}

impl Linear {
    fn load(vb: VarBuilder, inputs: usize, outputs: usize) -> candle_core::Result<Linear> {
        let weight = vb.get((outputs, inputs), "weight")?;
        let bias = vb.get(outputs, "bias")?;
        Ok(Linear {
            weight_t: weight.t()?.contiguous()?,
            bias,
            amx: None,
        })
    }

    /// Q, K and V as one `[hidden, 3·hidden]` product.
    fn load_qkv(vb: VarBuilder, hidden: usize) -> candle_core::Result<Linear> {
        let parts = ["query", "key", "value"].map(|name| Linear::load(vb.pp(name), hidden, hidden));
        let [q, k, v] = parts;
        let (q, k, v) = (q?, k?, v?);
        Ok(Linear {
            weight_t: Tensor::cat(&[&q.weight_t, &k.weight_t, &v.weight_t], 1)?,
            bias: Tensor::cat(&[&q.bias, &k.bias, &v.bias], 0)?,
            amx: None,
        })
    }

    /// `out = x · W + b`.
    fn forward_fast(&self, x: &[f32], rows: usize, out: &mut [f32], threads: usize) {
        let b = F32View::new(&self.bias);
        self.forward_fast_inner(x, rows, Some(b.get()), out, threads);
    }

    /// `out = x · W`: the caller adds the bias in its next pass.
    fn forward_fast_no_bias(&self, x: &[f32], rows: usize, out: &mut [f32], threads: usize) {
        self.forward_fast_inner(x, rows, None, out, threads);
    }

    fn forward_fast_inner(
        &self,
        x: &[f32],
        rows: usize,
        bias: Option<&[f32]>,
        out: &mut [f32],
        threads: usize,
    ) {
        if let Some(packed) = &self.amx {
            return ragtune_amx::linear(x, rows, packed, bias, out, threads);
        }
        let w = F32View::new(&self.weight_t);
        let k = self.weight_t.dims()[0];
        kernels::linear(x, rows, k, w.get(), bias, out, threads);
    }

    fn pack_for_amx(&mut self) {
        let (k, n) = self.weight_t.dims2().expect("a linear weight is a matrix");
        self.amx = ragtune_amx::PackedBf16::new(F32View::new(&self.weight_t).get(), k, n);
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        x.broadcast_matmul(&self.weight_t)?
            .broadcast_add(&self.bias)
    }
}

#[derive(Debug, Clone)]
struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f32,
}

impl LayerNorm {
    fn load(vb: VarBuilder, size: usize, eps: f64) -> candle_core::Result<LayerNorm> {
        Ok(LayerNorm {
            weight: vb.get(size, "weight")?,
            bias: vb.get(size, "bias")?,
            eps: eps as f32,
        })
    }

    /// `x = layer_norm(x + sublayer + linear.bias)`, where `sublayer` is the output of
    /// `linear` without its bias; rows split across the pool when `threads > 1`.
    fn add_norm_fast(&self, x: &mut [f32], sublayer: &[f32], linear: &Linear, threads: usize) {
        let w = F32View::new(&self.weight);
        let b = F32View::new(&self.bias);
        let sb = F32View::new(&linear.bias);
        let (w, b, sb) = (w.get(), b.get(), sb.get());
        let width = w.len();
        if threads > 1 {
            let rows = rows_per_task(x.len() / width, threads);
            x.par_chunks_mut(rows * width)
                .zip(sublayer.par_chunks(rows * width))
                .for_each(|(x, s)| kernels::add_layer_norm(x, s, sb, w, b, self.eps));
        } else {
            kernels::add_layer_norm(x, sublayer, sb, w, b, self.eps);
        }
    }
}

impl Module for LayerNorm {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        candle_nn::ops::layer_norm(x, &self.weight, &self.bias, self.eps)
    }
}

#[derive(Debug, Clone)]
struct Embeddings {
    word: Tensor,
    position: Tensor,
    token_type: Tensor,
    layer_norm: LayerNorm,
}

impl Embeddings {
    fn load(vb: VarBuilder, cfg: &BertConfig) -> candle_core::Result<Embeddings> {
        let h = cfg.hidden_size;
        Ok(Embeddings {
            word: vb.get((cfg.vocab_size, h), "word_embeddings.weight")?,
            position: vb.get(
                (cfg.max_position_embeddings, h),
                "position_embeddings.weight",
            )?,
            token_type: vb.get((cfg.type_vocab_size, h), "token_type_embeddings.weight")?,
            layer_norm: LayerNorm::load(vb.pp("LayerNorm"), h, cfg.layer_norm_eps)?,
        })
    }
}

#[derive(Debug, Clone)]
struct Layer {
    qkv: Linear,
    attention_out: Linear,
    attention_norm: LayerNorm,
    intermediate: Linear,
    output: Linear,
    output_norm: LayerNorm,
}

impl Layer {
    fn load(vb: VarBuilder, cfg: &BertConfig) -> candle_core::Result<Layer> {
        let (h, i, eps) = (cfg.hidden_size, cfg.intermediate_size, cfg.layer_norm_eps);
        let attention = vb.pp("attention");
        Ok(Layer {
            qkv: Linear::load_qkv(attention.pp("self"), h)?,
            attention_out: Linear::load(attention.pp("output.dense"), h, h)?,
            attention_norm: LayerNorm::load(attention.pp("output.LayerNorm"), h, eps)?,
            intermediate: Linear::load(vb.pp("intermediate.dense"), h, i)?,
            output: Linear::load(vb.pp("output.dense"), i, h)?,
            output_norm: LayerNorm::load(vb.pp("output.LayerNorm"), h, eps)?,
        })
    }
}

/// The BERT encoder (no pooler: sentence-transformers pools the token vectors itself).
#[derive(Debug, Clone)]
pub struct BertModel {
    cfg: BertConfig,
    activation: Activation,
    embeddings: Embeddings,
    layers: Vec<Layer>,
}

/// A batch of token sequences laid end to end, without padding.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PackedBatch {
    pub ids: Vec<u32>,
    pub type_ids: Vec<u32>,
    /// Length of each sequence, in order; they sum to `ids.len()`.
    pub lens: Vec<usize>,
}

impl PackedBatch {
    pub fn push(&mut self, ids: &[u32], type_ids: &[u32]) {
        self.ids.extend_from_slice(ids);
        self.type_ids.extend_from_slice(type_ids);
        self.lens.push(ids.len());
    }

    /// Row range of each sequence.
    pub fn ranges(&self) -> impl Iterator<Item = Range<usize>> + '_ {
        self.lens.iter().scan(0, |start, &len| {
            let r = *start..*start + len;
            *start += len;
            Some(r)
        })
    }
}

/// Buffers of one forward pass, `rows` tokens deep.
struct Work {
    qkv: Vec<f32>,
    ctx: Vec<f32>,
    tmp: Vec<f32>,
    inter: Vec<f32>,
}

impl BertModel {
    /// Loads the encoder from `vb`, whose root holds `embeddings.*` and `encoder.*`.
    pub fn load(vb: VarBuilder, cfg: &BertConfig) -> candle_core::Result<BertModel> {
        let Some(activation) = cfg.activation() else {
            candle_core::bail!("unsupported hidden_act `{}`", cfg.hidden_act)
        };
        let embeddings = Embeddings::load(vb.pp("embeddings"), cfg)?;
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| Layer::load(vb.pp(format!("encoder.layer.{i}")), cfg))
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(BertModel {
            cfg: cfg.clone(),
            activation,
            embeddings,
            layers,
        })
    }

    pub fn config(&self) -> &BertConfig {
        &self.cfg
    }

    /// Runs the linear layers' products of the fast path on AMX tiles in bf16 (f32
    /// accumulation) when this CPU has them; returns whether it does. Attention, layer norms
    /// and activations stay f32.
    pub fn use_amx(&mut self) -> bool {
        if !ragtune_amx::available() {
            return false;
        }
        for layer in &mut self.layers {
            for linear in [
                &mut layer.qkv,
                &mut layer.attention_out,
                &mut layer.intermediate,
                &mut layer.output,
            ] {
                linear.pack_for_amx();
            }
        }
        self.layers.iter().all(|l| l.qkv.amx.is_some())
    }

    /// Token vectors of a packed batch, `[tokens, hidden]` row-major.
    ///
    /// `threads > 1` splits every step across the current rayon pool; with 1 everything
    /// runs on the calling thread (to run several batches side by side).
    pub fn forward_packed(&self, batch: &PackedBatch, threads: usize) -> Vec<f32> {
        let cfg = &self.cfg;
        let (h, rows) = (cfg.hidden_size, batch.ids.len());
        let mut x = self.embed_packed(batch);
        let mut work = Work {
            qkv: vec![0.0; rows * 3 * h],
            ctx: vec![0.0; rows * h],
            tmp: vec![0.0; rows * h],
            inter: vec![0.0; rows * cfg.intermediate_size],
        };
        for layer in &self.layers {
            self.layer_packed(layer, &mut x, &mut work, batch, threads);
        }
        x
    }

    fn embed_packed(&self, batch: &PackedBatch) -> Vec<f32> {
        let h = self.cfg.hidden_size;
        let e = &self.embeddings;
        let (word, pos, types) = (
            F32View::new(&e.word),
            F32View::new(&e.position),
            F32View::new(&e.token_type),
        );
        let (lw, lb) = (
            F32View::new(&e.layer_norm.weight),
            F32View::new(&e.layer_norm.bias),
        );
        let (word, pos, types, lw, lb) = (word.get(), pos.get(), types.get(), lw.get(), lb.get());
        let mut x = vec![0.0; batch.ids.len() * h];
        let mut rows = x.chunks_exact_mut(h);
        for range in batch.ranges() {
            for (p, t) in range.enumerate() {
                let row = rows.next().expect("one row per token");
                let (id, tt) = (batch.ids[t] as usize, batch.type_ids[t] as usize);
                let w = &word[id * h..][..h];
                let ps = &pos[p * h..][..h];
                let ty = &types[tt * h..][..h];
                for (((o, a), b), c) in row.iter_mut().zip(w).zip(ps).zip(ty) {
                    *o = a + b + c;
                }
                kernels::layer_norm_row(row, lw, lb, e.layer_norm.eps);
            }
        }
        x
    }

    fn layer_packed(
        &self,
        layer: &Layer,
        x: &mut [f32],
        work: &mut Work,
        batch: &PackedBatch,
        threads: usize,
    ) {
        let cfg = &self.cfg;
        let rows = batch.ids.len();
        let (heads, hd) = (cfg.num_attention_heads, cfg.head_dim());
        layer.qkv.forward_fast(x, rows, &mut work.qkv, threads);
        self.attention_packed(&work.qkv, &mut work.ctx, batch, threads, (heads, hd));
        layer
            .attention_out
            .forward_fast_no_bias(&work.ctx, rows, &mut work.tmp, threads);
        layer
            .attention_norm
            .add_norm_fast(x, &work.tmp, &layer.attention_out, threads);
        layer
            .intermediate
            .forward_fast_no_bias(x, rows, &mut work.inter, threads);
        let bias = F32View::new(&layer.intermediate.bias);
        let bias = bias.get();
        if threads > 1 {
            let width = cfg.intermediate_size;
            work.inter
                .par_chunks_mut(rows_per_task(rows, threads) * width)
                .for_each(|c| kernels::bias_activate(c, bias, self.activation));
        } else {
            kernels::bias_activate(&mut work.inter, bias, self.activation);
        }
        layer
            .output
            .forward_fast_no_bias(&work.inter, rows, &mut work.tmp, threads);
        layer
            .output_norm
            .add_norm_fast(x, &work.tmp, &layer.output, threads);
    }

    fn attention_packed(
        &self,
        qkv: &[f32],
        ctx: &mut [f32],
        batch: &PackedBatch,
        threads: usize,
        (heads, hd): (usize, usize),
    ) {
        let h = heads * hd;
        // Split the buffers into one piece per sequence.
        let mut pieces = Vec::with_capacity(batch.lens.len());
        let (mut q_rest, mut c_rest) = (qkv, ctx);
        for &len in &batch.lens {
            let (q, qr) = q_rest.split_at(len * 3 * h);
            let (c, cr) = c_rest.split_at_mut(len * h);
            pieces.push((q, c, len));
            q_rest = qr;
            c_rest = cr;
        }
        if threads > 1 {
            pieces
                .into_par_iter()
                .for_each_init(Vec::new, |scratch, (q, c, len)| {
                    kernels::attention(q, len, heads, hd, c, scratch)
                });
        } else {
            let mut scratch = Vec::new();
            for (q, c, len) in pieces {
                kernels::attention(q, len, heads, hd, c, &mut scratch);
            }
        }
    }

    /// Token vectors of a padded batch with candle's stock ops: `ids`, `type_ids` and
    /// `mask` are `[batch, len]` (`mask` 1 for tokens, 0 for padding); returns
    /// `[batch, len, hidden]`.
    pub fn forward_padded(
        &self,
        ids: &Tensor,
        type_ids: &Tensor,
        mask: &Tensor,
    ) -> candle_core::Result<Tensor> {
        let cfg = &self.cfg;
        let (b, len) = ids.dims2()?;
        let (h, heads, hd) = (cfg.hidden_size, cfg.num_attention_heads, cfg.head_dim());
        let e = &self.embeddings;
        let words = e.word.index_select(&ids.flatten_all()?, 0)?;
        let types = e.token_type.index_select(&type_ids.flatten_all()?, 0)?;
        let positions = e.position.narrow(0, 0, len)?;
        let x = (words + types)?
            .reshape((b, len, h))?
            .broadcast_add(&positions)?;
        let mut x = e.layer_norm.forward(&x)?;
        // 0 where attended, a large negative number on padding, broadcast over heads and
        // queries.
        let mask_bias = ((mask.to_dtype(DType::F32)? - 1.0)? * 1e30)?.reshape((b, 1, 1, len))?;
        for layer in &self.layers {
            let qkv = layer.qkv.forward(&x)?;
            let split = |i: usize| -> candle_core::Result<Tensor> {
                qkv.narrow(D::Minus1, i * h, h)?
                    .reshape((b, len, heads, hd))?
                    .transpose(1, 2)?
                    .contiguous()
            };
            let (q, k, v) = (split(0)?, split(1)?, split(2)?);
            let scores = (q.matmul(&k.t()?)? / (hd as f64).sqrt())?.broadcast_add(&mask_bias)?;
            let probs = candle_nn::ops::softmax_last_dim(&scores)?;
            let ctx = probs.matmul(&v)?.transpose(1, 2)?.reshape((b, len, h))?;
            let attn = layer.attention_out.forward(&ctx)?;
            x = layer.attention_norm.forward(&(attn + &x)?)?;
            let inter = layer.intermediate.forward(&x)?;
            let inter = match self.activation {
                Activation::Gelu => inter.gelu_erf()?,
                Activation::GeluTanh => inter.gelu()?,
                Activation::Relu => inter.relu()?,
            };
            let out = layer.output.forward(&inter)?;
            x = layer.output_norm.forward(&(out + &x)?)?;
        }
        Ok(x)
    }
}

/// Rows per rayon task: a few tasks per thread, at least 8 rows each.
fn rows_per_task(rows: usize, threads: usize) -> usize {
    rows.div_ceil(threads * 4).max(8)
}

/// A read-only view of a contiguous f32 CPU tensor. Every tensor of the model is created by
/// `load` as contiguous f32 on the CPU, so the checks in `new` cannot fail after loading.
struct F32View<'a> {
    storage: StorageRef<'a>,
    range: Range<usize>,
}

impl<'a> F32View<'a> {
    fn new(t: &'a Tensor) -> F32View<'a> {
        let (storage, layout) = t.storage_and_layout();
        let (start, end) = layout
            .contiguous_offsets()
            .expect("model tensors are contiguous");
        assert_eq!(t.dtype(), DType::F32, "model tensors are f32");
        assert!(
            matches!(*storage, Storage::Cpu(_)),
            "model tensors live on the CPU"
        );
        F32View {
            storage,
            range: start..end,
        }
    }

    fn get(&self) -> &[f32] {
        match &*self.storage {
            Storage::Cpu(cpu) => &cpu.as_slice::<f32>().expect("f32 storage")[self.range.clone()],
            _ => unreachable!("checked in F32View::new"),
        }
    }
}
