//! `graft data preview` through the real binary, on the shipped tiny-demo recipe and samples.

use std::path::Path;
use std::process::Command;

fn preview(args: &[&str]) -> (bool, String, String) {
    let recipe = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../recipes/tiny-demo.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_graft"))
        .args(["data", "preview", recipe.to_str().unwrap()])
        .args(args)
        .output()
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

#[test]
fn preview_prints_rendered_documents_without_tags() {
    let (ok, stdout, stderr) = preview(&["--source", "biomedicine", "-n", "2"]);
    assert!(ok, "{stderr}");
    assert_eq!(
        stdout.matches("===== biomedicine · document").count(),
        2,
        "{stdout}"
    );
    assert!(stdout.contains("document 2 of 2"), "{stdout}");
    for tag in ["<QUE>", "<ANS>", "</END>", "qa_pairs", "<|begin_of_text|>"] {
        assert!(
            !stdout.contains(tag),
            "`{tag}` left in the rendered text:\n{stdout}"
        );
    }
    // instruction data renders as "{question} {response}"; every source without --source
    let (ok, all, _) = preview(&["-n", "1"]);
    assert!(ok);
    for source in ["biomedicine", "finance", "general"] {
        assert!(
            all.contains(&format!("===== {source} · document 1 of 1")),
            "{all}"
        );
    }
}

#[test]
fn preview_of_an_unknown_source_names_it() {
    let (ok, _, stderr) = preview(&["--source", "astronomy"]);
    assert!(!ok);
    assert!(stderr.contains("astronomy"), "{stderr}");
}
