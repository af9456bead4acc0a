//! SFT training data: JSON Lines in one of three formats, normalised to a conversation.
//!
//! - `{"prompt": "...", "completion": "..."}` becomes user + assistant turns;
//! - `{"messages": [{"role": "...", "content": "..."}, ...]}` (OpenAI chat format) is kept as is,
//!   including OpenAI's `"weight": 0` on an assistant message to leave that turn out of the loss
//!   (e.g. worked demonstrations in the prompt);
//! - Alpaca `{"instruction": "...", "input": "...", "output": "..."}` becomes a user turn
//!   (instruction, then input after a blank line when non-empty) + an assistant turn.
//!
//! The conversation is rendered later with the model's own chat template, the same one used at
//! inference, and only the assistant turns are trained on.

use crate::error::{Error, Result};
use ragtune_core::{ChatMessage, Role};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

const FORMATS: &str = r#"each line must be one JSON object: {"prompt": ..., "completion": ...}, {"messages": [{"role": ..., "content": ...}, ...]} or {"instruction": ..., "input": ..., "output": ...}"#;

/// One training conversation and the line it came from (1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    pub line: usize,
    pub messages: Vec<ChatMessage>,
    /// Indices of assistant messages marked `"weight": 0`: context, not trained on.
    pub untrained_turns: Vec<usize>,
}

/// Reads SFT examples, one UTF-8 JSON object per line (blank lines skipped); the first malformed
/// line stops the read with its `path:line` and reason, so a run never starts on bad data.
pub fn read_sft(path: &Path) -> Result<Vec<Example>> {
    let (good, mut bad) = parse_file(path)?;
    if !bad.is_empty() {
        return Err(bad.swap_remove(0));
    }
    non_empty(path, good)
}

/// Like [`read_sft`], but malformed lines are set aside (returned as their errors) instead of
/// stopping the read, for `--skip-bad-lines`.
pub fn read_sft_lenient(path: &Path) -> Result<(Vec<Example>, Vec<Error>)> {
    let (good, bad) = parse_file(path)?;
    Ok((non_empty(path, good)?, bad))
}

fn parse_file(path: &Path) -> Result<(Vec<Example>, Vec<Error>)> {
    let bytes = fs_err::read(path).map_err(Error::File)?;
    let (mut good, mut bad) = (Vec::new(), Vec::new());
    // Lines are decoded one by one, so a line that is not UTF-8 is reported (or skipped) by
    // its number like any other malformed line.
    for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let parsed = match std::str::from_utf8(raw) {
            Ok(line) => parse_sft_line(line, i + 1),
            Err(e) => Err(format!(
                "not UTF-8 text (byte {} of the line is invalid); save the file as UTF-8",
                e.valid_up_to() + 1
            )),
        };
        match parsed {
            Ok(Some(ex)) => good.push(ex),
            Ok(None) => {}
            Err(reason) => bad.push(Error::Data {
                path: path.to_path_buf(),
                line: i + 1,
                reason,
            }),
        }
    }
    Ok((good, bad))
}

fn non_empty(path: &Path, examples: Vec<Example>) -> Result<Vec<Example>> {
    if examples.is_empty() {
        return Err(Error::EmptyData {
            path: path.to_path_buf(),
        });
    }
    Ok(examples)
}

/// Extensions of the files a folder of continued-pretraining text contributes.
pub const TEXT_EXTENSIONS: [&str; 4] = ["txt", "md", "rst", "text"];

/// The files of continued-pretraining text under `paths`: a file named directly is taken
/// whatever its extension; folders are walked in name order for files with a
/// [`TEXT_EXTENSIONS`] extension.
pub fn text_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack: Vec<PathBuf> = paths.iter().rev().cloned().collect();
    while let Some(p) = stack.pop() {
        if p.is_dir() {
            let mut entries = Vec::new();
            for entry in fs_err::read_dir(&p).map_err(Error::File)? {
                entries.push(entry.map_err(Error::File)?.path());
            }
            entries.sort();
            stack.extend(entries.into_iter().rev());
        } else if p.is_file() {
            let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
            if paths.contains(&p) || TEXT_EXTENSIONS.contains(&ext) {
                out.push(p);
            }
        } else {
            return Err(Error::MissingText { path: p });
        }
    }
    if out.is_empty() {
        let shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        return Err(Error::NoTextFiles {
            paths: shown.join(", "),
        });
    }
    Ok(out)
}

