//! `uml serve` end to end: the real binary on a loopback port with SmolLM2 (and MiniLM for
//! embeddings), driven over plain HTTP/1.1: models, chat and text completions (streamed and
//! not, equal to each other and to the llama.cpp greedy fixture), JSON-schema output,
//! embeddings, OpenAI-shaped errors, API keys, body limits, a refused non-loopback bind, and a
//! client that disconnects mid-stream freeing its slot (seen in /metrics).

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use uml_test_support::{fetched_model, GreedyFixture};

const SMOLLM2: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
const MINILM: &str = "all-MiniLM-L6-v2.F32.gguf";

/// A running `uml serve`, stopped when dropped.
struct Server {
    child: Child,
    addr: String,
}

impl Server {
    fn start(args: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_uml"))
            .arg("serve")
            .args(["--port", "0", "--ctx", "1024", "--threads", "2"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start uml serve");
        let mut first = String::new();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        out.read_line(&mut first).unwrap();
        // Keep reading what it prints, so it never writes into a closed pipe.
        std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
        let addr = first
            .trim()
            .strip_prefix("uml serve: listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line: {first:?}"))
            .to_string();
        Server { child, addr }
    }

    /// One request; returns the status and the body.
    fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        key: Option<&str>,
    ) -> (u16, String) {
        let mut stream = TcpStream::connect(&self.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(120)))
            .unwrap();
        stream
            .write_all(request(method, path, body, key).as_bytes())
            .unwrap();
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).unwrap();
        parse_response(&String::from_utf8_lossy(&raw))
    }

    fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let (status, text) = self.call("POST", path, Some(&body.to_string()), None);
        (
            status,
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text:?}")),
        )
    }

    fn metrics(&self) -> String {
        let (status, text) = self.call("GET", "/metrics", None, None);
        assert_eq!(status, 200, "{text}");
        text
    }

    /// The text of a streamed completion (chat deltas or text chunks), and its last usage.
    fn stream(&self, path: &str, body: &Value) -> (String, Option<Value>) {
        let (status, text) = self.call("POST", path, Some(&body.to_string()), None);
        assert_eq!(status, 200, "{text}");
        let mut out = String::new();
        let mut usage = None;
        let mut done = false;
        for line in text.lines() {
            let Some(data) = line.strip_prefix("data: ") else {
                continue;
            };
            if data == "[DONE]" {
                done = true;
                continue;
            }
            let chunk: Value = serde_json::from_str(data).unwrap();
            if let Some(u) = chunk.get("usage") {
                usage = Some(u.clone());
            }
            for choice in chunk["choices"].as_array().unwrap() {
                out += choice["delta"]["content"]
                    .as_str()
                    .or(choice["text"].as_str())
                    .unwrap_or("");
            }
        }
        assert!(done, "no [DONE] in {text}");
        (out, usage)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn request(method: &str, path: &str, body: Option<&str>, key: Option<&str>) -> String {
    let mut r = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    if let Some(k) = key {
        r += &format!("Authorization: Bearer {k}\r\n");
    }
    if let Some(b) = body {
        r += &format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{b}",
            b.len()
        );
    } else {
        r += "\r\n";
    }
    r
}

/// Status and body of an HTTP/1.1 response (chunked bodies joined).
fn parse_response(raw: &str) -> (u16, String) {
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((raw, ""));
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    if !head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return (status, body.to_string());
    }
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out += &after[..n];
        rest = &after[n + 2..];
    }
    (status, out)
}

fn smollm2_server(extra: &[&str]) -> Server {
    let model = format!("smollm2={}", fetched_model(SMOLLM2).display());
    let mut args = vec!["--model", &model];
    args.extend_from_slice(extra);
    Server::start(&args)
}

