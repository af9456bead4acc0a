//! Server-sent events, as OpenAI-compatible servers stream completions: `data: JSON` lines,
//! events separated by blank lines, `data: [DONE]` at the end.

use std::io::{self, BufRead, Read};

pub(crate) struct Events<R> {
    reader: R,
    line: String,
}

/// What the stream holds next.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Event {
    /// An event's data (its `data:` lines joined by newlines).
    Data(String),
    /// `data: [DONE]`.
    Done,
    /// The connection closed.
    End,
}

/// The most one event may hold; a server that streams one endless line is cut off.
const MAX_EVENT_BYTES: usize = 16 << 20;

impl<R: BufRead> Events<R> {
    pub(crate) fn new(reader: R) -> Self {
        Self {
            reader,
            line: String::new(),
        }
    }

    pub(crate) fn next_event(&mut self) -> io::Result<Event> {
        let mut data: Option<String> = None;
        loop {
            self.line.clear();
            let n = Read::by_ref(&mut self.reader)
                .take(MAX_EVENT_BYTES as u64 + 1)
                .read_line(&mut self.line)?;
            if n > MAX_EVENT_BYTES {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "an event of the stream is over 16 MiB",
                ));
            }
            if n == 0 {
                return Ok(data.map_or(Event::End, Event::Data));
            }
            let line = self.line.trim_end_matches(['\r', '\n']);
            if line.is_empty() {
                match data.take() {
                    Some(d) if d == "[DONE]" => return Ok(Event::Done),
                    Some(d) => return Ok(Event::Data(d)),
                    None => continue,
                }
            }
            // Other fields (`event:`, `id:`, `retry:`) and `:` comments carry nothing here.
            let Some(value) = line.strip_prefix("data:") else {
                continue;
            };
            let value = value.strip_prefix(' ').unwrap_or(value);
            match &mut data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => data = Some(value.to_owned()),
            }
            if data.as_ref().is_some_and(|d| d.len() > MAX_EVENT_BYTES) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "an event of the stream is over 16 MiB",
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(text: &str) -> Vec<Event> {
        let mut e = Events::new(text.as_bytes());
        let mut out = Vec::new();
        loop {
            let ev = e.next_event().unwrap();
            let last = matches!(ev, Event::End | Event::Done);
            out.push(ev);
            if last {
                return out;
            }
        }
    }

    #[test]
    fn data_lines_become_events_and_done_ends_them() {
        let text =
            ": keep-alive\n\ndata: {\"a\":1}\n\nevent: x\ndata:{\"b\":2}\r\n\r\ndata: [DONE]\n\n";
        assert_eq!(
            events(text),
            [
                Event::Data("{\"a\":1}".into()),
                Event::Data("{\"b\":2}".into()),
                Event::Done
            ]
        );
    }

    #[test]
    fn multi_line_data_is_joined_and_a_cut_stream_ends() {
        assert_eq!(
            events("data: one\ndata: two\n\ndata: last"),
            [Event::Data("one\ntwo".into()), Event::Data("last".into())]
                .into_iter()
                .chain([Event::End])
                .collect::<Vec<_>>()
        );
    }
}
