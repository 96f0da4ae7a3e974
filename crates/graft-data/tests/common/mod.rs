//! Shared helpers for graft-data's integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use graft_data::{DataConfig, TextTokenizer};

/// The real Llama-3 tokenizer fixture.
pub fn tokenizer_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/llama3-tokenizer/tokenizer.json")
}

/// The fixture tokenizer with Llama-3's BOS/EOS.
pub fn tokenizer() -> TextTokenizer {
    TextTokenizer::from_file(&tokenizer_path(), Some(128000), Some(128001))
        .expect("fixture tokenizer loads")
}

/// Writes `text` to `dir/name`, creating parent folders.
pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, text).unwrap();
    path
}

/// Parses a `[data]` table body and resolves its paths against `base`.
pub fn config(toml: &str, base: &Path) -> DataConfig {
    let mut c = DataConfig::from_toml_str(toml, Path::new("test.toml")).expect("config parses");
    c.resolve_paths(base);
    c
}

/// `n` JSONL lines `{"text": "..."}` of varied, deterministic prose (about `words` words each).
pub fn prose_jsonl(n: usize, words: usize, tag: &str) -> String {
    const WORDS: [&str; 16] = [
        "river", "market", "protein", "yield", "cell", "bond", "enzyme", "credit", "patient",
        "equity", "gene", "rate", "tissue", "asset", "dose", "risk",
    ];
    let mut out = String::new();
    for i in 0..n {
        let text: Vec<&str> = (0..words)
            .map(|j| WORDS[(i * 7 + j * 3 + j / 5) % WORDS.len()])
            .collect();
        out.push_str(
            &serde_json::json!({ "text": format!("{tag} {i}: {}.", text.join(" ")) }).to_string(),
        );
        out.push('\n');
    }
    out
}