#[test]
fn chat_and_completions_stream_and_not_give_llama_cpp_text() {
    let server = smollm2_server(&[]);
    let (status, health) = server.call("GET", "/health", None, None);
    assert_eq!((status, health.as_str()), (200, r#"{"status":"ok"}"#));
    let (status, models) = server.call("GET", "/v1/models", None, None);
    assert_eq!(status, 200);
    let models: Value = serde_json::from_str(&models).unwrap();
    assert_eq!(models["data"][0]["id"], "smollm2");

    let chat = GreedyFixture::load("smollm2_chat_greedy.json");
    let messages: Value = serde_json::from_str(chat.messages.as_deref().unwrap()).unwrap();
    let body = json!({"model": "smollm2", "messages": messages, "temperature": 0,
                      "max_tokens": chat.n_predict, "unknown_field_clients_send": true});
    let (status, reply) = server.post("/v1/chat/completions", &body);
    assert_eq!(status, 200, "{reply}");
    assert_eq!(
        reply["choices"][0]["message"]["content"],
        chat.text.as_str()
    );
    assert_eq!(reply["object"], "chat.completion");
    assert_eq!(reply["usage"]["completion_tokens"], chat.n_predict);
    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    streamed["stream_options"] = json!({"include_usage": true});
    let (text, usage) = server.stream("/v1/chat/completions", &streamed);
    assert_eq!(text, chat.text);
    assert_eq!(usage.unwrap()["completion_tokens"], chat.n_predict);

    let plain = GreedyFixture::load("smollm2_count_greedy.json");
    let body = json!({"model": "smollm2", "prompt": plain.prompt, "temperature": 0,
                      "max_tokens": plain.n_predict});
    let (status, reply) = server.post("/v1/completions", &body);
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["choices"][0]["text"], plain.text.as_str());
    // Without a draft nothing is drafted.
    let details = &reply["usage"]["completion_tokens_details"];
    assert_eq!(details["accepted_prediction_tokens"], 0, "{reply}");
    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    assert_eq!(server.stream("/v1/completions", &streamed).0, plain.text);

    // JSON-schema output parses and follows the schema.
    let schema = json!({"type": "object", "properties": {"city": {"type": "string"}},
                        "required": ["city"], "additionalProperties": false});
    let body = json!({"model": "smollm2", "temperature": 0, "max_tokens": 48,
                      "messages": [{"role": "user", "content": "Which city is the capital of France?"}],
                      "response_format": {"type": "json_schema",
                                          "json_schema": {"name": "answer", "schema": schema}}});
    let (status, reply) = server.post("/v1/chat/completions", &body);
    assert_eq!(status, 200, "{reply}");
    let content = reply["choices"][0]["message"]["content"].as_str().unwrap();
    let parsed: Value =
        serde_json::from_str(content).unwrap_or_else(|e| panic!("{content:?}: {e}"));
    assert!(parsed["city"].is_string(), "{parsed}");
}

#[test]
fn errors_have_openai_shape_and_status() {
    let server = smollm2_server(&["--max-body-bytes", "2000"]);
    let check = |status: u16, body: &str, want: u16, needle: &str| {
        assert_eq!(status, want, "{body}");
        let v: Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {body:?}"));
        let message = v["error"]["message"]
            .as_str()
            .unwrap_or_else(|| panic!("{v}"));
        assert!(message.contains(needle), "{message:?} lacks {needle:?}");
        assert!(v["error"]["type"].is_string());
    };
    let (s, b) = server.call("POST", "/v1/chat/completions", Some("{not json"), None);
    check(s, &b, 400, "invalid JSON");
    let unknown = json!({"model": "nope", "messages": [{"role": "user", "content": "hi"}]});
    let (s, b) = server.call(
        "POST",
        "/v1/chat/completions",
        Some(&unknown.to_string()),
        None,
    );
    check(s, &b, 404, "nope");
    let two = json!({"model": "smollm2", "n": 2, "messages": [{"role": "user", "content": "hi"}]});
    let (s, b) = server.call("POST", "/v1/chat/completions", Some(&two.to_string()), None);
    check(s, &b, 400, "n = 1");
    let bad = json!({"model": "smollm2", "temperature": -3, "messages": [{"role": "user", "content": "hi"}]});
    let (s, b) = server.call("POST", "/v1/chat/completions", Some(&bad.to_string()), None);
    check(s, &b, 400, "temperature");
    let big =
        json!({"model": "smollm2", "messages": [{"role": "user", "content": "x".repeat(5000)}]});
    let (s, b) = server.call("POST", "/v1/chat/completions", Some(&big.to_string()), None);
    check(s, &b, 413, "limit");
    let (s, b) = server.call("GET", "/v1/nothing", None, None);
    check(s, &b, 404, "route");
}

#[test]
fn api_keys_guard_every_route_but_health() {
    let server = smollm2_server(&["--api-key", "secret-key-1"]);
    assert_eq!(server.call("GET", "/health", None, None).0, 200);
    let (status, body) = server.call("GET", "/v1/models", None, None);
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("invalid_api_key"));
    assert_eq!(
        server
            .call("GET", "/v1/models", None, Some("wrong-key-1"))
            .0,
        401
    );
    assert_eq!(
        server
            .call("GET", "/v1/models", None, Some("secret-key-1"))
            .0,
        200
    );
}

