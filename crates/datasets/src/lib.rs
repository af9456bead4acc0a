//! The one reader of evaluation data. Question sets ([`QaItem`]) come from SQuAD v1.1/v2.0
//! JSON, PubMedQA PQA-L JSON ([`load_squad`]) or question/answer JSONL ([`load_qa_jsonl`]);
//! [`load_questions`] picks by extension. Retrieval test collections ([`Corpus`] and
//! [`EvalQuery`]) come from BEIR folders ([`beir::load`]) or from SQuAD, each paragraph a
//! document ([`squad_retrieval`]).
//!
//! Everything that evaluates (retrieval, answers, RAFT data, comparisons) reads its data here,
//! so a file is parsed the same way whichever command reads it.

pub mod beir;
mod corpus;
mod error;
mod qa;
mod squad_retrieval;

pub use corpus::{Corpus, CorpusDoc, EvalQuery};
pub use error::{Error, Result};
pub use qa::{Decision, QaItem, load_qa_jsonl, load_questions, load_squad};
pub use squad_retrieval::squad_retrieval;
