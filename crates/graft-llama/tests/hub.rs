//! Offline resolution of model arguments: local directories and the HF hub cache layout.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use graft_llama::hub::{hub_cache_dir, is_repo_id, resolve, resolve_in_cache};

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

/// Builds `models--org--tiny/{refs/main, snapshots/COMMIT/...}` under `cache` as huggingface_hub
/// lays it out (files as plain copies instead of blob symlinks).
fn populate(cache: &Path, with_weights: bool) -> PathBuf {
    let repo = cache.join("models--org--tiny");
    let snapshot = repo.join("snapshots").join(COMMIT);
    std::fs::create_dir_all(&snapshot).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), COMMIT).unwrap();
    std::fs::write(repo.join("refs/v1"), format!("{COMMIT}\n")).unwrap();
    let src = fixtures().join("tiny-llama3-bf16");
    std::fs::copy(src.join("config.json"), snapshot.join("config.json")).unwrap();
    if with_weights {
        std::fs::copy(
            src.join("model.safetensors"),
            snapshot.join("model.safetensors"),
        )
        .unwrap();
    }
    snapshot
}

#[test]
fn repo_ids_are_recognised() {
    assert!(is_repo_id("meta-llama/Llama-3.2-1B"));
    assert!(is_repo_id("org/name_v1.5"));
    for bad in [
        "name",
        "a/b/c",
        "/abs/path",
        "./rel",
        "org/",
        "org/../x",
        "org/na me",
    ] {
        assert!(!is_repo_id(bad), "{bad}");
    }
}

#[test]
fn cached_snapshot_resolves_by_branch_tag_and_commit() {
    let cache = tempfile::tempdir().unwrap();
    let snapshot = populate(cache.path(), true);
    assert_eq!(
        resolve_in_cache(cache.path(), "org/tiny", "main"),
        Some(snapshot.clone())
    );
    assert_eq!(
        resolve_in_cache(cache.path(), "org/tiny", "v1"),
        Some(snapshot.clone()),
        "ref with newline"
    );
    assert_eq!(
        resolve_in_cache(cache.path(), "org/tiny", COMMIT),
        Some(snapshot)
    );
    assert_eq!(resolve_in_cache(cache.path(), "org/tiny", "dev"), None);
    assert_eq!(resolve_in_cache(cache.path(), "org/other", "main"), None);
}

#[test]
fn snapshot_without_weights_does_not_resolve() {
    let cache = tempfile::tempdir().unwrap();
    populate(cache.path(), false);
    assert_eq!(resolve_in_cache(cache.path(), "org/tiny", "main"), None);
}

#[test]
fn resolved_snapshot_loads() {
    let cache = tempfile::tempdir().unwrap();
    populate(cache.path(), true);
    let dir = resolve_in_cache(cache.path(), "org/tiny", "main").unwrap();
    let (model, _) = graft_llama::load::<B>(dir, &Default::default()).expect("load from cache");
    assert_eq!(model.layers.len(), 2);
}

#[test]
fn local_paths_win_and_bad_arguments_explain() {
    let local = fixtures().join("tiny-llama3");
    assert_eq!(resolve(local.to_str().unwrap(), None).unwrap(), local);
    let file = local.join("config.json");
    assert!(resolve(file.to_str().unwrap(), None)
        .unwrap_err()
        .to_string()
        .contains("directory"));
    let err = resolve("/no/such/dir", None).unwrap_err();
    assert!(err.to_string().contains("not a Hub repo id"), "{err}");
}

/// The only test here that touches the environment (tests run in parallel threads).
#[test]
fn environment_selects_the_cache() {
    let cache = tempfile::tempdir().unwrap();
    let snapshot = populate(cache.path(), true);
    std::env::set_var("HF_HOME", "/hf-home");
    std::env::remove_var("HF_HUB_CACHE");
    assert_eq!(hub_cache_dir(), Some(PathBuf::from("/hf-home/hub")));
    std::env::set_var("HF_HUB_CACHE", cache.path());
    assert_eq!(hub_cache_dir(), Some(cache.path().to_path_buf()));
    assert_eq!(resolve("org/tiny", None).unwrap(), snapshot);
    assert_eq!(resolve("org/tiny", Some(COMMIT)).unwrap(), snapshot);
    let err = resolve("org/absent", None).unwrap_err().to_string();
    assert!(err.contains("org/absent") && err.contains("HINT"), "{err}");
}