#[test]
fn a_public_address_without_keys_is_refused_at_start() {
    let out = Command::new(env!("CARGO_BIN_EXE_uml"))
        .args(["serve", "--host", "0.0.0.0", "--port", "0", "--model"])
        .arg(format!("smollm2={}", fetched_model(SMOLLM2).display()))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--api-key"), "{err}");
}

/// A streamed completion that would run until the context is full (end of generation
/// banned), once its response has begun.
fn endless_stream(server: &Server) -> TcpStream {
    let long = json!({"model": "smollm2", "prompt": "Once upon a time", "max_tokens": 100000,
                      "temperature": 0, "stream": true,
                      "logit_bias": {"0": -100, "1": -100, "2": -100}});
    let mut stream = TcpStream::connect(&server.addr).unwrap();
    stream
        .write_all(request("POST", "/v1/completions", Some(&long.to_string()), None).as_bytes())
        .unwrap();
    let mut first = [0u8; 512];
    let n = stream.read(&mut first).unwrap();
    assert!(String::from_utf8_lossy(&first[..n]).contains("200 OK"));
    stream
}

#[test]
fn a_client_that_disconnects_mid_stream_frees_its_slot() {
    // One slot and no line: while the slot is taken, another request is refused with 429.
    let server = smollm2_server(&["--parallel", "1", "--max-queued", "0"]);
    let stream = endless_stream(&server);
    let short = json!({"model": "smollm2", "prompt": "Hi", "max_tokens": 2});
    let (status, body) = server.call("POST", "/v1/completions", Some(&short.to_string()), None);
    assert_eq!(status, 429, "{body}");
    // A streamed request refused before any text gets the status too, not a 200 stream.
    let streamed = json!({"model": "smollm2", "prompt": "Hi", "max_tokens": 2, "stream": true});
    let (status, body) = server.call("POST", "/v1/completions", Some(&streamed.to_string()), None);
    assert_eq!(status, 429, "{body}");
    assert!(body.contains("rate_limit_error"), "{body}");
    assert!(server
        .metrics()
        .contains("uml_running{model=\"smollm2\"} 1"));
    drop(stream);
    // Left alone, the generation would run until its 1024-token context is full (about ten
    // seconds here); the disconnect ends it at its next token, and /metrics shows it.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !server
        .metrics()
        .contains("uml_running{model=\"smollm2\"} 0")
    {
        assert!(Instant::now() < deadline, "the slot was not freed");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (status, body) = server.call("POST", "/v1/completions", Some(&short.to_string()), None);
    assert_eq!(status, 200, "{body}");
    let metrics = server.metrics();
    for line in [
        "uml_requests_total{route=\"/v1/completions\",status=\"429\"} 2",
        "uml_requests_total{route=\"/v1/completions\",status=\"200\"}",
        "uml_completion_tokens_total{model=\"smollm2\"}",
        "uml_time_to_first_token_seconds_count{model=\"smollm2\"}",
        "uml_queue_depth{model=\"smollm2\"} 0",
        "uml_model_loaded{model=\"smollm2\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} not in\n{metrics}");
    }
}

