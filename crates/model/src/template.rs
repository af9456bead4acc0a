//! Chat templates: the Jinja template stored in the model, rendered with a real Jinja engine.
//!
//! Rendering follows Hugging Face transformers (`trim_blocks`, `lstrip_blocks`, Python string
//! methods, `raise_exception`), so the text is the one the model was trained on. Inference and
//! training both render through here.

use minijinja::{Environment, ErrorKind, Value, context};
use ragtune_core::ChatMessage;

/// Why a chat template could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error(
        "the model has no chat template (no tokenizer.chat_template in its metadata); \
         use a plain text prompt, or an instruction-tuned model"
    )]
    Missing,
    #[error("the model's chat template does not parse: {0}")]
    Syntax(String),
    #[error("rendering the chat template failed: {0}")]
    Render(String),
}

/// A model's chat template, ready to render conversations.
pub struct ChatTemplate {
    env: Environment<'static>,
    bos_token: String,
    eos_token: String,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("bos_token", &self.bos_token)
            .field("eos_token", &self.eos_token)
            .finish_non_exhaustive()
    }
}

const NAME: &str = "chat";

/// Instructions one render may run. Real templates use a few hundred per message; a template
/// from a stranger's file that loops without end stops here instead of hanging the caller.
pub const FUEL: u64 = 20_000_000;

/// Text one render may produce beyond four times its messages' text: real templates wrap
/// messages in markup, a runaway one is cut off here instead of filling memory.
pub const MAX_EXTRA_OUTPUT: usize = 1 << 20;

impl ChatTemplate {
    /// Compiles `source`; `bos_token` and `eos_token` are the texts templates may refer to.
    pub fn new(
        source: &str,
        bos_token: impl Into<String>,
        eos_token: impl Into<String>,
    ) -> Result<Self, TemplateError> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_fuel(Some(FUEL));
        minijinja_contrib::add_to_environment(&mut env);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", strftime_now);
        env.add_template_owned(NAME, source.to_owned())
            .map_err(|e| TemplateError::Syntax(describe(&e)))?;
        Ok(Self {
            env,
            bos_token: bos_token.into(),
            eos_token: eos_token.into(),
        })
    }

    /// Renders `messages`; with `add_generation_prompt` the text ends where the assistant's
    /// reply begins.
    pub fn render(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<String, TemplateError> {
        let template = self
            .env
            .get_template(NAME)
            .map_err(|e| TemplateError::Render(describe(&e)))?;
        let input: usize = messages.iter().map(|m| m.content.len()).sum();
        let mut out = CappedOutput {
            text: Vec::new(),
            limit: input.saturating_mul(4).saturating_add(MAX_EXTRA_OUTPUT),
            overflowed: false,
        };
        let ctx = context! {
            messages => messages,
            add_generation_prompt => add_generation_prompt,
            bos_token => &self.bos_token,
            eos_token => &self.eos_token,
        };
        match template.render_captured_to(ctx, &mut out) {
            Ok(_) => {}
            Err(_) if out.overflowed => {
                return Err(TemplateError::Render(format!(
                    "the chat template produced more than {} bytes for {input} bytes of \
                     messages; it is not a usable chat template",
                    out.limit
                )));
            }
            Err(e) if e.kind() == ErrorKind::OutOfFuel => {
                return Err(TemplateError::Render(format!(
                    "the chat template ran more than {FUEL} steps without finishing; it \
                     loops without end or is not a usable chat template"
                )));
            }
            Err(e) => return Err(TemplateError::Render(describe(&e))),
        }
        // Writes come from rendered strings, and every piece is whole UTF-8.
        String::from_utf8(out.text).map_err(|e| TemplateError::Render(e.to_string()))
    }

    pub fn bos_token(&self) -> &str {
        &self.bos_token
    }
}

/// Rendered text, refusing to grow past `limit` bytes.
struct CappedOutput {
    text: Vec<u8>,
    limit: usize,
    overflowed: bool,
}

impl std::io::Write for CappedOutput {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.text.len() + buf.len() > self.limit {
            self.overflowed = true;
            return Err(std::io::Error::other("the output limit is reached"));
        }
        self.text.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn raise_exception(message: String) -> Result<Value, minijinja::Error> {
    Err(minijinja::Error::new(ErrorKind::InvalidOperation, message))
}

/// Templates of the Llama 3 family print today's date. Rendering stays deterministic: the
/// date is fixed unless the caller's template asks for a format we cannot know.
fn strftime_now(format: String) -> String {
    // A fixed date keeps prompts reproducible (and cacheable) across runs.
    format
        .replace("%d", "01")
        .replace("%m", "01")
        .replace("%b", "Jan")
        .replace("%B", "January")
        .replace("%Y", "2025")
}

fn describe(e: &minijinja::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHATML: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    #[test]
    fn renders_chatml() {
        let t = ChatTemplate::new(CHATML, "", "<|im_end|>").unwrap();
        let text = t.render(&[ChatMessage::user("Hi")], true).unwrap();
        assert_eq!(
            text,
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
    }

    fn render_error(source: &str) -> String {
        let t = ChatTemplate::new(source, "", "").unwrap();
        t.render(&[ChatMessage::user("Hi")], true)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn a_template_that_never_ends_is_stopped() {
        let e = render_error(
            "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        );
        assert!(e.contains("steps without finishing"), "{e}");
    }

    #[test]
    fn a_template_that_floods_its_output_is_stopped() {
        let e = render_error("{% for i in range(100000) %}{{ 'x' * 100 }}{% endfor %}");
        assert!(
            e.contains("more than 1048584 bytes for 2 bytes of messages"),
            "{e}"
        );
    }

    #[test]
    fn a_template_that_recurses_without_end_is_an_error() {
        let e = render_error("{% macro r() %}{{ r() }}{% endmacro %}{{ r() }}");
        assert!(e.contains("recursion"), "{e}");
    }

    #[test]
    fn python_string_methods_work() {
        let t = ChatTemplate::new("{{ messages[0].content.strip().upper() }}", "", "").unwrap();
        assert_eq!(
            t.render(&[ChatMessage::user("  hi ")], false).unwrap(),
            "HI"
        );
    }

    #[test]
    fn raise_exception_is_an_error_not_a_panic() {
        let t = ChatTemplate::new(
            "{% if messages[0].role != 'user' %}{{ raise_exception('first must be user') }}{% endif %}",
            "",
            "",
        )
        .unwrap();
        let err = t.render(&[ChatMessage::assistant("x")], false).unwrap_err();
        assert!(err.to_string().contains("first must be user"), "{err}");
    }

    #[test]
    fn syntax_errors_are_reported() {
        let err = ChatTemplate::new("{% for %}", "", "").unwrap_err();
        assert!(matches!(err, TemplateError::Syntax(_)), "{err}");
    }
}
