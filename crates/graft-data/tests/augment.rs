//! `augment`: AdaptLLM's rules on crafted sentences (every family and connective is found, near
//! misses are not), template pools, layouts, determinism, input order and bad input.

use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use graft_data::augment::keywords::train_domain_tokenizer;
use graft_data::augment::{layouts, templates, Augmenter, DomainVocab, Sub};
use tokenizers::Tokenizer;

fn llama3() -> Tokenizer {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/llama3-tokenizer/tokenizer.json");
    Tokenizer::from_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Without a domain vocabulary: only the regex families, summarize and completion.
static PLAIN: LazyLock<Augmenter> = LazyLock::new(|| Augmenter::new(llama3(), None, "biomedicine"));

const S1: &str = "The new compound lowered blood pressure in most of the adult patients.";
const S2: &str = "the trial was extended to include older patients as well.";
const OPEN: &str = "Title line\nThe study started in spring.";
const CLOSE: &str = "It ended in the autumn.";

/// A text with one planted pair: `<open> S1 <connective><join>S2 <close>`.
fn planted(connective: &str, join: &str) -> String {
    format!("{OPEN} {S1} {connective}{join}{S2} {CLOSE}")
}

fn subs(aug: &Augmenter, text: &str) -> Vec<Sub> {
    aug.mine(text).into_iter().map(|c| c.sub).collect()
}

#[test]
fn every_connective_of_every_pair_family_is_mined() {
    let cases: [(&[&str], &[Sub]); 4] = [
        (
            &[
                "Therefore",
                "Thus",
                "Accordingly",
                "Hence",
                "For this reason",
            ],
            &[Sub::Entail, Sub::CauseEffect],
        ),
        (
            &[
                "However",
                "But",
                "On the contrary",
                "In contrast",
                "Whereas",
                "No",
            ],
            &[Sub::Contradict, Sub::Different],
        ),
        (
            &[
                "Also",
                "Furthermore",
                "Secondly",
                "Additionally",
                "Moreover",
                "In addition",
                "Maybe",
            ],
            &[Sub::Neutral],
        ),
        (
            &[
                "In other words",
                "In other word",
                "Namely",
                "That is to say",
                "i.e.",
                "Scilicet",
                "Similarly",
                "Equally",
            ],
            &[Sub::Similar],
        ),
    ];
    for (connectives, expected) in cases.iter() {
        for c in *connectives {
            for spelled in [c.to_string(), c.to_uppercase(), c.to_lowercase()] {
                let text = planted(&spelled, ", ");
                let found = PLAIN.mine(&text);
                let got: Vec<Sub> = found.iter().map(|x| x.sub).collect();
                assert_eq!(&got, expected, "{spelled}: {text}");
                for x in &found {
                    assert_eq!((x.first.as_str(), x.second.as_str()), (S1, S2));
                    assert_eq!(x.verbalizer, spelled);
                }
            }
        }
    }
    // "Yes, ..." is an entailment only (it is not a cause-effect connective)
    assert_eq!(subs(&PLAIN, &planted("Yes", ", ")), [Sub::Entail]);
    // a space before the comma is allowed
    assert_eq!(
        subs(&PLAIN, &planted("THEREFORE", " , ")),
        [Sub::Entail, Sub::CauseEffect]
    );
}

#[test]
fn effect_cause_needs_the_connective_to_start_sentence_two() {
    for c in [
        "due to",
        "Due to",
        "on account of",
        "On account of",
        "owing to",
        "Owing to",
    ] {
        let text = planted(c, " ");
        let found = PLAIN.mine(&text);
        assert_eq!(found.len(), 1, "{c}: {found:?}");
        assert_eq!(found[0].sub, Sub::EffectCause);
        assert_eq!(
            (found[0].first.as_str(), found[0].second.as_str()),
            (S1, S2)
        );
    }
    let mid = format!("{OPEN} The blood pressure of the adult patients rose due to the higher dose of salt given. {CLOSE}");
    assert!(PLAIN.mine(&mid).is_empty());
    // a semicolon in either sentence stops it
    let semi = planted("Due to", " ").replace("most of", "most; of");
    assert!(PLAIN.mine(&semi).is_empty());
}

#[test]
fn near_misses_find_nothing() {
    let misses = [
        planted("Consequently", ", "),
        planted("Nonetheless", ", "),
        planted("Nevertheless", ", "),
        planted("As a result", ", "),
        planted("Because", ", "),
        planted("Therefore", " "), // no comma
        // mid-sentence connective
        format!("{OPEN} {} therefore {S2} {CLOSE}", S1.trim_end_matches('.').to_string() + ","),
        // sentence 1 under 50 characters
        format!("{OPEN} The new compound lowered blood pressure. Therefore, {S2} {CLOSE}"),
        // a decimal point inside sentence 1
        format!("{OPEN} The new compound lowered blood pressure by 3.5 points in the adult patients. Therefore, {S2} {CLOSE}"),
        // sentence 1 is the first sentence of the context (nothing precedes it)
        format!("Title line\n{S1} Therefore, {S2} {CLOSE}"),
        // sentence 2 ends the text (no whitespace follows it)
        format!("{OPEN} {S1} Therefore, {S2}"),
        // the pattern never runs over the title
        format!("Intro. {S1} Therefore, {S2} \nThe text itself is short."),
        "Title\nPlain text without any of the patterns. It has sentences. Nothing else.".into(),
    ];
    for text in misses {
        assert_eq!(subs(&PLAIN, &text), [], "{text}");
    }
    // commas are allowed in paraphrase but not in NLI: "However, a, b" is Different only
    let commas = format!("{OPEN} The new compound, given daily, lowered blood pressure in most adult patients. However, {S2} {CLOSE}");
    assert_eq!(subs(&PLAIN, &commas), [Sub::Different]);
}

#[test]
fn matches_of_one_pattern_do_not_overlap() {
    let s3 = "The second cohort received the compound for twelve long weeks.";
    let s4 = "the blood pressure of the second cohort also went down a lot.";
    let close = format!("{OPEN} {S1} Therefore, {S2} {s3} Therefore, {s4} {CLOSE}");
    assert_eq!(subs(&PLAIN, &close), [Sub::Entail, Sub::CauseEffect]);
    let apart = format!("{OPEN} {S1} Therefore, {S2} Between them. {s3} Therefore, {s4} {CLOSE}");
    assert_eq!(
        subs(&PLAIN, &apart),
        [Sub::Entail, Sub::Entail, Sub::CauseEffect, Sub::CauseEffect]
    );
}

#[test]
fn definitions_and_topics_are_mined() {
    let def = format!(
        "{OPEN} Hepatotoxicity is defined as liver damage caused by drugs or chemicals. {CLOSE}"
    );
    let found = PLAIN.mine(&def);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].sub, Sub::Definition);
    assert_eq!(found[0].first, "Hepatotoxicity");
    assert_eq!(found[0].verbalizer, "is defined as");
    assert_eq!(
        found[0].second,
        "liver damage caused by drugs or chemicals."
    );
    let apostrophe = format!(
        "{OPEN} Creditworthiness 's definition is the ability to repay debts on time. {CLOSE}"
    );
    assert_eq!(subs(&PLAIN, &apostrophe), [Sub::Definition]);
    let short = format!(
        "{OPEN} Dysbiosis is defined as an imbalance of the gut microbial community. {CLOSE}"
    );
    assert_eq!(subs(&PLAIN, &short), []);
    let plain_apostrophe = format!(
        "{OPEN} Creditworthiness's definition is the ability to repay debts on time. {CLOSE}"
    );
    assert_eq!(subs(&PLAIN, &plain_apostrophe), []);

    for verb in ["was about", "talks about", "is about", "'s topic is"] {
        let topic = format!("{OPEN} The quarterly earnings report {verb} the decline in retail sales last year. {CLOSE}");
        let found = PLAIN.mine(&topic);
        assert_eq!(found.len(), 1, "{verb}");
        assert_eq!(found[0].sub, Sub::Topic);
        assert_eq!(found[0].first, "The quarterly earnings report");
        assert_eq!(found[0].second, "the decline in retail sales last year.");
    }
    let short_subject =
        format!("{OPEN} This briefing is about the decline in retail sales last year. {CLOSE}");
    assert_eq!(subs(&PLAIN, &short_subject), []);
}