/// One continued-pretraining document: the whole file as UTF-8 text.
pub fn read_text(path: &Path) -> Result<String> {
    let bytes = fs_err::read(path).map_err(Error::File)?;
    String::from_utf8(bytes).map_err(|_| Error::NotUtf8 {
        path: path.to_path_buf(),
    })
}

/// Parses one line; `Ok(None)` for a blank line, `Err(reason)` for a malformed one.
pub fn parse_sft_line(line: &str, line_no: usize) -> std::result::Result<Option<Example>, String> {
    let trimmed = line.trim();
    if trimmed.is_empty() {
        return Ok(None);
    }
    let value: Value =
        serde_json::from_str(trimmed).map_err(|e| format!("not valid JSON ({e}); {FORMATS}"))?;
    let Value::Object(obj) = value else {
        return Err(format!("not a JSON object; {FORMATS}"));
    };
    let mut untrained_turns = Vec::new();
    let messages = if let Some(msgs) = obj.get("messages") {
        let (messages, untrained) = chat_messages(msgs)?;
        untrained_turns = untrained;
        messages
    } else if obj.contains_key("prompt") || obj.contains_key("completion") {
        vec![
            ChatMessage::user(string_field(&obj, "prompt")?),
            ChatMessage::assistant(string_field(&obj, "completion")?),
        ]
    } else if obj.contains_key("instruction") || obj.contains_key("output") {
        let instruction = string_field(&obj, "instruction")?;
        let input = match obj.get("input") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(_) => return Err(r#""input" must be a string"#.into()),
        };
        let user = if input.trim().is_empty() {
            instruction
        } else {
            format!("{instruction}\n\n{input}")
        };
        vec![
            ChatMessage::user(user),
            ChatMessage::assistant(string_field(&obj, "output")?),
        ]
    } else {
        let keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        return Err(format!("unknown format (keys: {keys:?}); {FORMATS}"));
    };
    Ok(Some(Example {
        line: line_no,
        messages,
        untrained_turns,
    }))
}

fn string_field(obj: &Map<String, Value>, key: &str) -> std::result::Result<String, String> {
    match obj.get(key) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(format!("{key:?} must be a string")),
        None => Err(format!("{key:?} is missing; {FORMATS}")),
    }
}

type Messages = (Vec<ChatMessage>, Vec<usize>);

