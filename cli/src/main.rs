//! `uml`: inspect, estimate and run local models from the command line, and serve them over
//! OpenAI's HTTP API.

mod serve;

use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use uml_core::bench::BenchOptions;
use uml_core::chat::ChatMessage;
use uml_core::options::{GpuLayers, KvCacheType, LoadOptions, LoraAdapter};
use uml_core::sampling::GenerateParams;
use uml_core::{Error, LoadStage, Model};

#[derive(Parser)]
#[command(
    name = "uml",
    version,
    about = "Universal Model Loader: inspect and run local AI models",
    // A later option wins over an earlier one: `uml serve --config` puts the file's first.
    args_override_self = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show what a model file or folder is (reads headers only).
    Inspect {
        path: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Estimate the memory a model needs at a context size.
    Estimate {
        path: PathBuf,
        /// Context size in tokens (default: the model's).
        #[arg(long)]
        ctx: Option<u32>,
        /// KV cache type: f32, f16, q8_0 or q4_0.
        #[arg(long, default_value = "f16")]
        kv_cache_type: String,
        /// Layers to offload to a GPU.
        #[arg(long, default_value_t = 0)]
        gpu_layers: u32,
        /// Backend whose memory model to use: auto, llamacpp or candle.
        #[arg(long, default_value = "auto")]
        backend: String,
        /// Generation slots, each with --ctx KV cells (llama.cpp allocates them all at load).
        #[arg(long, default_value_t = 1)]
        parallel: u32,
        /// A draft model for speculative decoding, loaded beside the model: its memory is
        /// counted too.
        #[arg(long)]
        draft_model: Option<PathBuf>,
        /// Drafting with the model's own prediction heads: their contexts are counted too.
        #[arg(long, conflicts_with = "draft_model")]
        mtp: bool,
        /// LoRA adapters loaded with the model: their memory is counted too.
        #[command(flatten)]
        lora: LoraArgs,
        #[arg(long)]
        json: bool,
    },
    /// Serve models over OpenAI's HTTP API (chat, completions, embeddings, models).
    Serve(serve::ServeArgs),
    /// Download a model from the Hugging Face Hub (HF_ENDPOINT, HF_TOKEN): a GGUF repo's
    /// file by quantization (owner/name:Q4_K_M) or a Hugging Face folder; resumable, each file
    /// checked against the hub's hash. Prints the path to load.
    Pull {
        /// owner/name or owner/name:QUANT (an hf.co/ prefix is fine).
        spec: String,
        /// The folder to put it in (default: $UML_MODELS, else ~/.cache/uml/models).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// A branch, tag or commit.
        #[arg(long)]
        revision: Option<String>,
        /// Fetch exactly this repo file (repeatable) instead of the chosen ones.
        #[arg(long = "file")]
        files: Vec<String>,
        /// Print what was pulled as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show the CPU, memory and GPUs uml sees.
    Hw {
        #[arg(long)]
        json: bool,
    },
    /// Generate a continuation of a prompt.
    Run {
        path: PathBuf,
        prompt: String,
        #[command(flatten)]
        load: LoadArgs,
        #[command(flatten)]
        sampling: SamplingArgs,
        /// Print text as it is generated.
        #[arg(long)]
        stream: bool,
        /// Print the result (text, finish reason, usage) as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Chat interactively using the model's chat template (an empty line or EOF ends it).
    Chat {
        path: PathBuf,
        /// A system prompt.
        #[arg(long)]
        system: Option<String>,
        #[command(flatten)]
        load: LoadArgs,
        #[command(flatten)]
        sampling: SamplingArgs,
    },
    /// Embed texts (one vector per text).
    Embed {
        path: PathBuf,
        #[arg(required = true)]
        texts: Vec<String>,
        #[command(flatten)]
        load: LoadArgs,
        /// Keep raw (not L2-normalised) vectors.
        #[arg(long)]
        no_normalize: bool,
        #[arg(long)]
        json: bool,
    },
    /// Convert a GGUF to a Hugging Face folder (F32 safetensors + config + tokenizer, run by
    /// the candle backend), a GGUF or Hugging Face folder to a GGUF of the given type (run
    /// by llama.cpp), or a Hugging Face PEFT LoRA adapter folder to a GGUF LoRA adapter
    /// (`--to gguf --base MODEL`). Never overwrites.
    Convert {
        src: PathBuf,
        dst: PathBuf,
        /// "hf" (a Hugging Face folder) or "gguf".
        #[arg(long)]
        to: String,
        /// Element type of a GGUF destination: f32, f16, q8_0 or q4_0.
        #[arg(long, default_value = "f32")]
        r#type: String,
        /// For a PEFT adapter: the model it was trained on (a GGUF file or Hugging Face
        /// folder; only its architecture and head counts are read).
        #[arg(long)]
        base: Option<PathBuf>,
    },
    /// Measure prompt (pp) and generation (tg) tokens/s, as llama-bench does.
    Bench {
        path: PathBuf,
        #[arg(short = 'p', long, default_value_t = 512)]
        n_prompt: u32,
        #[arg(short = 'n', long, default_value_t = 128)]
        n_gen: u32,
        #[arg(short = 'r', long, default_value_t = 5)]
        repetitions: u32,
        #[command(flatten)]
        load: LoadArgs,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
struct LoadArgs {
    /// Context size in tokens. Default for `run`: the prompt plus --max-tokens, rounded up to a
    /// multiple of 256 (a one-shot job needs no more); for `chat`, `embed` and `bench`: the
    /// model's own, capped by memory.
    #[arg(long)]
    ctx: Option<u32>,
    /// CPU threads (default: physical cores).
    #[arg(short = 't', long)]
    threads: Option<u32>,
    /// Prompt batch size.
    #[arg(long, default_value_t = 512)]
    batch: u32,
    /// Layers on the GPU: a number or "auto".
    #[arg(long, default_value = "auto")]
    gpu_layers: String,
    /// KV cache type: f32, f16, q8_0 or q4_0.
    #[arg(long, default_value = "f16")]
    kv_cache_type: String,
    /// Engine: auto (the preferred one for the format, falling back to the next), llamacpp or
    /// candle.
    #[arg(long, default_value = "auto")]
    backend: String,
    /// Weight type of a Hugging Face folder in candle: f32 (the CPU default), f16 or bf16.
    #[arg(long)]
    dtype: Option<String>,
    /// Generation slots, each with --ctx KV cells (default 1: the CLI runs one generation at
    /// a time; the library's default is up to 4).
    #[arg(long, default_value_t = 1)]
    parallel: u32,
    /// A draft model of the same vocabulary for speculative decoding (it proposes tokens the
    /// model verifies in one decode: faster, the same greedy text).
    #[arg(long, value_name = "FILE")]
    draft_model: Option<PathBuf>,
    /// Draft with the model's own multi-token-prediction heads (Qwen3.5, GLM-4.5 and
    /// DeepSeek-V3 GGUFs carry them; `uml inspect` shows mtp_layers): faster, the same text.
    #[arg(long, conflicts_with = "draft_model")]
    mtp: bool,
    #[command(flatten)]
    lora: LoraArgs,
    /// Hide the loading progress bar.
    #[arg(long)]
    quiet: bool,
}

/// The LoRA adapters to load with a model.
#[derive(Args)]
struct LoraArgs {
    /// A LoRA adapter to apply at scale 1: a GGUF file or a Hugging Face PEFT adapter folder
    /// (repeatable; several run together).
    #[arg(long = "lora", value_name = "FILE")]
    lora: Vec<PathBuf>,
    /// A LoRA adapter at a scale, as FILE:SCALE (repeatable).
    #[arg(long = "lora-scaled", value_name = "FILE:SCALE")]
    lora_scaled: Vec<String>,
}

impl LoraArgs {
    fn adapters(&self) -> Result<Vec<LoraAdapter>, Error> {
        let mut adapters: Vec<LoraAdapter> = self.lora.iter().map(LoraAdapter::new).collect();
        for arg in &self.lora_scaled {
            let adapter = scaled_lora(arg).ok_or_else(|| {
                Error::invalid_argument(format!(
                    "--lora-scaled {arg:?}: expected FILE:SCALE, e.g. adapter.gguf:0.5"
                ))
            })?;
            adapters.push(adapter);
        }
        Ok(adapters)
    }
}

#[derive(Args)]
struct SamplingArgs {
    #[arg(long, default_value_t = 256)]
    max_tokens: u32,
    /// 0 = greedy.
    #[arg(long, default_value_t = 0.8)]
    temperature: f32,
    #[arg(long, default_value_t = 40)]
    top_k: i32,
    #[arg(long, default_value_t = 0.95)]
    top_p: f32,
    #[arg(long, default_value_t = 0.05)]
    min_p: f32,
    #[arg(long, default_value_t = 1.0)]
    repeat_penalty: f32,
    #[arg(long)]
    seed: Option<u32>,
    /// Stop when this text is generated (repeatable); it is not printed.
    #[arg(long)]
    stop: Vec<String>,
    /// A grammar file constraining the output: GBNF (llama.cpp's syntax) or llguidance Lark.
    #[arg(long)]
    grammar_file: Option<PathBuf>,
    /// A JSON schema file constraining the output.
    #[arg(long)]
    json_schema: Option<PathBuf>,
    /// With --draft-model: the most tokens drafted per step (0: no drafting).
    #[arg(long, default_value_t = 16)]
    draft_max: u32,
    /// With --draft-model: drafts shorter than this are not verified.
    #[arg(long, default_value_t = 0)]
    draft_min: u32,
    /// With --draft-model: drafting stops at a token the draft gives less probability.
    #[arg(long, default_value_t = 0.0)]
    draft_p_min: f32,
    /// With --draft-model: drafting stops at a near-tie, a token leading the draft's
    /// runner-up by fewer logits (0: draft through ties).
    #[arg(long, default_value_t = uml_core::sampling::DEFAULT_DRAFT_MARGIN_MIN)]
    draft_margin_min: f32,
}

fn main() -> ExitCode {
    tune_openmp();
    // uml's own warnings (a context shrunk to fit, a GPU module passed over); RUST_LOG shows
    // more (RUST_LOG=llama_cpp_2=info: llama.cpp's log).
    uml_core::logging::init("uml_core=warn");
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

/// libgomp reads its spin policy from the environment once, when it loads (before `main`), so
/// the CLI re-executes itself once with uml's setting (`hardware::OPENMP_SPIN`) unless the
/// user chose one. Without it, a busy machine made llama.cpp's threads spin for seconds.
#[cfg(unix)]
fn tune_openmp() {
    use std::os::unix::process::CommandExt;
    let Some((key, value)) = uml_core::hardware::openmp_spin_setting() else {
        return;
    };
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    // `exec` returns only when it failed; the CLI then runs with libgomp's defaults.
    let _ = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env(key, value)
        .exec();
}

#[cfg(not(unix))]
fn tune_openmp() {}

fn parse_enum<T: serde::de::DeserializeOwned>(flag: &str, value: &str) -> Result<T, Error> {
    serde_json::from_value(serde_json::Value::String(value.to_string()))
        .map_err(|_| Error::invalid_argument(format!("--{flag}: invalid value '{value}'")))
}

fn read_file(flag: &str, path: &PathBuf) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(|e| {
        Error::invalid_argument(format!("--{flag}: cannot read {}: {e}", path.display()))
    })
}

impl LoadArgs {
    fn options(&self, embeddings: bool) -> Result<LoadOptions, Error> {
        let gpu_layers = match self.gpu_layers.as_str() {
            "auto" => GpuLayers::Auto,
            n => GpuLayers::Count(n.parse().map_err(|_| {
                Error::invalid_argument(format!(
                    "--gpu-layers: expected a number or \"auto\", got '{n}'"
                ))
            })?),
        };
        Ok(LoadOptions {
            n_ctx: self.ctx,
            n_threads: self.threads,
            n_batch: self.batch,
            n_ubatch: self.batch,
            gpu_layers,
            kv_cache_type: parse_enum::<KvCacheType>("kv-cache-type", &self.kv_cache_type)?,
            backend: parse_enum("backend", &self.backend)?,
            dtype: self
                .dtype
                .as_deref()
                .map(|d| parse_enum("dtype", d))
                .transpose()?,
            embeddings,
            max_parallel: Some(self.parallel),
            lora: self.lora.adapters()?,
            draft_model: self.draft_model.clone(),
            mtp: self.mtp,
            ..LoadOptions::default()
        })
    }

    fn load(&self, path: &PathBuf, options: &LoadOptions) -> Result<Model, Error> {
        if self.quiet {
            return Model::load(path, options, None);
        }
        let bar = ProgressBar::new(100).with_style(
            ProgressStyle::with_template("{msg:>8} [{bar:30}] {percent:>3}%")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_message("loading");
        let mut on_progress = |stage: LoadStage, fraction: f32| {
            if stage == LoadStage::Weights {
                bar.set_position((fraction * 100.0) as u64);
            }
            true
        };
        let model = Model::load(path, options, Some(&mut on_progress));
        bar.finish_and_clear();
        model
    }
}

impl SamplingArgs {
    fn params(&self) -> Result<GenerateParams, Error> {
        let params = GenerateParams {
            max_tokens: self.max_tokens,
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
            min_p: self.min_p,
            repeat_penalty: self.repeat_penalty,
            seed: self.seed,
            stop: self.stop.clone(),
            grammar: self
                .grammar_file
                .as_ref()
                .map(|p| read_file("grammar-file", p))
                .transpose()?,
            json_schema: match &self.json_schema {
                Some(p) => Some(serde_json::from_str(&read_file("json-schema", p)?)?),
                None => None,
            },
            draft_max: self.draft_max,
            draft_min: self.draft_min,
            draft_p_min: self.draft_p_min,
            draft_margin_min: self.draft_margin_min,
            ..GenerateParams::default()
        };
        params.validate()?;
        Ok(params)
    }
}

/// The LoRA adapter `FILE:SCALE` names (`--lora-scaled`, `uml serve --lora ID=FILE:SCALE`);
/// `None` without a number after the last ':'.
fn scaled_lora(spec: &str) -> Option<LoraAdapter> {
    let (file, scale) = spec.rsplit_once(':')?;
    Some(LoraAdapter {
        scale: scale.parse().ok()?,
        ..LoraAdapter::new(file)
    })
}

fn print_json(value: &impl serde::Serialize) -> Result<(), Error> {
    let text = serde_json::to_string_pretty(value).map_err(|e| Error::internal(e.to_string()))?;
    println!("{text}");
    Ok(())
}

fn gib(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= 1024.0 * 1024.0 * 1024.0 {
        format!("{:.2} GiB", b / (1024.0 * 1024.0 * 1024.0))
    } else {
        format!("{:.1} MiB", b / (1024.0 * 1024.0))
    }
}

fn run(command: Command) -> Result<(), Error> {
    match command {
        Command::Serve(args) => match &args.config {
            None => serve::run(args),
            Some(path) => {
                // The file's options go first, the command line's after them (and win).
                let mut argv = vec!["uml".to_string(), "serve".to_string()];
                argv.extend(serve::config_args(path)?);
                argv.extend(std::env::args().skip(2));
                match Cli::try_parse_from(argv) {
                    Ok(Cli {
                        command: Command::Serve(merged),
                    }) => serve::run(merged),
                    Ok(_) => Err(Error::internal("--config: not a serve command")),
                    Err(e) => Err(Error::invalid_argument(format!(
                        "--config {}: {}",
                        path.display(),
                        e.to_string().lines().next().unwrap_or_default()
                    ))),
                }
            }
        },
        Command::Pull {
            spec,
            dir,
            revision,
            files,
            json,
        } => {
            let dir = match dir {
                Some(dir) => dir,
                None => uml_core::pull::default_dir()?,
            };
            let options = uml_core::pull::PullOptions {
                revision,
                files,
                ..Default::default()
            };
            let bar = ProgressBar::new(0).with_style(
                ProgressStyle::with_template(
                    "{msg} [{bar:30}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            let pulled = uml_core::pull::pull(&spec, &dir, &options, None, &mut |p| {
                bar.set_length(p.total);
                bar.set_position(p.bytes);
                bar.set_message(p.file.to_string());
            });
            bar.finish_and_clear();
            let pulled = pulled?;
            if json {
                return print_json(&pulled);
            }
            eprintln!(
                "pulled {} at {} ({} downloaded, {} already there)",
                pulled.repo,
                &pulled.commit[..12],
                gib(pulled.downloaded_bytes),
                gib(pulled.reused_bytes)
            );
            println!("{}", pulled.path.display());
            Ok(())
        }
        Command::Convert {
            src,
            dst,
            to,
            r#type,
            base,
        } => {
            use uml_core::convert::{
                convert, is_peft_adapter, peft_to_gguf, Destination, GgufType, LoraBase,
            };
            if is_peft_adapter(&src) {
                let Some(base) = base else {
                    return Err(Error::invalid_argument(format!(
                        "{} is a PEFT LoRA adapter; name the model it was trained on with \
                         --base MODEL (a GGUF file or Hugging Face folder)",
                        src.display()
                    )));
                };
                if to != "gguf" {
                    return Err(Error::invalid_argument(
                        "a PEFT adapter converts to a GGUF LoRA adapter: use --to gguf",
                    ));
                }
                peft_to_gguf(
                    &src,
                    &LoraBase::of_model(&base)?,
                    &dst,
                    GgufType::parse(&r#type)?,
                )?;
                eprintln!("wrote {}", dst.display());
                return Ok(());
            }
            if base.is_some() {
                return Err(Error::invalid_argument(format!(
                    "--base is for PEFT adapter folders, and {} holds no adapter_config.json",
                    src.display()
                )));
            }
            let destination = match to.as_str() {
                "hf" => Destination::HuggingFace,
                "gguf" => Destination::Gguf(GgufType::parse(&r#type)?),
                other => {
                    return Err(Error::invalid_argument(format!(
                        "--to: '{other}' is not a destination format; use hf or gguf"
                    )))
                }
            };
            convert(&src, &dst, destination)?;
            eprintln!("wrote {}", dst.display());
            Ok(())
        }
        Command::Inspect { path, json } => {
            let info = uml_core::inspect::inspect(&path)?;
            if json {
                return print_json(&info);
            }
            println!("path           {}", info.path.display());
            println!("format         {:?}", info.format);
            let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
            let num = |v: Option<u64>| v.map_or_else(|| "-".to_string(), |n| n.to_string());
            println!("architecture   {}", opt(&info.architecture));
            println!("name           {}", opt(&info.name));
            println!("parameters     {}", info.parameter_count);
            println!("quantization   {}", opt(&info.quantization));
            println!("file size      {}", gib(info.file_size));
            println!("context        {}", num(info.context_length));
            println!("layers         {}", num(info.block_count));
            if info.mtp_layers > 0 {
                // Counted in `layers`; what --mtp drafts with.
                println!(
                    "mtp heads      {} (--mtp drafts with them)",
                    info.mtp_layers
                );
            }
            if let Some(r) = &info.recurrent {
                // A state per sequence in place of a KV cache (Mamba, RWKV, hybrids).
                println!(
                    "recurrent      {} of the layers ({} KiB of state per sequence each)",
                    r.recurrent_blocks(),
                    r.state_elements * 4 / 1024
                );
            }
            println!("embedding      {}", num(info.embedding_length));
            println!(
                "heads (kv)     {} ({})",
                num(info.head_count),
                num(info.head_count_kv)
            );
            println!("vocab          {}", num(info.vocab_size));
            println!("tokenizer      {}", opt(&info.tokenizer_model));
            println!(
                "bos / eos      {} / {}",
                opt(&info.bos_token),
                opt(&info.eos_token)
            );
            if info.pooling_type.is_some() {
                println!("pooling        {}", opt(&info.pooling_type));
            }
            println!(
                "chat template  {}",
                if info.chat_template.is_some() {
                    "yes"
                } else {
                    "no"
                }
            );
            let types: Vec<String> = info
                .tensor_types
                .iter()
                .map(|(t, n)| format!("{t}:{n}"))
                .collect();
            println!("tensor types   {}", types.join(" "));
            Ok(())
        }
        Command::Estimate {
            path,
            ctx,
            kv_cache_type,
            gpu_layers,
            backend,
            parallel,
            draft_model,
            mtp,
            lora,
            json,
        } => {
            let options = LoadOptions {
                n_ctx: ctx,
                kv_cache_type: parse_enum("kv-cache-type", &kv_cache_type)?,
                gpu_layers: GpuLayers::Count(gpu_layers),
                backend: parse_enum("backend", &backend)?,
                max_parallel: Some(parallel),
                draft_model,
                mtp,
                lora: lora.adapters()?,
                ..LoadOptions::default()
            };
            let preflight = uml_core::estimate::preflight(&path, &options)?;
            if json {
                return print_json(&preflight);
            }
            let est = &preflight.estimate;
            println!("backend        {}", preflight.backend);
            println!("context        {} tokens", est.n_ctx);
            println!("slots          {}", est.parallel);
            println!("weights        {}", gib(est.weights_bytes));
            println!("kv cache       {}", gib(est.kv_cache_bytes));
            println!("compute        {}", gib(est.compute_bytes));
            println!("overhead       {}", gib(est.overhead_bytes));
            if est.adapters_bytes > 0 {
                println!("lora adapters  {}", gib(est.adapters_bytes));
            }
            println!("host total     {}", gib(est.host_bytes));
            println!("device total   {}", gib(est.device_bytes));
            if let Some(draft) = &preflight.draft {
                println!("draft model    {}", gib(draft.host_bytes));
                println!("load, host     {}", gib(preflight.load_host_bytes));
                println!("load, device   {}", gib(preflight.load_device_bytes));
            }
            println!(
                "fits           {} ({} available)",
                if preflight.fits { "yes" } else { "no" },
                gib(preflight.available_memory_bytes)
            );
            Ok(())
        }
        Command::Hw { json } => {
            let hw = uml_core::hardware::detect();
            if json {
                return print_json(&hw);
            }
            println!("cpu            {}", hw.cpu_model);
            println!(
                "cores          {} physical, {} logical",
                hw.physical_cores, hw.logical_cores
            );
            println!("simd           {}", hw.simd.join(" "));
            println!(
                "cpu kernels    {}",
                hw.cpu_kernels
                    .as_deref()
                    .unwrap_or("none (no llama.cpp backend)")
            );
            println!(
                "memory         {} total, {} available",
                gib(hw.total_memory_bytes),
                gib(hw.available_memory_bytes)
            );
            if hw.gpus.is_empty() {
                println!("gpus           none");
            }
            for g in &hw.gpus {
                println!(
                    "gpu {}          {} ({}, {} free of {})",
                    g.index,
                    g.name,
                    g.backend,
                    gib(g.free_memory_bytes),
                    gib(g.total_memory_bytes)
                );
            }
            Ok(())
        }
        Command::Run {
            path,
            prompt,
            load,
            sampling,
            stream,
            json,
        } => {
            let params = sampling.params()?;
            let mut options = load.options(false)?;
            if options.n_ctx.is_none() {
                let trained = uml_core::inspect::inspect(&path)?.context_length;
                options.n_ctx = Some(uml_core::options::one_shot_n_ctx(
                    &prompt,
                    params.max_tokens,
                    trained,
                ));
            }
            let model = load.load(&path, &options)?;
            let mut out = std::io::stdout().lock();
            let streaming = stream && !json;
            let completion = model.generate(&prompt, &params, None, &mut |piece| {
                if streaming {
                    // A closed stdout (e.g. `| head`) stops generation instead of erroring.
                    return write!(out, "{piece}").and_then(|()| out.flush()).is_ok();
                }
                true
            })?;
            if json {
                return print_json(&completion);
            }
            if !streaming {
                write!(out, "{}", completion.text).ok();
            }
            writeln!(out).ok();
            if !load.quiet {
                let u = &completion.usage;
                eprintln!(
                    "[{:?}: {} prompt tokens at {:.1} t/s, {} generated at {:.1} t/s]",
                    completion.finish_reason,
                    u.prompt_tokens,
                    u.prompt_tokens_per_second,
                    u.completion_tokens,
                    u.generation_tokens_per_second
                );
            }
            Ok(())
        }
        Command::Chat {
            path,
            system,
            load,
            sampling,
        } => {
            let params = sampling.params()?;
            let model = load.load(&path, &load.options(false)?)?;
            let mut history = Vec::new();
            if let Some(system) = system {
                history.push(ChatMessage::new("system", system));
            }
            let stdin = std::io::stdin();
            let mut out = std::io::stdout();
            loop {
                write!(out, "> ").and_then(|()| out.flush()).ok();
                let mut line = String::new();
                if stdin
                    .lock()
                    .read_line(&mut line)
                    .map_err(|e| Error::internal(e.to_string()))?
                    == 0
                {
                    break;
                }
                let line = line.trim_end_matches(['\r', '\n']);
                if line.is_empty() {
                    break;
                }
                history.push(ChatMessage::new("user", line));
                let reply = model.chat(&history, &params, None, &mut |piece| {
                    write!(out, "{piece}").and_then(|()| out.flush()).is_ok()
                })?;
                writeln!(out).ok();
                history.push(ChatMessage::new("assistant", reply.text));
            }
            Ok(())
        }
        Command::Embed {
            path,
            texts,
            load,
            no_normalize,
            json,
        } => {
            let mut options = load.options(true)?;
            options.normalize_embeddings = !no_normalize;
            let model = load.load(&path, &options)?;
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            let vectors = model.embed(&refs, None)?;
            if json {
                return print_json(&vectors);
            }
            for (text, v) in texts.iter().zip(&vectors) {
                let head: Vec<String> = v.iter().take(8).map(|x| format!("{x:.4}")).collect();
                println!("{text:?}: [{} ...] ({} dims)", head.join(", "), v.len());
            }
            Ok(())
        }
        Command::Bench {
            path,
            n_prompt,
            n_gen,
            repetitions,
            load,
            json,
        } => {
            let model = load.load(&path, &load.options(false)?)?;
            let report = model.bench(&BenchOptions {
                n_prompt,
                n_gen,
                repetitions,
            })?;
            if json {
                return print_json(&report);
            }
            println!(
                "model: {}  threads: {}  n_batch: {}",
                path.display(),
                report.threads,
                report.n_batch
            );
            println!("{:>8} {:>12} {:>30}", "test", "t/s (median)", "samples");
            for t in &report.tests {
                let samples: Vec<String> = t.samples.iter().map(|s| format!("{s:.1}")).collect();
                println!("{:>8} {:>12.2} {:>30}", t.test, t.median, samples.join(" "));
            }
            Ok(())
        }
    }
}