#[test]
fn embeddings_come_from_an_embedding_model() {
    let model = format!("minilm={}", fetched_model(MINILM).display());
    let server = Server::start(&["--model", &model]);
    let body = json!({"model": "minilm", "input": ["I love cats", "I adore kittens"]});
    let (status, reply) = server.post("/v1/embeddings", &body);
    assert_eq!(status, 200, "{reply}");
    let data = reply["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    let v: Vec<f64> = data[0]["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    assert_eq!(v.len(), 384);
    let norm: f64 = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    assert!((norm - 1.0).abs() < 1e-3, "{norm}");
    assert!(reply["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
}

#[test]
fn a_client_over_its_rate_limit_gets_429_with_retry_after() {
    let server = smollm2_server(&["--rate-limit", "3", "--api-key", "secret-key-1"]);
    for _ in 0..3 {
        assert_eq!(
            server
                .call("GET", "/v1/models", None, Some("secret-key-1"))
                .0,
            200
        );
    }
    let mut stream = TcpStream::connect(&server.addr).unwrap();
    stream
        .write_all(request("GET", "/v1/models", None, Some("secret-key-1")).as_bytes())
        .unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    assert!(raw.starts_with("HTTP/1.1 429"), "{raw}");
    assert!(
        raw.to_ascii_lowercase().contains("retry-after: 20"),
        "{raw}"
    );
    assert!(raw.contains("rate_limit_exceeded"), "{raw}");
    // /health is never limited.
    assert_eq!(server.call("GET", "/health", None, None).0, 200);
}

#[test]
fn models_register_only_from_the_model_folders_and_swap_load_and_unload() {
    let dir = tempfile::tempdir().unwrap();
    let inside = dir.path().join("models");
    std::fs::create_dir(&inside).unwrap();
    std::fs::copy(fetched_model(SMOLLM2), inside.join("small.gguf")).unwrap();
    let outside = dir.path().join("outside.gguf");
    uml_test_support::write_tiny_llama_gguf(&outside, 1).unwrap();
    std::os::unix::fs::symlink(&outside, inside.join("link.gguf")).unwrap();
    uml_test_support::write_tiny_llama_gguf(&inside.join("tiny.gguf"), 2).unwrap();
    let server = Server::start(&["--model-dir", inside.to_str().unwrap()]);

    let register = |id: &str, path: &std::path::Path| {
        server.post("/v1/models/register", &json!({"id": id, "path": path}))
    };
    for path in [
        outside.clone(),
        inside.join("..").join("outside.gguf"),
        inside.join("link.gguf"),
    ] {
        let (status, body) = register("x", &path);
        assert_eq!(status, 403, "{path:?}: {body}");
        assert_eq!(body["error"]["code"], "path_not_allowed");
    }
    assert_eq!(register("x", &inside.join("missing.gguf")).0, 404);

    // Found by the scan: small and tiny. Load, swap to the other file, unload.
    let (status, body) = server.post("/v1/models/load", &json!({"model": "small"}));
    assert_eq!(status, 200, "{body}");
    assert!(body["memory_bytes"].as_u64().unwrap() > 0);
    let (status, body) = register("small", &inside.join("tiny.gguf"));
    assert_eq!(
        (status, body["swapped"].as_bool()),
        (200, Some(true)),
        "{body}"
    );
    let (status, body) = server.post("/v1/models/unload", &json!({"model": "small"}));
    assert_eq!(status, 200, "{body}");
    assert!(body["freed_bytes"].as_u64().unwrap() > 0);
    assert_eq!(
        server
            .post("/v1/models/unload", &json!({"model": "nope"}))
            .0,
        404
    );

    // Without --model-dir, nothing registers by path.
    let fixed = smollm2_server(&[]);
    let (status, _) = fixed.post("/v1/models/register", &json!({"id": "y", "path": outside}));
    assert_eq!(status, 403);
}

#[test]
fn sigterm_cancels_running_requests_after_the_deadline_and_exits() {
    let mut server = smollm2_server(&["--shutdown-timeout", "1"]);
    let mut stream = endless_stream(&server);
    let pid = server.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    // The stream ends (cancelled after the 1 s deadline, long before its context is full)
    // with its [DONE], and the server exits cleanly.
    let mut rest = String::new();
    stream.read_to_string(&mut rest).unwrap();
    assert!(rest.contains("[DONE]"), "{rest}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "uml serve did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_config_file_carries_the_options_and_the_command_line_wins() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("serve.toml");
    std::fs::write(
        &config,
        format!(
            "model = [\"small={}\"]\napi_key = [\"config-key-1\"]\nmax-body-bytes = 100\nport = 1\n",
            fetched_model(SMOLLM2).display()
        ),
    )
    .unwrap();
    // --port 0 (from Server::start) overrides the file's port 1.
    let server = Server::start(&["--config", config.to_str().unwrap()]);
    assert_eq!(server.call("GET", "/v1/models", None, None).0, 401);
    let (status, body) = server.call("GET", "/v1/models", None, Some("config-key-1"));
    assert_eq!(status, 200);
    assert!(body.contains("\"small\""), "{body}");
    let big = json!({"model": "small", "prompt": "x".repeat(200)}).to_string();
    let (status, _) = server.call("POST", "/v1/completions", Some(&big), Some("config-key-1"));
    assert_eq!(status, 413);

    std::fs::write(&config, "bogus = 1\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_uml"))
        .args(["serve", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("serve.toml") && err.contains("--bogus"),
        "{err}"
    );
}

#[test]
fn a_remote_model_answers_through_another_server_and_a_broken_file_falls_back_to_it() {
    let far = smollm2_server(&[]);
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.gguf");
    std::fs::write(&broken, b"GGUF\x03\x00\x00\x00 truncated").unwrap();
    let endpoint = format!("http://{}/v1#smollm2", far.addr);
    let near = Server::start(&[
        "--remote",
        &format!("far={endpoint}"),
        "--model",
        &format!("broken={}", broken.display()),
        "--fallback",
        &format!("broken={endpoint}"),
    ]);
    let chat = GreedyFixture::load("smollm2_chat_greedy.json");
    let messages: Value = serde_json::from_str(chat.messages.as_deref().unwrap()).unwrap();
    for model in ["far", "broken"] {
        let body = json!({"model": model, "messages": messages, "temperature": 0,
                          "max_tokens": chat.n_predict});
        let (status, reply) = near.post("/v1/chat/completions", &body);
        assert_eq!(status, 200, "{model}: {reply}");
        assert_eq!(
            reply["choices"][0]["message"]["content"],
            chat.text.as_str(),
            "{model}"
        );
        assert_eq!(reply["usage"]["completion_tokens"], chat.n_predict);
        let mut streamed = body.clone();
        streamed["stream"] = json!(true);
        assert_eq!(
            near.stream("/v1/chat/completions", &streamed).0,
            chat.text,
            "{model}"
        );
    }
    let (_, models) = near.call("GET", "/v1/models", None, None);
    let models: Value = serde_json::from_str(&models).unwrap();
    for m in models["data"].as_array().unwrap() {
        assert_eq!(m["backend"], "remote", "{m}");
    }
    // A remote that does not serve the model named is a clear 404.
    let wrong = Server::start(&["--remote", &format!("x=http://{}/v1#nope", far.addr)]);
    let body = json!({"model": "x", "messages": [{"role": "user", "content": "hi"}]});
    let (status, reply) = wrong.post("/v1/chat/completions", &body);
    assert_eq!(status, 404, "{reply}");
    assert!(
        reply["error"]["message"].as_str().unwrap().contains("nope"),
        "{reply}"
    );
}

#[test]
fn a_lora_adapter_serves_by_default_and_requests_choose_with_lora() {
    let dir = tempfile::tempdir().unwrap();
    let adapter = dir.path().join("strong.gguf");
    // A strong random adapter (core/tests/lora.rs's): it changes the fixture's greedy text.
    uml_test_support::write_lora_adapter(&fetched_model(SMOLLM2), &adapter, 3, 8, 0.2, None)
        .unwrap();
    let lora = format!("smollm2={}", adapter.display());
    let server = smollm2_server(&["--lora", &lora]);
    let plain = GreedyFixture::load("smollm2_count_greedy.json");
    let body = |lora: Value| {
        let mut body = json!({"model": "smollm2", "prompt": plain.prompt, "temperature": 0,
                              "max_tokens": plain.n_predict});
        if !lora.is_null() {
            body["lora"] = lora;
        }
        body
    };
    // `[]`: the base model, llama.cpp's greedy text.
    let (status, reply) = server.post("/v1/completions", &body(json!([])));
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["choices"][0]["text"], plain.text.as_str());
    // By default, the adapter.
    let (status, reply) = server.post("/v1/completions", &body(Value::Null));
    assert_eq!(status, 200, "{reply}");
    assert_ne!(reply["choices"][0]["text"], plain.text.as_str());
    let (status, reply) = server.post("/v1/completions", &body(json!([{"name": "nope"}])));
    assert_eq!(status, 400, "{reply}");
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap()
            .contains("loaded: strong"),
        "{reply}"
    );
}

#[test]
fn a_model_served_with_a_draft_gives_its_greedy_text() {
    let draft = format!("smollm2={}", fetched_model(SMOLLM2).display());
    let server = smollm2_server(&["--draft", &draft]);
    let plain = GreedyFixture::load("smollm2_count_greedy.json");
    let body = json!({"model": "smollm2", "prompt": plain.prompt, "temperature": 0,
                      "max_tokens": plain.n_predict, "draft_max": 8});
    let (status, reply) = server.post("/v1/completions", &body);
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["choices"][0]["text"], plain.text.as_str());
    let details = &reply["usage"]["completion_tokens_details"];
    assert!(
        details["accepted_prediction_tokens"].as_u64().unwrap() > 0,
        "{reply}"
    );
    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    assert_eq!(server.stream("/v1/completions", &streamed).0, plain.text);
    let (status, reply) = server.post(
        "/v1/completions",
        &json!({"model": "smollm2",
        "prompt": "Hi", "draft_p_min": 3}),
    );
    assert_eq!(status, 400, "{reply}");
    // A request's draft_margin_min reaches the drafter: under a margin no token has, nothing
    // is drafted.
    let mut ties = body.clone();
    ties["draft_margin_min"] = json!(1000);
    let (status, reply) = server.post("/v1/completions", &ties);
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["choices"][0]["text"], plain.text.as_str());
    let details = &reply["usage"]["completion_tokens_details"];
    assert_eq!(details["accepted_prediction_tokens"], 0, "{reply}");
    assert_eq!(details["rejected_prediction_tokens"], 0, "{reply}");
    let (status, reply) = server.post(
        "/v1/completions",
        &json!({"model": "smollm2", "prompt": "Hi", "draft_margin_min": -1}),
    );
    assert_eq!(status, 400, "{reply}");
    assert!(reply.to_string().contains("draft_margin_min"), "{reply}");
}

/// `--mtp ID` serves the model drafting with its own prediction heads: the same greedy text,
/// Without a --model of that id it is refused.
#[test]
fn a_model_served_with_mtp_gives_its_greedy_text() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny-qwen35-mtp.gguf");
    uml_test_support::write_tiny_qwen35_mtp_gguf(&path, 7, true).unwrap();
    let model = format!("q={}", path.display());
    let body = json!({"model": "q", "prompt": "once upon a time", "temperature": 0,
                      "max_tokens": 40});
    let plain = Server::start(&["--model", &model]);
    let (status, expected) = plain.post("/v1/completions", &body);
    assert_eq!(status, 200, "{expected}");
    drop(plain);
    let server = Server::start(&["--model", &model, "--mtp", "q"]);
    let (status, reply) = server.post("/v1/completions", &body);
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["choices"][0]["text"], expected["choices"][0]["text"]);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_uml"))
        .args(["serve", "--model", &model, "--mtp", "other", "--port", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--mtp other"));
}
