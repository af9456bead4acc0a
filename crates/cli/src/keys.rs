//! `ragtune keys`: API keys for `ragtune serve`, made, listed and revoked. A new key's secret
//! is printed once; the file keeps only its hash.

use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use ragtune_serve::keys::{self, Scope};
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct KeysFile {
    /// The keys file `ragtune serve --keys` reads (default: $RAGTUNE_HOME/keys.json).
    #[arg(long = "keys")]
    pub path: Option<PathBuf>,
}

impl KeysFile {
    pub fn path(&self) -> Result<PathBuf> {
        match &self.path {
            Some(p) => Ok(p.clone()),
            None => Ok(ragtune_catalog::default_home()?.join("keys.json")),
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Make a key and print its secret (the only time it is shown).
    Create {
        /// read: models, completions, embeddings, search; write: also upload and delete
        /// documents; admin: everything.
        #[arg(long)]
        scope: Scope,
        /// Limit the key to this knowledge base (403 on the others).
        #[arg(long)]
        kb: Option<String>,
        /// A label: who or what uses the key.
        #[arg(long, default_value = "")]
        name: String,
        #[command(flatten)]
        file: KeysFile,
    },
    /// List the keys (ids, scopes, knowledge bases; never secrets).
    List {
        #[command(flatten)]
        file: KeysFile,
    },
    /// Remove a key; a running server refuses it from its next request on.
    Revoke {
        /// The key's id (from `keys list`).
        id: String,
        #[command(flatten)]
        file: KeysFile,
    },
}

pub fn run(cmd: KeysCommand) -> Result<()> {
    match cmd {
        KeysCommand::Create {
            scope,
            kb,
            name,
            file,
        } => {
            let path = file.path()?;
            let (key, secret) = keys::create(&path, scope, kb, name)?;
            println!("{secret}");
            eprintln!(
                "created {} ({}{}) in {}; the secret above is not stored: keep it now",
                key.id,
                key.scope,
                key.kb
                    .as_deref()
                    .map(|k| format!(", knowledge base {k}"))
                    .unwrap_or_default(),
                path.display()
            );
        }
        KeysCommand::List { file } => {
            let path = file.path()?;
            let keys = keys::read(&path)?;
            if keys.is_empty() {
                eprintln!("no keys in {}", path.display());
            }
            for k in keys {
                println!(
                    "{}\t{}\t{}\t{}",
                    k.id,
                    k.scope,
                    k.kb.as_deref().unwrap_or("*"),
                    k.name
                );
            }
        }
        KeysCommand::Revoke { id, file } => {
            let path = file.path()?;
            if !keys::revoke(&path, &id)? {
                bail!(
                    "no key {id:?} in {}; `ragtune keys list` shows the ids",
                    path.display()
                );
            }
            eprintln!("revoked {id}");
        }
    }
    Ok(())
}
