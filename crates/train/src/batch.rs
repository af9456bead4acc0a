//! From tokenized examples or raw text to the rows and micro-batches a training step sees.
//!
//! A row is a token sequence with a per-token "trainable" flag and a segment id per token: SFT
//! packing puts several short examples in one row as separate segments (positions restart and
//! attention stops at each segment boundary, see `Llama::loss`), so no compute goes to padding.

use crate::error::Result;
use crate::tokenize::Tokenized;
use candle_core::{Device, Tensor};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub ids: Vec<u32>,
    pub trainable: Vec<bool>,
    pub segments: Vec<u32>,
}

impl Row {
    fn new() -> Self {
        Self {
            ids: Vec::new(),
            trainable: Vec::new(),
            segments: Vec::new(),
        }
    }

    fn push(&mut self, ids: &[u32], trainable: &[bool]) {
        let segment = self.segments.last().map_or(0, |s| s + 1);
        self.ids.extend_from_slice(ids);
        self.trainable.extend_from_slice(trainable);
        self.segments
            .extend(std::iter::repeat_n(segment, ids.len()));
    }

    /// Tokens whose prediction is trained: a trainable token that follows a token of its own
    /// segment (the first token of a segment has nothing before it to predict it from).
    pub fn trained_tokens(&self) -> usize {
        (1..self.ids.len())
            .filter(|&j| self.trainable[j] && self.segments[j] == self.segments[j - 1])
            .count()
    }
}

/// What happened to the examples on their way into rows (in training.json as `rows`, with
/// `rows` named `sequences`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RowStats {
    pub examples: usize,
    /// Examples longer than the row length, cut at its end (their answer's tail is lost).
    pub truncated: usize,
    /// Examples with no trained token left after the cut (their answer started too late).
    pub dropped: usize,
    #[serde(rename = "sequences")]
    pub rows: usize,
    /// Tokens in all rows (no padding counted).
    pub tokens: usize,
}

/// SFT rows of at most `max_len` tokens. With `pack`, examples share rows (first fit, in data
/// order); without, one example per row.
pub fn sft_rows(examples: &[Tokenized], max_len: usize, pack: bool) -> (Vec<Row>, RowStats) {
    let mut stats = RowStats {
        examples: examples.len(),
        ..RowStats::default()
    };
    let mut rows: Vec<Row> = Vec::new();
    for ex in examples {
        let n = ex.ids.len().min(max_len);
        if n < ex.ids.len() {
            stats.truncated += 1;
        }
        let (ids, trainable) = (&ex.ids[..n], &ex.trainable[..n]);
        if !trainable.iter().skip(1).any(|&t| t) {
            stats.dropped += 1;
            continue;
        }
        let open = pack
            .then(|| rows.iter_mut().find(|r| r.ids.len() + n <= max_len))
            .flatten();
        match open {
            Some(row) => row.push(ids, trainable),
            None => {
                let mut row = Row::new();
                row.push(ids, trainable);
                rows.push(row);
            }
        }
    }
    stats.rows = rows.len();
    stats.tokens = rows.iter().map(|r| r.ids.len()).sum();
    (rows, stats)
}

/// Continued-pretraining rows: the documents' tokens concatenated (each document as the
/// tokenizer encodes it, followed by `eos`) and cut into windows of `seq_len + 1` tokens that
/// overlap by one, so every token after the first is predicted exactly once. As in
/// transformers' `run_clm`, attention crosses document boundaries inside a window; the EOS
/// between them tells the model a new document began.
pub fn cpt_rows(documents: &[Vec<u32>], eos: Option<u32>, seq_len: usize) -> (Vec<Row>, RowStats) {
    let mut stream = Vec::new();
    for doc in documents {
        stream.extend_from_slice(doc);
        stream.extend(eos);
    }
    let mut rows = Vec::new();
    let mut start = 0;
    while start + 1 < stream.len() {
        let end = (start + seq_len + 1).min(stream.len());
        let mut row = Row::new();
        row.push(&stream[start..end], &vec![true; end - start]);
        rows.push(row);
        start = end - 1;
    }
    let stats = RowStats {
        examples: documents.len(),
        rows: rows.len(),
        tokens: stream.len(),
        ..RowStats::default()
    };
    (rows, stats)
}

/// One micro-batch as model inputs: `inputs`/`targets` u32 [b, t], `weights` f32 [b, t] (1 where
/// the target is trained), `segments` u32 [b, t] when any row is packed.
#[derive(Debug)]
pub struct Batch {
    pub inputs: Tensor,
    pub targets: Tensor,
    pub weights: Tensor,
    pub segments: Option<Tensor>,
    /// Input tokens that are not padding.
    pub tokens: usize,
    /// Positions in the loss.
    pub trained: usize,
}

