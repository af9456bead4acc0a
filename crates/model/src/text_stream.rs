//! Turns token bytes into text as it is generated: UTF-8 characters split across tokens are
//! held back until complete, and text that may be the start of a stop string is held back
//! until it is known not to be one.

/// Incremental decoder of one generation's text.
#[derive(Debug, Default)]
pub struct TextStream {
    pending: Vec<u8>,
    text: String,
    emitted: usize,
    stops: Vec<String>,
    stopped: bool,
}

impl TextStream {
    pub fn new(stops: &[String]) -> Self {
        Self {
            stops: stops.iter().filter(|s| !s.is_empty()).cloned().collect(),
            ..Self::default()
        }
    }

    /// Adds the bytes of one token. Returns the text that can be shown now; after a stop string
    /// was reached, `is_stopped` is true and later calls return nothing.
    pub fn push(&mut self, bytes: &[u8]) -> &str {
        if self.stopped {
            return "";
        }
        self.pending.extend_from_slice(bytes);
        self.decode_pending();
        let search_from =
            floor_char_boundary(&self.text, self.emitted.saturating_sub(self.longest_stop()));
        let hit = self
            .stops
            .iter()
            .filter_map(|s| self.text[search_from..].find(s.as_str()))
            .min();
        let end = match hit {
            Some(at) => {
                self.stopped = true;
                self.text.truncate(search_from + at);
                self.text.len()
            }
            None => self.text.len() - self.held_back(),
        };
        let start = self.emitted.min(end);
        self.emitted = end.max(self.emitted);
        &self.text[start..end]
    }

    /// Ends the stream: returns whatever was held back (an unfinished character becomes U+FFFD).
    pub fn finish(&mut self) -> &str {
        if !self.stopped && !self.pending.is_empty() {
            let rest = String::from_utf8_lossy(&self.pending).into_owned();
            self.text.push_str(&rest);
        }
        self.pending.clear();
        let start = self.emitted.min(self.text.len());
        self.emitted = self.text.len();
        &self.text[start..]
    }

    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    /// The whole text so far (stop string excluded).
    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn into_text(self) -> String {
        self.text
    }

    fn decode_pending(&mut self) {
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(s) => {
                    self.text.push_str(s);
                    self.pending.clear();
                    return;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    // Safe: the prefix up to `valid` is UTF-8 by the check above.
                    self.text
                        .push_str(std::str::from_utf8(&self.pending[..valid]).unwrap_or(""));
                    match e.error_len() {
                        // Bytes that can never become a character: show the replacement char.
                        Some(bad) => {
                            self.text.push(char::REPLACEMENT_CHARACTER);
                            self.pending.drain(..valid + bad);
                        }
                        // An unfinished character: wait for the next token.
                        None => {
                            self.pending.drain(..valid);
                            return;
                        }
                    }
                }
            }
        }
    }

    fn longest_stop(&self) -> usize {
        self.stops.iter().map(String::len).max().unwrap_or(0)
    }

    /// Length of the longest suffix of the text that is a proper prefix of a stop string.
    fn held_back(&self) -> usize {
        let unsent = &self.text[self.emitted.min(self.text.len())..];
        self.stops
            .iter()
            .flat_map(|stop| {
                (1..stop.len().min(unsent.len() + 1))
                    .rev()
                    .filter(|&n| stop.is_char_boundary(n) && unsent.ends_with(&stop[..n]))
                    .take(1)
            })
            .max()
            .unwrap_or(0)
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stops: &[&str], pieces: &[&[u8]]) -> (String, String, bool) {
        let stops: Vec<String> = stops.iter().map(|s| s.to_string()).collect();
        let mut s = TextStream::new(&stops);
        let mut shown = String::new();
        for p in pieces {
            shown.push_str(s.push(p));
        }
        shown.push_str(s.finish());
        let stopped = s.is_stopped();
        (shown, s.into_text(), stopped)
    }

    #[test]
    fn joins_split_utf8() {
        let euro = "€".as_bytes();
        let (shown, text, _) = run(&[], &[b"a", &euro[..1], &euro[1..], b"b"]);
        assert_eq!(shown, "a€b");
        assert_eq!(text, "a€b");
    }

    #[test]
    fn stops_across_tokens_and_never_shows_the_stop() {
        let (shown, text, stopped) = run(&["\n\nQ:"], &[b"Paris.", b"\n", b"\nQ", b": next"]);
        assert_eq!(shown, "Paris.");
        assert_eq!(text, "Paris.");
        assert!(stopped);
    }

    #[test]
    fn held_back_text_is_released_when_it_is_not_a_stop() {
        let (shown, _, stopped) = run(&["END"], &[b"the E", b"ND", b"x"]);
        assert_eq!(shown, "the ");
        assert!(stopped);
        let (shown, _, stopped) = run(&["END"], &[b"the E", b"nd"]);
        assert_eq!(shown, "the End");
        assert!(!stopped);
    }

    #[test]
    fn invalid_bytes_become_replacement_chars() {
        let (shown, _, _) = run(&[], &[b"a\xff", b"b", b"\xe2\x82"]);
        assert_eq!(shown, "a\u{fffd}b\u{fffd}");
    }

    #[test]
    fn shown_text_is_always_a_prefix_of_the_final_text() {
        // Every split of a text with a stop string inside gives the same result.
        let full = "ab<st>op</st>cd";
        for cut in 1..full.len() {
            let (a, b) = full.as_bytes().split_at(cut);
            let (shown, text, stopped) = run(&["</st>"], &[a, b]);
            assert_eq!(shown, "ab<st>op", "cut {cut}");
            assert_eq!(text, shown);
            assert!(stopped);
        }
    }
}
