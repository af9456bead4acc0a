//! [`SentenceEmbedder`]: a sentence-transformers model folder behind the core `Embedder`
//! and `TokenCounter` seams.

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use ragtune_core::{EmbedError, Embedder, TokenCounter};
use rayon::prelude::*;
use std::path::Path;

use crate::batch;
use crate::bert::{BertConfig, BertModel, PackedBatch};
use crate::error::{Error, Result};
use crate::folder::{ModelFolder, Pooling, read_json};
use crate::kernels;
use crate::tokenize::{Encoded, TextTokenizer};

/// Batches below this many tokens are not split further, nor run on several threads.
const MIN_BATCH_TOKENS: usize = 64;

/// Which forward pass runs the encoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Kernels {
    /// Packed batches (no padding) through fused CPU kernels. The default.
    #[default]
    Fused,
    /// Padded batches through candle's stock tensor ops (matmul, softmax, layer norm), as
    /// candle-transformers runs BERT: slower, kept as a cross-check and benchmark baseline.
    CandleOps,
}

/// How the work of one `embed` call is spread over the threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Parallelism {
    /// `Batches`, with batches made smaller when there are few texts so that every thread
    /// gets one; `WithinOps` for a text or two.
    #[default]
    Auto,
    /// Each thread runs whole batches on its own (no synchronisation inside a batch).
    Batches,
    /// Batches run one after another, each matrix product and loop split across threads.
    WithinOps,
}

/// The number format of the encoder's matrix products (the fast path's linear layers). With
/// `Auto` on a CPU with AMX, vectors differ from f32 ones in the third decimal at most (cosine
/// above 0.9999 with sentence-transformers' on the reference texts; SciFact nDCG@10
/// unchanged), so a knowledge base can mix them; `F32` matches sentence-transformers to
/// within 1e-4 on every CPU.
pub use ragtune_amx::Precision;

/// How a [`SentenceEmbedder`] runs. `Default` is what ragtune uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbedOptions {
    /// Worker threads; 0 means one per available core.
    pub threads: usize,
    /// Tokens per batch (packed tokens for `Fused`, padded tokens for `CandleOps`).
    pub batch_tokens: usize,
    /// Sort texts by token length before batching (the output keeps the input order).
    pub sort_by_length: bool,
    pub kernels: Kernels,
    pub parallelism: Parallelism,
    pub precision: Precision,
    /// The name stored with the vectors; defaults to the folder's name.
    pub name: Option<String>,
}

impl Default for EmbedOptions {
    fn default() -> Self {
        EmbedOptions {
            threads: 0,
            batch_tokens: 512,
            sort_by_length: true,
            kernels: Kernels::Fused,
            parallelism: Parallelism::Auto,
            precision: Precision::Auto,
            name: None,
        }
    }
}

/// The encoder architectures a model folder can hold. MPNet (all-mpnet-base-v2) would join
/// here with its own `load` and forward pass.
#[derive(Debug, Clone)]
enum Encoder {
    Bert(BertModel),
}

impl Encoder {
    fn load(folder: &ModelFolder) -> Result<Encoder> {
        match folder.model_type.as_str() {
            "bert" => {
                let cfg: BertConfig = read_json(&folder.config_path)?;
                if let Some((what, detail)) = cfg.unsupported() {
                    return Err(Error::UnsupportedConfig {
                        path: folder.config_path.clone(),
                        what,
                        detail,
                    });
                }
                if folder.max_seq_length > cfg.max_position_embeddings {
                    return Err(Error::UnsupportedConfig {
                        path: folder.config_path.clone(),
                        what: "max_seq_length",
                        detail: format!(
                            "{} tokens but only {} position embeddings",
                            folder.max_seq_length, cfg.max_position_embeddings
                        ),
                    });
                }
                let weights = |e: candle_core::Error| Error::Weights {
                    path: folder.weights_path.clone(),
                    message: e.to_string(),
                };
                let data = fs_err::read(&folder.weights_path)?;
                let vb = VarBuilder::from_buffered_safetensors(data, DType::F32, &Device::Cpu)
                    .map_err(weights)?;
                // Checkpoints saved from a task model prefix the encoder with `bert.`.
                let vb = match vb.contains_tensor("embeddings.word_embeddings.weight") {
                    false if vb.contains_tensor("bert.embeddings.word_embeddings.weight") => {
                        vb.pp("bert")
                    }
                    _ => vb,
                };
                Ok(Encoder::Bert(BertModel::load(vb, &cfg).map_err(weights)?))
            }
            other => Err(Error::UnsupportedModel {
                path: folder.config_path.clone(),
                model_type: other.to_string(),
            }),
        }
    }

