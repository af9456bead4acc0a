//! The user's prices (`prices.toml`): ragtune ships no vendor prices, so every dollar figure
//! in a report comes from a file the user wrote.
//!
//! ```toml
//! # Optional: what an hour of local CPU costs, for CPU-only variants and training.
//! cpu_usd_per_hour = 0.04
//!
//! # Per model (or per variant name, which wins over the model name): USD per million tokens.
//! [models."qwen2.5-0.5b"]
//! prompt_usd_per_million = 0.05
//! completion_usd_per_million = 0.10
//! ```

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Hosted prices of one model, in USD per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ModelPrice {
    pub prompt_usd_per_million: f64,
    pub completion_usd_per_million: f64,
}

impl ModelPrice {
    /// The price of one question with these mean token counts.
    pub fn per_question(&self, prompt_tokens: f64, completion_tokens: f64) -> f64 {
        (prompt_tokens * self.prompt_usd_per_million
            + completion_tokens * self.completion_usd_per_million)
            / 1e6
    }
}

/// Prices by model (or variant) name, and optionally a local CPU-hour price.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PriceTable {
    pub models: BTreeMap<String, ModelPrice>,
    pub cpu_usd_per_hour: Option<f64>,
}

impl PriceTable {
    /// Reads and checks a `prices.toml`.
    pub fn load(path: &Path) -> Result<Self> {
        let text = fs_err::read_to_string(path)?;
        Self::parse(&text, path)
    }

    /// Parses the text of a prices file; `path` only names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let err = |key: &str, reason: String| Error::Toml {
            path: path.to_owned(),
            key: key.to_owned(),
            reason,
        };
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| err("(file)", toml_message(text, &e)))?;
        let mut prices = PriceTable::default();
        for (key, value) in &table {
            match key.as_str() {
                "cpu_usd_per_hour" => prices.cpu_usd_per_hour = Some(price(value, key, path)?),
                "models" => {
                    let models = value.as_table().ok_or_else(|| {
                        err(
                            key,
                            "expected a table of models, e.g. [models.\"qwen2.5-0.5b\"]".into(),
                        )
                    })?;
                    for (model, entry) in models {
                        let at = format!("models.{model:?}");
                        let entry = entry.as_table().ok_or_else(|| {
                            err(
                                &at,
                                "expected a table with prompt_usd_per_million and \
                                 completion_usd_per_million"
                                    .into(),
                            )
                        })?;
                        let field = |name: &str| -> Result<f64> {
                            let key = format!("{at}.{name}");
                            match entry.get(name) {
                                Some(v) => price(v, &key, path),
                                None => Err(err(
                                    &key,
                                    "missing; add it (USD per million tokens)".into(),
                                )),
                            }
                        };
                        if let Some(unknown) = entry.keys().find(|k| {
                            *k != "prompt_usd_per_million" && *k != "completion_usd_per_million"
                        }) {
                            return Err(err(
                                &format!("{at}.{unknown}"),
                                "unknown key; expected prompt_usd_per_million or \
                                 completion_usd_per_million"
                                    .into(),
                            ));
                        }
                        prices.models.insert(
                            model.clone(),
                            ModelPrice {
                                prompt_usd_per_million: field("prompt_usd_per_million")?,
                                completion_usd_per_million: field("completion_usd_per_million")?,
                            },
                        );
                    }
                }
                _ => {
                    return Err(err(
                        key,
                        "unknown key; expected cpu_usd_per_hour or a [models.\"NAME\"] table"
                            .into(),
                    ));
                }
            }
        }
        Ok(prices)
    }

    /// The hosted price of a variant: by its name first, then by its model's name.
    pub fn model_price(&self, variant: &str, model: &str) -> Option<&ModelPrice> {
        self.models.get(variant).or_else(|| self.models.get(model))
    }
}

fn price(value: &toml::Value, key: &str, path: &Path) -> Result<f64> {
    let v = match value {
        toml::Value::Float(f) => *f,
        toml::Value::Integer(i) => *i as f64,
        other => {
            return Err(Error::Toml {
                path: PathBuf::from(path),
                key: key.to_owned(),
                reason: format!("expected a number (USD), found a {}", other.type_str()),
            });
        }
    };
    if !v.is_finite() || v < 0.0 {
        return Err(Error::Toml {
            path: path.to_owned(),
            key: key.to_owned(),
            reason: format!("{v} is not a price; expected a number >= 0"),
        });
    }
    Ok(v)
}

/// toml's message with the line number of its span, on one line.
pub(crate) fn toml_message(text: &str, e: &toml::de::Error) -> String {
    let msg = e.message().trim().to_owned();
    match e.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            format!("line {line}: {msg}")
        }
        None => msg,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<PriceTable> {
        PriceTable::parse(text, Path::new("prices.toml"))
    }

    #[test]
    fn reads_models_and_cpu_price() {
        let p = parse(
            "cpu_usd_per_hour = 0.04\n[models.\"qwen2.5-0.5b\"]\nprompt_usd_per_million = 0.05\n\
             completion_usd_per_million = 1\n",
        )
        .unwrap();
        assert_eq!(p.cpu_usd_per_hour, Some(0.04));
        let m = p.model_price("rag@qwen2.5-0.5b", "qwen2.5-0.5b").unwrap();
        assert_eq!(m.completion_usd_per_million, 1.0);
        // 1000 prompt tokens at 0.05/M + 100 completion at 1/M.
        assert!((m.per_question(1000.0, 100.0) - (0.00005 + 0.0001)).abs() < 1e-15);
        assert!(p.model_price("x", "other").is_none());
    }

    #[test]
    fn variant_name_wins_over_model_name() {
        let p = parse(
            "[models.m]\nprompt_usd_per_million = 1\ncompletion_usd_per_million = 1\n\
             [models.\"sft@m\"]\nprompt_usd_per_million = 2\ncompletion_usd_per_million = 2\n",
        )
        .unwrap();
        assert_eq!(
            p.model_price("sft@m", "m").unwrap().prompt_usd_per_million,
            2.0
        );
        assert_eq!(
            p.model_price("rag@m", "m").unwrap().prompt_usd_per_million,
            1.0
        );
    }

    #[test]
    fn errors_name_the_file_and_key() {
        let e = parse("[models.m]\nprompt_usd_per_million = 1\n")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "prices.toml: models.\"m\".completion_usd_per_million: missing; add it (USD per \
             million tokens)"
        );
        let e = parse(
            "[models.m]\nprompt_usd_per_million = \"cheap\"\ncompletion_usd_per_million = 1\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("prices.toml: models.\"m\".prompt_usd_per_million: expected a number"),
            "{e}"
        );
        let e = parse("cpu_usd_per_hour = -1\n").unwrap_err().to_string();
        assert!(e.contains("cpu_usd_per_hour: -1 is not a price"), "{e}");
        let e = parse("gpu_usd_per_hour = 1\n").unwrap_err().to_string();
        assert!(
            e.contains("prices.toml: gpu_usd_per_hour: unknown key"),
            "{e}"
        );
        let e = parse("cpu_usd_per_hour = 1\n[models\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("prices.toml: (file): line 2:"), "{e}");
    }
}
