//! prepare: tokens with BOS/EOS, shards + manifest, incremental re-runs, corrupt shards.

mod common;

use std::io::Write;

use graft_data::shard::Shard;
use graft_data::{prepare, DataError, PreparedData, StreamOptions, TrainStream};

const TWO_SOURCES: &str = "seq_len = 16\nseed = 3\n\
    [[sources]]\nname = \"raw\"\npath = \"raw/*.jsonl\"\n\
    [[sources]]\nname = \"notes\"\npath = \"notes.txt\"\n";

#[test]
fn documents_get_exactly_one_bos_and_one_eos() {
    let dir = tempfile::tempdir().unwrap();
    common::write(
        dir.path(),
        "raw/a.jsonl",
        "{\"text\": \"Hello world\"}\n{\"text\": \"Hello\"}\n",
    );
    common::write(dir.path(), "notes.txt", "Hello world");
    let c = common::config(TWO_SOURCES, dir.path());
    let out = dir.path().join("prepared");
    let m = prepare(&c, &common::tokenizer(), &out).unwrap();
    assert_eq!((m.sources[0].documents, m.sources[0].tokens), (2, 7));
    let shard = Shard::open(&out.join(&m.sources[0].files[0].shard)).unwrap();
    // The fixture's post-processor would add 128000 itself: we encode without it, so no double BOS.
    assert_eq!(
        shard.tokens(),
        [128000, 9906, 1917, 128001, 128000, 9906, 128001]
    );
    assert_eq!(shard.doc_range(1), 4..7);
    let txt = Shard::open(&out.join(&m.sources[1].files[0].shard)).unwrap();
    assert_eq!(txt.tokens(), [128000, 9906, 1917, 128001]);
    // A manifest on disk that parses back to what prepare returned.
    let on_disk = graft_data::Manifest::load(&out).unwrap();
    assert_eq!(on_disk.sources, m.sources);
}

#[test]
fn bos_and_eos_are_configurable() {
    let dir = tempfile::tempdir().unwrap();
    common::write(dir.path(), "raw/a.jsonl", "{\"text\": \"Hello world\"}\n");
    common::write(dir.path(), "notes.txt", "Hello world");
    let c = common::config(&format!("add_bos = false\n{TWO_SOURCES}"), dir.path());
    let out = dir.path().join("p");
    let m = prepare(&c, &common::tokenizer(), &out).unwrap();
    let shard = Shard::open(&out.join(&m.sources[0].files[0].shard)).unwrap();
    assert_eq!(shard.tokens(), [9906, 1917, 128001]);
    let no_ids =
        graft_data::TextTokenizer::from_file(&common::tokenizer_path(), None, Some(128001))
            .unwrap();
    let c = common::config(TWO_SOURCES, dir.path());
    assert!(prepare(&c, &no_ids, &out)
        .unwrap_err()
        .to_string()
        .contains("BOS"));
}

#[test]
fn rerun_is_a_noop_and_a_changed_input_is_reprepared() {
    let dir = tempfile::tempdir().unwrap();
    common::write(dir.path(), "raw/a.jsonl", &common::prose_jsonl(20, 30, "a"));
    common::write(dir.path(), "raw/b.jsonl", &common::prose_jsonl(20, 30, "b"));
    common::write(dir.path(), "notes.txt", "Some notes.");
    let c = common::config(TWO_SOURCES, dir.path());
    let out = dir.path().join("prepared");
    let tok = common::tokenizer();
    let first = prepare(&c, &tok, &out).unwrap();
    assert_eq!((first.run.written, first.run.reused), (3, 0));
    let shard_a = out.join(&first.sources[0].files[0].shard);
    let mtime = std::fs::metadata(&shard_a).unwrap().modified().unwrap();
    let manifest = out.join(graft_data::manifest::MANIFEST_FILE);
    let manifest_before = std::fs::read(&manifest).unwrap();
    let listing = |d: &std::path::Path| {
        let mut names: Vec<_> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        names
    };
    let files_before = listing(&out);

    let again = prepare(&c, &tok, &out).unwrap();
    assert_eq!((again.run.written, again.run.reused), (0, 3));
    assert_eq!(again.sources, first.sources);
    assert_eq!(
        std::fs::metadata(&shard_a).unwrap().modified().unwrap(),
        mtime,
        "shard was rewritten"
    );
    // a no-op re-run writes nothing at all: same manifest bytes, same files
    assert_eq!(
        std::fs::read(&manifest).unwrap(),
        manifest_before,
        "manifest rewritten"
    );
    assert_eq!(listing(&out), files_before);

    // Append a record to b.jsonl: only that file is tokenized again.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.path().join("raw/b.jsonl"))
        .unwrap();
    f.write_all(b"{\"text\": \"one more record\"}\n").unwrap();
    drop(f);
    let changed = prepare(&c, &tok, &out).unwrap();
    assert_eq!((changed.run.written, changed.run.reused), (1, 2));
    assert_eq!(changed.sources[0].documents, 41);

    // A config change that alters rendering re-prepares the source; a weight change does not.
    let reweighted = common::config(
        &TWO_SOURCES.replace("path = \"notes.txt\"", "path = \"notes.txt\"\nweight = 3.0"),
        dir.path(),
    );
    assert_eq!(prepare(&reweighted, &tok, &out).unwrap().run.written, 0);
    let reseeded = common::config(&TWO_SOURCES.replace("seed = 3", "seed = 4"), dir.path());
    assert_eq!(prepare(&reseeded, &tok, &out).unwrap().run.written, 3);
    // Stale shards of the old settings are removed.
    let toks = std::fs::read_dir(&out)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "tok")
        })
        .count();
    assert_eq!(toks, 3);
}

