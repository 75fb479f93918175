//! `uml serve`: an OpenAI-compatible HTTP server over core's model manager.
//!
//! Models are files (`--model`, `--model-dir`) or other OpenAI-compatible servers
//! (`--remote`), and a file can fall back to a server when it fails to load (`--fallback`).
//!
//! Routes: `GET /` (a chat playground page) and `GET /health` (no key needed for either), `GET /v1/models`, `POST /v1/chat/completions`,
//! `POST /v1/completions` (both streamed as server-sent events with `stream: true`, ending
//! with `data: [DONE]`), `POST /v1/embeddings`, `GET /metrics` (Prometheus text), and model
//! management: `POST /v1/models/load`, `/v1/models/unload` (`{"model": ID}`) and
//! `/v1/models/register` (`{"id", "path"}`, a path inside a --model-dir folder; an id already
//! registered is hot-swapped to the new file). Secure by default: it binds 127.0.0.1, refuses
//! a non-loopback address without API keys, checks `Authorization: Bearer <key>` on every
//! route but `/health` when keys are set, and bounds request bodies. A client that goes away
//! cancels its generation, which frees its slot. Generations run on blocking threads; the
//! engine batches concurrent requests on one model (its slots).

mod api;
mod metrics;

use api::{ApiError, ChatRequest, CompletionRequest, EmbeddingRequest};
use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;
use uml_core::chat::ChatTemplate;
use uml_core::manager::{Manager, ManagerOptions};
use uml_core::options::{LoadOptions, LoraAdapter};
use uml_core::{CancelToken, Error, ErrorKind, Model, RemoteEndpoint};

/// `uml serve`'s options.
#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// A TOML file of these options, keyed by their long names (`port = 8080`,
    /// `model = ["id=path"]`, `api-key = ["..."]`, ...); options on the command line win over
    /// it, and lists add to it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// A model to serve, as ID=PATH (a GGUF file or a Hugging Face folder); repeatable.
    #[arg(long = "model", value_name = "ID=PATH")]
    pub models: Vec<String>,
    /// A folder whose models (GGUF files, Hugging Face folders) are served by file or folder
    /// name; repeatable. With folders given, --model paths must lie inside them.
    #[arg(long = "model-dir", value_name = "DIR")]
    pub model_dirs: Vec<PathBuf>,
    /// A draft model for the --model ID (speculative decoding: the same vocabulary, faster
    /// generation, the same greedy text), as ID=FILE; requests may set `draft_max`,
    /// `draft_min`, `draft_p_min` and `draft_margin_min`.
    #[arg(long = "draft", value_name = "ID=FILE")]
    pub drafts: Vec<String>,
    /// Draft for the --model ID with its own multi-token-prediction heads (Qwen3.5, GLM-4.5
    /// and DeepSeek-V3 GGUFs carry them): the same text, faster; repeatable.
    #[arg(long = "mtp", value_name = "ID")]
    pub mtp: Vec<String>,
    /// A LoRA adapter (GGUF) for the --model ID, on at SCALE (default 1) unless a request's
    /// `lora` (`[{"name", "scale"}]`, names: the file names without .gguf) chooses; repeatable.
    #[arg(long = "lora", value_name = "ID=FILE[:SCALE]")]
    pub loras: Vec<String>,
    /// A model served by another OpenAI-compatible server (vLLM, llama-server, Ollama, another
    /// uml serve), as ID=URL#MODEL (`far=http://10.0.0.5:8080/v1#llama`); repeatable.
    #[arg(long = "remote", value_name = "ID=URL#MODEL")]
    pub remotes: Vec<String>,
    /// Where to serve a model from when its own file fails to load, as ID=URL#MODEL;
    /// repeatable.
    #[arg(long = "fallback", value_name = "ID=URL#MODEL")]
    pub fallbacks: Vec<String>,
    /// The key sent to remote endpoints (also read from UML_REMOTE_API_KEY).
    #[arg(long, value_name = "KEY")]
    pub remote_api_key: Option<String>,
    /// The address to listen on. Anything but a loopback address needs --api-key.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// The port (0: any free one; the address is printed on start).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// An API key clients must send as `Authorization: Bearer KEY`; repeatable. Also read,
    /// comma-separated, from UML_API_KEYS.
    #[arg(long = "api-key", value_name = "KEY")]
    pub api_keys: Vec<String>,
    /// The largest request body in bytes.
    #[arg(long, default_value_t = 4 << 20)]
    pub max_body_bytes: usize,
    /// The memory the loaded models may take together, in MiB (default: 80% of the RAM
    /// available at start); loading past it unloads the least recently used idle models.
    #[arg(long, value_name = "MIB")]
    pub memory_budget_mib: Option<u64>,
    /// Unload a model idle for this many seconds (default: keep it until evicted).
    #[arg(long, value_name = "SECONDS")]
    pub keep_alive: Option<u64>,
    /// Context size per slot for every model (default: the model's own, capped by memory).
    #[arg(long)]
    pub ctx: Option<u32>,
    /// CPU threads per model (default: physical cores).
    #[arg(short = 't', long)]
    pub threads: Option<u32>,
    /// Concurrent generations per model (its slots; default: up to 4, fewer when memory is
    /// short). More requests wait in line.
    #[arg(long)]
    pub parallel: Option<u32>,
    /// Requests waiting per model beyond its slots; one more gets 429.
    #[arg(long)]
    pub max_queued: Option<u32>,
    /// Requests per minute each API key (or, without keys, each client address) may make;
    /// more get 429 with Retry-After. 0: no limit.
    #[arg(long, default_value_t = 0)]
    pub rate_limit: u32,
    /// On Ctrl-C or SIGTERM, the seconds running requests get to finish before they are
    /// cancelled.
    #[arg(long, default_value_t = 10)]
    pub shutdown_timeout: u64,
}

