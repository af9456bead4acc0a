//! An [`Embedder`] over an OpenAI-compatible `/embeddings` route.

use crate::Error;
use crate::client::{Client, Endpoint, Failure, Options};
use ragtune_core::{EmbedError, Embedder, TokenCounter};
use serde_json::{Value, json};

/// Embeddings from a model served elsewhere. Its name (`openai:MODEL`) is what a knowledge base
/// records beside its vectors, so vectors of different models are never mixed, and the same
/// model behind another URL is still the same model.
pub struct RemoteEmbedder {
    client: Client,
    name: String,
    dimension: usize,
}

impl RemoteEmbedder {
    /// Embeds one probe text to learn the vectors' dimension (and that the model is there).
    pub fn connect(endpoint: Endpoint, options: Options) -> Result<Self, Error> {
        let client = Client::new(endpoint, options);
        let probe = request(&client, &["dimension probe"]).map_err(|f| Error::Unreachable {
            url: client.endpoint.base_url.clone(),
            why: f.message().to_owned(),
        })?;
        let dimension = probe.first().map_or(0, Vec::len);
        if dimension == 0 {
            return Err(Error::Unreachable {
                url: client.endpoint.base_url.clone(),
                why: "the embeddings route answered with an empty vector".into(),
            });
        }
        Ok(Self {
            name: format!("{}{}", Endpoint::PREFIX, client.endpoint.model),
            client,
            dimension,
        })
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.client.endpoint
    }

    /// The most tokens a chunk should hold: what common embedding models served this way read
    /// (BERT-family models served by vLLM or TEI take 512; OpenAI's take 8,191).
    pub fn max_content_tokens(&self) -> usize {
        512
    }
}

/// Chunks are measured without the model's tokenizer, which the API does not expose: the same
/// estimate as prompts, one token per 3 bytes, which errs high, so chunks stay inside the
/// model's window.
impl TokenCounter for RemoteEmbedder {
    fn count_tokens(&self, text: &str) -> usize {
        crate::generator::estimate_text_tokens(text) as usize
    }
}

/// One `/embeddings` request: the vectors in the order of `texts`.
fn request(client: &Client, texts: &[&str]) -> Result<Vec<Vec<f32>>, Failure> {
    let url = client.endpoint.url("/embeddings");
    let body = json!({"model": client.endpoint.model, "input": texts, "encoding_format": "float"});
    client.with_retries(|c| {
        let reply = c.post_json(&url, &body)?;
        let bad = |why: &str| Failure::Permanent(format!("{url}: {why}"));
        let data = reply
            .get("data")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("the answer has no \"data\" list"))?;
        if data.len() != texts.len() {
            return Err(bad(&format!(
                "asked for {} vectors, got {}",
                texts.len(),
                data.len()
            )));
        }
        let mut vectors: Vec<Option<Vec<f32>>> = vec![None; texts.len()];
        for (n, item) in data.iter().enumerate() {
            // Servers may answer out of order; `index` says whose vector it is.
            let i = item
                .get("index")
                .and_then(Value::as_u64)
                .map_or(n, |i| i as usize);
            let vector: Vec<f32> = item
                .get("embedding")
                .and_then(Value::as_array)
                .ok_or_else(|| bad("an item has no \"embedding\" list of numbers"))?
                .iter()
                .map(|x| x.as_f64().map(|x| x as f32))
                .collect::<Option<_>>()
                .ok_or_else(|| bad("an embedding holds something that is not a number"))?;
            match vectors.get_mut(i) {
                Some(slot @ None) => *slot = Some(vector),
                _ => return Err(bad(&format!("index {i} is out of range or repeated"))),
            }
        }
        Ok(vectors.into_iter().flatten().collect())
    })
}

impl Embedder for RemoteEmbedder {
    fn name(&self) -> &str {
        &self.name
    }

    fn dimension(&self) -> usize {
        self.dimension
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let mut out = Vec::with_capacity(texts.len());
        for batch in texts.chunks(self.client.options.embed_batch.max(1)) {
            let vectors = request(&self.client, batch).map_err(|f| match f {
                Failure::Transient(m, _) => EmbedError::Transient(m),
                Failure::Permanent(m) | Failure::Invalid(m) => EmbedError::Permanent(m),
            })?;
            if let Some(v) = vectors.iter().find(|v| v.len() != self.dimension) {
                return Err(EmbedError::Permanent(format!(
                    "{} returned a vector of {} numbers, not {}",
                    self.client.endpoint.spec(),
                    v.len(),
                    self.dimension
                )));
            }
            out.extend(vectors);
        }
        Ok(out)
    }
}
