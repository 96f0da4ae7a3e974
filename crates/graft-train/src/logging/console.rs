//! What the loop prints for a person: one rounded line per logged step, as torchtitan does, and
//! each evaluation as one small table. TensorBoard and the curves file get the full precision.
//!
//! ```text
//! step:  40/100  loss: 2.9407  lr: 3.01e-4  grad_norm: 1.234  tok/s: 5,762  memory: 1.21GiB(4%)  mfu: 33.1%
//! eval at step 100:
//!   source/task     loss      ppl     acc  acc_norm
//!   biomedicine   2.9407    18.93       -         -
//!   finance       3.1021    22.25       -         -
//!   finance-mc         -        -   0.450     0.500
//! ```

use std::fmt;

/// Memory figures of a step: the peak so far and, where known, what it is a share of.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MemoryFigure {
    /// Peak (or, on a GPU, current) bytes in use.
    pub used: u64,
    /// The device's (or machine's) capacity in bytes, when known.
    pub capacity: Option<u64>,
}

/// The figures of one logged step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepLine {
    /// 1-based step.
    pub step: u64,
    /// Steps of the run (sets the width of the step column).
    pub total_steps: u64,
    /// Training loss of the step.
    pub loss: f64,
    /// Learning rate of the step.
    pub lr: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
    /// Training tokens per second since the last logged step (all peers together).
    pub tokens_per_s: f64,
    /// Memory, when a probe is set.
    pub memory: Option<MemoryFigure>,
    /// Model FLOP utilisation (0..1), when the device's peak FLOP/s is known.
    pub mfu: Option<f64>,
}

impl fmt::Display for StepLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self.total_steps.max(self.step).to_string().len();
        write!(
            f,
            "step: {:>width$}/{}  loss: {:.4}  lr: {:.2e}  grad_norm: {:.3}  tok/s: {}",
            self.step,
            self.total_steps,
            self.loss,
            self.lr,
            self.grad_norm,
            thousands(self.tokens_per_s)
        )?;
        if let Some(m) = self.memory {
            write!(f, "  memory: {}", gib(m.used))?;
            if let Some(cap) = m.capacity.filter(|&c| c > 0) {
                write!(f, "({:.0}%)", 100.0 * m.used as f64 / cap as f64)?;
            }
        }
        if let Some(mfu) = self.mfu {
            write!(f, "  mfu: {:.1}%", 100.0 * mfu)?;
        }
        Ok(())
    }
}

