//! burn-train's [`MetricLogger`] over graft's TensorBoard writer.
//!
//! graft's own loop counts optimizer steps and logs through [`ScalarLogger`]; burn-train's
//! metrics (`LossMetric`, `LearningRateMetric`, `CpuMemory`, … and a user's own) report through
//! `MetricLogger`, which knows epochs and items, not steps. [`BurnMetricLogger`] takes the latter
//! into any `ScalarLogger` — a [`TensorBoardLogger`](super::TensorBoardLogger) in practice — so
//! metrics computed with burn-train (or a burn-train `Learner`) land in the same event files as
//! graft's, under `<split>/<metric name>` (`train/Loss`, `valid/Accuracy`) at the running item
//! index of that split, plus `<split>/<metric name>/epoch` with the epoch's running value at the
//! epoch number.

use std::collections::HashMap;

use burn::train::logger::MetricLogger;
use burn::train::metric::store::{EpochSummary, MetricsUpdate, Split};
use burn::train::metric::{MetricDefinition, MetricId, NumericEntry};

use super::ScalarLogger;

/// A burn-train [`MetricLogger`] writing scalars into `L`; keeps the numeric history in memory so
/// that burn-train can read it back (`read_numeric`), as its file logger does.
pub struct BurnMetricLogger<L: ScalarLogger + Send> {
    inner: L,
    names: HashMap<MetricId, String>,
    /// Items logged per split: the step of the next scalar of that split.
    items: HashMap<String, u64>,
    /// Running value of the last update per (split, metric): the epoch summary writes it.
    last_running: HashMap<(String, String), f64>,
    history: HashMap<(String, usize, String), Vec<NumericEntry>>,
    /// The first write error, reported by [`BurnMetricLogger::finish`] (`MetricLogger` returns nothing).
    error: Option<crate::TrainError>,
}

impl<L: ScalarLogger + Send> BurnMetricLogger<L> {
    /// Log burn-train metrics into `inner`.
    pub fn new(inner: L) -> Self {
        Self {
            inner,
            names: HashMap::new(),
            items: HashMap::new(),
            last_running: HashMap::new(),
            history: HashMap::new(),
            error: None,
        }
    }

    /// Flush and hand back the inner logger, or the first error a write met.
    pub fn finish(mut self) -> crate::Result<L> {
        self.record(|l| l.flush());
        match self.error {
            Some(e) => Err(e),
            None => Ok(self.inner),
        }
    }

    fn name(&self, id: &MetricId) -> String {
        self.names
            .get(id)
            .cloned()
            .unwrap_or_else(|| format!("{id:?}"))
    }

    fn record(&mut self, write: impl FnOnce(&mut L) -> crate::Result<()>) {
        if let Err(e) = write(&mut self.inner) {
            tracing::warn!(error = %e, "writing a burn-train metric failed");
            self.error.get_or_insert(e);
        }
    }
}

impl<L: ScalarLogger + Send> MetricLogger for BurnMetricLogger<L> {
    fn log(&mut self, update: MetricsUpdate, epoch: usize, split: &Split) {
        let split = split.to_string();
        let item = self.items.entry(split.clone()).or_insert(0);
        *item += 1;
        let step = *item;
        for numeric in update.entries_numeric {
            let name = self.name(&numeric.entry.metric_id);
            let value = numeric.numeric_entry.current();
            self.record(|l| l.scalar(&format!("{split}/{name}"), value, step));
            self.last_running.insert(
                (split.clone(), name.clone()),
                numeric.running_entry.current(),
            );
            self.history
                .entry((split.clone(), epoch, name))
                .or_default()
                .push(numeric.numeric_entry);
        }
    }

    fn read_numeric(
        &mut self,
        name: &str,
        epoch: usize,
        split: &Split,
    ) -> Result<Vec<NumericEntry>, String> {
        let key = (split.to_string(), epoch, name.to_string());
        self.history
            .get(&key)
            .cloned()
            .ok_or_else(|| format!("no values of metric `{name}` for epoch {epoch} ({split})"))
    }

    fn log_metric_definition(&mut self, definition: MetricDefinition) {
        self.names.insert(definition.metric_id, definition.name);
    }

    fn log_epoch_summary(&mut self, summary: EpochSummary) {
        let split = summary.split.to_string();
        let mut running: Vec<(String, f64)> = self
            .last_running
            .iter()
            .filter(|((s, _), _)| *s == split)
            .map(|((_, n), v)| (n.clone(), *v))
            .collect();
        running.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, value) in running {
            self.record(|l| {
                l.scalar(
                    &format!("{split}/{name}/epoch"),
                    value,
                    summary.epoch_number as u64,
                )
            });
        }
        self.record(|l| l.flush());
    }
}
