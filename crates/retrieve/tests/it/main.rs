//! Integration tests of ragtune-retrieve: every mode over RAM and disk storage, filters,
//! fusion properties, and evaluation on SciFact and SQuAD.

mod eval;
mod filters;
mod fusion;
mod modes;
mod sentence_stage;
mod support;
