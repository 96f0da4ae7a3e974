//! `cargo bench -p graft --bench model [-- ARGS]`: runs `graft bench model ARGS` (the model
//! benchmark: load time vs raw read, peak RSS vs model size, forward+backward tokens/s, each
//! beside PyTorch CPU when torch and transformers are installed) with the graft binary cargo
//! built for this profile. See `graft bench model --help` for the arguments.

use std::process::Command;

fn main() {
    // cargo passes `--bench` to bench targets; the graft CLI does not take it.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let status = Command::new(env!("CARGO_BIN_EXE_graft"))
        .args(["bench", "model"])
        .args(&args)
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => {
            eprintln!("graft bench model exited with {s}");
            std::process::exit(s.code().unwrap_or(1));
        }
        Err(e) => {
            eprintln!("cannot run {}: {e}", env!("CARGO_BIN_EXE_graft"));
            std::process::exit(1);
        }
    }
}
