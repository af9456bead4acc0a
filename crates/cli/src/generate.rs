//! `ragtune generate` and `ragtune chat`.

use crate::args::{ModelArgs, SamplingArgs};
use anyhow::{Context, Result, bail};
use clap::Args;
use ragtune_core::{ChatMessage, Generation, GenerationRequest, Generator, GeneratorError, Prompt};
use ragtune_model::llama::LlamaGenerator;
use ragtune_remote::{Endpoint, RemoteGenerator};
use std::io::{BufRead, IsTerminal, Read, Write};
use std::ops::ControlFlow;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// The prompt; read from standard input when absent.
    pub prompt: Option<String>,
    /// Generate for every line of this file (one prompt per line), batched; prints JSON lines.
    #[arg(long, conflicts_with = "prompt")]
    pub prompts: Option<PathBuf>,
    /// Send the prompt as raw text instead of a user message in the model's chat template.
    #[arg(long)]
    pub raw: bool,
    /// A system message to put before the prompt (chat mode).
    #[arg(long)]
    pub system: Option<String>,
    /// Print token counts and speed to standard error.
    #[arg(long)]
    pub stats: bool,
    /// Print one JSON object (text, usage, finish reason, timings) instead of streaming text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub sampling: SamplingArgs,
}

#[derive(Debug, Args)]
pub struct ChatArgs {
    /// A system message that opens the conversation.
    #[arg(long)]
    pub system: Option<String>,
    /// Print token counts and speed after each reply.
    #[arg(long)]
    pub stats: bool,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub sampling: SamplingArgs,
}

/// A model to generate with: a local GGUF on llama.cpp with the adapter `--adapter` asked for
/// applied to every request, or a model on an OpenAI-compatible server (`openai:NAME@URL`).
pub enum Loaded {
    Local(ragtune_core::WithAdapter<LlamaGenerator>),
    Remote(RemoteGenerator),
}

impl Loaded {
    /// The llama.cpp model, for what only a local model can do (perplexity).
    pub fn local(&self, what: &str) -> Result<&LlamaGenerator> {
        match self {
            Loaded::Local(l) => Ok(&l.inner),
            Loaded::Remote(r) => bail!(
                "{what} needs a local model: {} is served elsewhere, and OpenAI-compatible APIs \
                 do not report a prompt's own token probabilities",
                r.endpoint().spec()
            ),
        }
    }

    /// Whether chat messages can be sent: a local base model has no chat template; a server
    /// applies its own.
    fn has_chat_template(&self) -> bool {
        match self {
            Loaded::Local(l) => l.inner.tokenizer().chat_template().is_some(),
            Loaded::Remote(_) => true,
        }
    }

    fn describe(&self) -> String {
        match self {
            Loaded::Local(l) => l.inner.architecture().to_string(),
            Loaded::Remote(r) => format!("served at {}", r.endpoint().base_url),
        }
    }

    fn generator(&self) -> &dyn Generator {
        match self {
            Loaded::Local(l) => l,
            Loaded::Remote(r) => r,
        }
    }
}

impl Generator for Loaded {
    fn generate(
        &self,
        request: &GenerationRequest,
        sink: ragtune_core::TokenSink<'_>,
    ) -> Result<Generation, GeneratorError> {
        self.generator().generate(request, sink)
    }

    fn generate_batch(
        &self,
        requests: &[GenerationRequest],
    ) -> Result<Vec<Generation>, GeneratorError> {
        self.generator().generate_batch(requests)
    }

    fn generate_batch_streaming(
        &self,
        requests: &[GenerationRequest],
        sink: &mut dyn FnMut(usize, &str) -> ControlFlow<()>,
    ) -> Result<Vec<Generation>, GeneratorError> {
        self.generator().generate_batch_streaming(requests, sink)
    }

    fn count_prompt_tokens(&self, prompt: &Prompt) -> Result<u32, GeneratorError> {
        self.generator().count_prompt_tokens(prompt)
    }

    fn context_length(&self) -> u32 {
        self.generator().context_length()
    }

    fn kv_cache(&self) -> Option<std::sync::Arc<ragtune_core::KvCacheCounters>> {
        self.generator().kv_cache()
    }
}

pub fn load(model: &ModelArgs) -> Result<Loaded> {
    if Endpoint::is_remote(model.name()) {
        if model.adapter.is_some() {
            bail!(
                "--adapter applies to local models; a server picks a LoRA adapter by model name \
                 (vLLM's --lora-modules NAME=PATH, ragtune serve's --adapter NAME=DIR): name it \
                 as openai:NAME@URL"
            );
        }
        let endpoint = Endpoint::parse(model.name())?;
        let generator = RemoteGenerator::connect(endpoint, model.remote_options())?;
        return Ok(Loaded::Remote(generator));
    }
    let path = crate::models::resolve_generator(model.name())?;
    let options = model.load_options(&path)?;
    let generator = LlamaGenerator::load(&path, &options)
        .with_context(|| format!("loading model {}", model.name()))?;
    Ok(Loaded::Local(ragtune_core::WithAdapter {
        inner: generator,
        adapter: model
            .adapter
            .as_ref()
            .map(|_| crate::args::ADAPTER_NAME.to_string()),
    }))
}

fn prompt_of(text: String, raw: bool, system: Option<&str>) -> Prompt {
    if raw {
        return Prompt::Text(text);
    }
    let mut messages = Vec::new();
    if let Some(system) = system {
        messages.push(ChatMessage::system(system));
    }
    messages.push(ChatMessage::user(text));
    Prompt::Chat(messages)
}

