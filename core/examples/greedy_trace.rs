//! Prints a greedy trace (each position's token, logit and margin over the runner-up) as JSON:
//! the uml side of `scripts/record-greedy-fixtures`, run once per CPU kernel path.
//!
//!   greedy_trace MODEL (--prompt TEXT | --chat-user TEXT) -n N
//!
//! `--prompt` tokenizes TEXT as `generate` does; `--chat-user` renders a one-message chat with
//! the model's template as `chat` does (the rendered prompt is printed too).

use std::process::ExitCode;
use uml_core::options::LoadOptions;
use uml_core::{ChatMessage, Error, Model};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("greedy_trace: {e}");
            ExitCode::from(1)
        }
    }
}

fn run() -> Result<(), Error> {
    let usage = || {
        Error::invalid_argument("usage: greedy_trace MODEL (--prompt TEXT | --chat-user TEXT) -n N")
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let model_path = args.first().ok_or_else(usage)?;
    let (mut prompt, mut chat_user, mut n_predict) = (None, None, None);
    let mut rest = args[1..].iter();
    while let Some(flag) = rest.next() {
        let value = rest.next().ok_or_else(usage)?;
        match flag.as_str() {
            "--prompt" => prompt = Some(value.clone()),
            "--chat-user" => chat_user = Some(value.clone()),
            "-n" => {
                n_predict = Some(value.parse::<u32>().map_err(|_| usage())?);
            }
            _ => return Err(usage()),
        }
    }
    let n_predict = n_predict.ok_or_else(usage)?;
    let options = LoadOptions {
        n_ctx: Some(1024),
        ..LoadOptions::default()
    };
    let model = Model::load(model_path, &options, None)?;
    let (rendered, tokens) = match (prompt, chat_user) {
        (Some(p), None) => {
            let tokens = model.tokenize(&p, true)?;
            (p, tokens)
        }
        (None, Some(user)) => {
            let messages = [ChatMessage::new("user", &user)];
            (
                model.render_chat(&messages, true)?,
                model.chat_prompt_tokens(&messages)?,
            )
        }
        _ => return Err(usage()),
    };
    let steps = uml_core::trace::greedy_trace(&model, &tokens, n_predict)?;
    let out = serde_json::json!({
        "prompt": rendered,
        "prompt_tokens": tokens,
        "steps": steps,
    });
    println!("{out}");
    Ok(())
}
