//! Writes the test LoRA adapter for a GGUF model (`uml_test_support::write_lora_adapter`):
//! what `scripts/record-lora-fixture` hands llama.cpp's `llama-completion --lora`, and what
//! the tests write again (the same arguments give the same bytes).
//!
//!   lora_adapter MODEL OUT SEED RANK MAGNITUDE

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [model, out, seed, rank, magnitude] = args.as_slice() else {
        eprintln!("usage: lora_adapter MODEL OUT SEED RANK MAGNITUDE");
        return ExitCode::from(2);
    };
    let (Ok(seed), Ok(rank), Ok(magnitude)) = (seed.parse(), rank.parse(), magnitude.parse())
    else {
        eprintln!("lora_adapter: SEED and RANK are integers, MAGNITUDE a number");
        return ExitCode::from(2);
    };
    match uml_test_support::write_lora_adapter(
        model.as_ref(),
        out.as_ref(),
        seed,
        rank,
        magnitude,
        None,
    ) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lora_adapter: {e}");
            ExitCode::from(1)
        }
    }
}