/// A domain tokenizer trained on a corpus where long domain words recur.
fn domain_augmenter() -> Augmenter {
    let corpus: Vec<String> = (0..40)
        .map(|i| format!("Patient {i} showed hepatotoxicity and nephrotoxicity after immunotherapy. Short note {i}."))
        .collect();
    let domain = train_domain_tokenizer(&corpus, 2000).unwrap();
    let general = llama3();
    let vocab = DomainVocab::new(domain, &general);
    assert!(vocab.len() >= 3, "{} specific tokens", vocab.len());
    Augmenter::new(general, Some(vocab), "biomedicine")
}

#[test]
fn keyword_sentences_need_three_domain_words() {
    let aug = domain_augmenter();
    let text = "Case report\nThe nurse came in. Severe hepatotoxicity and nephrotoxicity followed immunotherapy in this patient. Then she left.";
    let found = aug.mine(text);
    let kw: Vec<_> = found.iter().filter(|c| c.sub == Sub::Keyword).collect();
    assert_eq!(kw.len(), 1, "{found:?}");
    assert_eq!(kw[0].first, "hepatotoxicity, nephrotoxicity, immunotherapy");
    assert_eq!(
        kw[0].second,
        "Severe hepatotoxicity and nephrotoxicity followed immunotherapy in this patient."
    );
    let two =
        "Case report\nSevere hepatotoxicity and nephrotoxicity in this patient. Then she left.";
    assert!(aug.mine(two).iter().all(|c| c.sub != Sub::Keyword));
}