    fn use_amx(&mut self) -> bool {
        match self {
            Encoder::Bert(m) => m.use_amx(),
        }
    }

    fn hidden_size(&self) -> usize {
        match self {
            Encoder::Bert(m) => m.config().hidden_size,
        }
    }

    fn vocab_size(&self) -> usize {
        match self {
            Encoder::Bert(m) => m.config().vocab_size,
        }
    }

    fn type_vocab_size(&self) -> usize {
        match self {
            Encoder::Bert(m) => m.config().type_vocab_size,
        }
    }

    fn forward_packed(&self, batch: &PackedBatch, threads: usize) -> Vec<f32> {
        match self {
            Encoder::Bert(m) => m.forward_packed(batch, threads),
        }
    }

    fn forward_padded(
        &self,
        ids: &Tensor,
        type_ids: &Tensor,
        mask: &Tensor,
    ) -> candle_core::Result<Tensor> {
        match self {
            Encoder::Bert(m) => m.forward_padded(ids, type_ids, mask),
        }
    }
}

/// A sentence-transformers model (config.json, model.safetensors, tokenizer.json, pooling
/// config) that turns texts into unit-length vectors.
///
/// Vectors are always L2-normalised, so a dot product is the cosine similarity. Texts longer
/// than the model's `max_seq_length` (256 tokens for all-MiniLM-L6-v2, `[CLS]` and `[SEP]`
/// included) are cut, as sentence-transformers does.
pub struct SentenceEmbedder {
    name: String,
    folder: ModelFolder,
    tokenizer: TextTokenizer,
    encoder: Encoder,
    options: EmbedOptions,
    threads: usize,
    pool: rayon::ThreadPool,
}

impl std::fmt::Debug for SentenceEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SentenceEmbedder")
            .field("name", &self.name)
            .field("dir", &self.folder.dir)
            .field("dimension", &self.dimension())
            .field("max_seq_length", &self.folder.max_seq_length)
            .field("threads", &self.threads)
            .finish_non_exhaustive()
    }
}

impl SentenceEmbedder {
    /// Loads a model folder with the default options (all cores).
    pub fn load(dir: impl AsRef<Path>) -> Result<SentenceEmbedder> {
        SentenceEmbedder::load_with(dir, &EmbedOptions::default())
    }

