//! Integration tests: the public API on real documents from `shared/data/docs-corpus` and
//! on hostile files built in temp dirs (zip bombs, binary junk, 200 MB of text).

mod chunking;
mod corpus;
mod hostile;
mod html;
mod invisible;
mod records;
mod streaming;
mod support;
