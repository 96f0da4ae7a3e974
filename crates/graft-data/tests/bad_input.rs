//! Bad input: clear errors naming file and line/row/key, or skipped and counted.

mod common;

use std::path::Path;
use std::sync::Arc;

use graft_data::{prepare, DataConfig, DataError};
use parquet::data_type::{ByteArray, ByteArrayType};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;

const ONE_SOURCE: &str = "seq_len = 8\n[[sources]]\nname = \"src\"\npath = \"in/*\"\n";

fn run(
    files: &[(&str, &str)],
    extra: &str,
) -> (Result<graft_data::Manifest, DataError>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        common::write(dir.path(), &format!("in/{name}"), text);
    }
    let c = common::config(&format!("{extra}\n{ONE_SOURCE}"), dir.path());
    (
        prepare(&c, &common::tokenizer(), &dir.path().join("p")),
        dir,
    )
}

#[test]
fn malformed_jsonl_line_names_file_and_line() {
    let (r, _d) = run(
        &[(
            "a.jsonl",
            "{\"text\": \"ok\"}\n{\"text\": \"broken\"\n{\"text\": \"ok\"}\n",
        )],
        "",
    );
    let err = r.unwrap_err();
    assert!(matches!(err, DataError::BadRecord { .. }));
    let msg = err.to_string();
    assert!(
        msg.contains("a.jsonl:line 2") && msg.contains("invalid JSON"),
        "{msg}"
    );
    assert!(
        msg.contains("on_bad_record"),
        "the error says what to do: {msg}"
    );
}

#[test]
fn bad_records_are_skipped_and_counted_when_asked() {
    let text =
        "{\"text\": \"ok\"}\n{\"text\": \"broken\"\n[1, 2]\n{\"other\": 1}\n{\"text\": \"fine\"}\n";
    let (r, _d) = run(&[("a.jsonl", text)], "on_bad_record = \"skip\"");
    let m = r.unwrap();
    assert_eq!(
        (
            m.sources[0].documents,
            m.sources[0].bad_records,
            m.sources[0].records
        ),
        (2, 3, 2)
    );
}

#[test]
fn missing_field_names_the_field_and_line() {
    let (r, _d) = run(
        &[("a.jsonl", "{\"text\": \"ok\"}\n{\"body\": \"no text\"}\n")],
        "",
    );
    let msg = r.unwrap_err().to_string();
    assert!(
        msg.contains("a.jsonl:line 2") && msg.contains("missing field `text`"),
        "{msg}"
    );
}

#[test]
fn unreadable_parquet_names_the_file() {
    let (r, _d) = run(&[("x.parquet", "this is not parquet")], "");
    let err = r.unwrap_err();
    assert!(
        matches!(
            err,
            DataError::Unreadable {
                reader: "parquet",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("x.parquet"));
}

#[test]
fn empty_source_is_an_error() {
    let (r, _d) = run(&[("a.jsonl", "\n\n")], "");
    assert!(matches!(r.unwrap_err(), DataError::EmptySource(name) if name == "src"));
    let (r, _d) = run(&[("a.jsonl", "{\"no\": 1}\n")], "on_bad_record = \"skip\"");
    assert!(matches!(r.unwrap_err(), DataError::EmptySource(_)));
}

#[test]
fn missing_source_files_name_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let c = common::config(
        "seq_len = 8\n[[sources]]\nname = \"gone\"\npath = \"nowhere/*.jsonl\"\n",
        dir.path(),
    );
    let err = prepare(&c, &common::tokenizer(), &dir.path().join("p")).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("nowhere/*.jsonl") && msg.contains("gone"),
        "{msg}"
    );
    let c = common::config(
        "seq_len = 8\n[[sources]]\nname = \"gone\"\npath = \"file.jsonl\"\n",
        dir.path(),
    );
    assert!(graft_data::preview(&c, "gone", 1)
        .unwrap_err()
        .to_string()
        .contains("file.jsonl"));
}

#[test]
fn unknown_config_keys_are_errors_naming_the_key() {
    let err = DataConfig::from_toml_str(
        "seq_len = 8\nseq_lenn = 9\nsources = []",
        Path::new("r.toml"),
    )
    .unwrap_err();
    assert!(err.to_string().contains("seq_lenn"), "{err}");
    let err = DataConfig::from_toml_str(
        "seq_len = 8\n[[sources]]\nname = \"a\"\npath = \"x\"\nwieght = 1\n",
        Path::new("r.toml"),
    )
    .unwrap_err();
    assert!(err.to_string().contains("wieght"), "{err}");
    let err = DataConfig::from_toml_str(
        "seq_len = 8\n[[sources]]\nname = \"a\"\npath = \"x\"\nformat = \"fancy\"\n",
        Path::new("r.toml"),
    )
    .unwrap_err();
    assert!(err.to_string().contains("fancy"), "{err}");
}

fn write_parquet(path: &Path, columns: &[(&str, Vec<&str>)]) {
    let fields: String = columns
        .iter()
        .map(|(n, _)| format!("REQUIRED BYTE_ARRAY {n} (UTF8);"))
        .collect();
    let schema = Arc::new(
        parquet::schema::parser::parse_message_type(&format!("message m {{ {fields} }}")).unwrap(),
    );
    let file = std::fs::File::create(path).unwrap();
    let mut writer =
        SerializedFileWriter::new(file, schema, Arc::new(WriterProperties::builder().build()))
            .unwrap();
    let mut group = writer.next_row_group().unwrap();
    for (_, values) in columns {
        let mut col = group.next_column().unwrap().unwrap();
        let values: Vec<ByteArray> = values.iter().map(|v| ByteArray::from(*v)).collect();
        col.typed::<ByteArrayType>()
            .write_batch(&values, None, None)
            .unwrap();
        col.close().unwrap();
    }
    group.close().unwrap();
    writer.close().unwrap();
}

#[test]
fn parquet_rows_render_like_jsonl() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("pq")).unwrap();
    write_parquet(
        &dir.path().join("pq/a.parquet"),
        &[
            ("instruction", vec!["Say hi.", "Count to two."]),
            ("output", vec!["Hi!", "One, two."]),
        ],
    );
    let c = common::config(
        "seq_len = 8\n[[sources]]\nname = \"gen\"\npath = \"pq/a.parquet\"\nformat = \"instruction\"\n",
        dir.path(),
    );
    assert_eq!(
        graft_data::preview(&c, "gen", 5).unwrap(),
        ["Say hi. Hi!", "Count to two. One, two."]
    );
    let m = prepare(&c, &common::tokenizer(), &dir.path().join("p")).unwrap();
    assert_eq!(m.sources[0].documents, 2);
    let c = common::config(
        "seq_len = 8\n[[sources]]\nname = \"gen\"\npath = \"pq/a.parquet\"\nformat = \"instruction\"\nquestion_field = \"prompt\"\n",
        dir.path(),
    );
    let msg = prepare(&c, &common::tokenizer(), &dir.path().join("p"))
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("a.parquet:row 0") && msg.contains("prompt"),
        "{msg}"
    );
}
