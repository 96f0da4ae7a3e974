//! Parquet (as HuggingFace datasets ship it), read row by row with the `parquet` record API.

use std::fs::File;
use std::path::Path;

use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::{Field, Row};
use serde_json::{Map, Number, Value};

use super::{Flow, RawRecord};
use crate::error::{DataError, Result};

/// Reads every row of every row group.
pub(super) fn read(path: &Path, f: &mut dyn FnMut(RawRecord) -> Result<Flow>) -> Result<()> {
    let unreadable = |message: String| DataError::Unreadable {
        path: path.to_path_buf(),
        reader: "parquet",
        message,
    };
    let file = File::open(path).map_err(|e| DataError::io(path, e))?;
    let reader = SerializedFileReader::new(file).map_err(|e| unreadable(e.to_string()))?;
    let rows = reader
        .get_row_iter(None)
        .map_err(|e| unreadable(e.to_string()))?;
    for (i, row) in rows.enumerate() {
        let row = row.map_err(|e| unreadable(format!("row {i}: {e}")))?;
        let record = RawRecord {
            location: format!("row {i}"),
            value: Ok(row_to_json(&row)),
        };
        if f(record)? == Flow::Stop {
            break;
        }
    }
    Ok(())
}

fn row_to_json(row: &Row) -> Value {
    let map: Map<String, Value> = row
        .get_column_iter()
        .map(|(k, v)| (k.clone(), field_to_json(v)))
        .collect();
    Value::Object(map)
}

fn field_to_json(field: &Field) -> Value {
    match field {
        Field::Null => Value::Null,
        Field::Bool(b) => Value::Bool(*b),
        Field::Byte(v) => Value::from(*v),
        Field::Short(v) => Value::from(*v),
        Field::Int(v) => Value::from(*v),
        Field::Long(v) => Value::from(*v),
        Field::UByte(v) => Value::from(*v),
        Field::UShort(v) => Value::from(*v),
        Field::UInt(v) => Value::from(*v),
        Field::ULong(v) => Value::from(*v),
        Field::Float(v) => Number::from_f64(*v as f64).map_or(Value::Null, Value::Number),
        Field::Double(v) => Number::from_f64(*v).map_or(Value::Null, Value::Number),
        Field::Str(s) => Value::String(s.clone()),
        Field::Bytes(b) => match std::str::from_utf8(b.data()) {
            Ok(s) => Value::String(s.to_string()),
            Err(_) => Value::Null,
        },
        Field::Group(row) => row_to_json(row),
        Field::ListInternal(list) => {
            Value::Array(list.elements().iter().map(field_to_json).collect())
        }
        Field::MapInternal(map) => {
            let m: Map<String, Value> = map
                .entries()
                .iter()
                .map(|(k, v)| {
                    (
                        k.to_string().trim_matches('"').to_string(),
                        field_to_json(v),
                    )
                })
                .collect();
            Value::Object(m)
        }
        other => Value::String(other.to_string()),
    }
}
