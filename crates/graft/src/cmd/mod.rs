//! One module per subcommand: its clap arguments and a `run` function.
pub mod augment;
pub mod bench;
pub mod data;
pub mod download;
pub mod eval;
pub mod export;
pub mod generate;
pub mod inspect;
pub mod orchestrator;
pub mod plan;
pub mod prepare;
pub mod synthesize;
pub mod train;
