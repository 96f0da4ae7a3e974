//! The training stream: token-ratio mixing, resumable cursor, rank sharding, held-out eval.

mod common;

use std::collections::HashSet;
use std::sync::Arc;

use graft_data::{prepare, Batch, Cursor, PreparedData, StreamOptions, TrainStream};

/// Two sources of different size and document length, prepared once; weights 1 : 3.
fn prepared(weights: (f64, f64), val_fraction: f64) -> (Arc<PreparedData>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    common::write(
        dir.path(),
        "a/a.jsonl",
        &common::prose_jsonl(120, 40, "alpha"),
    );
    common::write(
        dir.path(),
        "b/b1.jsonl",
        &common::prose_jsonl(40, 150, "beta"),
    );
    common::write(
        dir.path(),
        "b/b2.jsonl",
        &common::prose_jsonl(40, 7, "gamma"),
    );
    let toml = format!(
        "seq_len = 64\nseed = 11\nval_fraction = {val_fraction}\n\
         [[sources]]\nname = \"a\"\npath = \"a/*.jsonl\"\nweight = {}\n\
         [[sources]]\nname = \"b\"\npath = \"b/*.jsonl\"\nweight = {}\n",
        weights.0, weights.1
    );
    let c = common::config(&toml, dir.path());
    prepare(&c, &common::tokenizer(), &dir.path().join("p")).unwrap();
    (PreparedData::open(&c, &dir.path().join("p")).unwrap(), dir)
}

fn opts(batch_size: usize, rank: usize, world_size: usize) -> StreamOptions {
    StreamOptions {
        batch_size,
        rank,
        world_size,
    }
}

#[test]
fn token_ratio_is_within_one_percent_over_a_million_tokens() {
    let (data, _d) = prepared((1.0, 3.0), 0.0);
    let mut s = TrainStream::new(data.clone(), opts(16, 0, 1)).unwrap();
    let mut batch = Batch::default();
    let mut bos_count = 0usize;
    let mut seen = 0usize;
    while seen < 1_000_000 {
        s.next_batch_into(&mut batch);
        assert_eq!(batch.tokens.len(), 16 * 64);
        bos_count += batch.tokens.iter().filter(|&&t| t == 128000).count();
        seen += batch.tokens.len();
    }
    let stats = s.stats();
    let share_a = stats[0].tokens as f64 / (stats[0].tokens + stats[1].tokens) as f64;
    assert!(
        (share_a - 0.25).abs() < 0.25 * 0.01,
        "share of a = {share_a}"
    );
    assert_eq!(stats[0].tokens + stats[1].tokens, seen as u64);
    // Both sources are far smaller than their share: they are repeated, and the epochs say so.
    for st in &stats {
        assert!(st.epochs > 10.0, "{st:?}");
        let train = data.train_tokens(&st.name).unwrap() as f64;
        assert!((st.epochs - st.tokens as f64 / train).abs() < 1e-9);
    }
    // No padding: every token comes from a document, and documents keep coming (one BOS each).
    let docs =
        (data.manifest().sources[0].documents + data.manifest().sources[1].documents) as usize;
    assert!(bos_count > docs * 10, "bos {bos_count}");
}

#[test]
fn same_seed_same_stream_and_no_double_bos() {
    let (data, _d) = prepared((1.0, 1.0), 0.0);
    let mut s1 = TrainStream::new(data.clone(), opts(4, 0, 1)).unwrap();
    let mut s2 = TrainStream::new(data.clone(), opts(4, 0, 1)).unwrap();
    let mut all = Vec::new();
    for _ in 0..30 {
        let b = s1.next_batch();
        assert_eq!(b, s2.next_batch());
        all.extend_from_slice(&b.tokens);
    }
    // The stream starts with a document's BOS, and no document gets two.
    let first_bos = all.iter().position(|&t| t == 128000).unwrap();
    assert_eq!(first_bos, 0, "the stream starts with a document");
    assert!(
        all.windows(2).all(|w| !(w[0] == 128000 && w[1] == 128000)),
        "double BOS"
    );
}

#[test]
fn restoring_a_cursor_continues_identically() {
    let (data, _d) = prepared((1.0, 2.0), 0.05);
    let mut full = TrainStream::new(data.clone(), opts(3, 0, 1)).unwrap();
    let mut saved: Option<Cursor> = None;
    let mut expected = Vec::new();
    for i in 0..40 {
        if i == 17 {
            saved = Some(full.cursor());
        }
        let b = full.next_batch();
        if i >= 17 {
            expected.push(b);
        }
    }
    let json = serde_json::to_string(&saved.unwrap()).unwrap();
    let cursor: Cursor = serde_json::from_str(&json).unwrap();
    let mut resumed = TrainStream::new(data.clone(), opts(3, 0, 1)).unwrap();
    resumed.restore(&cursor).unwrap();
    for b in &expected {
        assert_eq!(&resumed.next_batch(), b);
    }
    assert_eq!(resumed.cursor(), full.cursor());
    assert_eq!(resumed.stats(), full.stats());

    // A cursor of other data is refused.
    let (other, _d2) = prepared((1.0, 1.0), 0.05);
    let mut s = TrainStream::new(other, opts(3, 0, 1)).unwrap();
    assert!(s.restore(&cursor).is_err());
}

