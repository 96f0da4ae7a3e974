//! The training state saved in each checkpoint (`training_state.json`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Current version of the `training_state.json` format.
pub const STATE_VERSION: u32 = 1;

/// Everything besides model and optimizer tensors needed to resume a run exactly.
///
/// Checkpoints of earlier graft versions also hold an `rng` entry (a training RNG that nothing
/// drew from: dropout masks come from per-rank streams the step seeds, see
/// `graft_llama::lora::seed_dropout`); it is read and dropped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, from = "StateFile")]
pub struct TrainingState {
    /// Format version ([`STATE_VERSION`]).
    pub version: u32,
    /// Optimizer steps taken so far (including skipped non-finite steps).
    pub step: u64,
    /// Position in the learning-rate schedule (the index of the next update).
    pub lr_step: u64,
    /// Training tokens consumed so far.
    pub tokens_seen: u64,
    /// Training tokens consumed so far, per data source.
    #[serde(default)]
    pub tokens_per_source: BTreeMap<String, u64>,
    /// Non-finite steps in a row at the time of saving.
    pub consecutive_nonfinite: u32,
    /// Non-finite (skipped) steps over the whole run.
    pub total_nonfinite: u64,
    /// The data stream's resume cursor, as the data pipeline serialised it.
    pub data_cursor: serde_json::Value,
}

/// `training_state.json` as read: [`TrainingState`] plus the `rng` of older versions.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StateFile {
    version: u32,
    step: u64,
    lr_step: u64,
    tokens_seen: u64,
    #[serde(default)]
    tokens_per_source: BTreeMap<String, u64>,
    consecutive_nonfinite: u32,
    total_nonfinite: u64,
    data_cursor: serde_json::Value,
    #[serde(default, rename = "rng")]
    _rng: Option<serde::de::IgnoredAny>,
}

impl From<StateFile> for TrainingState {
    fn from(f: StateFile) -> Self {
        Self {
            version: f.version,
            step: f.step,
            lr_step: f.lr_step,
            tokens_seen: f.tokens_seen,
            tokens_per_source: f.tokens_per_source,
            consecutive_nonfinite: f.consecutive_nonfinite,
            total_nonfinite: f.total_nonfinite,
            data_cursor: f.data_cursor,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: &str = r#"{"version": 1, "step": 4, "lr_step": 4, "tokens_seen": 512,
        "tokens_per_source": {"web": 512}, "consecutive_nonfinite": 0, "total_nonfinite": 0,
        "data_cursor": {"offset": 3},
        "rng": {"seed": "0000000000000000000000000000000000000000000000000000000000000000",
                "stream": 0, "word_pos": "0"}}"#;

    #[test]
    fn old_state_with_an_rng_loads_and_new_state_has_none() {
        let state: TrainingState = serde_json::from_str(OLD).unwrap();
        assert_eq!((state.step, state.tokens_seen), (4, 512));
        assert_eq!(state.data_cursor, serde_json::json!({"offset": 3}));
        let json = serde_json::to_value(&state).unwrap();
        assert!(json.get("rng").is_none(), "{json}");
        let back: TrainingState = serde_json::from_value(json).unwrap();
        assert_eq!(back, state);
    }

    #[test]
    fn unknown_keys_are_still_errors() {
        let bad = OLD.replace("\"lr_step\"", "\"lr_stpe\"");
        let err = serde_json::from_str::<TrainingState>(&bad).unwrap_err();
        assert!(err.to_string().contains("lr_stpe"), "{err}");
    }
}