/// Shifts each row by one (input j predicts token j+1) and right-pads to the longest row.
/// Padding is a segment of its own with weight 0; with the causal mask it cannot affect the
/// positions before it.
pub fn collate(rows: &[&Row], pad_id: u32, dev: &Device) -> Result<Batch> {
    let t = rows
        .iter()
        .map(|r| r.ids.len().saturating_sub(1))
        .max()
        .unwrap_or(0);
    let packed = rows
        .iter()
        .any(|r| r.segments.last().is_some_and(|&s| s > 0));
    let b = rows.len();
    let (mut inputs, mut targets) = (vec![pad_id; b * t], vec![pad_id; b * t]);
    let (mut weights, mut segments) = (vec![0f32; b * t], vec![0u32; b * t]);
    let (mut tokens, mut trained) = (0, 0);
    for (i, row) in rows.iter().enumerate() {
        let n = row.ids.len().saturating_sub(1);
        let pad_segment = row.segments.last().map_or(0, |s| s + 1);
        for j in 0..t {
            let k = i * t + j;
            if j < n {
                inputs[k] = row.ids[j];
                targets[k] = row.ids[j + 1];
                segments[k] = row.segments[j];
                if row.trainable[j + 1] && row.segments[j + 1] == row.segments[j] {
                    weights[k] = 1.0;
                    trained += 1;
                }
            } else {
                segments[k] = pad_segment;
            }
        }
        tokens += n;
    }
    Ok(Batch {
        inputs: Tensor::from_vec(inputs, (b, t), dev)?,
        targets: Tensor::from_vec(targets, (b, t), dev)?,
        weights: Tensor::from_vec(weights, (b, t), dev)?,
        segments: packed
            .then(|| Tensor::from_vec(segments, (b, t), dev))
            .transpose()?,
        tokens,
        trained,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(n: usize, answer_from: usize) -> Tokenized {
        Tokenized {
            ids: (0..n as u32).map(|i| 100 + i).collect(),
            trainable: (0..n).map(|i| i >= answer_from).collect(),
        }
    }

    #[test]
    fn packing_fills_rows_and_reports_cuts() {
        let data = [ex(4, 2), ex(5, 3), ex(3, 1), ex(12, 2), ex(9, 8)];
        let (rows, stats) = sft_rows(&data, 10, true);
        // 4+5 share a row, 3 fits nowhere else, 12 is cut to 10, 9 fits no open row.
        assert_eq!(stats.truncated, 1);
        assert_eq!(stats.dropped, 0);
        assert_eq!(
            rows.iter().map(|r| r.ids.len()).collect::<Vec<_>>(),
            vec![9, 3, 10, 9]
        );
        assert_eq!(rows[0].segments, vec![0, 0, 0, 0, 1, 1, 1, 1, 1]);
        let (unpacked, _) = sft_rows(&data, 10, false);
        assert_eq!(unpacked.len(), 5);
        let (_, stats) = sft_rows(&[ex(12, 11)], 10, true);
        assert_eq!((stats.truncated, stats.dropped, stats.rows), (1, 1, 0));
    }

    #[test]
    fn collate_weights_stop_at_segment_boundaries() -> Result<()> {
        let (rows, _) = sft_rows(&[ex(3, 1), ex(3, 1), ex(2, 1)], 6, true);
        let refs: Vec<&Row> = rows.iter().collect();
        let batch = collate(&refs, 0, &Device::Cpu)?;
        // Row 0 = [100 101 102 | 100 101 102], row 1 = [100 101] + padding.
        assert_eq!(
            batch.weights.to_vec2::<f32>()?,
            vec![vec![1., 1., 0., 1., 1.], vec![1., 0., 0., 0., 0.]]
        );
        assert_eq!(
            batch.segments.unwrap().to_vec2::<u32>()?,
            vec![vec![0, 0, 0, 1, 1], vec![0, 1, 1, 1, 1]]
        );
        assert_eq!(
            batch.targets.to_vec2::<u32>()?[0],
            vec![101, 102, 100, 101, 102]
        );
        assert_eq!((batch.tokens, batch.trained), (6, 5));
        assert_eq!(rows[0].trained_tokens() + rows[1].trained_tokens(), 5);
        Ok(())
    }

    #[test]
    fn cpt_windows_predict_every_token_once() {
        let docs = vec![vec![1, 2, 3, 4], vec![5, 6, 7]];
        let (rows, stats) = cpt_rows(&docs, Some(0), 3);
        let ids: Vec<Vec<u32>> = rows.iter().map(|r| r.ids.clone()).collect();
        assert_eq!(ids, vec![vec![1, 2, 3, 4], vec![4, 0, 5, 6], vec![6, 7, 0]]);
        let predicted: usize = rows.iter().map(Row::trained_tokens).sum();
        assert_eq!(predicted, stats.tokens - 1);
    }
}
