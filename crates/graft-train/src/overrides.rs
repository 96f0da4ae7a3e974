//! `--set key=value` overrides on dotted recipe paths (`train.lr=2e-5`, `data.seq_len=512`).
//!
//! The value is parsed as a TOML value (`2e-5`, `true`, `[0.9, 0.99]`, `"text"`); anything that
//! does not parse is taken as a plain string (`model.base=meta-llama/Llama-3.1-8B`). Intermediate
//! tables are created when missing; whether a key is allowed is decided by the recipe schema,
//! which rejects unknown keys by name.

use crate::error::{Result, TrainError};

/// Apply every `key=value` spec to `root`, in order.
pub fn apply_overrides(root: &mut toml::Table, specs: &[String]) -> Result<()> {
    specs.iter().try_for_each(|spec| apply_one(root, spec))
}

fn apply_one(root: &mut toml::Table, spec: &str) -> Result<()> {
    let err = |message: &str| TrainError::Override {
        spec: spec.to_string(),
        message: message.to_string(),
    };
    let (key, raw) = spec
        .split_once('=')
        .ok_or_else(|| err("expected KEY=VALUE, e.g. train.lr=2e-5"))?;
    let parts: Vec<&str> = key.trim().split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(err(
            "the key has an empty component; use dotted names like train.lr",
        ));
    }
    let value = parse_value(raw.trim());
    let (last, parents) = parts.split_last().ok_or_else(|| err("empty key"))?;
    let mut table = root;
    for (i, part) in parents.iter().enumerate() {
        let entry = table
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        table = match entry {
            toml::Value::Table(t) => t,
            other => {
                let path = parts[..=i].join(".");
                return Err(err(&format!(
                    "`{path}` is a {}, not a table",
                    other.type_str()
                )));
            }
        };
    }
    if let Some(old) = table.get(*last) {
        if old.is_table() && !value.is_table() {
            return Err(err(&format!(
                "`{key}` is a table; set one of its keys instead"
            )));
        }
    }
    table.insert(last.to_string(), value);
    Ok(())
}

/// Parse `raw` as a TOML value, falling back to a string.
fn parse_value(raw: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> toml::Table {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn sets_typed_values_on_dotted_paths() {
        let mut t = table("[train]\nlr = 1e-5\n");
        let specs = [
            "train.lr=2e-5",
            "train.betas=[0.9, 0.99]",
            "data.seq_len=512",
            "model.base=meta-llama/Llama-3.1-8B",
        ];
        apply_overrides(&mut t, &specs.map(String::from)).unwrap();
        assert_eq!(t["train"]["lr"].as_float(), Some(2e-5));
        assert_eq!(t["train"]["betas"].as_array().unwrap().len(), 2);
        assert_eq!(t["data"]["seq_len"].as_integer(), Some(512));
        assert_eq!(t["model"]["base"].as_str(), Some("meta-llama/Llama-3.1-8B"));
    }

    #[test]
    fn malformed_specs_are_errors() {
        let mut t = table("name = \"x\"\n[train]\nlr = 1e-5\n");
        for (spec, needle) in [
            ("train.lr", "KEY=VALUE"),
            ("train..lr=1", "empty component"),
            ("name.x=1", "`name` is a string"),
            ("train=3", "is a table"),
        ] {
            let e = apply_overrides(&mut t, &[spec.to_string()])
                .unwrap_err()
                .to_string();
            assert!(e.contains(needle) && e.contains(spec), "{spec}: {e}");
        }
    }
}
