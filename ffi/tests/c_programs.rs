//! The C ABI tested from C, as a C host uses it: the programs in `tests/c/` are compiled with
//! `cc` against `include/uml.h` and libuml (both `libuml.so` and `libuml.a`) and run.
//! The examples (`examples/c/generate.c`, `examples/cpp/chat.cpp`) are built and run too.
//! Packaging (pkg-config, CMake) and valgrind run in `tests/c/run.sh`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};

/// System libraries `libuml.a` needs, as printed by `cargo rustc --release -p uml-ffi --lib
/// --crate-type staticlib -- --print native-static-libs` (OpenMP and the C++ runtime are
/// llama.cpp's). Kept in step with scripts/install-libuml.
const STATIC_LIBS: &[&str] = &[
    "-lgomp",
    "-lstdc++",
    "-lgcc_s",
    "-lutil",
    "-lrt",
    "-lpthread",
    "-lm",
    "-ldl",
    "-lc",
];

/// The programs load real models with several threads each: on a small machine, running two at
/// once only makes both slow, so they take turns (compiling may overlap).
static RUN_ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

const SMOLLM2: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

use uml_test_support::repo_root;

/// A private copy of the libuml.so / libuml.a cargo built from the current sources for this
/// test run. They are in `deps/`, beside this test executable: `cargo test` builds every crate
/// type of the library there but only `cargo build` copies them up to `target/<profile>/`,
/// which can be stale. Copied once, first thing, because their names carry no hash: another
/// build of a different uml-ffi sharing the target directory (another checkout) overwrites
/// them.
fn lib_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let exe = std::env::current_exe().expect("current_exe");
        let deps = exe.parent().expect("target/<profile>/deps");
        let dir = scratch(&format!("lib-{}", std::process::id()));
        for lib in ["libuml.so", "libuml.a"] {
            let built = deps.join(lib);
            let bytes = std::fs::read(&built).unwrap_or_else(|e| {
                panic!(
                    "{}: {e} (cargo test builds it: crate-type cdylib + staticlib)",
                    built.display()
                )
            });
            assert!(
                bytes.windows(15).any(|w| w == b"uml_abi_version"),
                "{} has no uml_abi_version: another build of a different uml-ffi overwrote it \
                 (a target directory shared with another checkout?); run the tests again",
                built.display()
            );
            std::fs::write(dir.join(lib), &bytes).expect("copy the library");
            if lib == "libuml.so" {
                // The name programs linked against it look for (its soname, see build.rs).
                let soname = format!("libuml.so.{}", uml::UML_ABI_VERSION);
                std::fs::write(dir.join(soname), &bytes).expect("copy the library");
            }
        }
        dir
    })
    .clone()
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("c_programs")
        .join(name);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// Path of a model fetched by `scripts/fetch-models`; fails with the fetch command if missing.
fn model_path(name: &str) -> PathBuf {
    uml_test_support::fetched_model(name)
}

/// The tiny random llama our own code writes (fast to load).
fn tiny_model(name: &str) -> PathBuf {
    let path = scratch(name).join("tiny-llama.gguf");
    uml_test_support::write_tiny_llama_gguf(&path, 7).expect("write the tiny model");
    path
}

#[derive(Clone, Copy, Debug)]
enum Link {
    Shared,
    Static,
}

