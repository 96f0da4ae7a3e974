//! The repository's sample corpora (data/) prepare cleanly and mix into batches.

mod common;

use std::path::Path;

use graft_data::format::synth::has_tag;
use graft_data::{prepare, preview, PreparedData, StreamOptions, TrainStream};

const SAMPLES: &str = "seq_len = 128\nseed = 1234\nval_fraction = 0.05\n\
    [[sources]]\nname = \"biomedicine\"\npath = \"biomedicine/*.jsonl\"\nformat = \"instruction-augmented\"\n\
    [[sources]]\nname = \"finance\"\npath = \"finance/*.jsonl\"\nformat = \"instruction-augmented\"\n\
    [[sources]]\nname = \"general\"\npath = \"general/*.jsonl\"\nformat = \"instruction\"\nweight = 2.0\n\
    [[sources]]\nname = \"notes\"\npath = \"raw/notes.txt\"\n";

#[test]
fn sample_corpora_prepare_and_stream() {
    let data_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data");
    let config = common::config(SAMPLES, &data_dir);
    for name in ["biomedicine", "finance"] {
        let docs = preview(&config, name, 3).unwrap();
        assert_eq!(docs.len(), 3);
        assert!(
            docs.iter().all(|d| !has_tag(d) && d.contains("\n\n")),
            "{name}: tags left or no chaining"
        );
    }
    let out = tempfile::tempdir().unwrap();
    let m = prepare(&config, &common::tokenizer(), out.path()).unwrap();
    for s in &m.sources[..2] {
        assert_eq!(
            (s.records, s.documents, s.bad_records),
            (180, 60, 0),
            "{}",
            s.name
        );
        assert_eq!(
            s.dropped_pairs, 30,
            "{}: one malformed pair in every third synthesizer record",
            s.name
        );
        assert!(s.tokens > 25_000, "{}: {} tokens", s.name, s.tokens);
    }
    assert_eq!(m.sources[2].documents, 800);
    let data = PreparedData::open(&config, out.path()).unwrap();
    let mut stream = TrainStream::new(
        data.clone(),
        StreamOptions {
            batch_size: 8,
            rank: 0,
            world_size: 1,
        },
    )
    .unwrap();
    for _ in 0..50 {
        assert_eq!(stream.next_batch().tokens.len(), 8 * 128);
    }
    let stats = stream.stats();
    let general = stats.iter().find(|s| s.name == "general").unwrap();
    assert!(
        (general.share - 0.4).abs() < 0.01,
        "general share {}",
        general.share
    );
    for name in ["biomedicine", "finance", "general"] {
        assert!(
            data.eval_sequences(name).unwrap() > 0,
            "{name} has held-out sequences"
        );
    }
}
