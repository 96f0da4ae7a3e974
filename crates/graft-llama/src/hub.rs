//! Model arguments: a local checkpoint directory or a HuggingFace Hub repo id (`org/name`).
//!
//! [`resolve`] works offline: a path that exists is used as is; a repo id is looked up in the
//! standard HF cache (`HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`),
//! laid out as `models--org--name/refs/<revision>` → `snapshots/<commit>/`. [`download`] fetches a
//! checkpoint into that same cache with `hf-hub`, so a later `resolve` finds it offline.
//!
//! hf-hub's `Cache` only honours `HF_HOME`, panics without a home directory, and does not trim
//! ref files or accept a commit hash as revision, so the lookup is done here; the folder name
//! comes from `hf_hub::Repo::folder_name` so both agree on the layout.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use hf_hub::api::sync::ApiBuilder;
use hf_hub::{Cache, Repo, RepoType};

use crate::error::{Error, Result};
use crate::load::{read_index, weight_files, CONFIG_FILE, INDEX_FILE, SINGLE_FILE};

/// The default revision of a Hub repo.
pub const DEFAULT_REVISION: &str = "main";

/// Small files fetched beside the weights when present in the repo.
pub const OPTIONAL_FILES: [&str; 4] = [
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
];

/// The HF hub cache directory from the environment: `HF_HUB_CACHE`, else `$HF_HOME/hub`,
/// else `~/.cache/huggingface/hub`. `None` only when none of these can be determined.
pub fn hub_cache_dir() -> Option<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(dir) = var("HF_HUB_CACHE") {
        return Some(PathBuf::from(dir));
    }
    if let Some(home) = var("HF_HOME") {
        return Some(PathBuf::from(home).join("hub"));
    }
    var("HOME").map(|home| {
        PathBuf::from(home)
            .join(".cache")
            .join("huggingface")
            .join("hub")
    })
}

/// Whether `s` looks like a Hub repo id: `org/name` of letters, digits, `-`, `_`, `.`.
pub fn is_repo_id(s: &str) -> bool {
    let valid = |part: &str| {
        !part.is_empty()
            && !part.starts_with('.')
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    };
    matches!(s.split_once('/'), Some((org, name)) if valid(org) && valid(name))
}

/// What a resolved checkpoint directory must hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// `config.json` and complete weights (to load the model).
    Weights,
    /// `config.json` only (to plan or inspect an architecture before downloading its weights).
    Config,
}

/// Turns a model argument into a checkpoint directory without touching the network: an existing
/// local path, or the cached snapshot of a Hub repo at `revision` (default "main") that has
/// `config.json` and its weights.
pub fn resolve(model: &str, revision: Option<&str>) -> Result<PathBuf> {
    resolve_for(model, revision, Need::Weights)
}

/// [`resolve`], asking only for what `need` says: with [`Need::Config`] a local directory must
/// hold `config.json` and a cached snapshot need not have its weights yet.
pub fn resolve_for(model: &str, revision: Option<&str>, need: Need) -> Result<PathBuf> {
    let path = Path::new(model);
    if path.exists() {
        if !path.is_dir() {
            return Err(Error::Resolve {
                model: model.to_string(),
                message: "is a file; pass the checkpoint directory holding config.json".into(),
            });
        }
        if need == Need::Config && !path.join(CONFIG_FILE).is_file() {
            return Err(Error::Resolve {
                model: model.to_string(),
                message: format!("has no {CONFIG_FILE}; pass an HF checkpoint directory"),
            });
        }
        return Ok(path.to_path_buf());
    }
    if !is_repo_id(model) {
        return Err(Error::Resolve {
            model: model.to_string(),
            message: "no such directory, and not a Hub repo id of the form org/name".into(),
        });
    }
    let cache = hub_cache_dir().ok_or_else(|| Error::Resolve {
        model: model.to_string(),
        message: "cannot locate the HF cache: set HF_HUB_CACHE or HF_HOME".into(),
    })?;
    let revision = revision.unwrap_or(DEFAULT_REVISION);
    let found = match need {
        Need::Weights => resolve_in_cache(&cache, model, revision),
        Need::Config => snapshot_with_config(&cache, model, revision),
    };
    found.ok_or_else(|| Error::Resolve {
        model: model.to_string(),
        message: format!(
            "revision {revision} is not in the HF cache at {} (or lacks {})\n\
             HINT: download it first (graft download {model}) or pass a local directory",
            cache.display(),
            match need {
                Need::Weights => "config.json or weights",
                Need::Config => "config.json",
            }
        ),
    })
}

/// The snapshot directory of `repo_id` at `revision` in the hub cache `cache`, if it holds
/// `config.json` and complete weights. `revision` may be a branch/tag (looked up in `refs/`) or
/// a commit hash.
pub fn resolve_in_cache(cache: &Path, repo_id: &str, revision: &str) -> Option<PathBuf> {
    snapshot_with_config(cache, repo_id, revision).filter(|s| weight_files(s).is_ok())
}

