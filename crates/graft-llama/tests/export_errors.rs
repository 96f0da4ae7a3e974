//! Export is atomic and explains bad input: non-empty output refused without --force, --force
//! replaces only after success, failures leave no half-written directory, errors name the file.

use std::fs;
use std::path::{Path, PathBuf};

use graft_llama::export::{
    export_checkpoint, write_hf_dir, CheckpointSource, ExportDtype, ExportError, ExportOptions,
    HfDirFiles, TensorData, TensorSource, TensorSpec,
};

fn fixture() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/tiny-llama3"
    ))
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        fs::copy(&path, to.join(path.file_name().unwrap())).unwrap();
    }
}

fn run(
    src: &Path,
    out: &Path,
    force: bool,
) -> Result<graft_llama::export::ExportSummary, ExportError> {
    let options = ExportOptions {
        force,
        ..ExportOptions::default()
    };
    export_checkpoint(src, out, &options, &mut |_, _| {})
}

/// Entries of `dir` other than `keep`, to spot leftover staging directories.
fn leftovers(dir: &Path, keep: &[&str]) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !keep.contains(&n.as_str()))
        .collect()
}

#[test]
fn non_empty_output_is_refused_without_force_and_replaced_with_it() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    fs::create_dir(&out).unwrap();
    fs::write(out.join("precious.txt"), "keep me").unwrap();
    let err = run(&fixture(), &out, false).unwrap_err();
    assert!(matches!(err, ExportError::OutDirNotEmpty { .. }), "{err}");
    assert!(err.to_string().contains("--force"));
    assert_eq!(
        fs::read_to_string(out.join("precious.txt")).unwrap(),
        "keep me"
    );
    assert_eq!(leftovers(tmp.path(), &["out"]), Vec::<String>::new());

    run(&fixture(), &out, true).unwrap();
    assert!(!out.join("precious.txt").exists());
    assert!(out.join("model.safetensors").is_file() && out.join("config.json").is_file());
    assert_eq!(leftovers(tmp.path(), &["out"]), Vec::<String>::new());
}

#[test]
fn an_empty_output_directory_is_fine() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("empty");
    fs::create_dir(&out).unwrap();
    run(&fixture(), &out, false).unwrap();
    assert!(out.join("model.safetensors").is_file());
}

#[test]
fn missing_config_names_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    copy_dir(&fixture(), &src);
    fs::remove_file(src.join("config.json")).unwrap();
    let err = run(&src, &tmp.path().join("out"), false).unwrap_err();
    assert!(err.to_string().contains("config.json"), "{err}");
    assert_eq!(leftovers(tmp.path(), &["src"]), Vec::<String>::new());
}

#[test]
fn missing_shard_names_the_shard() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    copy_dir(&fixture(), &src);
    fs::remove_file(src.join("model-00002-of-00002.safetensors")).unwrap();
    let err = run(&src, &tmp.path().join("out"), false).unwrap_err();
    assert!(
        err.to_string().contains("model-00002-of-00002.safetensors"),
        "{err}"
    );
}

#[test]
fn truncated_shard_names_the_file_and_leaves_the_old_export_intact() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    copy_dir(&fixture(), &src);
    let shard = src.join("model-00001-of-00002.safetensors");
    let bytes = fs::read(&shard).unwrap();
    fs::write(&shard, &bytes[..bytes.len() - 100]).unwrap();
    let out = tmp.path().join("out");
    fs::create_dir(&out).unwrap();
    fs::write(out.join("old.txt"), "old export").unwrap();
    let err = run(&src, &out, true).unwrap_err();
    assert!(
        err.to_string().contains("model-00001-of-00002.safetensors"),
        "{err}"
    );
    assert_eq!(
        fs::read_to_string(out.join("old.txt")).unwrap(),
        "old export"
    );
    assert_eq!(leftovers(tmp.path(), &["src", "out"]), Vec::<String>::new());
}

/// Forwards to a real checkpoint but fails on the n-th tensor read.
struct FailingSource {
    inner: CheckpointSource,
    fail_at: usize,
    reads: usize,
}

impl TensorSource for FailingSource {
    fn specs(&self, dtype: ExportDtype) -> Vec<TensorSpec> {
        self.inner.specs(dtype)
    }
    fn read(&mut self, name: &str) -> graft_llama::export::Result<TensorData<'_>> {
        self.reads += 1;
        if self.reads == self.fail_at {
            return Err(ExportError::Shape {
                tensor: name.to_string(),
                message: "injected failure".into(),
            });
        }
        self.inner.read(name)
    }
}

#[test]
fn a_failure_mid_export_leaves_nothing_that_looks_finished() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let inner = CheckpointSource::open(&fixture()).unwrap();
    let files = HfDirFiles {
        config: inner.config().clone(),
        generation_config: None,
        tokenizer_dir: None,
    };
    let mut source = FailingSource {
        inner,
        fail_at: 7,
        reads: 0,
    };
    let options = ExportOptions {
        max_shard_size: 100_000,
        ..ExportOptions::default()
    };
    let err = write_hf_dir(&out, &files, &mut source, &options, &mut |_, _| {}).unwrap_err();
    assert!(err.to_string().contains("injected failure"));
    assert_eq!(source.reads, 7);
    assert!(!out.exists());
    assert_eq!(leftovers(tmp.path(), &[]), Vec::<String>::new());
}

#[test]
fn data_of_the_wrong_length_is_an_error() {
    struct Short;
    impl TensorSource for Short {
        fn specs(&self, dtype: ExportDtype) -> Vec<TensorSpec> {
            vec![TensorSpec {
                name: "w".into(),
                shape: vec![2, 3],
                dtype: dtype.safetensors(),
            }]
        }
        fn read(&mut self, _: &str) -> graft_llama::export::Result<TensorData<'_>> {
            Ok(TensorData::F32(vec![1.0; 5].into()))
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    let config = CheckpointSource::open(&fixture()).unwrap().config().clone();
    let files = HfDirFiles {
        config,
        generation_config: None,
        tokenizer_dir: None,
    };
    let err = write_hf_dir(
        &tmp.path().join("out"),
        &files,
        &mut Short,
        &ExportOptions::default(),
        &mut |_, _| {},
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("w") && text.contains("got 5 values, expected 6"),
        "{text}"
    );
    assert!(!tmp.path().join("out").exists());
}

#[test]
fn a_short_stream_is_an_error() {
    struct ShortStream;
    impl TensorSource for ShortStream {
        fn specs(&self, dtype: ExportDtype) -> Vec<TensorSpec> {
            vec![TensorSpec {
                name: "w".into(),
                shape: vec![4, 4],
                dtype: dtype.safetensors(),
            }]
        }
        fn read(&mut self, _: &str) -> graft_llama::export::Result<TensorData<'_>> {
            let pieces = vec![Ok(vec![0u8; 32].into()), Ok(vec![0u8; 16].into())];
            Ok(TensorData::Stream {
                dtype: graft_llama::export::Dtype::F32,
                chunks: Box::new(pieces.into_iter()),
            })
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    let config = CheckpointSource::open(&fixture()).unwrap().config().clone();
    let files = HfDirFiles {
        config,
        generation_config: None,
        tokenizer_dir: None,
    };
    let err = write_hf_dir(
        &tmp.path().join("out"),
        &files,
        &mut ShortStream,
        &ExportOptions::default(),
        &mut |_, _| {},
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("got 48 bytes, expected 64"),
        "{err}"
    );
    assert!(!tmp.path().join("out").exists());
}