struct AppState {
    manager: Manager,
    metrics: metrics::Metrics,
    /// Whether clients may register models by path (only inside --model-dir folders).
    paths_allowed: bool,
    /// How models are loaded (the command line's --ctx, --threads, ...).
    load_options: LoadOptions,
    limiter: RateLimiter,
    /// The cancel tokens of running generations, so shutdown can stop them.
    running: parking_lot::Mutex<std::collections::HashMap<u64, CancelToken>>,
    keys: Vec<String>,
    max_body: usize,
    started: u64,
}

/// Start serving and block until Ctrl-C or SIGTERM; then stop accepting, cancel what runs
/// and unload.
pub fn run(args: ServeArgs) -> Result<(), Error> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::internal(format!("cannot start the server runtime: {e}")))?;
    runtime.block_on(serve(args))
}

async fn serve(args: ServeArgs) -> Result<(), Error> {
    let mut keys = args.api_keys.clone();
    if let Ok(env) = std::env::var("UML_API_KEYS") {
        keys.extend(
            env.split(',')
                .map(str::trim)
                .filter(|k| !k.is_empty())
                .map(String::from),
        );
    }
    if keys.iter().any(|k| k.len() < 8) {
        return Err(Error::invalid_argument(
            "--api-key: use keys of at least 8 characters",
        ));
    }
    let ip: std::net::IpAddr = args
        .host
        .parse()
        .map_err(|_| Error::invalid_argument(format!("--host {}: not an IP address", args.host)))?;
    if !ip.is_loopback() && keys.is_empty() {
        return Err(Error::invalid_argument(format!(
            "--host {ip} would serve other machines without API keys; pass --api-key (or \
             UML_API_KEYS), or bind a loopback address"
        )));
    }
    let manager = Manager::new(ManagerOptions {
        memory_budget_bytes: args.memory_budget_mib.map(|m| m << 20),
        keep_alive: args.keep_alive.map(Duration::from_secs),
        folders: args.model_dirs.clone(),
    })?;
    let options = LoadOptions {
        n_ctx: args.ctx,
        n_threads: args.threads,
        max_parallel: args.parallel,
        max_queued: args.max_queued,
        ..LoadOptions::default()
    };
    options.validate()?;
    for spec in &args.models {
        let (id, path) = spec
            .split_once('=')
            .ok_or_else(|| Error::invalid_argument(format!("--model {spec}: expected ID=PATH")))?;
        let lora = lora_adapters(&args.loras, id)?;
        let draft_model = args
            .drafts
            .iter()
            .filter_map(|d| d.split_once('='))
            .find(|(for_id, _)| *for_id == id)
            .map(|(_, file)| PathBuf::from(file));
        manager.register(
            id,
            path,
            LoadOptions {
                lora,
                draft_model,
                mtp: args.mtp.iter().any(|m| m == id),
                ..options.clone()
            },
        )?;
    }
    // Whether a --model ID=PATH names `id` (what --mtp, --lora and --draft apply to).
    let has_model = |id: &str| {
        args.models
            .iter()
            .any(|m| m.split_once('=').is_some_and(|(m, _)| m == id))
    };
    for id in &args.mtp {
        if !has_model(id) {
            return Err(Error::invalid_argument(format!(
                "--mtp {id}: no --model {id}=PATH to apply it to"
            )));
        }
    }
    for (flag, specs) in [("lora", &args.loras), ("draft", &args.drafts)] {
        for spec in specs {
            let Some((id, _)) = spec.split_once('=') else {
                return Err(Error::invalid_argument(format!(
                    "--{flag} {spec}: expected ID=FILE"
                )));
            };
            if !has_model(id) {
                return Err(Error::invalid_argument(format!(
                    "--{flag} {spec}: no --model {id}=PATH to apply it to"
                )));
            }
        }
    }
    manager.scan(&options)?;
    let remote_key = args
        .remote_api_key
        .clone()
        .or_else(|| std::env::var("UML_REMOTE_API_KEY").ok());
    let endpoint_of = |flag: &str, spec: &str| -> Result<(String, RemoteEndpoint), Error> {
        let (id, endpoint) = spec.split_once('=').ok_or_else(|| {
            Error::invalid_argument(format!("--{flag} {spec}: expected ID=URL#MODEL"))
        })?;
        Ok((
            id.to_string(),
            RemoteEndpoint::parse(endpoint, remote_key.clone())?,
        ))
    };
    for spec in &args.remotes {
        let (id, endpoint) = endpoint_of("remote", spec)?;
        manager.register_remote(&id, endpoint, options.clone())?;
    }
    for spec in &args.fallbacks {
        let (id, endpoint) = endpoint_of("fallback", spec)?;
        manager.set_fallback(&id, endpoint)?;
    }
    if manager.list().is_empty() {
        return Err(Error::invalid_argument(
            "no models to serve: pass --model ID=PATH or --model-dir DIR",
        ));
    }
    let state = Arc::new(AppState {
        manager,
        metrics: metrics::Metrics::default(),
        paths_allowed: !args.model_dirs.is_empty(),
        load_options: options.clone(),
        limiter: RateLimiter::new(args.rate_limit),
        running: Default::default(),
        keys,
        max_body: args.max_body_bytes,
        started: unix_now(),
    });
    let listener = tokio::net::TcpListener::bind(SocketAddr::new(ip, args.port))
        .await
        .map_err(|e| {
            Error::new(
                ErrorKind::Io,
                format!("cannot listen on {ip}:{}: {e}", args.port),
            )
        })?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::new(ErrorKind::Io, e.to_string()))?;
    // The first line of output: scripts and tests read the address from it.
    say(&format!("uml serve: listening on http://{addr}"));
    for m in state.manager.list() {
        say(&format!("  model {} ({})", m.id, m.path.display()));
    }
    let deadline = Duration::from_secs(args.shutdown_timeout);
    let on_stop = Arc::clone(&state);
    axum::serve(
        listener,
        router(Arc::clone(&state)).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        shutdown_signal().await;
        // No new connections from here; running requests get the deadline, then are
        // cancelled (their streams end with what they generated).
        tokio::spawn(async move {
            tokio::time::sleep(deadline).await;
            for token in on_stop.running.lock().values() {
                token.cancel();
            }
        });
    })
    .await
    .map_err(|e| Error::new(ErrorKind::Io, format!("the server failed: {e}")))?;
    for m in state.manager.list() {
        let _ = state.manager.unload(&m.id);
    }
    say("uml serve: stopped");
    Ok(())
}

