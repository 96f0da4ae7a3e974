//! Chaining the records of a `graft synthesize` output as the synthesizer chained them.
//!
//! A record with a `synth` link whose `previous` ends with text `p` continues the chain that ends
//! at `p`; any other record starts a chain. A chain ending at `i` can only be continued by text
//! `i + B` (B = `texts_per_round`), so it is complete once a later record is read — chains are
//! emitted in the order of their last text, and at most B + 1 of them are held at once.

use std::collections::BTreeMap;

use super::Example;
use crate::synthesis::SynthLink;

/// Open chains, keyed by the index of their last text.
#[derive(Debug, Default)]
pub(crate) struct LinkedChains {
    pending: BTreeMap<usize, Vec<Example>>,
    last_index: Option<usize>,
}

impl LinkedChains {
    /// Adds one example; returns the chains this record completes, oldest first.
    pub(crate) fn push(&mut self, link: &SynthLink, example: Example) -> Vec<Vec<Example>> {
        let mut done = Vec::new();
        if self.last_index.is_some_and(|last| link.index <= last) {
            // Indices start again: another synthesis run in the same file.
            done = self.finish();
        }
        self.last_index = Some(link.index);
        let b = link.texts_per_round.max(1);
        let complete: Vec<usize> = self
            .pending
            .keys()
            .copied()
            .take_while(|&k| k + b < link.index)
            .collect();
        for k in complete {
            done.extend(self.pending.remove(&k));
        }
        let mut chain = link
            .previous
            .last()
            .and_then(|p| self.pending.remove(p))
            .unwrap_or_default();
        chain.push(example);
        self.pending.insert(link.index, chain);
        done
    }

    /// Every open chain, oldest first.
    pub(crate) fn finish(&mut self) -> Vec<Vec<Example>> {
        std::mem::take(&mut self.pending).into_values().collect()
    }
}
