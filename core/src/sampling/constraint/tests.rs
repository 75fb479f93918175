//! Grammars over a real (tiny) model's vocabulary, run through the real generation loop.

use crate::{ErrorKind, FinishReason, GenerateParams, LoadOptions, Model};
use uml_test_support::write_tiny_llama_gguf;

fn tiny() -> (tempfile::TempDir, Model) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.gguf");
    write_tiny_llama_gguf(&path, 7).unwrap();
    let options = LoadOptions {
        n_ctx: Some(128),
        n_threads: Some(1),
        ..LoadOptions::default()
    };
    let model = Model::load(&path, &options, None).unwrap();
    (dir, model)
}

fn with(f: impl FnOnce(&mut GenerateParams)) -> GenerateParams {
    let mut p = GenerateParams {
        max_tokens: 24,
        seed: Some(5),
        ..GenerateParams::default()
    };
    f(&mut p);
    p
}

#[test]
fn a_random_model_can_only_say_what_the_grammar_allows() {
    let (_dir, model) = tiny();
    for seed in 0..8 {
        let p = with(|p| {
            p.seed = Some(seed);
            p.grammar = Some(r#"root ::= ("cat" | "dog") " sat" ("." | "!")"#.into());
        });
        let out = model.complete("once upon a time", &p).unwrap();
        assert!(
            ["cat sat.", "cat sat!", "dog sat.", "dog sat!"].contains(&out.text.as_str()),
            "seed {seed}: {:?}",
            out.text
        );
        assert_eq!(out.finish_reason, FinishReason::Stop);
    }
    // Lark passes through as written.
    let p = with(|p| p.grammar = Some("start: /[0-9]{3}/".into()));
    let out = model.complete("hello", &p).unwrap();
    assert!(
        out.text.len() == 3 && out.text.bytes().all(|b| b.is_ascii_digit()),
        "{:?}",
        out.text
    );
}

#[test]
fn json_schema_output_parses_and_follows_the_schema() {
    let (_dir, model) = tiny();
    let schema = serde_json::json!({
        "type": "object",
        "properties": {"ok": {"type": "boolean"}},
        "required": ["ok"],
        "additionalProperties": false
    });
    let p = with(|p| {
        p.max_tokens = 64;
        p.json_schema = Some(schema);
    });
    let out = model.complete("hello", &p).unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&out.text).unwrap_or_else(|e| panic!("{e}: {:?}", out.text));
    assert!(v["ok"].is_boolean(), "{v}");
}