    /// Loads a model folder. Fails with an error naming the folder and the missing file, or
    /// the unsupported `model_type`, before reading any weights.
    pub fn load_with(dir: impl AsRef<Path>, options: &EmbedOptions) -> Result<SentenceEmbedder> {
        let folder = ModelFolder::open(dir)?;
        // Check the architecture before the (large) weights are read.
        if folder.model_type != "bert" {
            return Err(Error::UnsupportedModel {
                path: folder.config_path.clone(),
                model_type: folder.model_type.clone(),
            });
        }
        let tokenizer = TextTokenizer::load(
            &folder.tokenizer_path,
            folder.max_seq_length,
            folder.lowercase,
        )?;
        let mut encoder = Encoder::load(&folder)?;
        if options.precision == Precision::Auto && options.kernels == Kernels::Fused {
            encoder.use_amx();
        }
        if tokenizer.vocab_size() > encoder.vocab_size() {
            return Err(Error::UnsupportedConfig {
                path: folder.tokenizer_path.clone(),
                what: "this tokenizer",
                detail: format!(
                    "its {} tokens do not fit the model's vocab_size {}",
                    tokenizer.vocab_size(),
                    encoder.vocab_size()
                ),
            });
        }
        let threads = match options.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("ragtune-embed-{i}"))
            .build()
            .map_err(|e| Error::Threads {
                threads,
                message: e.to_string(),
            })?;
        let name = options.name.clone().unwrap_or_else(|| {
            folder.dir.file_name().map_or_else(
                || folder.dir.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            )
        });
        Ok(SentenceEmbedder {
            name,
            folder,
            tokenizer,
            encoder,
            options: options.clone(),
            threads,
            pool,
        })
    }

    /// The folder the model was loaded from.
    pub fn dir(&self) -> &Path {
        &self.folder.dir
    }

    /// Most tokens a text is cut to, `[CLS]` and `[SEP]` included.
    pub fn max_seq_length(&self) -> usize {
        self.folder.max_seq_length
    }

    /// Most word pieces of a text the model reads: `max_seq_length` less the special tokens.
    /// Chunks of at most this many [`TokenCounter::count_tokens`] are embedded whole.
    pub fn max_content_tokens(&self) -> usize {
        self.folder
            .max_seq_length
            .saturating_sub(self.tokenizer.special_tokens())
    }

    pub fn pooling(&self) -> Pooling {
        self.folder.pooling
    }

    /// Worker threads.
    pub fn threads(&self) -> usize {
        self.threads
    }

    pub fn options(&self) -> &EmbedOptions {
        &self.options
    }

    /// Token ids of `text` as the model reads it: special tokens added, cut to
    /// `max_seq_length`.
    pub fn tokenize(&self, text: &str) -> Result<Vec<u32>> {
        self.tokenizer.encode(text)
    }

    /// Embeds texts: one unit vector of [`Embedder::dimension`] floats per text, in order.
    pub fn embed_texts(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        self.pool.install(|| {
            let encoded = self.tokenizer.encode_batch(texts)?;
            let types = self.encoder.type_vocab_size() as u32;
            if encoded.iter().any(|e| e.type_ids.iter().any(|&t| t >= types)) {
                return Err(Error::Compute(format!(
                    "the tokenizer produced a token type id outside the model's type_vocab_size {types}"
                )));
            }
            let lens: Vec<usize> = encoded.iter().map(|e| e.ids.len()).collect();
            let padded = self.options.kernels == Kernels::CandleOps;
            let total: usize = lens.iter().sum();
            let mut budget = self.options.batch_tokens.max(1);
            if self.options.parallelism == Parallelism::Auto && !padded {
                // Few texts: smaller batches, so that every thread still gets one.
                budget = budget.min(total.div_ceil(self.threads).max(MIN_BATCH_TOKENS));
            }
            let plan = batch::plan(&lens, budget, self.options.sort_by_length, padded);
            let run = |indices: &Vec<usize>, threads: usize| -> Result<Vec<Vec<f32>>> {
                match self.options.kernels {
                    Kernels::Fused => Ok(self.run_fused(&encoded, indices, threads)),
                    Kernels::CandleOps => self.run_candle(&encoded, indices),
                }
            };
            let by_batches = match self.options.parallelism {
                Parallelism::Batches => true,
                Parallelism::WithinOps => false,
                Parallelism::Auto => plan.len() >= self.threads,
            };
            // The candle path parallelises inside its ops, whatever is asked.
            let outputs: Vec<Vec<Vec<f32>>> = if by_batches && !padded && self.threads > 1 {
                plan.par_iter()
                    .map(|b| run(b, 1))
                    .collect::<Result<_>>()?
            } else {
                plan.iter()
                    .map(|b| {
                        // Splitting a product of a few rows costs more than it saves.
                        let tokens: usize = b.iter().map(|&i| lens[i]).sum();
                        let threads = match tokens < MIN_BATCH_TOKENS {
                            true => 1,
                            false => self.threads,
                        };
                        run(b, threads)
                    })
                    .collect::<Result<_>>()?
            };
            let mut out = vec![Vec::new(); texts.len()];
            for (indices, vectors) in plan.iter().zip(outputs) {
                for (&i, v) in indices.iter().zip(vectors) {
                    out[i] = v;
                }
            }
            Ok(out)
        })
    }

    fn run_fused(&self, encoded: &[Encoded], indices: &[usize], threads: usize) -> Vec<Vec<f32>> {
        let mut packed = PackedBatch::default();
        for &i in indices {
            packed.push(&encoded[i].ids, &encoded[i].type_ids);
        }
        let hidden = self.encoder.hidden_size();
        let tokens = self.encoder.forward_packed(&packed, threads);
        packed
            .ranges()
            .map(|range| {
                pool(
                    &tokens[range.start * hidden..range.end * hidden],
                    hidden,
                    self.folder.pooling,
                )
            })
            .collect()
    }

    fn run_candle(&self, encoded: &[Encoded], indices: &[usize]) -> Result<Vec<Vec<f32>>> {
        let compute = |e: candle_core::Error| Error::Compute(e.to_string());
        let len = indices
            .iter()
            .map(|&i| encoded[i].ids.len())
            .max()
            .unwrap_or(0);
        let b = indices.len();
        let (mut ids, mut types, mut mask) = (
            vec![0u32; b * len],
            vec![0u32; b * len],
            vec![0f32; b * len],
        );
        for (row, &i) in indices.iter().enumerate() {
            let e = &encoded[i];
            ids[row * len..][..e.ids.len()].copy_from_slice(&e.ids);
            types[row * len..][..e.ids.len()].copy_from_slice(&e.type_ids);
            mask[row * len..][..e.ids.len()].fill(1.0);
        }
        let dev = Device::Cpu;
        let ids = Tensor::from_vec(ids, (b, len), &dev).map_err(compute)?;
        let types = Tensor::from_vec(types, (b, len), &dev).map_err(compute)?;
        let mask_t = Tensor::from_vec(mask.clone(), (b, len), &dev).map_err(compute)?;
        let x = self
            .encoder
            .forward_padded(&ids, &types, &mask_t)
            .map_err(compute)?;
        let hidden = self.encoder.hidden_size();
        let x = x
            .flatten_all()
            .and_then(|x| x.to_vec1::<f32>())
            .map_err(compute)?;
        Ok(indices
            .iter()
            .enumerate()
            .map(|(row, &i)| {
                let n = encoded[i].ids.len();
                pool(
                    &x[row * len * hidden..][..n * hidden],
                    hidden,
                    self.folder.pooling,
                )
            })
            .collect())
    }
}

