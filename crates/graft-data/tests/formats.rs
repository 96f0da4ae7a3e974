//! Each format renders as documented (golden strings with a fixed seed).

mod common;

use graft_data::format::{synth::has_tag, Renderer};
use graft_data::{preview, DataConfig};
use serde_json::json;

fn source(toml_extra: &str) -> DataConfig {
    let toml = format!(
        "seq_len = 64\nseed = 7\n[[sources]]\nname = \"s\"\npath = \"x.jsonl\"\n{toml_extra}"
    );
    DataConfig::from_toml_str(&toml, "t.toml".as_ref()).unwrap()
}

#[test]
fn raw_is_the_text_field() {
    let c = source("format = \"raw\"\ntext_field = \"body\"");
    let mut r = Renderer::new(&c.sources[0], c.seed, "x.jsonl");
    assert_eq!(
        r.push(&json!({"body": "  Plain text.\n"}))
            .unwrap()
            .as_deref(),
        Some("Plain text.")
    );
    assert!(r
        .push(&json!({"text": "wrong field"}))
        .unwrap_err()
        .contains("missing field `body`"));
}

#[test]
fn instruction_is_question_space_response() {
    let c = source("format = \"instruction\"");
    let mut r = Renderer::new(&c.sources[0], c.seed, "x.jsonl");
    let doc = r
        .push(&json!({"question": "What is 2+2?", "response": "4."}))
        .unwrap();
    assert_eq!(doc.as_deref(), Some("What is 2+2? 4."));
    let doc = r
        .push(&json!({"instruction": "Name a colour.", "output": "Blue."}))
        .unwrap();
    assert_eq!(doc.as_deref(), Some("Name a colour. Blue."));
    let c = source(
        "format = \"instruction\"\nquestion_field = \"prompt\"\nresponse_field = \"completion\"",
    );
    let mut r = Renderer::new(&c.sources[0], c.seed, "x.jsonl");
    assert_eq!(
        r.push(&json!({"prompt": "Hi", "completion": "Hello"}))
            .unwrap()
            .as_deref(),
        Some("Hi Hello")
    );
    assert!(r.push(&json!({"prompt": "Hi"})).is_err());
}

#[test]
fn instruction_augmented_chains_examples_with_templates() {
    let c = source("format = \"instruction-augmented\"\nexamples_per_doc = 2");
    let mut r = Renderer::new(&c.sources[0], c.seed, "x.jsonl");
    let first = json!({"text": "Aspirin inhibits COX enzymes.", "qa_pairs": [
        {"question": "What does aspirin inhibit?", "answer": "COX enzymes."},
        {"question": "Is aspirin an enzyme?", "answer": "No."}]});
    let second = json!({"text": "<CON> Bonds pay coupons. </CON>",
        "qa_pairs": "<QUE> What do bonds pay? <ANS> Coupons. </END><QUE> broken pair </END>"});
    assert_eq!(
        r.push(&first).unwrap(),
        None,
        "M = 2: the first example waits for the second"
    );
    let doc = r
        .push(&second)
        .unwrap()
        .expect("second example completes a document");
    assert_eq!(
        doc,
        "Aspirin inhibits COX enzymes.\n\n\
         Question: What does aspirin inhibit?\nAnswer: COX enzymes.\n\n\
         Instruction: Is aspirin an enzyme?\nResponse: No.\n\n\
         Bonds pay coupons.\n\n\
         Based on the text above, answer the following question.\nWhat do bonds pay?\nCoupons."
    );
    assert!(!has_tag(&doc));
    assert_eq!(r.stats.dropped_pairs, 1);
    assert_eq!(r.stats.records, 2);
    // A trailing example forms a shorter last document.
    r.push(&first).unwrap();
    assert!(r
        .finish()
        .unwrap()
        .starts_with("Aspirin inhibits COX enzymes.\n\n"));
}

