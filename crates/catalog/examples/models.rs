//! A minimal `ragtune models` for trying the store by hand:
//! `cargo run -p ragtune-catalog --example models -- pull|list|rm|resolve [NAME...]`.
//! Honours RAGTUNE_HOME, RAGTUNE_CATALOG and RAGTUNE_PYTHON like the real CLI.

use ragtune_catalog::{InstallState, ModelStore};

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> ragtune_catalog::Result<()> {
    let store = ModelStore::from_env()?;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (command, names) = args
        .split_first()
        .map_or(("list", &[][..]), |(c, n)| (c.as_str(), n));
    match command {
        "pull" => {
            let entries: Vec<_> = match names {
                [] => store.catalog().defaults().collect(),
                names => names
                    .iter()
                    .map(|n| store.catalog().find(n))
                    .collect::<Result<_, _>>()?,
            };
            for entry in entries {
                let pulled = store.pull(entry, &mut |event| println!("  {event}"))?;
                println!("{} -> {}", pulled.model, pulled.main.display());
            }
        }
        "rm" => {
            for name in names {
                let removed = store.rm(name)?;
                println!(
                    "removed {} ({} bytes)",
                    removed.dir.display(),
                    removed.bytes
                );
            }
        }
        "resolve" => {
            for name in names {
                println!("{:?}", store.resolve(name)?);
            }
        }
        _ => {
            let listing = store.list()?;
            for m in &listing.models {
                let state = match m.state {
                    InstallState::Installed => "installed",
                    InstallState::Partial => "partial",
                    InstallState::Missing => "-",
                };
                let default = if m.default { "default" } else { "" };
                println!(
                    "{:<30} {:<9} {:<7} {:<9} {:>6.0} MB  {}",
                    m.name,
                    m.kind,
                    default,
                    state,
                    m.size_on_disk as f64 / 1e6,
                    m.path.display()
                );
            }
            for extra in &listing.extra {
                println!(
                    "{:<30} (not in the catalogue) {}",
                    extra.name,
                    extra.path.display()
                );
            }
        }
    }
    Ok(())
}
