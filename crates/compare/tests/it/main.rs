//! ragtune-compare on synthetic runs whose numbers are known by hand: the report, the
//! recommendation rules, the renderers, and the HTML page in headless Chromium.

mod browser;
mod fixtures;
mod recommend;
mod render;
mod report;