fn chat_messages(value: &Value) -> std::result::Result<Messages, String> {
    let Value::Array(items) = value else {
        return Err(r#""messages" must be an array of {"role", "content"} objects"#.into());
    };
    let mut out = Vec::with_capacity(items.len());
    let mut untrained = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let Value::Object(m) = item else {
            return Err(format!("messages[{i}] is not an object"));
        };
        let role = match m.get("role").and_then(Value::as_str) {
            Some("system") => Role::System,
            Some("user") => Role::User,
            Some("assistant") => Role::Assistant,
            Some("tool") => Role::Tool,
            Some(other) => {
                return Err(format!(
                    "messages[{i}].role {other:?} is not system, user, assistant or tool"
                ));
            }
            None => return Err(format!("messages[{i}].role is missing or not a string")),
        };
        let content = m.get("content").and_then(Value::as_str).ok_or_else(|| {
            format!(
                "messages[{i}].content is missing or not a string (content parts are not supported)"
            )
        })?;
        match m.get("weight") {
            None => {}
            Some(w) if role == Role::Assistant && w.as_u64() == Some(0) => untrained.push(i),
            Some(w) if role == Role::Assistant && w.as_u64() == Some(1) => {}
            Some(_) => {
                return Err(format!(
                    "messages[{i}].weight must be 0 or 1, and only on assistant messages"
                ));
            }
        }
        out.push(ChatMessage::new(role, content));
    }
    turn_order(&out)?;
    match out.last() {
        None => Err(r#""messages" is empty"#.into()),
        Some(last) if last.role != Role::Assistant => Err(
            "the last message must be the assistant's: it is the answer the model learns".into(),
        ),
        _ if untrained.len() == out.iter().filter(|m| m.role == Role::Assistant).count() => {
            Err("every assistant message has weight 0; nothing would be trained".into())
        }
        Some(_) => Ok((out, untrained)),
    }
}

/// Checks the shape every chat template expects: an optional system message first, then user
/// and assistant turns alternating from the user's (tool results after the assistant turn that
/// called the tool). Templates differ in what they do with anything else (render it, reorder
/// it, raise, or render a prefix differently from the whole), so it is refused here, by line.
fn turn_order(messages: &[ChatMessage]) -> std::result::Result<(), String> {
    let mut prev: Option<Role> = None;
    for (i, m) in messages.iter().enumerate() {
        match (prev, m.role) {
            (Some(_), Role::System) => {
                return Err(format!(
                    "messages[{i}] is a system message in the middle of the conversation; only the first message may be the system's: merge its text into messages[0] or into the next user message"
                ));
            }
            (None | Some(Role::System), Role::Assistant | Role::Tool) => {
                return Err(format!(
                    "the conversation starts with {} (messages[{i}]) instead of a user message, so there is no request for the model to learn the answer to; put the user's message before it, or drop the line",
                    if m.role == Role::Assistant {
                        "the assistant's turn"
                    } else {
                        "a tool result"
                    }
                ));
            }
            (Some(Role::User), Role::User) | (Some(Role::Assistant), Role::Assistant) => {
                let who = m.role.as_str();
                let other = if m.role == Role::User {
                    "assistant's reply"
                } else {
                    "user's message"
                };
                return Err(format!(
                    "messages[{}] and messages[{i}] are both {who} messages; user and assistant turns must alternate: merge the two into one {who} message, or put the {other} between them",
                    i - 1
                ));
            }
            (Some(Role::User), Role::Tool) => {
                return Err(format!(
                    "messages[{i}] is a tool result right after a user message; a tool result must follow the assistant turn that called the tool"
                ));
            }
            _ => {}
        }
        prev = Some(m.role);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn write(lines: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(lines.as_bytes()).unwrap();
        f
    }

    #[test]
    fn reads_all_three_formats() {
        let f = write(concat!(
            r#"{"prompt": "2+2?", "completion": "4"}"#,
            "\n",
            "\n",
            r#"{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]}"#,
            "\n",
            r#"{"instruction": "Translate", "input": "chat", "output": "cat"}"#,
            "\n",
            r#"{"instruction": "Say yes", "input": "", "output": "yes"}"#,
            "\n",
        ));
        let ex = read_sft(f.path()).unwrap();
        assert_eq!(ex.len(), 4);
        assert_eq!(
            ex[0],
            Example {
                line: 1,
                messages: vec![ChatMessage::user("2+2?"), ChatMessage::assistant("4")],
                untrained_turns: Vec::new(),
            }
        );
        assert_eq!(ex[1].line, 3);
        assert_eq!(
            ex[1].messages,
            vec![
                ChatMessage::system("Be brief."),
                ChatMessage::user("Hi"),
                ChatMessage::assistant("Hello")
            ]
        );
        assert_eq!(
            ex[2].messages,
            vec![
                ChatMessage::user("Translate\n\nchat"),
                ChatMessage::assistant("cat")
            ]
        );
        assert_eq!(
            ex[3].messages,
            vec![ChatMessage::user("Say yes"), ChatMessage::assistant("yes")]
        );
    }

    #[test]
    fn malformed_line_is_reported_with_file_and_line() {
        let f = write(concat!(
            r#"{"prompt": "a", "completion": "b"}"#,
            "\n",
            r#"{"prompt": "a", "completion": "b""#,
            "\n"
        ));
        let err = read_sft(f.path()).unwrap_err().to_string();
        let expected = format!("{}:2: not valid JSON", f.path().display());
        assert!(err.starts_with(&expected), "{err}");
        assert!(
            err.contains(r#"{"prompt": ..., "completion": ...}"#),
            "{err}"
        );
    }

    #[test]
    fn structural_errors_say_what_is_wrong() {
        let cases = [
            (r#"{"prompt": "a"}"#, r#""completion" is missing"#),
            (
                r#"{"prompt": 3, "completion": "b"}"#,
                r#""prompt" must be a string"#,
            ),
            (
                r#"{"messages": [{"role": "user", "content": "a"}]}"#,
                "last message must be the assistant's",
            ),
            (
                r#"{"messages": [{"role": "robot", "content": "a"}]}"#,
                r#"messages[0].role "robot""#,
            ),
            (r#"{"text": "raw"}"#, "unknown format"),
            (r#"[1, 2]"#, "not a JSON object"),
        ];
        for (line, want) in cases {
            let err = parse_sft_line(line, 1).unwrap_err();
            assert!(err.contains(want), "{line}: {err}");
        }
    }

    #[test]
    fn non_utf8_line_is_named_and_skippable() {
        let mut bytes = br#"{"prompt": "a", "completion": "b"}"#.to_vec();
        bytes.extend_from_slice(b"\r\n");
        bytes.extend_from_slice(b"{\"prompt\": \"caf\xe9\", \"completion\": \"b\"}\n");
        bytes.extend_from_slice(br#"{"prompt": "c", "completion": "d"}"#);
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(&bytes).unwrap();

        let err = read_sft(f.path()).unwrap_err();
        assert!(matches!(err, Error::Data { line: 2, .. }), "{err}");
        let text = err.to_string();
        let expected = format!("{}:2: not UTF-8", f.path().display());
        assert!(text.starts_with(&expected), "{text}");
        assert!(text.contains("save the file as UTF-8"), "{text}");

        let (good, bad) = read_sft_lenient(f.path()).unwrap();
        assert_eq!(good.iter().map(|e| e.line).collect::<Vec<_>>(), [1, 3]);
        assert_eq!(good[0].messages[1], ChatMessage::assistant("b"));
        assert!(matches!(bad[..], [Error::Data { line: 2, .. }]), "{bad:?}");
    }

    #[test]
    fn chat_starting_with_the_assistant_is_refused_with_what_to_do() {
        for line in [
            r#"{"messages": [{"role": "assistant", "content": "a"}, {"role": "user", "content": "q"}, {"role": "assistant", "content": "b"}]}"#,
            r#"{"messages": [{"role": "system", "content": "s"}, {"role": "assistant", "content": "a"}]}"#,
        ] {
            let err = parse_sft_line(line, 1).unwrap_err();
            assert!(
                err.contains("starts with the assistant's turn")
                    && err.contains("put the user's message before it"),
                "{err}"
            );
        }
    }

    #[test]
    fn two_user_turns_in_a_row_or_a_system_turn_mid_chat_are_refused() {
        let f = write(concat!(
            r#"{"messages": [{"role": "user", "content": "q1"}, {"role": "user", "content": "q2"}, {"role": "assistant", "content": "a"}]}"#,
            "\n",
            r#"{"messages": [{"role": "user", "content": "q"}, {"role": "system", "content": "s"}, {"role": "assistant", "content": "a"}]}"#,
            "\n",
            r#"{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a1"}, {"role": "assistant", "content": "a2"}]}"#,
            "\n",
            r#"{"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}"#,
            "\n",
        ));
        let err = read_sft(f.path()).unwrap_err().to_string();
        let expected = format!(
            "{}:1: messages[0] and messages[1] are both user messages",
            f.path().display()
        );
        assert!(err.starts_with(&expected), "{err}");
        assert!(err.contains("merge the two into one user message"), "{err}");

        let (good, bad) = read_sft_lenient(f.path()).unwrap();
        assert_eq!(good.iter().map(|e| e.line).collect::<Vec<_>>(), [4]);
        let bad: Vec<String> = bad.iter().map(ToString::to_string).collect();
        assert_eq!(bad.len(), 3, "{bad:?}");
        assert!(
            bad[1].contains(":2: messages[1] is a system message in the middle"),
            "{}",
            bad[1]
        );
        assert!(
            bad[2].contains(":3: messages[1] and messages[2] are both assistant messages"),
            "{}",
            bad[2]
        );
    }

    #[test]
    fn empty_file_is_an_error() {
        let f = write("\n\n");
        assert!(matches!(read_sft(f.path()), Err(Error::EmptyData { .. })));
    }

    #[test]
    fn weight_zero_marks_an_assistant_turn_as_context() {
        let line = r#"{"messages": [{"role": "user", "content": "q1"}, {"role": "assistant", "content": "a1", "weight": 0}, {"role": "user", "content": "q2"}, {"role": "assistant", "content": "a2"}]}"#;
        let ex = parse_sft_line(line, 1).unwrap().unwrap();
        assert_eq!(ex.untrained_turns, vec![1]);
        let bad = r#"{"messages": [{"role": "user", "content": "q", "weight": 0}, {"role": "assistant", "content": "a"}]}"#;
        assert!(parse_sft_line(bad, 1).unwrap_err().contains("weight"));
        let none = r#"{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a", "weight": 0}]}"#;
        assert!(
            parse_sft_line(none, 1)
                .unwrap_err()
                .contains("nothing would be trained")
        );
    }
}