#[test]
fn truncated_or_corrupt_shards_are_detected() {
    let dir = tempfile::tempdir().unwrap();
    common::write(dir.path(), "raw/a.jsonl", &common::prose_jsonl(10, 20, "a"));
    common::write(dir.path(), "notes.txt", "Some notes.");
    let c = common::config(TWO_SOURCES, dir.path());
    let out = dir.path().join("prepared");
    let tok = common::tokenizer();
    let m = prepare(&c, &tok, &out).unwrap();
    let path = out.join(&m.sources[0].files[0].shard);
    let bytes = std::fs::read(&path).unwrap();

    std::fs::write(&path, &bytes[..bytes.len() - 9]).unwrap();
    let err = Shard::open(&path)
        .err()
        .expect("truncated shard must not open");
    assert!(matches!(err, DataError::CorruptShard { .. }));
    assert!(
        err.to_string().contains(&m.sources[0].files[0].shard)
            && err.to_string().contains("truncated")
    );
    let err = PreparedData::open(&c, &out)
        .err()
        .expect("opening prepared data with a bad shard fails");
    assert!(matches!(err, DataError::CorruptShard { .. }), "{err}");

    let mut bad_magic = bytes.clone();
    bad_magic[0] = b'X';
    std::fs::write(&path, &bad_magic).unwrap();
    assert!(Shard::open(&path)
        .err()
        .unwrap()
        .to_string()
        .contains("magic"));
    let mut bad_version = bytes.clone();
    bad_version[8] = 99;
    std::fs::write(&path, &bad_version).unwrap();
    assert!(Shard::open(&path)
        .err()
        .unwrap()
        .to_string()
        .contains("version 99"));

    // prepare does not trust the broken shard: it rewrites it.
    let again = prepare(&c, &tok, &out).unwrap();
    assert_eq!(again.run.written, 1);
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
    let data = PreparedData::open(&c, &out).unwrap();
    let mut s = TrainStream::new(
        data,
        StreamOptions {
            batch_size: 2,
            rank: 0,
            world_size: 1,
        },
    )
    .unwrap();
    assert_eq!(s.next_batch().tokens.len(), 32);
}

#[test]
fn compressed_jsonl_reads_like_plain() {
    let dir = tempfile::tempdir().unwrap();
    let text = common::prose_jsonl(5, 10, "z");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(text.as_bytes()).unwrap();
    std::fs::create_dir_all(dir.path().join("c")).unwrap();
    std::fs::write(dir.path().join("c/a.jsonl.gz"), gz.finish().unwrap()).unwrap();
    std::fs::write(
        dir.path().join("c/b.jsonl.zst"),
        zstd::encode_all(text.as_bytes(), 3).unwrap(),
    )
    .unwrap();
    common::write(dir.path(), "c/c.jsonl", &text);
    let c = common::config(
        "seq_len = 8\n[[sources]]\nname = \"c\"\npath = \"c/*\"\n",
        dir.path(),
    );
    let m = prepare(&c, &common::tokenizer(), &dir.path().join("p")).unwrap();
    let files = &m.sources[0].files;
    assert_eq!(files.len(), 3);
    assert!(files
        .iter()
        .all(|f| f.documents == 5 && f.tokens == files[2].tokens));
}

#[test]
fn bos_does_not_depend_on_the_tokenizers_post_processor() {
    // Llama-3 base ships a tokenizer.json whose post-processor adds no BOS: documents still get
    // exactly one, the same tokens as with the fixture's BOS-adding post-processor.
    let dir = tempfile::tempdir().unwrap();
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(common::tokenizer_path()).unwrap()).unwrap();
    assert!(
        !json["post_processor"].is_null(),
        "the fixture has a post-processor"
    );
    json["post_processor"] = serde_json::Value::Null;
    let plain = common::write(dir.path(), "plain/tokenizer.json", &json.to_string());
    let plain = graft_data::TextTokenizer::from_file(&plain, Some(128000), Some(128001)).unwrap();
    common::write(
        dir.path(),
        "raw/a.jsonl",
        "{\"text\": \"Hello world\"}\n{\"text\": \"Hello\"}\n",
    );
    common::write(dir.path(), "notes.txt", "Hello world");
    let c = common::config(TWO_SOURCES, dir.path());
    let out = dir.path().join("prepared");
    let m = prepare(&c, &plain, &out).unwrap();
    let shard = Shard::open(&out.join(&m.sources[0].files[0].shard)).unwrap();
    assert_eq!(
        shard.tokens(),
        [128000, 9906, 1917, 128001, 128000, 9906, 128001]
    );
}
