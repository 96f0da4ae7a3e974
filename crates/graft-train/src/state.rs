//! The training state saved in each checkpoint (`training_state.json`).

use std::collections::BTreeMap;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

/// Current version of the `training_state.json` format.
pub const STATE_VERSION: u32 = 1;

/// Everything besides model and optimizer tensors needed to resume a run exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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
    /// The training RNG (dropout and the like).
    pub rng: RngState,
}

/// The state of a [`ChaCha8Rng`]: seed, stream and word position.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RngState {
    /// The 32-byte seed, hex encoded.
    pub seed: String,
    /// The stream number.
    pub stream: u64,
    /// The word position, as a decimal string (it is a u128).
    pub word_pos: String,
}

impl RngState {
    /// Capture the state of `rng`.
    pub fn capture(rng: &ChaCha8Rng) -> Self {
        let seed: String = rng.get_seed().iter().map(|b| format!("{b:02x}")).collect();
        Self {
            seed,
            stream: rng.get_stream(),
            word_pos: rng.get_word_pos().to_string(),
        }
    }

    /// Rebuild the RNG exactly as captured.
    pub fn restore(&self) -> Result<ChaCha8Rng> {
        let bad = |what: &str| {
            TrainError::Config(format!("training_state.json: rng.{what} is malformed"))
        };
        if self.seed.len() != 64 {
            return Err(bad("seed"));
        }
        let mut seed = [0u8; 32];
        for (i, b) in seed.iter_mut().enumerate() {
            *b = u8::from_str_radix(&self.seed[2 * i..2 * i + 2], 16).map_err(|_| bad("seed"))?;
        }
        let word_pos: u128 = self.word_pos.parse().map_err(|_| bad("word_pos"))?;
        let mut rng = ChaCha8Rng::from_seed(seed);
        rng.set_stream(self.stream);
        rng.set_word_pos(word_pos);
        Ok(rng)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngCore;

    #[test]
    fn rng_state_round_trips() {
        let mut rng = ChaCha8Rng::seed_from_u64(42);
        for _ in 0..13 {
            rng.next_u32();
        }
        let saved = RngState::capture(&rng);
        let json = serde_json::to_string(&saved).unwrap();
        let mut back = serde_json::from_str::<RngState>(&json)
            .unwrap()
            .restore()
            .unwrap();
        for _ in 0..100 {
            assert_eq!(rng.next_u64(), back.next_u64());
        }
    }

    #[test]
    fn malformed_seed_is_an_error() {
        let bad = RngState {
            seed: "zz".into(),
            stream: 0,
            word_pos: "0".into(),
        };
        assert!(bad.restore().is_err());
    }
}
