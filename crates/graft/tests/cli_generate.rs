//! `graft generate` on the tiny fixture with a word-level tokenizer: the streamed text is the greedy
//! continuation the library computes, sampling is seeded, and a missing tokenizer is an error.

mod cli_common;

use burn::backend::Flex;
use cli_common::*;
use graft_llama::generate::{generate, GenerateConfig};

/// Greedy ids from the library for BOS + the word-level prompt `w5 w6 w7`.
fn library_greedy(n: usize) -> Vec<u32> {
    let (model, _) = graft_llama::load::<Flex>(tiny_dir(), &Default::default()).unwrap();
    let config = GenerateConfig::greedy(n, vec![2]);
    generate(&model, &[1, 5, 6, 7], &config, &mut |_| {})
        .unwrap()
        .tokens
}

fn words(ids: &[u32]) -> String {
    ids.iter()
        .map(|&i| match i {
            0 => "<unk>".to_string(),
            1 => "<s>".to_string(),
            2 => "</s>".to_string(),
            i => format!("w{i}"),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn greedy_output_is_the_library_continuation() {
    let model = tiny_with_tokenizer();
    let m = model.path().to_str().unwrap();
    let out = ok(graft(
        &[
            "generate",
            m,
            "--prompt",
            "w5 w6 w7",
            "--max-new-tokens",
            "12",
        ],
        &[],
    ));
    let expected = library_greedy(12);
    assert!(!expected.is_empty());
    assert_eq!(stdout(&out).trim_end(), words(&expected));
}

#[test]
fn sampling_is_reproducible_from_the_seed() {
    let model = tiny_with_tokenizer();
    let m = model.path().to_str().unwrap();
    let run = |seed: &str| {
        let args = [
            "generate",
            m,
            "--prompt",
            "w5 w6",
            "--max-new-tokens",
            "10",
            "--temperature",
            "1.0",
            "--top-p",
            "0.9",
            "--seed",
            seed,
        ];
        stdout(&ok(graft(&args, &[])))
    };
    assert_eq!(run("3"), run("3"));
    assert!(
        ["4", "5", "6", "7"].iter().any(|s| run(s) != run("3")),
        "different seeds, different samples"
    );
}

#[test]
fn bad_arguments_are_errors() {
    let tiny = tiny_dir();
    let out = graft(&["generate", tiny.to_str().unwrap(), "--prompt", "hi"], &[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no tokenizer.json"),
        "{}",
        stderr(&out)
    );
    let model = tiny_with_tokenizer();
    let m = model.path().to_str().unwrap();
    let out = graft(
        &[
            "generate",
            m,
            "--prompt",
            "w5",
            "--temperature",
            "1",
            "--top-p",
            "0",
        ],
        &[],
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("top_p"), "{}", stderr(&out));
}
