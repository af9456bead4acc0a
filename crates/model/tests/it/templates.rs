//! The chat templates stored in the models render as the models expect (snapshots). The
//! expected texts were checked against Python jinja2 with transformers' settings
//! (`trim_blocks`, `lstrip_blocks`) rendering the same templates.

use crate::{QWEN, SMOLLM2, model_path};
use ragtune_core::ChatMessage;
use ragtune_model::llama::Tokenizer;

fn conversation() -> Vec<ChatMessage> {
    vec![
        ChatMessage::system("You answer from the documents."),
        ChatMessage::user("What is RAG?"),
        ChatMessage::assistant("Retrieval-augmented generation."),
        ChatMessage::user("Cite a source."),
    ]
}

#[test]
fn smollm2_chat_template() {
    let t = Tokenizer::load(model_path(SMOLLM2)).unwrap();
    insta::assert_snapshot!(t.render_chat(&conversation(), true).unwrap(), @r"
    <|im_start|>system
    You answer from the documents.<|im_end|>
    <|im_start|>user
    What is RAG?<|im_end|>
    <|im_start|>assistant
    Retrieval-augmented generation.<|im_end|>
    <|im_start|>user
    Cite a source.<|im_end|>
    <|im_start|>assistant
    ");
}

#[test]
fn smollm2_adds_its_default_system_prompt() {
    let t = Tokenizer::load(model_path(SMOLLM2)).unwrap();
    insta::assert_snapshot!(t.render_chat(&[ChatMessage::user("Hi")], true).unwrap(), @r"
    <|im_start|>system
    You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>
    <|im_start|>user
    Hi<|im_end|>
    <|im_start|>assistant
    ");
}

#[test]
fn qwen_chat_template() {
    let t = Tokenizer::load(model_path(QWEN)).unwrap();
    insta::assert_snapshot!(t.render_chat(&conversation(), true).unwrap(), @r"
    <|im_start|>system
    You answer from the documents.<|im_end|>
    <|im_start|>user
    What is RAG?<|im_end|>
    <|im_start|>assistant
    Retrieval-augmented generation.<|im_end|>
    <|im_start|>user
    Cite a source.<|im_end|>
    <|im_start|>assistant
    ");
}

#[test]
fn qwen_adds_its_default_system_prompt() {
    let t = Tokenizer::load(model_path(QWEN)).unwrap();
    insta::assert_snapshot!(t.render_chat(&[ChatMessage::user("Hi")], false).unwrap(), @r"
    <|im_start|>system
    You are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>
    <|im_start|>user
    Hi<|im_end|>
    ");
}