/// A token bucket per client: `per_minute` requests a minute, in bursts of up to that many.
struct RateLimiter {
    per_minute: u32,
    buckets: parking_lot::Mutex<std::collections::HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    fn new(per_minute: u32) -> Self {
        RateLimiter {
            per_minute,
            buckets: Default::default(),
        }
    }

    /// `Ok` to go ahead, else the seconds until the client may try again.
    fn admit(&self, client: &str) -> Result<(), u64> {
        if self.per_minute == 0 {
            return Ok(());
        }
        let capacity = f64::from(self.per_minute);
        let per_second = capacity / 60.0;
        let mut buckets = self.buckets.lock();
        let now = Instant::now();
        let (tokens, at) = buckets.entry(client.to_string()).or_insert((capacity, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * per_second).min(capacity);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            return Ok(());
        }
        Err(((1.0 - *tokens) / per_second).ceil().max(1.0) as u64)
    }
}

fn router(state: Arc<AppState>) -> Router {
    let api = Router::new()
        .route("/v1/models", get(list_models))
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/completions", post(completions))
        .route("/v1/embeddings", post(embeddings))
        .route("/metrics", get(render_metrics))
        .route("/v1/models/load", post(load_model))
        .route("/v1/models/unload", post(unload_model))
        .route("/v1/models/register", post(register_model))
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            require_key,
        ));
    Router::new()
        .route(
            "/health",
            get(|| async { axum::Json(json!({"status": "ok"})) }),
        )
        .route("/", get(playground))
        .merge(api)
        .fallback(|| async {
            error_response(&ApiError {
                status: 404,
                message: "no such route; see GET /v1/models".into(),
                kind: "invalid_request_error",
                param: None,
                code: Some("not_found"),
            })
        })
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            record,
        ))
        .with_state(state)
}