#[test]
fn rank_slices_are_disjoint_and_cover_the_stream() {
    let (data, _d) = prepared((1.0, 1.0), 0.0);
    let (world, b, steps) = (3, 2, 12);
    let mut single = TrainStream::new(data.clone(), opts(b * world, 0, 1)).unwrap();
    let global: Vec<Vec<u32>> = (0..steps)
        .flat_map(|_| {
            let batch = single.next_batch();
            (0..b * world)
                .map(move |r| batch.row(r).to_vec())
                .collect::<Vec<_>>()
        })
        .collect();
    let mut ranks: Vec<TrainStream> = (0..world)
        .map(|r| TrainStream::new(data.clone(), opts(b, r, world)).unwrap())
        .collect();
    let mut covered = HashSet::new();
    for step in 0..steps {
        for (r, s) in ranks.iter_mut().enumerate() {
            let batch = s.next_batch();
            for row in 0..b {
                let g = step * b * world + row * world + r;
                assert_eq!(
                    batch.row(row),
                    &global[g][..],
                    "rank {r} step {step} row {row}"
                );
                assert!(covered.insert(g), "sequence {g} given twice");
            }
        }
        // After the same number of steps every rank is at the same place.
        let c0 = ranks[0].cursor();
        assert!(ranks.iter().all(|s| s.cursor() == c0));
    }
    assert_eq!(covered.len(), global.len());
}

#[test]
fn eval_iterators_hold_out_a_fixed_part_of_each_source() {
    let (data, _d) = prepared((1.0, 1.0), 0.1);
    for name in ["a", "b"] {
        let val = data.val_tokens(name).unwrap();
        let total = data.manifest().source(name).unwrap().tokens;
        assert_eq!(val + data.train_tokens(name).unwrap(), total);
        assert!(
            val > 0 && (val as f64) < total as f64 * 0.2,
            "{name}: {val} of {total}"
        );
        let n = data.eval_sequences(name).unwrap();
        assert_eq!(n as u64, val / 64);
        let all: Vec<Batch> = data.eval_iter(name, 4, 0, 1).unwrap().collect();
        assert_eq!(all.iter().map(|b| b.batch_size).sum::<usize>(), n);
        assert!(all.iter().all(|b| b.tokens.len() == b.batch_size * 64));
        // Deterministic, and ranks split it without overlap.
        let again: Vec<Batch> = data.eval_iter(name, 4, 0, 1).unwrap().collect();
        assert_eq!(all, again);
        let rows: Vec<Vec<u32>> = all
            .iter()
            .flat_map(|b| (0..b.batch_size).map(|i| b.row(i).to_vec()))
            .collect();
        for r in 0..2 {
            let mine: Vec<Vec<u32>> = data
                .eval_iter(name, 3, r, 2)
                .unwrap()
                .flat_map(|b| (0..b.batch_size).map(move |i| b.row(i).to_vec()))
                .collect();
            let expect: Vec<Vec<u32>> = rows.iter().skip(r).step_by(2).cloned().collect();
            assert_eq!(mine, expect);
        }
    }
    // Held-out documents never appear in training: the first eval sequence starts with a held-out doc.
    let first_eval = data.eval_iter("a", 1, 0, 1).unwrap().next().unwrap();
    let mut s = TrainStream::new(data.clone(), opts(8, 0, 1)).unwrap();
    let probe = &first_eval.tokens[..24];
    for _ in 0..200 {
        let b = s.next_batch();
        assert!(
            !b.tokens.windows(probe.len()).any(|w| w == probe),
            "held-out text leaked into training"
        );
    }
}

#[test]
fn cursors_restore_across_epochs_and_on_every_rank() {
    // Restore points well past the first epoch of both sources (new permutations, repeats), on
    // each rank of a 2-way data-parallel stream.
    let (data, _d) = prepared((1.0, 2.0), 0.05);
    let (world, batch, total, tail) = (2, 3, 400, 12);
    for rank in 0..world {
        let mut full = TrainStream::new(data.clone(), opts(batch, rank, world)).unwrap();
        let mut batches = Vec::new();
        let mut cursors = Vec::new();
        for _ in 0..total + tail {
            cursors.push((full.cursor(), full.stats()));
            batches.push(full.next_batch());
        }
        for at in [0, 1, 97, 250, total] {
            let (cursor, stats) = &cursors[at];
            if at >= 250 {
                assert!(
                    stats.iter().all(|s| s.epochs > 2.0),
                    "restore point {at} is not past the second epoch: {stats:?}"
                );
            }
            let json = serde_json::to_string(cursor).unwrap();
            let mut resumed = TrainStream::new(data.clone(), opts(batch, rank, world)).unwrap();
            resumed
                .restore(&serde_json::from_str(&json).unwrap())
                .unwrap();
            assert_eq!(&resumed.stats(), stats, "rank {rank} at {at}: stats");
            for (i, want) in batches[at..at + tail].iter().enumerate() {
                assert_eq!(
                    &resumed.next_batch(),
                    want,
                    "rank {rank}, restored at {at}, batch {i}"
                );
            }
        }
    }
}
