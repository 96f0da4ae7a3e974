//! `graft bench`: the benchmarks of `graft_bench` (model load, training step, memory, synthesizer).
pub use graft_bench::{run, Args};
