//! The `uml` binary as a user runs it: real model, real process, exit codes and output.

use std::process::{Command, Output};

fn uml(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_uml"))
        .args(args)
        .output()
        .expect("run uml")
}

use uml_test_support::repo_root;

/// `uml args` run successfully (its stderr shown otherwise), its stdout as JSON.
fn uml_json(args: &[&str]) -> serde_json::Value {
    let out = uml(args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn smollm2() -> String {
    model("SmolLM2-135M-Instruct.Q4_1.gguf")
}

fn model(name: &str) -> String {
    uml_test_support::fetched_model(name)
        .to_string_lossy()
        .into_owned()
}

fn fixture(name: &str) -> serde_json::Value {
    let raw = std::fs::read_to_string(repo_root().join("tests/fixtures").join(name)).unwrap();
    serde_json::from_str(&raw).unwrap()
}

#[test]
fn run_greedy_prints_llama_cpp_reference_text() {
    // The part of llama.cpp's greedy output that holds on every CPU kernel path.
    let fx = uml_test_support::GreedyFixture::load("smollm2_count_greedy.json");
    let n = fx.n_predict.to_string();
    let out = uml(&[
        "run",
        &smollm2(),
        &fx.prompt,
        "--temperature",
        "0",
        "--max-tokens",
        &n,
        "--stream",
        "--quiet",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout, format!("{}\n", fx.text));
}

#[test]
fn run_json_reports_text_finish_reason_and_usage() {
    let out = uml(&[
        "run",
        &smollm2(),
        "Hello",
        "--temperature",
        "0",
        "--max-tokens",
        "4",
        "--json",
        "--quiet",
    ]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["finish_reason"], "length");
    assert_eq!(v["usage"]["completion_tokens"], 4);
    assert!(v["text"].is_string());
}

/// Without --ctx, `run` sizes its context from the prompt's bytes and --max-tokens (not the
/// model's 8,192): a prompt of one token per byte (digits and commas) must still fit.
#[test]
fn run_sizes_a_one_shot_context_that_holds_a_dense_prompt() {
    let prompt = "7,".repeat(300);
    let v = uml_json(&[
        "run",
        &smollm2(),
        &prompt,
        "--temperature",
        "0",
        "--max-tokens",
        "8",
        "--json",
        "--quiet",
    ]);
    assert_eq!(v["finish_reason"], "length");
    assert_eq!(v["usage"]["completion_tokens"], 8);
    let prompt_tokens = v["usage"]["prompt_tokens"].as_u64().unwrap();
    assert!(
        prompt_tokens >= 590,
        "a dense prompt: {prompt_tokens} tokens"
    );
}

#[test]
fn inspect_json_describes_the_model() {
    let out = uml(&["inspect", &smollm2(), "--json"]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["architecture"], "llama");
    assert_eq!(v["block_count"], 30);
    assert_eq!(v["quantization"], "Q4_1");
}

#[test]
fn estimate_and_hw_print_json() {
    let out = uml(&["estimate", &smollm2(), "--ctx", "2048", "--json"]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["kv_cache_bytes"], 47_185_920u64);
    let out = uml(&["hw", "--json"]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["logical_cores"].as_u64().unwrap() >= 1);
    // A test build is native; scripts/test-portable checks a portable one's variant.
    assert_eq!(v["cpu_kernels"], "native");
}

#[test]
fn errors_are_one_readable_line_and_a_nonzero_exit() {
    let out = uml(&["run", "/no/such/model.gguf", "hi"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("error: model not found: /no/such/model.gguf"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"));

    let out = uml(&["run", &smollm2(), "hi", "--top-p", "1.5", "--quiet"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("top_p"), "{stderr}");

    let out = uml(&["run", &smollm2(), "hi", "--kv-cache-type", "q3", "--quiet"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--kv-cache-type"));
}

#[test]
fn chat_reads_turns_from_stdin() {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_uml"))
        .args([
            "chat",
            &smollm2(),
            "--temperature",
            "0",
            "--max-tokens",
            "8",
            "--quiet",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"Hi!\n\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.starts_with("> "), "{stdout:?}");
    // The reply is the library's own greedy reply to the same turn, not just any text.
    let model = uml_core::Model::load(
        smollm2(),
        &uml_core::LoadOptions {
            n_ctx: Some(512),
            ..uml_core::LoadOptions::default()
        },
        None,
    )
    .unwrap();
    let params = uml_core::GenerateParams {
        max_tokens: 8,
        ..uml_core::GenerateParams::greedy()
    };
    let reply = model
        .chat(
            &[uml_core::ChatMessage::user("Hi!")],
            &params,
            None,
            &mut |_| true,
        )
        .unwrap();
    assert!(!reply.text.trim().is_empty());
    assert!(
        stdout.contains(reply.text.trim()),
        "{stdout:?} lacks {:?}",
        reply.text
    );
}

#[test]
fn bench_reports_pp_and_tg() {
    let v = uml_json(&[
        "bench",
        &smollm2(),
        "-p",
        "32",
        "-n",
        "8",
        "-r",
        "1",
        "--json",
        "--quiet",
    ]);
    let tests: Vec<&str> = v["tests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["test"].as_str().unwrap())
        .collect();
    assert_eq!(tests, ["pp32", "tg8"]);
    assert!(v["tests"][0]["median"].as_f64().unwrap() > 0.0);
}

#[test]
fn embed_json_prints_one_unit_vector_per_text() {
    let fx = fixture("minilm_embeddings.json");
    let text = fx["texts"][0].as_str().unwrap();
    let out = uml(&["embed", &model("all-MiniLM-L6-v2.F32.gguf"), text, "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Vec<Vec<f64>> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((v.len(), v[0].len()), (1, 384));
    let norm = v[0].iter().map(|x| x * x).sum::<f64>().sqrt();
    assert!((norm - 1.0).abs() < 1e-5, "norm {norm}");
    // The same vector llama.cpp's llama-embedding printed for this text.
    for (a, b) in v[0].iter().zip(fx["embeddings"][0].as_array().unwrap()) {
        assert!((a - b.as_f64().unwrap()).abs() <= 1e-4);
    }
}

#[test]
fn convert_to_a_hugging_face_folder_then_run_it_with_candle() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("smollm2-hf");
    let folder_s = folder.to_string_lossy().into_owned();
    let out = uml(&["convert", &smollm2(), &folder_s, "--to", "hf"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for f in [
        "model.safetensors",
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
    ] {
        assert!(folder.join(f).is_file(), "{f} missing");
    }
    let v = uml_json(&[
        "run",
        &folder_s,
        "The capital of France is",
        "--temperature",
        "0",
        "--max-tokens",
        "4",
        "--quiet",
        "--backend",
        "candle",
        "--json",
    ]);
    assert_eq!(v["usage"]["completion_tokens"], 4, "{v}");
    // Converting onto something that exists is refused and loses nothing.
    let out = uml(&["convert", &smollm2(), &folder_s, "--to", "hf"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
    let out = uml(&["convert", &smollm2(), "x", "--to", "onnx"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("use hf or gguf"));
}

/// A Hugging Face PEFT adapter: `uml convert --base` writes a GGUF adapter, `uml run --lora`
/// takes either that file or the folder itself, with the same text; without `--base` the
/// conversion says what it needs.
#[test]
fn convert_a_peft_adapter_and_run_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let peft = dir.path().join("my-adapter");
    let config = serde_json::json!({"peft_type": "LORA", "r": 8, "lora_alpha": 16});
    uml_test_support::write_peft_adapter(
        std::path::Path::new(&smollm2()),
        &peft,
        &config,
        &[("q_proj", 8), ("v_proj", 8)],
        7,
        0.15,
    )
    .unwrap();
    let peft_s = peft.to_string_lossy().into_owned();
    let gguf = dir.path().join("my-adapter.gguf");
    let gguf_s = gguf.to_string_lossy().into_owned();

    let out = uml(&["convert", &peft_s, &gguf_s, "--to", "gguf"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--base MODEL"));
    let out = uml(&[
        "convert",
        &peft_s,
        &gguf_s,
        "--to",
        "gguf",
        "--base",
        &smollm2(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The adapter's memory, sized from the folder before it is converted, is the converted
    // file's (f32 tensors).
    let adapters_bytes = |lora: &str| -> u64 {
        let v = uml_json(&[
            "estimate",
            &smollm2(),
            "--ctx",
            "256",
            "--lora",
            lora,
            "--json",
        ]);
        v["adapters_bytes"].as_u64().unwrap()
    };
    let converted = uml_core::gguf::read_header(&gguf)
        .unwrap()
        .tensor_data_bytes();
    assert_eq!(adapters_bytes(&gguf_s), converted);
    assert_eq!(adapters_bytes(&peft_s), converted);

    let smollm2_s = smollm2();
    let run = |lora: Option<&str>| -> String {
        let mut args = vec![
            "run",
            &smollm2_s,
            "The capital of France is",
            "--temperature",
            "0",
            "--max-tokens",
            "8",
            "--quiet",
        ];
        if let Some(lora) = lora {
            args.extend(["--lora", lora]);
        }
        let out = uml(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let with_file = run(Some(&gguf_s));
    assert_eq!(run(Some(&peft_s)), with_file);
    assert_ne!(run(None), with_file, "the adapter changed nothing");
    // A PEFT folder is no model.
    let out = uml(&["run", &peft_s, "Hi", "--quiet"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("is a PEFT adapter, not a model"));
}

/// The CLI runs llama.cpp with uml's OpenMP spin budget (it re-executes itself with
/// GOMP_SPINCOUNT set), and leaves a user's own choice alone.
#[test]
fn the_cli_sets_the_openmp_spin_budget_unless_the_user_chose_one() {
    let environ_of = |child: &std::process::Child, want: &str| -> bool {
        let path = format!("/proc/{}/environ", child.id());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::time::Instant::now() < deadline {
            let env = std::fs::read(&path).unwrap_or_default();
            if env.split(|&b| b == 0).any(|kv| kv == want.as_bytes()) {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        false
    };
    for (preset, want) in [
        (None, "GOMP_SPINCOUNT=1000"),
        (Some("OMP_WAIT_POLICY"), "OMP_WAIT_POLICY=active"),
    ] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_uml"));
        cmd.env_remove("GOMP_SPINCOUNT")
            .env_remove("OMP_WAIT_POLICY");
        if let Some(key) = preset {
            cmd.env(key, "active");
        }
        // `chat` waits on stdin, so the process is there to look at.
        let mut child = cmd
            .args(["chat", &smollm2(), "--quiet"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let found = environ_of(&child, want);
        let spin_set = std::fs::read(format!("/proc/{}/environ", child.id()))
            .unwrap_or_default()
            .split(|&b| b == 0)
            .any(|kv| kv.starts_with(b"GOMP_SPINCOUNT="));
        drop(child.stdin.take());
        child.wait().unwrap();
        assert!(found, "{want} not in the CLI's environment");
        if preset.is_some() {
            assert!(
                !spin_set,
                "GOMP_SPINCOUNT set although the user chose a policy"
            );
        }
    }
}

/// RUST_LOG shows llama.cpp's log on stderr (what uml's load errors tell users to set); without
/// it, a run prints nothing there but its own output.
#[test]
fn rust_log_shows_llama_cpps_log_and_nothing_is_printed_without_it() {
    let run = |rust_log: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_uml"));
        cmd.args(["run", &smollm2(), "Hi", "--max-tokens", "2", "--quiet"]);
        match rust_log {
            Some(value) => cmd.env("RUST_LOG", value),
            None => cmd.env_remove("RUST_LOG"),
        };
        let out = cmd.output().expect("run uml");
        assert!(out.status.success());
        String::from_utf8(out.stderr).unwrap()
    };
    let logged = run(Some("llama_cpp_2=info"));
    assert!(
        logged
            .lines()
            .any(|l| l.starts_with("[uml] INFO llama.cpp::llama_model_loader: ")),
        "{logged}"
    );
    assert_eq!(run(None), "");
    assert_eq!(run(Some("off")), "");
}

/// `--draft-model` drafts for the model (here SmolLM2 for itself): the same greedy text,
/// drafted tokens in the usage; `--draft-max 0` and a `--draft-margin-min` no token leads by
/// draft nothing, and a negative margin is refused naming the flag's parameter.
#[test]
fn run_with_a_draft_model_drafts_and_honours_its_flags() {
    let model = smollm2();
    let run = |extra: &[&str]| {
        let mut args = vec![
            "run",
            &model,
            "The capital of France is",
            "--temperature",
            "0",
            "--max-tokens",
            "24",
            "--json",
            "--quiet",
            "--draft-model",
            &model,
        ];
        args.extend_from_slice(extra);
        uml_json(&args)
    };
    let drafted = run(&[]);
    assert!(drafted["usage"]["drafted_tokens"].as_u64().unwrap() > 0);
    for flags in [&["--draft-max", "0"][..], &["--draft-margin-min", "1000"]] {
        let none = run(flags);
        assert_eq!(none["usage"]["drafted_tokens"], 0, "{flags:?}");
        assert_eq!(none["text"], drafted["text"], "{flags:?}");
    }
    let out = uml(&[
        "run",
        &model,
        "hi",
        "--draft-model",
        &model,
        "--draft-margin-min=-1",
        "--quiet",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("draft_margin_min"), "{err}");
}

/// `--mtp` drafts with the model's own prediction heads: the same greedy text as without,
/// drafted and accepted tokens in the usage; `inspect` shows the heads, and a model without
/// them is refused with the way out.
#[test]
fn run_mtp_drafts_with_the_models_own_heads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny-qwen35-mtp.gguf");
    uml_test_support::write_tiny_qwen35_mtp_gguf(&path, 7, true).unwrap();
    let path = path.to_string_lossy().into_owned();
    let info = uml_json(&["inspect", &path, "--json"]);
    assert_eq!(info["mtp_layers"], 1);
    assert_eq!(
        info["recurrent"]["recurrent"],
        serde_json::json!([true, false, false])
    );
    let text = uml(&["inspect", &path]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("recurrent      1 of the layers"), "{text}");
    let run = |extra: &[&str]| {
        let mut args = vec![
            "run",
            &path,
            "once upon a time",
            "--temperature",
            "0",
            "--max-tokens",
            "48",
            "--json",
            "--quiet",
        ];
        args.extend_from_slice(extra);
        uml_json(&args)
    };
    let estimate = uml_json(&["estimate", &path, "--ctx", "256", "--mtp", "--json"]);
    assert_eq!(estimate["private_contexts"], 2, "{estimate}");
    let plain = run(&[]);
    let mtp = run(&["--mtp"]);
    assert_eq!(mtp["text"], plain["text"]);
    assert!(mtp["usage"]["drafted_tokens"].as_u64().unwrap() > 0);
    assert!(mtp["usage"]["accepted_tokens"].as_u64().unwrap() > 0);
    assert_eq!(plain["usage"]["drafted_tokens"], 0);

    let llama = dir.path().join("llama.gguf");
    uml_test_support::write_tiny_llama_gguf(&llama, 0).unwrap();
    let out = uml(&["run", &llama.to_string_lossy(), "hi", "--mtp", "--quiet"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no multi-token-prediction heads"), "{err}");
}

/// The KV cache and recurrent state `uml estimate` counts for a hybrid model (a tiny Qwen3.5:
/// one linear-attention block, one attention block, one prediction head) equal what
/// llama.cpp allocates, as its log reports them (`KV buffer size`, `RS buffer size`, in MiB
/// to 2 decimals): alone, in 4 slots, with its heads (`--mtp`: their context and 3 state
/// snapshots), and beside a draft model (16 snapshots; the draft's cache counted as its own).
#[test]
fn estimate_counts_the_memory_llama_cpp_gives_a_hybrid_models_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let hybrid = dir.path().join("tiny-qwen35.gguf");
    uml_test_support::write_tiny_qwen35_mtp_gguf(&hybrid, 7, true).unwrap();
    let draft = dir.path().join("tiny-llama.gguf");
    uml_test_support::write_tiny_llama_gguf(&draft, 0).unwrap();
    let (hybrid, draft) = (hybrid.to_string_lossy(), draft.to_string_lossy());
    let mib = |bytes: u64| bytes as f64 / (1u64 << 20) as f64;
    for flags in [
        &["--parallel", "1"][..],
        &["--parallel", "4"],
        &["--mtp"],
        &["--draft-model", &draft],
    ] {
        let mut estimate_args = vec!["estimate", &hybrid, "--ctx", "1024", "--json"];
        estimate_args.extend_from_slice(flags);
        let estimate = uml_json(&estimate_args);
        let draft_kv = estimate["draft"]["kv_cache_bytes"].as_u64().unwrap_or(0);
        let estimated = mib(estimate["kv_cache_bytes"].as_u64().unwrap() + draft_kv);

        let mut run_args = vec![
            "run",
            &hybrid,
            "once upon",
            "--max-tokens",
            "4",
            "--ctx",
            "1024",
            "--quiet",
        ];
        run_args.extend_from_slice(flags);
        let out = Command::new(env!("CARGO_BIN_EXE_uml"))
            .args(&run_args)
            .env("RUST_LOG", "llama_cpp_2=info")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let log = String::from_utf8_lossy(&out.stderr);
        let buffers: Vec<f64> = log
            .lines()
            .filter(|l| l.contains("KV buffer size") || l.contains("RS buffer size"))
            .map(|l| {
                let mib = l.rsplit('=').next().unwrap().trim().trim_end_matches("MiB");
                mib.trim().parse::<f64>().unwrap()
            })
            .collect();
        let allocated: f64 = buffers.iter().sum();
        // Each logged size is rounded to 0.01 MiB.
        let rounding = 0.005 * buffers.len() as f64 + 1e-9;
        eprintln!("{flags:?}: estimated {estimated:.4} MiB, llama.cpp {buffers:?}");
        assert!(
            (allocated - estimated).abs() <= rounding,
            "{flags:?}: estimated {estimated:.4} MiB, llama.cpp allocated {buffers:?} MiB"
        );
    }
}
