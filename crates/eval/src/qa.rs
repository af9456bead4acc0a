//! Every approach over the same questions, scored the same way.

use crate::Result;
use ragtune_answer::eval::{Evaluation, assemble, evaluate, evaluate_sequential, score_reply};
use ragtune_answer::{Answerer, AskOptions, ExamplePool, Mode};
use ragtune_core::{Generator, Retriever};
use ragtune_datasets::QaItem;
use ragtune_raft::RaftOptions;
use std::time::Instant;

/// The approach name RAFT evaluations report (`EvalReport::approach`).
pub const RAFT_APPROACH: &str = "raft";

/// Answers `items` with one mode of the answerer: in one batch (latency under load), or one
/// question at a time (`sequential`: the latency a user waits for one answer). RAG needs a
/// `retriever`, few-shot a `pool`.
pub fn evaluate_mode(
    generator: &dyn Generator,
    retriever: Option<&dyn Retriever>,
    pool: Option<&ExamplePool<'_>>,
    options: AskOptions,
    items: &[QaItem],
    sequential: bool,
) -> Result<Evaluation> {
    let mut answerer = Answerer::new(generator, options);
    if let Some(r) = retriever {
        answerer = answerer.with_retriever(r);
    }
    if let Some(p) = pool {
        answerer = answerer.with_examples(p);
    }
    Ok(if sequential {
        evaluate_sequential(&answerer, items)?
    } else {
        evaluate(&answerer, items)?
    })
}

/// Answers `items` with a RAFT adapter (the generator applies it), one question at a time:
/// the RAFT prompt over the retrieved passages, the final answer after `<ANSWER>:` scored,
/// each quote a citation, a refusal an abstention. The report's `approach` is `raft`.
pub fn evaluate_raft(
    generator: &dyn Generator,
    retriever: &dyn Retriever,
    options: &RaftOptions,
    items: &[QaItem],
) -> Result<Evaluation> {
    let start = Instant::now();
    let mut results = Vec::with_capacity(items.len());
    for item in items {
        let asked = Instant::now();
        let raft = ragtune_raft::answer(&item.question, retriever, generator, options)?;
        let answer = raft.to_answer(asked.elapsed().as_secs_f64() * 1000.0);
        let reply = if raft.finish_reason.is_some() {
            ragtune_answer::answer_text(&ragtune_raft::parse_output(&raft.model_output).answer)
        } else {
            String::new()
        };
        results.push(score_reply(item, answer, &reply, true));
    }
    let mut evaluation = assemble(Mode::Rag, results, false, start);
    evaluation.report.approach = Some(RAFT_APPROACH.to_owned());
    Ok(evaluation)
}