/// Pools the token vectors of one text (`[tokens, hidden]`) and normalises the result.
fn pool(tokens: &[f32], hidden: usize, pooling: Pooling) -> Vec<f32> {
    let n = tokens.len() / hidden;
    let mut v = vec![0.0f32; hidden];
    match pooling {
        Pooling::Cls => v.copy_from_slice(&tokens[..hidden]),
        Pooling::Max => {
            v.fill(f32::NEG_INFINITY);
            for row in tokens.chunks_exact(hidden) {
                for (a, b) in v.iter_mut().zip(row) {
                    *a = a.max(*b);
                }
            }
        }
        Pooling::Mean | Pooling::MeanSqrtLen => {
            for row in tokens.chunks_exact(hidden) {
                for (a, b) in v.iter_mut().zip(row) {
                    *a += b;
                }
            }
            let div = match pooling {
                Pooling::Mean => n as f32,
                _ => (n as f32).sqrt(),
            };
            for a in &mut v {
                *a /= div.max(1.0);
            }
        }
    }
    kernels::l2_normalize(&mut v);
    v
}

impl Embedder for SentenceEmbedder {
    fn name(&self) -> &str {
        &self.name
    }

    fn dimension(&self) -> usize {
        self.encoder.hidden_size()
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        Ok(self.embed_texts(texts)?)
    }
}

impl TokenCounter for SentenceEmbedder {
    /// Word pieces of `text` by the model's tokenizer, without `[CLS]`/`[SEP]` and without
    /// truncation (compare with [`SentenceEmbedder::max_content_tokens`]). Should the
    /// tokenizer fail on a text, its length in chars is returned, which never undercounts
    /// a word-piece tokenizer.
    fn count_tokens(&self, text: &str) -> usize {
        self.tokenizer
            .count(text)
            .unwrap_or_else(|_| text.chars().count())
    }
}