#[test]
fn template_choice_is_seeded() {
    let render = |seed: u64| {
        let mut c = source("format = \"instruction-augmented\"\nexamples_per_doc = 1");
        c.seed = seed;
        let pairs: Vec<_> = (0..12)
            .map(|i| json!({"question": format!("q{i}?"), "answer": format!("a{i}.")}))
            .collect();
        let mut r = Renderer::new(&c.sources[0], c.seed, "x.jsonl");
        r.push(&json!({"text": "T.", "qa_pairs": pairs}))
            .unwrap()
            .unwrap()
    };
    assert_eq!(render(1), render(1));
    assert_ne!(render(1), render(2));
    // Several templates are in use, every pair appears once, separated by blank lines.
    let doc = render(1);
    assert_eq!(doc.split("\n\n").count(), 13);
    assert!(
        ["Question: ", "Q: ", "Answer: ", "Response: "]
            .iter()
            .filter(|t| doc.contains(*t))
            .count()
            >= 2
    );
}

#[test]
fn preview_renders_the_first_documents_of_a_source() {
    let dir = tempfile::tempdir().unwrap();
    common::write(
        dir.path(),
        "d/a.jsonl",
        "{\"text\": \"one\"}\n\n{\"text\": \"two\"}\n",
    );
    common::write(dir.path(), "d/b.jsonl", "{\"text\": \"three\"}\n");
    let c = common::config(
        "seq_len = 8\n[[sources]]\nname = \"r\"\npath = \"d/*.jsonl\"\n",
        dir.path(),
    );
    assert_eq!(preview(&c, "r", 3).unwrap(), ["one", "two", "three"]);
    assert_eq!(preview(&c, "r", 1).unwrap(), ["one"]);
    assert!(preview(&c, "nope", 1)
        .unwrap_err()
        .to_string()
        .contains("nope"));
}

#[test]
fn synthesize_output_is_chained_as_the_synthesizer_chained_it() {
    // `examples_per_doc` is ignored for records with a `synth` link.
    let c = source("format = \"instruction-augmented\"\nexamples_per_doc = 5");
    let mut r = Renderer::new(&c.sources[0], c.seed, "x.jsonl");
    let record = |i: usize, previous: &[usize], q: &str| {
        json!({"text": format!("Text {i}."), "synthesizer_output": "…",
               "qa_pairs": [{"question": q, "answer": format!("A{i}.")}],
               "synth": {"index": i, "round": i / 2, "texts_per_round": 2, "previous": previous}})
    };
    let mut docs = Vec::new();
    for (i, prev, q) in [
        (0, &[][..], "Q0?"),
        (1, &[], ""),
        (2, &[0], "Q2?"),
        (3, &[], "Q3?"),
    ] {
        docs.extend(r.push(&record(i, prev, q)).unwrap());
        docs.extend(std::iter::from_fn(|| r.next_ready()));
    }
    assert!(docs.is_empty(), "every chain can still grow until the end");
    docs.extend(r.finish());
    docs.extend(std::iter::from_fn(|| r.next_ready()));
    let starts: Vec<&str> = docs.iter().map(|d| &d[..7]).collect();
    assert_eq!(starts, ["Text 1.", "Text 0.", "Text 3."]);
    assert_eq!(
        docs[0], "Text 1.",
        "the pair with an empty question is dropped"
    );
    assert!(docs[1].contains("Q0?") && docs[1].contains("\n\nText 2.\n\n"));
    assert_eq!(r.stats.dropped_pairs, 1);
    // A chain is emitted as soon as no later text can continue it.
    let mut r = Renderer::new(&c.sources[0], c.seed, "x.jsonl");
    r.push(&record(0, &[], "Q0?")).unwrap();
    r.push(&record(1, &[], "Q1?")).unwrap();
    r.push(&record(2, &[], "Q2?")).unwrap();
    let doc = r.push(&record(3, &[], "Q3?")).unwrap();
    assert!(doc.unwrap().starts_with("Text 0."));
    assert!(r.next_ready().is_none());
    assert!(r
        .push(&json!({"text": "T", "qa_pairs": [], "synth": {"index": "x"}}))
        .unwrap_err()
        .contains("synth"));
}
