//! Progress bars for long work, drawn only when standard error is a terminal.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use ragtune_index::{SyncEvent, SyncProgress};
use std::io::IsTerminal;

/// Draws a sync as a bar over files, with the chunks embedded so far.
pub struct SyncBar {
    bar: ProgressBar,
    chunks: usize,
}

impl SyncBar {
    pub fn new() -> Self {
        let target = if std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(None, target);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} files  {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        Self { bar, chunks: 0 }
    }
}

impl SyncProgress for SyncBar {
    fn event(&mut self, event: &SyncEvent<'_>) {
        match event {
            SyncEvent::Scanned { files } => self.bar.set_length(*files as u64),
            SyncEvent::File { .. } => self.bar.inc(1),
            SyncEvent::Embedded { chunks } => {
                self.chunks += chunks;
                self.bar
                    .set_message(format!("{} chunks embedded", self.chunks));
            }
            SyncEvent::Finished { .. } => self.bar.finish_and_clear(),
            _ => {}
        }
    }
}
