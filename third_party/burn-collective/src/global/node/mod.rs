pub mod base;
pub mod centralized;
pub mod ring;
pub(crate) mod scatter_gather;
pub mod sync;
pub mod traffic;
pub mod tree;
pub mod worker;