/// The chat playground: one static page from the binary; it talks to this server only (its
/// content security policy allows nothing else), with the API key the user types into it.
async fn playground() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; connect-src 'self'; script-src 'unsafe-inline'; \
                 style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'",
            ),
        ],
        include_str!("playground.html"),
    )
        .into_response()
}

/// Count every request by route and status, with its latency.
async fn record(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("other", MatchedPath::as_str)
        .to_string();
    let start = Instant::now();
    let response = next.run(request).await;
    state
        .metrics
        .request(&route, response.status().as_u16(), start.elapsed());
    response
}

async fn render_metrics(State(state): State<Arc<AppState>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(&state.manager),
    )
        .into_response()
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    say("uml serve: shutting down");
}

/// A line on stdout; a closed stdout (the reader went away) does not stop the server.
fn say(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn error_response(e: &ApiError) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, axum::Json(e.body())).into_response();
    if e.status == 429 {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        error_response(&self)
    }
}

/// Constant-time comparison, so a key cannot be guessed from response times.
fn same_key(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

async fn require_key(
    State(state): State<Arc<AppState>>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .map(str::to_string);
    let client = match (&given, state.keys.is_empty()) {
        (_, true) => peer.ip().to_string(),
        (Some(key), false) if state.keys.iter().any(|k| same_key(k, key)) => format!("key:{key}"),
        _ => {
            return error_response(&ApiError {
                status: 401,
                message: "missing or wrong API key: send Authorization: Bearer <key>".into(),
                kind: "invalid_request_error",
                param: None,
                code: Some("invalid_api_key"),
            })
        }
    };
    if let Err(retry) = state.limiter.admit(&client) {
        let mut response = error_response(&ApiError {
            status: 429,
            message: format!(
                "rate limit of {} requests a minute reached; retry in {retry} s",
                state.limiter.per_minute
            ),
            kind: "rate_limit_error",
            param: None,
            code: Some("rate_limit_exceeded"),
        });
        if let Ok(v) = HeaderValue::from_str(&retry.to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return response;
    }
    next.run(request).await
}

/// The body as JSON of type `T`, within the size limit; errors in OpenAI's shape.
async fn json_body<T: serde::de::DeserializeOwned>(
    state: &AppState,
    body: Body,
) -> Result<T, ApiError> {
    let bytes: Bytes = axum::body::to_bytes(body, state.max_body)
        .await
        .map_err(|_| ApiError {
            status: 413,
            message: format!(
                "the request body is over the limit of {} bytes",
                state.max_body
            ),
            kind: "invalid_request_error",
            param: None,
            code: Some("request_too_large"),
        })?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::invalid(format!("invalid JSON body: {e}"), None))
}

async fn list_models(State(state): State<Arc<AppState>>) -> axum::Json<Value> {
    let data: Vec<Value> = state
        .manager
        .list()
        .into_iter()
        .map(|m| {
            json!({
                "id": m.id,
                "object": "model",
                "created": state.started,
                "owned_by": "uml",
                "state": m.state,
                "backend": m.backend,
                "memory_bytes": m.memory_bytes,
            })
        })
        .collect();
    axum::Json(json!({"object": "list", "data": data}))
}

/// A running generation's cancel token, registered for shutdown; cancelled when dropped, so
/// a handler dropped because its client went away stops the generation it started.
struct CancelOnDrop {
    state: Arc<AppState>,
    id: u64,
    token: CancelToken,
}

impl CancelOnDrop {
    fn new(state: &Arc<AppState>, token: &CancelToken) -> Self {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        state.running.lock().insert(id, token.clone());
        CancelOnDrop {
            state: Arc::clone(state),
            id,
            token: token.clone(),
        }
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.token.cancel();
        self.state.running.lock().remove(&self.id);
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn request_id(prefix: &str) -> String {
    format!(
        "{prefix}-{:x}{:06x}",
        unix_now(),
        NEXT_ID.fetch_add(1, Ordering::Relaxed)
    )
}

/// The model for a request, loaded if needed (off the async threads: a load takes seconds).
async fn model_for(state: &Arc<AppState>, name: &str) -> Result<Arc<Model>, ApiError> {
    let state = Arc::clone(state);
    let name = name.to_string();
    tokio::task::spawn_blocking(move || state.manager.get(&name))
        .await
        .map_err(|e| ApiError::from(Error::internal(format!("model load task: {e}"))))?
        .map_err(ApiError::from)
}

/// What a request generates from.
enum Job {
    Chat(Vec<uml_core::ChatMessage>),
    Prompt(String),
}

async fn chat_completions(State(state): State<Arc<AppState>>, body: Body) -> Response {
    let result = async {
        let req: ChatRequest = json_body(&state, body).await?;
        let messages = ChatTemplate::messages_from_json(&req.messages.to_string())
            .map_err(|e| ApiError::invalid(e.message().to_string(), Some("messages")))?;
        Ok::<_, ApiError>((req.common, Job::Chat(messages)))
    }
    .await;
    match result {
        Ok((common, job)) => generate(state, common, job, "chatcmpl").await,
        Err(e) => e.into_response(),
    }
}

async fn completions(State(state): State<Arc<AppState>>, body: Body) -> Response {
    let result = async {
        let req: CompletionRequest = json_body(&state, body).await?;
        let prompt = req.prompt()?;
        Ok::<_, ApiError>((req.common, Job::Prompt(prompt)))
    }
    .await;
    match result {
        Ok((common, job)) => generate(state, common, job, "cmpl").await,
        Err(e) => e.into_response(),
    }
}

async fn generate(state: Arc<AppState>, common: api::Common, job: Job, prefix: &str) -> Response {
    let params = match common.params() {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let model = match model_for(&state, &common.model).await {
        Ok(m) => m,
        Err(e) => return e.into_response(),
    };
    let id = request_id(prefix);
    let created = unix_now();
    let chat = matches!(job, Job::Chat(_));
    let cancel = CancelToken::new();
    let started = Instant::now();
    if !common.stream {
        let guard = CancelOnDrop::new(&state, &cancel);
        let (task_state, name) = (Arc::clone(&state), common.model.clone());
        let done = tokio::task::spawn_blocking(move || {
            let run = Run {
                model: &model,
                name: &name,
                metrics: &task_state.metrics,
                started,
            };
            run.job(&job, &params, &cancel, &mut |_| true)
        })
        .await;
        drop(guard);
        return match done {
            Ok(Ok(c)) if chat => {
                axum::Json(api::chat_completion(&id, &common.model, created, &c)).into_response()
            }
            Ok(Ok(c)) => {
                axum::Json(api::text_completion(&id, &common.model, created, &c)).into_response()
            }
            Ok(Err(e)) => ApiError::from(e).into_response(),
            Err(e) => {
                ApiError::from(Error::internal(format!("generation task: {e}"))).into_response()
            }
        };
    }

    // Streamed: pieces go through a channel; a closed channel (the client went away) stops
    // the generation at its next piece, and the guard cancels it before one. The response
    // begins only with the first event, so a request refused before any text (busy,
    // prompt too long) gets its own HTTP status, not a 200 with an error event inside.
    let (tx, mut rx) = mpsc::channel::<Result<Value, ApiError>>(64);
    let include_usage = common.include_usage();
    let model_name = common.model.clone();
    let guard = CancelOnDrop::new(&state, &cancel);
    tokio::task::spawn_blocking(move || {
        let run = Run {
            model: &model,
            name: &model_name,
            metrics: &state.metrics,
            started,
        };
        let chunk = |text: &str, finish: Option<&str>| {
            if chat {
                let delta = if finish.is_some() {
                    json!({})
                } else {
                    json!({"content": text})
                };
                api::chat_chunk(&id, &model_name, created, delta, finish)
            } else {
                api::text_chunk(&id, &model_name, created, text, finish)
            }
        };
        // A chat stream opens with the assistant's role, once the generation has begun.
        let mut role_sent = !chat;
        let mut send = |event: Value| {
            if !std::mem::replace(&mut role_sent, true) {
                let role = json!({"role": "assistant", "content": ""});
                let first = api::chat_chunk(&id, &model_name, created, role, None);
                if tx.blocking_send(Ok(first)).is_err() {
                    return false;
                }
            }
            tx.blocking_send(Ok(event)).is_ok()
        };
        let done = run.job(&job, &params, &cancel, &mut |piece| {
            send(chunk(piece, None))
        });
        match done {
            Ok(c) => {
                send(chunk("", Some(api::finish_reason(c.finish_reason))));
                if include_usage {
                    let mut last = chunk("", None);
                    last["choices"] = json!([]);
                    last["usage"] = api::usage(&c.usage);
                    send(last);
                }
            }
            Err(e) => {
                let _ = tx.blocking_send(Err(ApiError::from(e)));
            }
        }
    });
    let first = match rx.recv().await {
        Some(Ok(event)) => event,
        Some(Err(e)) => return e.into_response(),
        None => {
            return ApiError::from(Error::internal("the generation ended without a response"))
                .into_response()
        }
    };
    let events = futures_stream(first, rx, guard);
    Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// One generation of a request, with what /metrics counts of it.
struct Run<'a> {
    model: &'a Model,
    /// The model's name in the request (the metrics' label).
    name: &'a str,
    metrics: &'a metrics::Metrics,
    /// When the request arrived (time to first token counts from it).
    started: Instant,
}

impl Run<'_> {
    /// Run `job`, passing its text to `sink`; records the time to its first text and its
    /// tokens.
    fn job(
        &self,
        job: &Job,
        params: &uml_core::GenerateParams,
        cancel: &CancelToken,
        sink: &mut dyn FnMut(&str) -> bool,
    ) -> Result<uml_core::Completion, Error> {
        let mut first = true;
        let sink = &mut |piece: &str| {
            if std::mem::take(&mut first) {
                self.metrics.first_token(self.name, self.started.elapsed());
            }
            sink(piece)
        };
        let done = match job {
            Job::Chat(m) => self.model.chat(m, params, Some(cancel), sink),
            Job::Prompt(p) => self.model.generate(p, params, Some(cancel), sink),
        };
        if let Ok(c) = &done {
            let evaluated = c.usage.prompt_tokens - c.usage.cached_prompt_tokens;
            self.metrics
                .tokens(self.name, evaluated, c.usage.completion_tokens);
        }
        done
    }
}

/// The SSE events of a streamed generation (`first`, then the rest; an error after text is
/// an error event), then `[DONE]`; holds the cancel guard, so the generation stops when the
/// response is dropped.
fn futures_stream(
    first: Value,
    rx: mpsc::Receiver<Result<Value, ApiError>>,
    guard: CancelOnDrop,
) -> impl futures_util::Stream<Item = Result<Event, std::convert::Infallible>> {
    use futures_util::StreamExt;
    let rest = tokio_stream::wrappers::ReceiverStream::new(rx)
        .map(|item| item.unwrap_or_else(|e| e.body()));
    let chunks = futures_util::stream::once(async move { first })
        .chain(rest)
        .map(|v| Ok(Event::default().data(v.to_string())));
    let done = futures_util::stream::once(async move {
        drop(guard);
        Ok(Event::default().data("[DONE]"))
    });
    chunks.chain(done)
}

async fn embeddings(State(state): State<Arc<AppState>>, body: Body) -> Response {
    let req: EmbeddingRequest = match json_body(&state, body).await {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let texts = match req.texts() {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    // An unknown encoding is refused before any work.
    if let Err(e) = req.encode(&[]) {
        return e.into_response();
    }
    let model = match model_for(&state, &req.model).await {
        Ok(m) => m,
        Err(e) => return e.into_response(),
    };
    let cancel = CancelToken::new();
    let guard = CancelOnDrop::new(&state, &cancel);
    let done = tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let tokens: usize = refs
            .iter()
            .map(|t| model.tokenize(t, true).map_or(0, |v| v.len()))
            .sum();
        model.embed(&refs, Some(&cancel)).map(|v| (v, tokens))
    })
    .await;
    drop(guard);
    match done {
        Ok(Ok((vectors, tokens))) => {
            let mut data = Vec::with_capacity(vectors.len());
            for (i, v) in vectors.iter().enumerate() {
                match req.encode(v) {
                    Ok(e) => data.push(json!({"object": "embedding", "index": i, "embedding": e})),
                    Err(e) => return e.into_response(),
                }
            }
            axum::Json(json!({
                "object": "list",
                "data": data,
                "model": req.model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }))
            .into_response()
        }
        Ok(Err(e)) => ApiError::from(e).into_response(),
        Err(e) => ApiError::from(Error::internal(format!("embedding task: {e}"))).into_response(),
    }
}

#[derive(serde::Deserialize)]
struct ModelRef {
    model: String,
}

#[derive(serde::Deserialize)]
struct Registration {
    id: String,
    path: PathBuf,
}

/// Load a registered model now (rather than on its first request).
async fn load_model(State(state): State<Arc<AppState>>, body: Body) -> Response {
    let req: ModelRef = match json_body(&state, body).await {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    match model_for(&state, &req.model).await {
        Ok(model) => axum::Json(json!({
            "id": req.model,
            "state": "loaded",
            "backend": model.backend(),
            "memory_bytes": model.memory().host_bytes,
        }))
        .into_response(),
        Err(e) => e.into_response(),
    }
}

/// Unload a model: its memory is freed now, or when the requests running on it end.
async fn unload_model(State(state): State<Arc<AppState>>, body: Body) -> Response {
    let req: ModelRef = match json_body(&state, body).await {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    match state.manager.unload(&req.model) {
        Ok(freed) => axum::Json(json!({"id": req.model, "freed_bytes": freed})).into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// Register a model by path (inside the --model-dir folders only), or hot-swap an id to a new
/// file: requests running on the old model finish on it.
async fn register_model(State(state): State<Arc<AppState>>, body: Body) -> Response {
    let req: Registration = match json_body(&state, body).await {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let forbidden = |message: String| ApiError {
        status: 403,
        message,
        kind: "invalid_request_error",
        param: Some("path".into()),
        code: Some("path_not_allowed"),
    };
    if !state.paths_allowed {
        return forbidden(
            "models cannot be registered by path: start uml serve with --model-dir DIR to allow \
             paths inside DIR"
                .into(),
        )
        .into_response();
    }
    let path = match state.manager.allowed_path(&req.path) {
        Ok(p) => p,
        Err(e) if e.kind() == ErrorKind::InvalidArgument => {
            return forbidden(e.message().to_string()).into_response()
        }
        Err(e) => return ApiError::from(e).into_response(),
    };
    let swap = state.manager.list().iter().any(|m| m.id == req.id);
    let task_state = Arc::clone(&state);
    let id = req.id.clone();
    let done = tokio::task::spawn_blocking(move || {
        if swap {
            task_state
                .manager
                .swap(&id, &path, task_state.load_options.clone())
        } else {
            task_state
                .manager
                .register(&id, &path, task_state.load_options.clone())
        }
    })
    .await;
    match done {
        Ok(Ok(())) => axum::Json(json!({"id": req.id, "swapped": swap})).into_response(),
        Ok(Err(e)) => ApiError::from(e).into_response(),
        Err(e) => ApiError::from(Error::internal(format!("register task: {e}"))).into_response(),
    }
}

/// The command-line arguments a `--config` TOML file stands for: each key a long option (`_`
/// or `-`), each value its argument, a list repeating the option, `true` a bare flag.
pub fn config_args(path: &std::path::Path) -> Result<Vec<String>, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::new(
            ErrorKind::NotFound,
            format!("--config {}: {e}", path.display()),
        )
    })?;
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        Error::invalid_argument(format!("--config {}: {}", path.display(), e.message()))
    })?;
    let mut args = Vec::new();
    for (key, value) in table {
        if key == "config" {
            return Err(Error::invalid_argument(format!(
                "--config {}: a config file cannot name another",
                path.display()
            )));
        }
        let flag = format!("--{}", key.replace('_', "-"));
        let values = match value {
            toml::Value::Array(items) => items,
            other => vec![other],
        };
        for v in values {
            match v {
                toml::Value::String(s) => args.extend([flag.clone(), s]),
                toml::Value::Integer(n) => args.extend([flag.clone(), n.to_string()]),
                toml::Value::Float(x) => args.extend([flag.clone(), x.to_string()]),
                toml::Value::Boolean(true) => args.push(flag.clone()),
                toml::Value::Boolean(false) => {}
                other => {
                    return Err(Error::invalid_argument(format!(
                        "--config {}: {key} is a {}: use a string, number, boolean or a list \
                         of them",
                        path.display(),
                        other.type_str()
                    )))
                }
            }
        }
    }
    Ok(args)
}

/// The adapters of `--lora ID=FILE[:SCALE]` for the model `id`.
fn lora_adapters(specs: &[String], id: &str) -> Result<Vec<LoraAdapter>, Error> {
    let mut adapters = Vec::new();
    for spec in specs {
        let Some((for_id, adapter)) = spec.split_once('=') else {
            return Err(Error::invalid_argument(format!(
                "--lora {spec}: expected ID=FILE[:SCALE]"
            )));
        };
        if for_id != id {
            continue;
        }
        adapters.push(crate::scaled_lora(adapter).unwrap_or_else(|| LoraAdapter::new(adapter)));
    }
    Ok(adapters)
}
