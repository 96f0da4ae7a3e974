//! Reads event files back: TFRecord framing with CRC checks, then a minimal Event decoder.

use super::*;
use tensorboard_rs::masked_crc32c::masked_crc32c;

/// Split a TFRecord file into records, checking both CRCs.
fn records(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let len_bytes = &bytes[pos..pos + 8];
        let len = u64::from_le_bytes(len_bytes.try_into().unwrap()) as usize;
        let crc = u32::from_le_bytes(bytes[pos + 8..pos + 12].try_into().unwrap());
        assert_eq!(crc, masked_crc32c(len_bytes), "length crc");
        let data = &bytes[pos + 12..pos + 12 + len];
        let crc = u32::from_le_bytes(bytes[pos + 12 + len..pos + 16 + len].try_into().unwrap());
        assert_eq!(crc, masked_crc32c(data), "data crc");
        out.push(data.to_vec());
        pos += 16 + len;
    }
    out
}

fn varint(b: &[u8], pos: &mut usize) -> u64 {
    let (mut v, mut shift) = (0u64, 0);
    loop {
        let byte = b[*pos];
        *pos += 1;
        v |= ((byte & 0x7f) as u64) << shift;
        if byte < 0x80 {
            return v;
        }
        shift += 7;
    }
}

/// Protobuf fields as (number, raw bytes) — fixed64/fixed32 as their bytes, varints as u64 LE.
fn fields(b: &[u8]) -> Vec<(u64, Vec<u8>)> {
    let mut pos = 0;
    let mut out = Vec::new();
    while pos < b.len() {
        let key = varint(b, &mut pos);
        let data = match key & 7 {
            0 => varint(b, &mut pos).to_le_bytes().to_vec(),
            1 => (pos..pos + 8).map(|i| b[i]).collect::<Vec<_>>(),
            2 => {
                let n = varint(b, &mut pos) as usize;
                b[pos..pos + n].to_vec()
            }
            5 => (pos..pos + 4).map(|i| b[i]).collect::<Vec<_>>(),
            w => panic!("unexpected wire type {w}"),
        };
        pos += match key & 7 {
            1 => 8,
            2 => data.len(),
            5 => 4,
            _ => 0,
        };
        out.push((key >> 3, data));
    }
    out
}

/// (step, tag, value) of every scalar event in the file.
fn scalars(path: &Path) -> (Option<String>, Vec<(i64, String, f32)>) {
    let mut version = None;
    let mut out = Vec::new();
    for rec in records(&std::fs::read(path).unwrap()) {
        let f = fields(&rec);
        let step = f
            .iter()
            .find(|(n, _)| *n == 2)
            .map(|(_, d)| i64::from_le_bytes(d[..8].try_into().unwrap()))
            .unwrap_or(0);
        for (n, d) in &f {
            match n {
                3 => version = Some(String::from_utf8(d.clone()).unwrap()),
                5 => {
                    for (_, value) in fields(d).into_iter().filter(|(n, _)| *n == 1) {
                        let vf = fields(&value);
                        let tag =
                            String::from_utf8(vf.iter().find(|(n, _)| *n == 1).unwrap().1.clone())
                                .unwrap();
                        let v = f32::from_le_bytes(
                            vf.iter().find(|(n, _)| *n == 2).unwrap().1[..4]
                                .try_into()
                                .unwrap(),
                        );
                        out.push((step, tag, v));
                    }
                }
                _ => {}
            }
        }
    }
    (version, out)
}