#[test]
fn a_sentence_keeps_its_first_word() {
    // the first word of a sentence counts for that sentence, not for the one before it
    let aug = domain_augmenter();
    let text = "Case report\nThe nurse came in. hepatotoxicity and nephrotoxicity followed immunotherapy. Then she left.";
    let kw: Vec<_> = (aug.mine(text).into_iter())
        .filter(|c| c.sub == Sub::Keyword)
        .collect();
    assert_eq!(kw.len(), 1, "{kw:?}");
    assert_eq!(kw[0].first, "hepatotoxicity, nephrotoxicity, immunotherapy");
}

#[test]
fn byte_level_fast_road_gives_the_pipelines_ids() {
    let corpus: Vec<String> = sample_corpus();
    let vocab = DomainVocab::new(train_domain_tokenizer(&corpus, 3000).unwrap(), &llama3());
    assert!(
        vocab.is_fast(),
        "a trained byte-level BPE takes the fast road"
    );
    let crafted = [
        "It's what they'd've said: don't, we'll, I'm, you're, we've.",
        "Spaces  between   words,\ttabs\tand\nline\n\nbreaks   ",
        "Numbers 12345 and 3.14159, 1e-9, x86_64, v2.0.1 — dashes – and…ellipses",
        "Ünïcödé wörds, Ελληνικά γράμματα, русский текст, 中文字符和标点。日本語のテキスト",
        "Emoji 🧬🧪 and combining marks: e\u{301}te\u{301}, नमस्ते, عربى",
        "Punctuation!!! ??? ((brackets)) [x] {y} <z> @#$%^&*",
        "   leading spaces, trailing ones   ",
        "A\u{a0}no-break space and a\u{2003}wide one",
    ];
    let sentences = corpus
        .iter()
        .flat_map(|t| graft_data::augment::segment::sentences(t))
        .chain(crafted.iter().map(|s| s.to_string()));
    let mut n = 0;
    for s in sentences {
        assert_eq!(vocab.sentence_ids(&s), vocab.encoded_ids(&s), "{s:?}");
        n += 1;
    }
    assert!(n > 20, "{n} sentences compared");
}

#[test]
fn trained_domain_vocab_excludes_general_words() {
    let corpus: Vec<String> = (0..30)
        .map(|_| "international international hepatotoxicity".to_string())
        .collect();
    let general = llama3();
    let vocab = DomainVocab::new(train_domain_tokenizer(&corpus, 500).unwrap(), &general);
    let aug = Augmenter::new(general, Some(vocab), "x");
    let vocab = aug.domain_vocab().unwrap();
    assert!(vocab.is_specific("hepatotoxicity"));
    // "international" is one Llama-3 token, so it is not domain-specific
    assert!(!vocab.is_specific("international"));
}

#[test]
fn template_pools_are_as_large_as_the_originals() {
    use templates::*;
    let sizes = [
        NLI_CLASSIFY.len(),
        NLI_GENERATE_ENTAIL.len(),
        NLI_GENERATE_NEUTRAL.len(),
        NLI_GENERATE_CONTRADICT.len(),
        CAUSE_EFFECT.len(),
        EFFECT_CAUSE.len(),
        PARAPHRASE_SIMILAR.len(),
        PARAPHRASE_DIFFERENT.len(),
        KEYWORD.len(),
        DEFINITION.len(),
        TOPIC.len(),
        layouts::SUMMARIZE.len(),
        layouts::COMPLETION.len(),
        layouts::SUMMARIZE_COMPLETION.len(),
        layouts::NEITHER.len(),
        layouts::INTROS.len(),
    ];
    assert_eq!(
        sizes,
        [37, 13, 5, 7, 24, 31, 11, 12, 25, 12, 19, 20, 10, 10, 13, 18]
    );
}

/// A document with every regex family planted, two paragraphs, a title.
fn rich() -> String {
    format!(
        "{}\nHepatotoxicity is defined as liver damage caused by drugs or chemicals. {} {} The quarterly earnings report is about the decline in retail sales last year. {}",
        planted("Therefore", ", "),
        planted("However", ", ").replace("Title line\n", ""),
        planted("Namely", ", ").replace("Title line\n", ""),
        planted("due to", " ").replace("Title line\n", ""),
    )
}

