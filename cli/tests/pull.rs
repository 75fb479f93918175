//! `uml pull` end to end against `tests/hub/fake_hub.py`, a local server in the Hugging Face
//! Hub's URL layout serving the real test models: a GGUF picked by tag with a token, a dropped
//! connection resumed within the pull, a `.part` left by an earlier pull continued, a second
//! pull reusing the file, a Hugging Face folder, and the failures (wrong token, wrong hash,
//! unknown repo) each naming the fix. Nothing reaches the internet.

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};
use uml_test_support::{fetched_model, hub_repo, FakeHub};

const SMOLLM2: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

fn pull(hub: &FakeHub, token: Option<&str>, args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_uml"));
    command
        .arg("pull")
        .args(args)
        .env("HF_ENDPOINT", &hub.url)
        .env_remove("HF_TOKEN")
        .env("HF_TOKEN_PATH", "/nonexistent/token");
    if let Some(token) = token {
        command.env("HF_TOKEN", token);
    }
    command.output().expect("run uml pull")
}

fn json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "uml pull failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("uml pull --json prints JSON")
}

fn failure(out: &Output) -> String {
    assert!(!out.status.success(), "uml pull should have failed");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn same_bytes(a: &Path, b: &Path) -> bool {
    std::fs::read(a).expect("read a") == std::fs::read(b).expect("read b")
}

/// A hub with a GGUF repo (two quantizations and a README) and a Hugging Face folder.
fn hub_root() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let smollm2 = fetched_model(SMOLLM2);
    let readme = root.path().join("README.md");
    std::fs::write(&readme, "# SmolLM2 GGUF\n").unwrap();
    hub_repo(
        root.path(),
        "test/SmolLM2-GGUF",
        &[
            (SMOLLM2, &smollm2),
            ("SmolLM2-135M-Instruct.F32.gguf", &readme),
            ("README.md", &readme),
        ],
    );
    let owner = root.path().join("sentence-transformers");
    std::fs::create_dir_all(&owner).unwrap();
    std::os::unix::fs::symlink(
        std::fs::canonicalize(fetched_model("all-MiniLM-L6-v2")).unwrap(),
        owner.join("all-MiniLM-L6-v2"),
    )
    .unwrap();
    root
}

#[test]
fn a_gguf_is_pulled_by_tag_resuming_a_dropped_connection_and_reused_after() {
    let root = hub_root();
    let log = root.path().join("requests.log");
    let hub = FakeHub::start(
        root.path(),
        &[
            "--token",
            "hf_secret",
            "--drop-after",
            "5000000",
            "--log",
            log.to_str().unwrap(),
        ],
    );
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().to_str().unwrap();
    let pulled = json(&pull(
        &hub,
        Some("hf_secret"),
        &["test/SmolLM2-GGUF:Q4_1", "--dir", dir, "--json"],
    ));
    let path = out.path().join(SMOLLM2);
    assert_eq!(pulled["path"], path.to_str().unwrap());
    assert!(same_bytes(&path, &fetched_model(SMOLLM2)));
    let size = std::fs::metadata(&path).unwrap().len();
    assert_eq!(pulled["downloaded_bytes"], size);
    // The connection dropped after 5,000,000 bytes; the pull went on from there.
    let requests = std::fs::read_to_string(&log).unwrap();
    assert!(requests.contains("range=bytes=5000000-"), "{requests}");
    // Only the chosen file came, and no .part is left.
    let names: Vec<String> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, [SMOLLM2]);

    // Pulled again: checked, not fetched.
    let again = json(&pull(
        &hub,
        Some("hf_secret"),
        &["hf.co/test/SmolLM2-GGUF:Q4_1", "--dir", dir, "--json"],
    ));
    assert_eq!(again["downloaded_bytes"], 0);
    assert_eq!(again["reused_bytes"], size);

    // The model it printed loads and runs.
    let run = Command::new(env!("CARGO_BIN_EXE_uml"))
        .args(["run", path.to_str().unwrap(), "The capital of France is"])
        .args(["--max-tokens", "4", "--ctx", "256", "--temperature", "0"])
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(!run.stdout.is_empty());
}

