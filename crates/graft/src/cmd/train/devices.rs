//! Which devices `graft train` uses: `--devices 0,1,…`, else the recipe's `train.devices`, else
//! `train.device`, else device 0. Several devices mean data parallelism (one peer per device).

use anyhow::bail;
use graft_train::Recipe;

/// Device indices to train on, in rank order. `--devices` (`cli`) wins over the recipe; every
/// index may appear once.
pub fn device_indices(cli: &[usize], recipe: &Recipe) -> anyhow::Result<Vec<usize>> {
    let indices = if !cli.is_empty() {
        cli.to_vec()
    } else if let Some(list) = &recipe.train.devices {
        list.iter()
            .map(|d| parse_device("train.devices", d))
            .collect::<anyhow::Result<_>>()?
    } else if let Some(d) = &recipe.train.device {
        vec![parse_device("train.device", d)?]
    } else {
        vec![0]
    };
    if indices.is_empty() {
        bail!("train.devices is empty.\nHINT: list at least one device, e.g. [\"cuda:0\"], or drop the key");
    }
    for (i, d) in indices.iter().enumerate() {
        if indices[..i].contains(d) {
            bail!(
                "device {d} is listed twice in {:?}.\nHINT: give every device once (data parallelism runs one peer per device)",
                indices
            );
        }
    }
    Ok(indices)
}

/// The recipe spelling of device `index` in this build (`cuda:N`, or `cpu:N` on the CPU).
pub fn device_name(index: usize) -> String {
    let kind = if cfg!(feature = "cuda") { "cuda" } else { "cpu" };
    format!("{kind}:{index}")
}

/// `"cuda:3"` → 3, `"cuda"`/`"cpu"` → 0, `"cpu:1"` → 1; `key` names the recipe key in errors.
fn parse_device(key: &str, text: &str) -> anyhow::Result<usize> {
    let (kind, index) = text.split_once(':').unwrap_or((text, "0"));
    match (kind, index.parse::<usize>()) {
        ("cuda" | "cpu", Ok(i)) => Ok(i),
        _ => bail!(
            "{key}: {text:?} is not a device.\nHINT: write \"cuda:N\" (GPU N) or \"cpu\""
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recipe(train: &str) -> Recipe {
        let text = format!(
            "name = \"t\"\n[model]\nbase = \"m\"\n[data]\nseq_len = 8\n[[data.sources]]\nname = \"a\"\npath = \"a.jsonl\"\n[train]\nmicro_batch_size = 1\ngrad_accum = 1\nsteps = 1\nlr = 1e-3\n{train}\n"
        );
        toml::from_str(&text).unwrap()
    }

    #[test]
    fn cli_then_devices_then_device_then_zero() {
        let r = recipe("devices = [\"cuda:2\", \"cuda:3\"]");
        assert_eq!(device_indices(&[0, 1], &r).unwrap(), [0, 1]);
        assert_eq!(device_indices(&[], &r).unwrap(), [2, 3]);
        assert_eq!(device_indices(&[], &recipe("device = \"cuda:1\"")).unwrap(), [1]);
        assert_eq!(device_indices(&[], &recipe("device = \"cpu\"")).unwrap(), [0]);
        assert_eq!(device_indices(&[], &recipe("")).unwrap(), [0]);
    }

    #[test]
    fn bad_and_repeated_devices_are_named() {
        let err = device_indices(&[], &recipe("devices = [\"cuda:0\", \"gpu1\"]")).unwrap_err();
        assert!(err.to_string().contains("\"gpu1\""), "{err}");
        let err = device_indices(&[1, 1], &recipe("")).unwrap_err();
        assert!(err.to_string().contains("device 1 is listed twice"), "{err}");
    }
}
