//! graft-llama