#[test]
fn a_part_file_left_by_an_earlier_pull_is_continued() {
    let root = hub_root();
    let log = root.path().join("requests.log");
    let hub = FakeHub::start(root.path(), &["--log", log.to_str().unwrap()]);
    let out = tempfile::tempdir().unwrap();
    let original = std::fs::read(fetched_model(SMOLLM2)).unwrap();
    let half = 3 << 20;
    std::fs::write(
        out.path().join(format!("{SMOLLM2}.part")),
        &original[..half],
    )
    .unwrap();
    let pulled = json(&pull(
        &hub,
        None,
        &[
            "test/SmolLM2-GGUF:q4_1",
            "--dir",
            out.path().to_str().unwrap(),
            "--json",
        ],
    ));
    assert_eq!(pulled["downloaded_bytes"], (original.len() - half) as u64);
    let requests = std::fs::read_to_string(&log).unwrap();
    assert!(
        requests.contains(&format!("range=bytes={half}-")),
        "{requests}"
    );
    assert_eq!(std::fs::read(out.path().join(SMOLLM2)).unwrap(), original);
}

#[test]
fn a_hugging_face_folder_is_pulled_without_the_files_uml_does_not_read() {
    let root = hub_root();
    let hub = FakeHub::start(root.path(), &[]);
    let out = tempfile::tempdir().unwrap();
    let pulled = json(&pull(
        &hub,
        None,
        &[
            "sentence-transformers/all-MiniLM-L6-v2",
            "--dir",
            out.path().to_str().unwrap(),
            "--json",
        ],
    ));
    let folder = out.path().join("all-MiniLM-L6-v2");
    assert_eq!(pulled["path"], folder.to_str().unwrap());
    let source = fetched_model("all-MiniLM-L6-v2");
    for file in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "1_Pooling/config.json",
    ] {
        assert!(same_bytes(&folder.join(file), &source.join(file)), "{file}");
    }
    assert!(!folder.join("README.md").exists());
    // It embeds.
    let embed = Command::new(env!("CARGO_BIN_EXE_uml"))
        .args(["embed", folder.to_str().unwrap(), "hello", "--json"])
        .output()
        .unwrap();
    assert!(
        embed.status.success(),
        "{}",
        String::from_utf8_lossy(&embed.stderr)
    );
}

#[test]
fn failures_name_the_problem_and_leave_nothing_half_written() {
    let root = hub_root();
    let hub = FakeHub::start(root.path(), &["--token", "hf_secret", "--lie", SMOLLM2]);
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().to_str().unwrap();

    let e = failure(&pull(&hub, None, &["test/SmolLM2-GGUF:Q4_1", "--dir", dir]));
    assert!(e.contains("HF_TOKEN"), "{e}");
    let e = failure(&pull(
        &hub,
        Some("hf_wrong"),
        &["test/SmolLM2-GGUF:Q4_1", "--dir", dir],
    ));
    assert!(e.contains("HF_TOKEN"), "{e}");
    let e = failure(&pull(&hub, Some("hf_secret"), &["test/Nope", "--dir", dir]));
    assert!(e.contains("not found") && e.contains("HF_ENDPOINT"), "{e}");
    let e = failure(&pull(
        &hub,
        Some("hf_secret"),
        &["test/SmolLM2-GGUF:Q2_K", "--dir", dir],
    ));
    assert!(
        e.contains("no GGUF file tagged Q2_K") && e.contains(SMOLLM2),
        "{e}"
    );
    let e = failure(&pull(
        &hub,
        Some("hf_secret"),
        &["test/SmolLM2-GGUF", "--dir", dir],
    ));
    assert!(e.contains(":TAG"), "{e}");

    // The hub lists a wrong sha256: the download is refused and removed.
    let e = failure(&pull(
        &hub,
        Some("hf_secret"),
        &["test/SmolLM2-GGUF:Q4_1", "--dir", dir],
    ));
    assert!(e.contains("does not match the sha256"), "{e}");
    assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 0);

    // A different file already at the target is never overwritten.
    let other = out.path().join("SmolLM2-GGUF/README.md");
    std::fs::create_dir_all(other.parent().unwrap()).unwrap();
    std::fs::write(&other, "mine\n").unwrap();
    let e = failure(&pull(
        &hub,
        Some("hf_secret"),
        &["test/SmolLM2-GGUF", "--file", "README.md", "--dir", dir],
    ));
    assert!(e.contains("already there with other content"), "{e}");
    assert_eq!(std::fs::read_to_string(&other).unwrap(), "mine\n");
}