/// Compile `source` (C11, or C++17 when `cpp`) into `out`, linked against libuml.
fn compile(source: &Path, out: &Path, link: Link, cpp: bool) {
    let root = repo_root();
    let lib = lib_dir();
    let mut cmd = Command::new(if cpp { "c++" } else { "cc" });
    cmd.arg(if cpp { "-std=c++17" } else { "-std=c11" })
        .args(["-O1", "-g", "-Wall", "-Wextra", "-Wpedantic", "-Werror"])
        .arg("-I")
        .arg(root.join("include"))
        .arg(source)
        .arg("-o")
        .arg(out);
    match link {
        Link::Shared => {
            cmd.arg(format!("-L{}", lib.display()))
                .arg("-luml")
                // DT_RPATH (not RUNPATH) wins over LD_LIBRARY_PATH, which cargo test points
                // at target/<profile>/, where an older libuml.so may lie.
                .arg(format!("-Wl,--disable-new-dtags,-rpath,{}", lib.display()))
                .args(["-lpthread", "-lm"]);
        }
        Link::Static => {
            cmd.arg(lib.join("libuml.a")).args(STATIC_LIBS);
        }
    }
    let output = cmd.output().expect("run the C compiler");
    assert!(
        output.status.success(),
        "compiling {} ({link:?}) failed:\n{}",
        source.display(),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Run a compiled program; panics with its output unless it exits 0.
fn run(program: &Path, args: &[&std::ffi::OsStr], stdin: Option<&str>) -> Output {
    let _turn = RUN_ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut child = Command::new(program)
        .args(args)
        .env_remove("LD_LIBRARY_PATH")
        // As README asks of hosts (the cancel-under-load check needs it): llama.cpp's OpenMP
        // spin budget, which the CLI and the Python package set for themselves.
        .env(
            uml_core::hardware::OPENMP_SPIN.0,
            uml_core::hardware::OPENMP_SPIN.1,
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the test program");
    {
        use std::io::Write;
        let mut pipe = child.stdin.take().expect("stdin");
        if let Some(input) = stdin {
            pipe.write_all(input.as_bytes()).expect("write stdin");
        }
    }
    let output = child.wait_with_output().expect("wait for the test program");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        program.display(),
        output.status
    );
    eprintln!("{}: ok\n{stdout}", program.display());
    output
}

/// A greedy reference recorded from llama.cpp on several CPU kernel paths, cut to the prefix
/// that holds on every one of them (`uml_test_support::GreedyFixture`). `input` is the prompt,
/// or the chat messages as JSON.
struct Reference {
    input: String,
    n_predict: String,
    completion: String,
}

fn reference(fixture: &str) -> Reference {
    let f = uml_test_support::GreedyFixture::load(fixture);
    Reference {
        input: f.messages.unwrap_or(f.prompt),
        n_predict: f.n_predict.to_string(),
        completion: f.text,
    }
}

fn c_test(name: &str) -> PathBuf {
    repo_root().join("tests/c").join(name)
}

#[test]
fn api_errors_from_c_shared_and_static() {
    let tiny = tiny_model("api");
    let dir = scratch("api");
    for link in [Link::Shared, Link::Static] {
        let exe = dir.join(format!("test_api_{link:?}"));
        compile(&c_test("test_api.c"), &exe, link, false);
        run(&exe, &[tiny.as_os_str(), dir.as_os_str()], None);
    }
}

#[test]
fn model_manager_from_c() {
    // models/{a,b,c}.gguf: three tiny llamas with different weights; outside/x.gguf: one the
    // manager must refuse.
    let root = tempfile::tempdir().expect("temp dir");
    for dir in ["models", "outside"] {
        std::fs::create_dir(root.path().join(dir)).expect("model folder");
    }
    for (seed, name) in ["a", "b", "c"].iter().enumerate() {
        let path = root.path().join("models").join(format!("{name}.gguf"));
        uml_test_support::write_tiny_llama_gguf(&path, seed as u64).expect("write a tiny model");
    }
    uml_test_support::write_tiny_llama_gguf(&root.path().join("outside/x.gguf"), 9)
        .expect("write a tiny model");
    // hub/test/Tiny-GGUF: what uml_manager_pull fetches from the fake hub.
    let tiny = root.path().join("tiny-Q8_0.gguf");
    uml_test_support::write_tiny_llama_gguf(&tiny, 7).expect("write a tiny model");
    let hub_root = root.path().join("hub");
    uml_test_support::hub_repo(&hub_root, "test/Tiny-GGUF", &[("tiny-Q8_0.gguf", &tiny)]);
    let hub = uml_test_support::FakeHub::start(&hub_root, &[]);
    let exe = scratch("manager").join("test_manager");
    compile(&c_test("test_manager.c"), &exe, Link::Shared, false);
    run(
        &exe,
        &[root.path().as_os_str(), std::ffi::OsStr::new(&hub.url)],
        None,
    );
}

#[test]
fn candle_backend_from_c_matches_llama_cpp_on_the_same_weights() {
    let dir = scratch("candle");
    let folder = dir.join("tiny-hf");
    if !folder.join("config.json").is_file() {
        uml_test_support::write_tiny_hf_folder(&folder).expect("write the tiny HF folder");
    }
    // Seed 0: the folder's weights.
    let gguf = dir.join("tiny-seed0.gguf");
    uml_test_support::write_tiny_llama_gguf(&gguf, 0).expect("write the tiny GGUF");
    let exe = dir.join("test_candle");
    compile(&c_test("test_candle.c"), &exe, Link::Shared, false);
    run(&exe, &[folder.as_os_str(), gguf.as_os_str()], None);
}

#[test]
fn cpp_wrapper_from_cpp() {
    let tiny = tiny_model("cpp");
    let exe = scratch("cpp").join("test_cpp");
    compile(&c_test("test_cpp.cpp"), &exe, Link::Shared, true);
    run(&exe, &[tiny.as_os_str()], None);
}

#[test]
fn a_draft_model_from_c() {
    let dir = scratch("draft");
    let exe = dir.join("test_draft");
    compile(&c_test("test_draft.c"), &exe, Link::Shared, false);
    let gemma = model_path("gemma-3-270m-q4_k_m.gguf");
    let heads = dir.join("tiny-qwen35-mtp.gguf");
    uml_test_support::write_tiny_qwen35_mtp_gguf(&heads, 7, true).expect("write the MTP model");
    run(
        &exe,
        &[
            model_path(SMOLLM2).as_os_str(),
            gemma.as_os_str(),
            heads.as_os_str(),
        ],
        None,
    );
}

#[test]
fn lora_adapters_from_c() {
    let model = model_path(SMOLLM2);
    let dir = scratch("lora");
    // Strong random adapters (core/tests/lora.rs's): each changes this prompt's greedy text.
    let (a, b) = (dir.join("a.gguf"), dir.join("b.gguf"));
    for (path, seed) in [(&a, 3), (&b, 4)] {
        uml_test_support::write_lora_adapter(&model, path, seed, 8, 0.2, None)
            .expect("write a LoRA adapter");
    }
    let exe = dir.join("test_lora");
    compile(&c_test("test_lora.c"), &exe, Link::Shared, false);
    run(
        &exe,
        &[model.as_os_str(), a.as_os_str(), b.as_os_str()],
        None,
    );
}

#[test]
fn smollm2_from_c_matches_reference_shared_and_static() {
    let model = model_path(SMOLLM2);
    let r = reference("smollm2_count_greedy.json");
    let chat = reference("smollm2_chat_greedy.json");
    let dir = scratch("smollm2");
    for link in [Link::Shared, Link::Static] {
        let exe = dir.join(format!("test_smollm2_{link:?}"));
        compile(&c_test("test_smollm2.c"), &exe, link, false);
        let args = [
            model.as_os_str(),
            r.input.as_ref(),
            r.n_predict.as_ref(),
            r.completion.as_ref(),
            chat.input.as_ref(),
            chat.n_predict.as_ref(),
            chat.completion.as_ref(),
        ];
        run(&exe, &args, None);
    }
}

#[test]
fn remote_models_from_c_through_uml_serve() {
    // The `uml` CLI `cargo test --workspace` builds (uml-cli has integration tests, so its
    // binary is built before any test runs). Building it from here could wait forever on the
    // build lock this `cargo test` holds.
    let uml = repo_root().join("target/release/uml");
    assert!(
        uml.is_file(),
        "{} is missing: run `cargo build --release -p uml-cli` first",
        uml.display()
    );
    let model = model_path(SMOLLM2);
    let dir = scratch("remote");
    let broken = dir.join("broken.gguf");
    std::fs::write(&broken, b"GGUF but not really a model").expect("write the broken model");
    let exe = dir.join("test_remote");
    compile(&c_test("test_remote.c"), &exe, Link::Shared, false);
    run(
        &exe,
        &[uml.as_os_str(), model.as_os_str(), broken.as_os_str()],
        None,
    );
}

#[test]
fn thousand_load_free_cycles_keep_rss_flat() {
    let tiny = tiny_model("cycles");
    let exe = scratch("cycles").join("test_cycles");
    compile(&c_test("test_cycles.c"), &exe, Link::Shared, false);
    run(&exe, &[tiny.as_os_str(), "1000".as_ref()], None);
}

#[test]
fn c_example_streams_the_reference_completion() {
    let model = model_path(SMOLLM2);
    let r = reference("smollm2_count_greedy.json");
    let exe = scratch("examples").join("generate");
    compile(
        &repo_root().join("examples/c/generate.c"),
        &exe,
        Link::Static,
        false,
    );
    let out = run(
        &exe,
        &[model.as_os_str(), r.input.as_ref(), r.n_predict.as_ref()],
        None,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.strip_suffix('\n').unwrap_or(&stdout), r.completion);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("\"finish_reason\":\"length\""), "{stderr}");
}

#[test]
fn cpp_chat_example_answers_from_stdin() {
    let model = model_path(SMOLLM2);
    let exe = scratch("examples").join("chat");
    compile(
        &repo_root().join("examples/cpp/chat.cpp"),
        &exe,
        Link::Shared,
        true,
    );
    let out = run(
        &exe,
        &[model.as_os_str(), "You are a helpful assistant.".as_ref()],
        Some("What is the capital of France?\nAnd of Germany?\n"),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("Paris"), "{stdout}");
    assert_eq!(
        stdout.matches("\n[").count(),
        2,
        "two replies, each with its finish reason: {stdout}"
    );
}
