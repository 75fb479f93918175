//! Every saved fuzz input (the corpus libFuzzer grew, and each crasher it found, minimised)
//! through its target: a fixed crash stays fixed. Runs in the README's test command.

use std::path::Path;

#[test]
fn every_saved_input_runs_through_its_target() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let mut total = 0;
    for (name, target) in uml_fuzz::TARGETS {
        let dir = corpus.join(name);
        let mut inputs: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.unwrap().path())
            .collect();
        inputs.sort();
        assert!(!inputs.is_empty(), "{} holds no inputs", dir.display());
        for input in inputs {
            let data = std::fs::read(&input).unwrap();
            eprintln!("{}", input.display());
            target(&data);
            total += 1;
        }
    }
    eprintln!("replayed {total} inputs");
}
