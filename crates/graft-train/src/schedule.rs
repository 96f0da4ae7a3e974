//! Learning-rate schedule: linear warmup, then cosine decay to `peak · min_lr_ratio`.

/// Linear warmup followed by cosine decay, as in the golden PyTorch reference.
///
/// The learning rate of update `i` (0-based) is `peak·(i+1)/warmup` while `i < warmup`, then
/// `min + (peak−min)·½(1+cos(π·(i−warmup)/(steps−warmup)))` with `min = peak·min_lr_ratio`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WarmupCosine {
    /// Peak learning rate reached at the end of warmup.
    pub peak: f64,
    /// Final learning rate as a fraction of `peak`.
    pub min_lr_ratio: f64,
    /// Number of warmup updates.
    pub warmup_steps: u64,
    /// Total number of updates in the run.
    pub total_steps: u64,
}

impl WarmupCosine {
    /// The learning rate of update `i` (0-based). Past `total_steps` it stays at the minimum.
    pub fn lr(&self, i: u64) -> f64 {
        if i < self.warmup_steps {
            return self.peak * (i + 1) as f64 / self.warmup_steps as f64;
        }
        let min = self.peak * self.min_lr_ratio;
        let decay_steps = self.total_steps.saturating_sub(self.warmup_steps);
        if decay_steps == 0 {
            return self.peak;
        }
        let progress = ((i - self.warmup_steps) as f64 / decay_steps as f64).min(1.0);
        min + (self.peak - min) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn golden() -> serde_json::Value {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fixtures/golden/tiny-llama3/train.json"
        );
        let text = std::fs::read_to_string(path).expect("golden train.json is part of the repo");
        serde_json::from_str(&text).expect("golden train.json parses")
    }

    #[test]
    fn matches_golden_lr_per_step() {
        let g = golden();
        let hp = &g["hyperparameters"];
        let sched = WarmupCosine {
            peak: hp["peak_lr"].as_f64().unwrap(),
            min_lr_ratio: hp["min_lr_ratio"].as_f64().unwrap(),
            warmup_steps: hp["warmup_steps"].as_u64().unwrap(),
            total_steps: hp["steps"].as_u64().unwrap(),
        };
        let log = g["log"].as_array().unwrap();
        assert_eq!(log.len(), 6);
        for (i, entry) in log.iter().enumerate() {
            let want = entry["lr"].as_f64().unwrap();
            let got = sched.lr(i as u64);
            assert!(
                (got - want).abs() <= 1e-12 * want.max(1.0),
                "update {i}: lr {got} != {want}"
            );
        }
    }

    #[test]
    fn warmup_is_linear_and_decay_ends_at_min() {
        let s = WarmupCosine {
            peak: 1.0,
            min_lr_ratio: 0.1,
            warmup_steps: 4,
            total_steps: 104,
        };
        assert_eq!(s.lr(0), 0.25);
        assert_eq!(s.lr(3), 1.0);
        assert_eq!(s.lr(4), 1.0);
        assert!((s.lr(54) - 0.55).abs() < 1e-12);
        assert!((s.lr(104) - 0.1).abs() < 1e-12);
        assert!((s.lr(500) - 0.1).abs() < 1e-12);
    }
}
