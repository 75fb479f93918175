//! Writes the tiny Qwen3.5 with a multi-token-prediction head that the `mtp` tests load
//! (`uml_test_support::write_tiny_qwen35_mtp_gguf`), for the Node tests and for trying
//! `uml run --mtp` by hand. `echo` makes the head's drafts mostly right.
//!
//!   tiny_mtp_model OUT SEED [echo]

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (out, seed, echo) = match args.as_slice() {
        [out, seed] => (out, seed, false),
        [out, seed, flag] if flag == "echo" => (out, seed, true),
        _ => {
            eprintln!("usage: tiny_mtp_model OUT SEED [echo]");
            return ExitCode::from(2);
        }
    };
    let Ok(seed) = seed.parse() else {
        eprintln!("tiny_mtp_model: SEED is an integer");
        return ExitCode::from(2);
    };
    match uml_test_support::write_tiny_qwen35_mtp_gguf(out.as_ref(), seed, echo) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tiny_mtp_model: {e}");
            ExitCode::FAILURE
        }
    }
}
