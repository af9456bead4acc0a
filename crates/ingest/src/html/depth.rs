//! Parsing with a bound on nesting depth.
//!
//! html5ever's tree builder scans its stack of open elements for many tags (is a `p` in
//! button scope, which `li` to close...), so a document nested N deep costs O(N^2):
//! 100,000 nested `<div>`s took 27 s to parse, 100,000 nested `<ul><li>` 179 s. A guard
//! between the tokenizer and the tree builder drops each start tag that would open an
//! element deeper than [`MAX_DEPTH`] (and the end tag that closes it), so the stack
//! stays bounded; the text under a dropped tag still arrives, in the deepest element
//! kept, with a line break where a dropped block began or ended. Browsers bound the tree
//! the same way (Chromium nests no deeper than 512). Content the walker would skip
//! (scripts, `hidden`, `display:none`...) stays skipped below the cap: its text is
//! dropped with it.

use html5ever::tendril::StrTendril;
use html5ever::tokenizer::states::RawKind;
use html5ever::tokenizer::{
    BufferQueue, Tag, TagKind, Token, TokenSink, TokenSinkResult, Tokenizer, TokenizerOpts,
};
use html5ever::tree_builder::{TreeBuilder, TreeBuilderOpts, TreeSink};
use html5ever::{LocalName, TokenizerResult, local_name};
use scraper::{Html, HtmlTreeSink};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;

/// Most elements the tree builder holds open (plus formatting elements it may reopen).
pub(crate) const MAX_DEPTH: usize = 512;

/// Parses a whole document like [`Html::parse_document`], nesting no deeper than
/// [`MAX_DEPTH`]; also returns how many start tags were dropped to stay there.
pub(crate) fn parse_document(source: &str) -> (Html, usize) {
    let builder = TreeBuilder::new(
        HtmlTreeSink::new(Html::new_document()),
        TreeBuilderOpts::default(),
    );
    let tokenizer = Tokenizer::new(Guard::new(builder), TokenizerOpts::default());
    let input = BufferQueue::default();
    input.push_back(StrTendril::from(source));
    while !matches!(tokenizer.feed(&input), TokenizerResult::Done) {}
    tokenizer.end();
    let guard = tokenizer.sink;
    (guard.inner.sink.finish(), guard.dropped.get())
}

/// Forwards tokens to the tree builder, except start tags below the depth cap.
struct Guard<S: TreeSink> {
    inner: TreeBuilder<S::Handle, S>,
    /// Handles the tree builder held at the last measurement, and start tags forwarded
    /// since. Each tag adds at most two (an open element and a formatting entry), and
    /// reopening formatting elements at most doubles the count, so the tree builder holds
    /// fewer than `2 * (measured + since)` handles.
    measured: Cell<usize>,
    since: Cell<usize>,
    /// Dropped elements still open, innermost last, with whether their content is skipped.
    dropped_open: RefCell<Vec<(LocalName, bool)>>,
    /// How many of each name are in `dropped_open`, so an end tag finds its match in
    /// amortised O(1).
    open_names: RefCell<HashMap<LocalName, usize>>,
    /// Entries of `dropped_open` whose content is skipped.
    skipping: Cell<usize>,
    dropped: Cell<usize>,
}