#[test]
fn a_document_holds_its_tasks_and_its_text() {
    let text = rich();
    for i in 0..20 {
        let out = PLAIN.augment(&text, 7, i);
        let kinds: std::collections::BTreeSet<&str> = out.tasks.iter().map(|t| t.kind).collect();
        for k in ["nli", "commonsense", "paraphrase", "word2text"] {
            assert!(kinds.contains(k), "doc {i}: {kinds:?}");
        }
        for t in &out.tasks {
            assert!(
                out.text.contains(&t.answer),
                "doc {i}: answer {:?} not in text",
                t.answer
            );
            if !t.question.is_empty() {
                assert!(out.text.contains(&t.question), "doc {i}: {:?}", t.question);
            }
        }
        // caps: at most 2 per subcategory, so at most 6 NLI examples
        assert!(out.tasks.iter().filter(|t| t.kind == "nli").count() <= 6);
        assert!(!out.text.contains("  "), "double spaces are collapsed");
        assert!(out.text.contains("Hepatotoxicity is defined as"));
    }
}

#[test]
fn layouts_cover_summarize_and_completion() {
    let text = rich();
    let mut seen = std::collections::BTreeSet::new();
    for i in 0..40 {
        for t in PLAIN.augment(&text, 1, i).tasks {
            if t.kind == "summarize" {
                assert!(
                    t.answer == "Title line" || t.question.contains("Title line"),
                    "{t:?}"
                );
            }
            seen.insert(t.kind);
        }
    }
    assert!(
        seen.contains("summarize") && seen.contains("completion"),
        "{seen:?}"
    );
    // a single-line text has no title: never summarized
    let one_line = rich().replace('\n', " ");
    for i in 0..20 {
        assert!(PLAIN
            .augment(&one_line, 1, i)
            .tasks
            .iter()
            .all(|t| t.kind != "summarize"));
    }
}

#[test]
fn a_text_without_patterns_gets_no_mined_tasks() {
    let text = "Notes\nThe weather was fine. We walked to the harbour and back. Lunch was late.";
    for i in 0..20 {
        let out = PLAIN.augment(text, 3, i);
        assert!(out
            .tasks
            .iter()
            .all(|t| t.kind == "summarize" || t.kind == "completion"));
    }
}

#[test]
fn output_is_deterministic_for_a_seed_and_follows_input_order() {
    let texts: Vec<String> = (0..12)
        .map(|i| rich().replace("Title line", &format!("Title {i}")))
        .collect();
    let a = PLAIN.augment_all(&texts, 5, &|_| {});
    let b = PLAIN.augment_all(&texts, 5, &|_| {});
    assert_eq!(a, b);
    for (i, out) in a.iter().enumerate() {
        assert_eq!(*out, PLAIN.augment(&texts[i], 5, i as u64));
        assert!(
            out.text.contains(&format!("Title {i}")),
            "doc {i} out of order"
        );
    }
    let c = PLAIN.augment_all(&texts, 6, &|_| {});
    assert_ne!(a, c, "another seed draws other templates");
}

fn write(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p
}

#[test]
fn read_texts_reads_corpora_and_names_bad_lines() {
    let dir = tempfile::tempdir().unwrap();
    let jsonl = write(
        dir.path(),
        "a.jsonl",
        "{\"text\": \"one\"}\n\n{\"text\": \"two\"}\n",
    );
    let txt = write(dir.path(), "b.txt", "three\n");
    let texts = graft_data::augment::read_texts(&[jsonl, txt], "text").unwrap();
    assert_eq!(texts, ["one", "two", "three\n"]);

    let bad = write(
        dir.path(),
        "bad.jsonl",
        "{\"text\": \"ok\"}\n{\"body\": \"x\"}\n",
    );
    let err = graft_data::augment::read_texts(&[bad], "text")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("bad.jsonl:line 2") && err.contains("missing field `text`"),
        "{err}"
    );
    let broken = write(
        dir.path(),
        "broken.jsonl",
        "{\"text\": \"ok\"}\n{not json\n",
    );
    let err = graft_data::augment::read_texts(&[broken], "text")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("broken.jsonl:line 2") && err.contains("invalid JSON"),
        "{err}"
    );
}

/// The shipped biomedicine and finance sample texts.
fn sample_corpus() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data");
    let paths = [
        root.join("biomedicine/biomedicine-00.jsonl"),
        root.join("finance/finance-00.jsonl"),
    ];
    graft_data::augment::read_texts(&paths, "text").unwrap()
}