/// `1234567.8` → `"1,234,568"` (rounded to an integer; non-finite values as they are).
pub fn thousands(value: f64) -> String {
    if !value.is_finite() {
        return format!("{value}");
    }
    let digits = format!("{:.0}", value.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if value < 0.0 && digits != "0" {
        out.insert(0, '-');
    }
    out
}

/// Bytes as GiB with two decimals: `"1.21GiB"`.
pub fn gib(bytes: u64) -> String {
    format!("{:.2}GiB", bytes as f64 / (1u64 << 30) as f64)
}

/// The metrics of an evaluation (`eval/<name>/<metric>` scalars) as a table: one row per source
/// or task (in order of appearance), one column per metric (`loss`, `ppl`, `acc`, `acc_norm`,
/// then any other in order of appearance), `-` where a row has no such metric.
pub fn eval_table(step: u64, scalars: &[(String, f64)]) -> String {
    let mut rows: Vec<(&str, Vec<(&str, f64)>)> = Vec::new();
    let mut metrics: Vec<&str> = vec!["loss", "ppl", "acc", "acc_norm"];
    for (tag, value) in scalars {
        let rest = tag.strip_prefix("eval/").unwrap_or(tag);
        let (name, metric) = rest.rsplit_once('/').unwrap_or((rest, "value"));
        if !metrics.contains(&metric) {
            metrics.push(metric);
        }
        match rows.iter_mut().find(|(n, _)| *n == name) {
            Some((_, values)) => values.push((metric, *value)),
            None => rows.push((name, vec![(metric, *value)])),
        }
    }
    metrics.retain(|m| rows.iter().any(|(_, v)| v.iter().any(|(k, _)| k == m)));
    let name_width = rows
        .iter()
        .map(|(n, _)| n.chars().count())
        .chain(["source/task".len()])
        .max()
        .unwrap_or(0);
    let mut out = format!("eval at step {step}:\n  {:<name_width$}", "source/task");
    for m in &metrics {
        out.push_str(&format!("  {m:>8}"));
    }
    for (name, values) in &rows {
        out.push_str(&format!("\n  {name:<name_width$}"));
        for m in &metrics {
            let cell = values
                .iter()
                .find(|(k, _)| k == m)
                .map_or("-".to_string(), |(k, v)| metric_cell(k, *v));
            out.push_str(&format!("  {cell:>8}"));
        }
    }
    out
}

/// A metric rounded for reading: loss to 4 decimals, perplexity to 2, accuracies to 3.
fn metric_cell(metric: &str, value: f64) -> String {
    match metric {
        "loss" => format!("{value:.4}"),
        "ppl" => format!("{value:.2}"),
        _ => format!("{value:.3}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line() -> StepLine {
        StepLine {
            step: 40,
            total_steps: 100,
            loss: 2.940725803375244,
            lr: 0.00030092196880691913,
            grad_norm: 1.2344,
            tokens_per_s: 5762.4,
            memory: None,
            mfu: None,
        }
    }

    #[test]
    fn a_step_line_is_rounded_and_aligned() {
        assert_eq!(
            line().to_string(),
            "step:  40/100  loss: 2.9407  lr: 3.01e-4  grad_norm: 1.234  tok/s: 5,762"
        );
        let full = StepLine {
            step: 100,
            memory: Some(MemoryFigure {
                used: 3 << 29,
                capacity: Some(6 << 30),
            }),
            mfu: Some(0.3312),
            ..line()
        };
        assert_eq!(
            full.to_string(),
            "step: 100/100  loss: 2.9407  lr: 3.01e-4  grad_norm: 1.234  tok/s: 5,762  \
             memory: 1.50GiB(25%)  mfu: 33.1%"
        );
        let no_capacity = StepLine {
            memory: Some(MemoryFigure {
                used: 1 << 30,
                capacity: None,
            }),
            ..line()
        };
        assert!(no_capacity.to_string().ends_with("memory: 1.00GiB"));
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0.4), "0");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(1000.0), "1,000");
        assert_eq!(thousands(1234567.8), "1,234,568");
        assert_eq!(thousands(-1234.0), "-1,234");
        assert_eq!(thousands(f64::NAN), "NaN");
    }

    #[test]
    fn evaluation_is_one_table() {
        let scalars: Vec<(String, f64)> = [
            ("eval/biomedicine/loss", 2.940725),
            ("eval/biomedicine/ppl", 18.9301),
            ("eval/finance/loss", 3.10211),
            ("eval/finance/ppl", 22.2487),
            ("eval/finance-mc/acc", 0.45),
            ("eval/finance-mc/acc_norm", 0.5),
        ]
        .iter()
        .map(|(t, v)| (t.to_string(), *v))
        .collect();
        let table = eval_table(100, &scalars);
        let expected = "eval at step 100:\n\
            \x20 source/task      loss       ppl       acc  acc_norm\n\
            \x20 biomedicine    2.9407     18.93         -         -\n\
            \x20 finance        3.1021     22.25         -         -\n\
            \x20 finance-mc          -         -     0.450     0.500";
        assert_eq!(table, expected, "\n{table}");
        // only the columns that have values
        let loss_only = eval_table(5, &scalars[..1]);
        assert_eq!(
            loss_only,
            "eval at step 5:\n  source/task      loss\n  biomedicine    2.9407"
        );
    }
}