pub fn generate(args: GenerateArgs) -> Result<()> {
    let generator = load(&args.model)?;
    // A base model has no chat template: continue the text as it is.
    let raw = args.raw || !generator.has_chat_template();
    if raw && !args.raw {
        eprintln!(
            "note: {} has no chat template; the prompt is sent as raw text",
            args.model.name()
        );
    }
    let request = |text: String| {
        GenerationRequest::new(prompt_of(text, raw, args.system.as_deref()))
            .with_max_tokens(args.sampling.max_tokens)
            .with_sampling(args.sampling.params())
            .with_stop(args.sampling.stop.clone())
    };
    if let Some(file) = &args.prompts {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("reading prompts from {}", file.display()))?;
        let requests: Vec<_> = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| request(l.to_string()))
            .collect();
        let generations = generator.generate_batch(&requests)?;
        let mut out = std::io::stdout().lock();
        for g in &generations {
            writeln!(out, "{}", generation_json(g))?;
        }
        return Ok(());
    }
    let prompt = match args.prompt.clone() {
        Some(p) => p,
        None => {
            let mut buf = String::new();
            std::io::stdin()
                .read_to_string(&mut buf)
                .context("reading the prompt from standard input")?;
            buf
        }
    };
    if prompt.trim().is_empty() {
        bail!("the prompt is empty: pass it as an argument or on standard input");
    }
    let request = request(prompt);
    let mut out = std::io::stdout().lock();
    let generation = if args.json {
        generator.generate(&request, &mut |_| ControlFlow::Continue(()))?
    } else {
        let g = generator.generate(&request, &mut |text| {
            // A closed pipe (`| head`) ends generation quietly.
            match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
                Ok(()) => ControlFlow::Continue(()),
                Err(_) => ControlFlow::Break(()),
            }
        })?;
        let _ = writeln!(out);
        g
    };
    if args.json {
        writeln!(out, "{}", generation_json(&generation))?;
    }
    if args.stats {
        eprintln!("{}", stats_line(&generation));
    }
    Ok(())
}

pub fn chat(args: ChatArgs) -> Result<()> {
    let generator = load(&args.model)?;
    if !generator.has_chat_template() {
        bail!(
            "{} has no chat template (a base model); continue text with `ragtune generate --raw`, \
             or chat with an instruction-tuned model",
            args.model.name()
        );
    }
    let interactive = std::io::stdin().is_terminal();
    let mut history: Vec<ChatMessage> = args.system.iter().map(ChatMessage::system).collect();
    if interactive {
        eprintln!(
            "Chatting with {} ({}). /reset clears the conversation, /exit or Ctrl-D ends it.",
            args.model.name(),
            generator.describe()
        );
    }
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    loop {
        if interactive {
            eprint!("> ");
            std::io::stderr().flush().ok();
        }
        let Some(line) = lines.next() else { break };
        let line = line.context("reading standard input")?;
        let line = line.trim();
        match line {
            "" => continue,
            "/exit" | "/quit" => break,
            "/reset" => {
                history.retain(|m| m.role == ragtune_core::Role::System);
                continue;
            }
            _ => {}
        }
        history.push(ChatMessage::user(line));
        let request = GenerationRequest::new(Prompt::Chat(history.clone()))
            .with_max_tokens(args.sampling.max_tokens)
            .with_sampling(args.sampling.params())
            .with_stop(args.sampling.stop.clone());
        let mut out = std::io::stdout().lock();
        let generation = generator.generate(&request, &mut |text| match out
            .write_all(text.as_bytes())
            .and_then(|()| out.flush())
        {
            Ok(()) => ControlFlow::Continue(()),
            Err(_) => ControlFlow::Break(()),
        });
        let generation = match generation {
            Ok(g) => g,
            Err(e @ ragtune_core::GeneratorError::ContextOverflow { .. }) => {
                // The conversation outgrew the context: say so and let the user go on.
                history.pop();
                eprintln!("error: {e}; /reset starts a new conversation");
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        writeln!(out)?;
        if args.stats {
            eprintln!("{}", stats_line(&generation));
        }
        history.push(ChatMessage::assistant(generation.text));
    }
    Ok(())
}

fn stats_line(g: &Generation) -> String {
    format!(
        "prompt: {} tokens, {:.1} tok/s | completion: {} tokens, {:.1} tok/s | finish: {}",
        g.usage.prompt_tokens,
        g.prompt_tokens_per_second(),
        g.usage.completion_tokens,
        g.decode_tokens_per_second(),
        serde_json::to_value(g.finish_reason)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    )
}

fn generation_json(g: &Generation) -> serde_json::Value {
    serde_json::json!({
        "text": g.text,
        "finish_reason": g.finish_reason,
        "usage": {
            "prompt_tokens": g.usage.prompt_tokens,
            "completion_tokens": g.usage.completion_tokens,
            "total_tokens": g.usage.total_tokens(),
        },
        "timings": {
            "prompt_ms": g.prompt_time.as_secs_f64() * 1e3,
            "decode_ms": g.decode_time.as_secs_f64() * 1e3,
            "prompt_tokens_per_second": g.prompt_tokens_per_second(),
            "decode_tokens_per_second": g.decode_tokens_per_second(),
        }
    })
}