impl<S: TreeSink> Guard<S>
where
    S::Handle: Clone,
{
    fn new(inner: TreeBuilder<S::Handle, S>) -> Self {
        Guard {
            inner,
            measured: Cell::new(0),
            since: Cell::new(0),
            dropped_open: RefCell::default(),
            open_names: RefCell::default(),
            skipping: Cell::new(0),
            dropped: Cell::new(0),
        }
    }

    /// Whether a start tag forwarded now could open an element past the cap. Measures
    /// the tree builder (O(depth)) only when the cheap bound says it might.
    fn full(&self) -> bool {
        if 2 * (self.measured.get() + self.since.get() + 1) < MAX_DEPTH {
            return false;
        }
        let counter = Counter(Cell::new(0), std::marker::PhantomData);
        self.inner.trace_handles(&counter);
        self.measured.set(counter.0.get());
        self.since.set(0);
        counter.0.get() + 2 > MAX_DEPTH
    }

    fn forward(&self, token: Token, line: u64) -> TokenSinkResult<S::Handle> {
        self.inner.process_token(token, line)
    }

    /// A line break where a dropped block starts or ends, so words never run together.
    fn separate(&self, name: &LocalName, line: u64) {
        if self.skipping.get() == 0 && super::breaks_line(name) {
            let br = Tag {
                kind: TagKind::StartTag,
                name: local_name!("br"),
                self_closing: false,
                attrs: Vec::new(),
                had_duplicate_attributes: false,
            };
            let _ = self.forward(Token::TagToken(br), line);
        }
    }

    fn drop_start(&self, tag: Tag, line: u64) -> TokenSinkResult<S::Handle> {
        self.dropped.set(self.dropped.get() + 1);
        let name = tag.name.clone();
        let foreign_root = matches!(&*name, "svg" | "math") && tag.self_closing;
        if !is_void(&name) && !foreign_root {
            let attr = |a: &str| {
                tag.attrs
                    .iter()
                    .find(|x| &*x.name.local == a)
                    .map(|x| &*x.value)
            };
            let skipped = super::skipped_tag(&name, attr);
            self.separate(&name, line);
            self.dropped_open.borrow_mut().push((name.clone(), skipped));
            *self
                .open_names
                .borrow_mut()
                .entry(name.clone())
                .or_default() += 1;
            self.skipping
                .set(self.skipping.get() + usize::from(skipped));
        }
        // Switch the tokenizer as the tree builder would, so raw text stays raw.
        match &*name {
            "script" => TokenSinkResult::RawData(RawKind::ScriptData),
            "style" | "xmp" | "iframe" | "noembed" | "noframes" | "noscript" => {
                TokenSinkResult::RawData(RawKind::Rawtext)
            }
            "textarea" | "title" => TokenSinkResult::RawData(RawKind::Rcdata),
            "plaintext" => TokenSinkResult::Plaintext,
            _ => TokenSinkResult::Continue,
        }
    }

    /// Closes a dropped element (and any dropped ones inside it); false when none of
    /// that name is open.
    fn drop_end(&self, name: &LocalName, line: u64) -> bool {
        if self.open_names.borrow().get(name).is_none_or(|&n| n == 0) {
            return false;
        }
        loop {
            let Some((open, skipped)) = self.dropped_open.borrow_mut().pop() else {
                return true;
            };
            if let Some(n) = self.open_names.borrow_mut().get_mut(&open) {
                *n -= 1;
            }
            self.skipping
                .set(self.skipping.get() - usize::from(skipped));
            if open == *name {
                self.separate(name, line);
                return true;
            }
        }
    }
}

impl<S: TreeSink> TokenSink for Guard<S>
where
    S::Handle: Clone,
{
    type Handle = S::Handle;

    fn process_token(&self, token: Token, line: u64) -> TokenSinkResult<S::Handle> {
        let below_cap = !self.dropped_open.borrow().is_empty();
        match token {
            Token::TagToken(tag) if tag.kind == TagKind::StartTag => {
                // Void elements never deepen the tree: forwarded unless skipped.
                let void = is_void(&tag.name);
                if self.skipping.get() > 0 {
                    if void {
                        return TokenSinkResult::Continue;
                    }
                    return self.drop_start(tag, line);
                }
                if !void && (below_cap || self.full()) {
                    return self.drop_start(tag, line);
                }
                self.since.set(self.since.get() + usize::from(!void));
                self.forward(Token::TagToken(tag), line)
            }
            Token::TagToken(tag) => {
                if below_cap && self.drop_end(&tag.name, line) {
                    return TokenSinkResult::Continue;
                }
                self.forward(Token::TagToken(tag), line)
            }
            Token::CharacterTokens(_) | Token::NullCharacterToken if self.skipping.get() > 0 => {
                TokenSinkResult::Continue
            }
            token => self.forward(token, line),
        }
    }

    fn end(&self) {
        self.inner.end()
    }

    fn adjusted_current_node_present_but_not_in_html_namespace(&self) -> bool {
        self.inner
            .adjusted_current_node_present_but_not_in_html_namespace()
    }
}

/// Counts the handles the tree builder holds: its open elements, formatting entries, and
/// a few singletons (document, head, form).
struct Counter<H>(Cell<usize>, std::marker::PhantomData<H>);

impl<H> html5ever::tree_builder::Tracer for Counter<H> {
    type Handle = H;
    fn trace_handle(&self, _: &H) {
        self.0.set(self.0.get() + 1);
    }
}

/// Elements that never have content, so never deepen the tree.
fn is_void(name: &str) -> bool {
    matches!(
        name,
        "area"
            | "base"
            | "basefont"
            | "bgsound"
            | "br"
            | "col"
            | "embed"
            | "frame"
            | "hr"
            | "img"
            | "image"
            | "input"
            | "keygen"
            | "link"
            | "meta"
            | "param"
            | "source"
            | "track"
            | "wbr"
    )
}