#[test]
fn a_grammar_no_allowed_token_can_satisfy_is_an_error_not_an_abort() {
    let (_dir, model) = tiny();
    let z = model.tokenize("z", false).unwrap();
    // Ban every way to write "z": its letter piece(s) and its byte-fallback token <0x7A>.
    let mut banned: Vec<i32> = z.clone();
    banned.push(3 + 0x7A);
    let p = with(|p| {
        p.grammar = Some(r#"root ::= "z""#.into());
        p.logit_bias = banned.iter().map(|&t| (t, f32::NEG_INFINITY)).collect();
    });
    let err = model.complete("hello", &p).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    assert!(err.message().contains("no token can continue"), "{err}");
    // The model is fine afterwards.
    assert!(model.complete("hello", &with(|_| ())).is_ok());
}

#[test]
fn grammars_that_do_not_compile_are_invalid_arguments() {
    let (_dir, model) = tiny();
    for g in ["root ::= missing", "this is not gbnf", "start: ( unclosed"] {
        let err = model
            .complete("x", &with(|p| p.grammar = Some(g.into())))
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{g}: {err}");
        assert!(err.message().starts_with("grammar"), "{g}: {err}");
    }
}

#[test]
fn with_end_of_generation_banned_the_grammar_runs_to_its_complete_end() {
    let (_dir, model) = tiny();
    for seed in 0..6 {
        let p = with(|p| {
            p.seed = Some(seed);
            p.grammar = Some(r#"root ::= "cat" | "cat sat""#.into());
            // </s> banned: "cat" may not end the output, so it must go on to "cat sat", after
            // which the grammar allows nothing and generation stops without needing </s>.
            p.logit_bias = [(2, f32::NEG_INFINITY)].into_iter().collect();
        });
        let out = model.complete("hello", &p).unwrap();
        assert_eq!(
            (out.text.as_str(), out.finish_reason),
            ("cat sat", FinishReason::Stop)
        );
    }
}

/// Hostile grammars and schemas end in a clear error or a bounded generation, never a crash
/// or a hang: huge repetition counts, deep nesting, huge alternations and schema bounds.
#[test]
fn hostile_grammars_are_errors_or_bounded() {
    let (_dir, model) = tiny();
    let deep_parens = format!("root ::= {}\"a\"{}", "(".repeat(1000), ")".repeat(1000));
    let many_alternatives = format!(
        "root ::= {}",
        (0..20_000)
            .map(|i| format!("\"w{i}\""))
            .collect::<Vec<_>>()
            .join(" | ")
    );
    let mut deep_schema = serde_json::json!({"type": "string"});
    for _ in 0..100 {
        deep_schema = serde_json::json!({"type": "array", "items": deep_schema});
    }
    let cases: Vec<GenerateParams> = vec![
        with(|p| p.grammar = Some(r#"root ::= "a"{4000000000}"#.into())),
        with(|p| p.grammar = Some(r#"root ::= "a"{100000000}"#.into())),
        with(|p| p.grammar = Some(deep_parens)),
        with(|p| p.grammar = Some(many_alternatives)),
        with(|p| p.grammar = Some("root ::= root".into())),
        with(|p| p.grammar = Some("root ::= x\nx ::= x \"a\"".into())),
        with(|p| p.json_schema = Some(deep_schema)),
        with(|p| {
            p.json_schema = Some(serde_json::json!({"type": "string", "minLength": 1_000_000_000}))
        }),
        with(|p| {
            p.json_schema = Some(serde_json::json!({"type": "array", "minItems": 1_000_000_000u64}))
        }),
        with(|p| p.json_schema = Some(serde_json::json!({"$ref": "#"}))),
    ];
    for p in cases {
        match model.complete("hello", &p) {
            Ok(out) => assert!(out.usage.completion_tokens <= p.max_tokens),
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
                // One clear line, not llguidance's parser-state dump.
                assert!(!e.message().contains("<state>"), "{e}");
            }
        }
    }
}

/// A dead end after some output keeps that output in the error.
#[test]
fn a_dead_end_mid_generation_reports_the_text_so_far() {
    let (_dir, model) = tiny();
    let z = model.tokenize("z", false).unwrap();
    let mut banned: Vec<i32> = z.clone();
    banned.push(3 + 0x7A);
    let p = with(|p| {
        p.temperature = 0.0;
        p.grammar = Some(r#"root ::= "ab" "z""#.into());
        p.logit_bias = banned.iter().map(|&t| (t, f32::NEG_INFINITY)).collect();
    });
    let err = model.complete("hello", &p).unwrap_err();
    assert!(err.message().contains("no token can continue"), "{err}");
    assert!(
        err.message().contains("the text generated so far: \"ab\""),
        "{err}"
    );
}

/// The deepest JSON schema a binding passes on (`MAX_VALUE_DEPTH`) compiles and constrains a
/// generation on a thread with a 1 MiB stack, far less than any host thread has (8 MiB for
/// glibc's pthreads and Python's threads, 2 MiB for Rust's).
#[test]
fn the_deepest_schema_the_limits_allow_runs_on_a_small_stack() {
    let out = std::thread::Builder::new()
        .stack_size(1 << 20)
        .spawn(|| {
            let (_dir, model) = tiny();
            let mut schema = serde_json::json!({"type": "string"});
            for _ in 1..crate::options::MAX_VALUE_DEPTH {
                schema = serde_json::json!({"type": "array", "items": schema});
            }
            let p = with(|p| p.json_schema = Some(schema));
            model
                .complete("hello", &p)
                .map(|c| c.usage.completion_tokens)
        })
        .unwrap()
        .join()
        .expect("no stack overflow");
    assert!(out.unwrap() >= 1);
}