/// The snapshot directory of `repo_id` at `revision` if it holds `config.json` (weights or not).
fn snapshot_with_config(cache: &Path, repo_id: &str, revision: &str) -> Option<PathBuf> {
    let repo = Repo::with_revision(repo_id.to_string(), RepoType::Model, revision.to_string());
    let root = cache.join(repo.folder_name());
    let commit = match std::fs::read_to_string(root.join("refs").join(revision)) {
        Ok(text) => text.trim().to_string(),
        Err(_) => revision.to_string(),
    };
    if commit.is_empty() || commit.contains('/') || commit.starts_with('.') {
        return None;
    }
    let snapshot = root.join("snapshots").join(commit);
    snapshot.join(CONFIG_FILE).is_file().then_some(snapshot)
}

/// Downloads `config.json`, the optional generation/tokenizer files, and the weights (the index
/// and every shard it names, or `model.safetensors`) of `repo_id` at `revision` into the HF cache,
/// and returns the snapshot directory. Files already cached are not fetched again. Uses `HF_TOKEN`
/// (or the cached login token) for gated repos and `HF_ENDPOINT` when set.
pub fn download(repo_id: &str, revision: Option<&str>) -> Result<PathBuf> {
    let revision = revision.unwrap_or(DEFAULT_REVISION).to_string();
    let fail = |file: &str, message: String| Error::Download {
        repo: repo_id.to_string(),
        revision: revision.clone(),
        file: file.to_string(),
        message,
    };
    let repo = api_repo(repo_id, &revision)?;
    let get = |file: &str| repo.get(file).map_err(|e| fail(file, e.to_string()));

    let config = get(CONFIG_FILE)?;
    for file in OPTIONAL_FILES {
        if let Err(e) = repo.get(file) {
            tracing::debug!(file, error = %e, "optional file not downloaded");
        }
    }
    match repo.get(INDEX_FILE) {
        Ok(index) => {
            for shard in read_index(&index)? {
                tracing::info!(repo = repo_id, shard = %shard, "downloading");
                get(&shard)?;
            }
        }
        Err(index_err) => {
            tracing::debug!(error = %index_err, "no shard index; fetching model.safetensors");
            get(SINGLE_FILE)?;
        }
    }
    let snapshot = config
        .parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| fail(CONFIG_FILE, "cached file has no parent directory".into()))?;
    weight_files(&snapshot)?;
    Ok(snapshot)
}

/// Downloads only `config.json` of `repo_id` at `revision` into the HF cache (to plan or inspect
/// an architecture before fetching its weights) and returns the snapshot directory holding it.
/// A cached file is not fetched again. Same environment as [`download`].
pub fn download_config(repo_id: &str, revision: Option<&str>) -> Result<PathBuf> {
    let revision = revision.unwrap_or(DEFAULT_REVISION).to_string();
    let fail = |message: String| Error::Download {
        repo: repo_id.to_string(),
        revision: revision.clone(),
        file: CONFIG_FILE.to_string(),
        message,
    };
    let config = api_repo(repo_id, &revision)?
        .get(CONFIG_FILE)
        .map_err(|e| fail(e.to_string()))?;
    config
        .parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| fail("cached file has no parent directory".into()))
}

/// Makes sure `config.json` of `model` can be read without the weights: a Hub id whose config is
/// not in the HF cache gets that file alone fetched ([`download_config`]). A local path, a cached
/// config, something that is not a Hub id, or `HF_HUB_OFFLINE` set: nothing is fetched (resolving
/// then fails, naming the cache).
pub fn ensure_config(model: &str, revision: Option<&str>) -> Result<()> {
    let cached = resolve_for(model, revision, Need::Config).is_ok();
    if cached || Path::new(model).exists() || !is_repo_id(model) || offline() {
        return Ok(());
    }
    download_config(model, revision).map(|_| ())
}

/// `HF_HUB_OFFLINE` set to anything but "", "0", "false", "no" or "off" (as huggingface_hub
/// reads it): nothing may be fetched.
pub fn offline() -> bool {
    std::env::var("HF_HUB_OFFLINE")
        .map(|v| {
            !matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "" | "0" | "false" | "no" | "off"
            )
        })
        .unwrap_or(false)
}

/// hf-hub's handle on `repo_id` at `revision`, caching in [`hub_cache_dir`], with `HF_ENDPOINT`
/// and `HF_TOKEN` when set.
fn api_repo(repo_id: &str, revision: &str) -> Result<hf_hub::api::sync::ApiRepo> {
    let fail = |message: String| Error::Download {
        repo: repo_id.to_string(),
        revision: revision.to_string(),
        file: CONFIG_FILE.to_string(),
        message,
    };
    let cache = hub_cache_dir()
        .ok_or_else(|| fail("cannot locate the HF cache: set HF_HUB_CACHE or HF_HOME".into()))?;
    let mut builder =
        ApiBuilder::from_cache(Cache::new(cache)).with_progress(std::io::stderr().is_terminal());
    if let Ok(endpoint) = std::env::var("HF_ENDPOINT") {
        builder = builder.with_endpoint(endpoint);
    }
    if let Ok(token) = std::env::var("HF_TOKEN") {
        builder = builder.with_token(Some(token));
    }
    let api = builder.build().map_err(|e| fail(e.to_string()))?;
    Ok(api.repo(Repo::with_revision(
        repo_id.to_string(),
        RepoType::Model,
        revision.to_string(),
    )))
}
