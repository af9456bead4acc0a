//! `ragtune models pull | list | rm`, and turning `--model` into a file to load.

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use ragtune_catalog::{InstallState, ModelStore, ResolvedModel};
use ragtune_model::llama::QuantType;
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Fetch models (default: the default set), check their sha256, install them.
    Pull {
        /// Catalogue names or aliases; none pulls every default model.
        names: Vec<String>,
    },
    /// Show the catalogue and what is installed.
    List,
    /// Re-quantize a GGUF model (e.g. Q4_1 -> Q8_0 for faster CPU prompt processing);
    /// the result is a new model in the store, named NAME-TYPE unless --name says otherwise.
    Quantize {
        /// Catalogue name, GGUF file or model folder.
        model: String,
        /// Target type: q8_0, q4_0, q4_k_m or f16.
        #[arg(long = "type", default_value = "q8_0")]
        kind: String,
        /// Name of the new model in the store.
        #[arg(long)]
        name: Option<String>,
        /// Replace an existing result.
        #[arg(long)]
        force: bool,
    },
    /// Remove an installed model.
    Rm {
        /// Catalogue name or alias.
        name: String,
    },
}

pub fn run(command: ModelsCommand) -> Result<()> {
    let store = ModelStore::from_env()?;
    match command {
        ModelsCommand::Pull { names } => pull(&store, &names),
        ModelsCommand::List => list(&store),
        ModelsCommand::Quantize {
            model,
            kind,
            name,
            force,
        } => quantize(&store, &model, &kind, name, force),
        ModelsCommand::Rm { name } => {
            let removed = store.rm(&name)?;
            println!(
                "removed {} ({}, {})",
                removed.name,
                removed.dir.display(),
                human_bytes(removed.bytes)
            );
            Ok(())
        }
    }
}

fn pull(store: &ModelStore, names: &[String]) -> Result<()> {
    let entries = if names.is_empty() {
        store.catalog().defaults().collect::<Vec<_>>()
    } else {
        names
            .iter()
            .map(|n| store.catalog().find(n))
            .collect::<Result<Vec<_>, _>>()?
    };
    for entry in entries {
        let pulled = store.pull(entry, &mut |event| eprintln!("  {event}"))?;
        let verb = if pulled.already_present {
            "present"
        } else {
            "installed"
        };
        println!("{verb}: {} -> {}", pulled.model, pulled.main.display());
    }
    Ok(())
}

fn quantize(
    store: &ModelStore,
    model: &str,
    kind: &str,
    name: Option<String>,
    force: bool,
) -> Result<()> {
    let Some(kind) = QuantType::parse(kind) else {
        bail!("unknown quantization type {kind:?}: use q8_0, q4_0, q4_k_m or f16");
    };
    let input = resolve_generator(model)?;
    let name = name.unwrap_or_else(|| format!("{model}-{}", kind.as_str()));
    if name.contains(['/', '\\']) || name.starts_with('.') {
        bail!("--name {name:?} must be a plain name (it becomes a folder under the store)");
    }
    let dir = store.models_dir().join(&name);
    let stem = input
        .file_stem()
        .map_or_else(|| "model".into(), |s| s.to_string_lossy().into_owned());
    let output = dir.join(format!("{stem}.{}.gguf", kind.as_str()));
    if output.exists() && !force {
        println!(
            "present: {name} -> {} (--force rebuilds it)",
            output.display()
        );
        return Ok(());
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    eprintln!("quantizing {} to {}", input.display(), kind.as_str());
    // `quantize` writes `x.gguf.partial` and renames it into place: a partial file never
    // resolves as a model, so an interrupted run leaves nothing that `--model` or `ask`'s
    // default would load.
    ragtune_model::llama::quantize(&input, &output, kind, 0)?;
    println!(
        "installed: {name} -> {} (use --model {name})",
        output.display()
    );
    Ok(())
}

fn list(store: &ModelStore) -> Result<()> {
    let listing = store.list()?;
    println!("models in {}", store.models_dir().display());
    println!(
        "{:<30} {:<9} {:<8} {:<10} {:>9}  description",
        "name", "kind", "default", "state", "size"
    );
    for m in &listing.models {
        let state = match m.state {
            InstallState::Installed => "installed",
            InstallState::Partial => "partial",
            InstallState::Missing => "-",
        };
        let size = match m.state {
            InstallState::Missing => m.pinned_size.map(human_bytes).unwrap_or_default(),
            _ => human_bytes(m.size_on_disk),
        };
        println!(
            "{:<30} {:<9} {:<8} {:<10} {:>9}  {}",
            m.name,
            m.kind.to_string(),
            if m.default { "yes" } else { "" },
            state,
            size,
            m.description
        );
    }
    for extra in &listing.extra {
        println!(
            "{:<30} {:<9} {:<8} {:<10} {:>9}  not in the catalogue: {}",
            extra.name,
            "?",
            "",
            "local",
            human_bytes(extra.size_on_disk),
            extra.path.display()
        );
    }
    Ok(())
}

/// The GGUF file to generate with, from a catalogue name, a file or a folder.
pub fn resolve_generator(name_or_path: &str) -> Result<PathBuf> {
    let store = ModelStore::from_env()?;
    match store.resolve(name_or_path)? {
        ResolvedModel::Gguf(path) => Ok(path),
        ResolvedModel::HfFolder(path) => bail!(
            "{} is a Hugging Face model folder; generation runs GGUF models on llama.cpp. \
             Convert it (llama.cpp's convert_hf_to_gguf.py) or name a .gguf file",
            path.display()
        ),
    }
}

fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KB", "MB", "GB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
