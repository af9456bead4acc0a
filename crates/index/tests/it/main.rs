//! Integration tests of ragtune-index: storage on RAM and disk, sync, repair, crash safety,
//! the vector indexes.

mod check;
mod crash;
mod hnsw;
mod ingest;
mod repair;
mod store;
mod support;
mod sync;
mod watch;
