//! Integration tests: the public API against fake models in real wheels, fetched by
//! the real pip from a local folder (no network, no real models).

mod catalog;
mod list_rm;
mod pull;
mod resolve;
mod support;