#[test]
fn tensorboard_scalars_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let tb_dir = dir.path().join("tensorboard");
    let mut logger = TensorBoardLogger::new(&tb_dir).unwrap();
    logger.scalar("train/loss", 6.25, 1).unwrap();
    logger.scalar("train/lr", 5e-4, 1).unwrap();
    logger.scalar("train/tokens_seen/web", 1024.0, 300).unwrap();
    logger.scalar("eval/qa/ppl", 12.5, 300).unwrap();
    logger.flush().unwrap();
    let path = logger.path().to_path_buf();
    assert!(path.starts_with(&tb_dir));
    assert!(path
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("events.out.tfevents."));
    let (version, got) = scalars(&path);
    assert_eq!(version.as_deref(), Some("brain.Event:2"));
    let want = [
        (1, "train/loss", 6.25f32),
        (1, "train/lr", 5e-4),
        (300, "train/tokens_seen/web", 1024.0),
        (300, "eval/qa/ppl", 12.5),
    ];
    assert_eq!(got.len(), want.len());
    for ((s, t, v), (ws, wt, wv)) in got.iter().zip(want) {
        assert_eq!((*s, t.as_str(), *v), (ws, wt, wv));
    }
}

#[test]
fn text_and_multi_logger() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scalars.tsv");
    let mut multi = MultiLogger(vec![Box::new(TextLogger::new(&path).unwrap())]);
    multi.scalar("train/loss", 2.5, 7).unwrap();
    multi.flush().unwrap();
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "7\ttrain/loss\t2.5\n"
    );
    drop(multi);
    // a resumed run appends after a line torn by a crash: the torn part is cut off
    std::fs::write(&path, "7\ttrain/loss\t2.5\n8\ttrain/lo").unwrap();
    let mut text = TextLogger::new(&path).unwrap();
    text.scalar("train/loss", 2.25, 8).unwrap();
    text.flush().unwrap();
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "7\ttrain/loss\t2.5\n8\ttrain/loss\t2.25\n"
    );
}

#[test]
fn unwritable_directory_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    assert!(TensorBoardLogger::new(&file.join("tb")).is_err());
}

#[test]
fn burn_train_metrics_reach_the_event_file() {
    use burn::train::logger::MetricLogger;
    use burn::train::metric::store::{EpochSummary, MetricsUpdate, NumericMetricUpdate, Split};
    use burn::train::metric::{
        MetricAttributes, MetricDefinition, MetricEntry, MetricId, NumericEntry, SerializedEntry,
    };
    use std::sync::Arc;

    let dir = tempfile::tempdir().unwrap();
    let tb = TensorBoardLogger::new(&dir.path().join("tb")).unwrap();
    let path = tb.path().to_path_buf();
    let mut logger = BurnMetricLogger::new(tb);
    let id = MetricId::new(Arc::new("loss-id".to_string()));
    logger.log_metric_definition(MetricDefinition {
        metric_id: id.clone(),
        name: "Loss".into(),
        description: None,
        attributes: MetricAttributes::None,
    });
    let update = |value: f64, running: f64| {
        let entry = MetricEntry::new(
            id.clone(),
            SerializedEntry::new(value.to_string(), value.to_string()),
        );
        let numeric = NumericMetricUpdate::new(
            entry,
            NumericEntry::Value(value),
            NumericEntry::Value(running),
        );
        MetricsUpdate::new(Vec::new(), vec![numeric])
    };
    logger.log(update(3.0, 3.0), 1, &Split::Train);
    logger.log(update(2.0, 2.5), 1, &Split::Train);
    logger.log(update(4.0, 4.0), 1, &Split::Valid);
    logger.log_epoch_summary(EpochSummary::new(1, Split::Train));
    let history = logger.read_numeric("Loss", 1, &Split::Train).unwrap();
    assert_eq!(
        history
            .iter()
            .map(NumericEntry::current)
            .collect::<Vec<_>>(),
        [3.0, 2.0]
    );
    assert!(logger.read_numeric("Loss", 2, &Split::Train).is_err());
    logger.finish().unwrap();

    let (_, got) = scalars(&path);
    let got: Vec<(i64, &str, f32)> = got.iter().map(|(s, t, v)| (*s, t.as_str(), *v)).collect();
    assert_eq!(
        got,
        [
            (1, "train/Loss", 3.0),
            (2, "train/Loss", 2.0),
            (1, "valid/Loss", 4.0),
            (1, "train/Loss/epoch", 2.5)
        ]
    );
}
