//! Shard planning as HF `save_pretrained` does it, and size parsing as `huggingface_hub` does it.

use graft_llama::export::{parse_size, plan_shards, Dtype, ExportError, TensorSpec};

/// F32 tensors with the given byte sizes, named t0, t1, ... (zero-padded so name order = plan order).
fn specs(sizes: &[usize]) -> Vec<TensorSpec> {
    sizes
        .iter()
        .enumerate()
        .map(|(i, &bytes)| TensorSpec {
            name: format!("t{i:02}"),
            shape: vec![bytes / 4],
            dtype: Dtype::F32,
        })
        .collect()
}

/// Shards as lists of tensor indices (file order = name order here).
fn groups(sizes: &[usize], max: u64) -> Vec<Vec<usize>> {
    plan_shards(&specs(sizes), max)
        .unwrap()
        .iter()
        .map(|s| {
            s.tensors
                .iter()
                .map(|t| t.spec.name[1..].parse().unwrap())
                .collect()
        })
        .collect()
}

#[test]
fn tensors_fill_shards_in_order_like_huggingface_hub() {
    // The example from huggingface_hub's docstring: [6, 6, 2, 6, 2, 2] with limit 10.
    assert_eq!(
        groups(&[24, 24, 8, 24, 8, 8], 40),
        vec![vec![0], vec![1, 2], vec![3, 4, 5]]
    );
}

#[test]
fn a_shard_may_reach_the_limit_exactly() {
    assert_eq!(groups(&[16, 24, 4], 40), vec![vec![0, 1], vec![2]]);
    assert_eq!(groups(&[16, 24, 4], 39), vec![vec![0], vec![1, 2]]);
}

#[test]
fn a_tensor_over_the_limit_gets_its_own_shard_before_the_open_one() {
    // huggingface_hub appends an oversized tensor as a shard at once, while the current shard
    // keeps filling: [a, BIG, c] → [BIG], [a, c].
    assert_eq!(groups(&[8, 100, 8], 40), vec![vec![1], vec![0, 2]]);
    assert_eq!(groups(&[100], 40), vec![vec![0]]);
}

#[test]
fn file_names_and_offsets() {
    let one = plan_shards(&specs(&[8, 8]), 1000).unwrap();
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].file_name, "model.safetensors");
    assert_eq!((one[0].tensors[1].begin, one[0].tensors[1].end), (8, 16));
    assert_eq!(one[0].data_len(), 16);
    let three = plan_shards(&specs(&[8, 8, 8]), 8).unwrap();
    let names: Vec<_> = three.iter().map(|s| s.file_name.as_str()).collect();
    assert_eq!(
        names,
        [
            "model-00001-of-00003.safetensors",
            "model-00002-of-00003.safetensors",
            "model-00003-of-00003.safetensors"
        ]
    );
}

#[test]
fn within_a_file_tensors_are_sorted_by_dtype_then_name() {
    let mixed = vec![
        TensorSpec {
            name: "b".into(),
            shape: vec![2],
            dtype: Dtype::F32,
        },
        TensorSpec {
            name: "a".into(),
            shape: vec![2],
            dtype: Dtype::BF16,
        },
        TensorSpec {
            name: "c".into(),
            shape: vec![3],
            dtype: Dtype::F32,
        },
    ];
    let plan = plan_shards(&mixed, 1 << 20).unwrap();
    let order: Vec<_> = plan[0]
        .tensors
        .iter()
        .map(|t| (t.spec.name.as_str(), t.begin, t.end))
        .collect();
    assert_eq!(order, [("b", 0, 8), ("c", 8, 20), ("a", 20, 24)]);
}

#[test]
fn sizes_parse_like_huggingface() {
    assert_eq!(parse_size("5GB").unwrap(), 5_000_000_000);
    assert_eq!(parse_size("500MB").unwrap(), 500_000_000);
    assert_eq!(parse_size("291KB").unwrap(), 291_000);
    assert_eq!(parse_size("2GiB").unwrap(), 2 * 1024 * 1024 * 1024);
    assert_eq!(parse_size("10mib").unwrap(), 10 * 1024 * 1024);
    assert_eq!(parse_size("1.5GB").unwrap(), 1_500_000_000);
    assert_eq!(parse_size("12345").unwrap(), 12345);
    assert_eq!(parse_size(" 7 kb ").unwrap(), 7000);
    for bad in ["", "GB", "five GB", "-1GB", "0", "1TB", "nanGB"] {
        assert!(
            matches!(parse_size(bad), Err(ExportError::InvalidSize { .. })),
            "{bad:?} accepted"
        );
    }
}
