//! `graft download` argument handling and the offline short-circuit (no network in tests).

mod cli_common;

use cli_common::*;

#[test]
fn rejects_a_non_repo_id_without_touching_the_network() {
    let out = graft(&["download", "not a repo"], &[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("org/name"), "{}", stderr(&out));
}

#[test]
fn offline_prints_the_cached_snapshot_or_fails_clearly() {
    let cache = tempfile::tempdir().unwrap();
    let repo = cache.path().join("models--org--tiny");
    let snapshot = repo.join("snapshots").join("abc123");
    std::fs::create_dir_all(&snapshot).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs").join("main"), "abc123\n").unwrap();
    std::fs::copy(tiny_dir().join("config.json"), snapshot.join("config.json")).unwrap();
    // A single-file checkpoint: only its presence matters for resolution.
    std::fs::write(snapshot.join("model.safetensors"), b"").unwrap();
    let c = cache.path().to_str().unwrap();
    let env = [("HF_HUB_CACHE", c), ("HF_HUB_OFFLINE", "1")];
    let out = ok(graft(&["download", "org/tiny"], &env));
    assert_eq!(stdout(&out).trim(), snapshot.to_str().unwrap());
    let out = ok(graft(
        &["download", "org/tiny", "--revision", "abc123"],
        &env,
    ));
    assert_eq!(stdout(&out).trim(), snapshot.to_str().unwrap());
    let out = graft(&["download", "org/other"], &env);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("HF_HUB_OFFLINE"), "{}", stderr(&out));
}
