//! Log output to stderr for hosts that install no `tracing` subscriber of their own (the CLI, C,
//! Python and Node hosts): uml's warnings, and llama.cpp's own log, which llama-cpp-2 sends to
//! `tracing` under the target `llama-cpp-2`.
//!
//! What is printed is chosen by `RUST_LOG`-style directives, comma-separated: a level (`warn`)
//! for every target, or `target=level` for targets starting with `target` (`-` and `_` alike,
//! so `llama_cpp_2=info` shows llama.cpp's log). The most specific directive wins.

use std::fmt::Write as _;
use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// The environment variable with the directives (as `tracing-subscriber`'s `EnvFilter` reads).
pub const ENV: &str = "RUST_LOG";

/// Print log events to stderr by `RUST_LOG`, or by `default` when it is unset (`""`: nothing).
/// Does nothing when the process already has a global subscriber. Returns whether this call
/// installed one.
pub fn init(default: &str) -> bool {
    let directives = std::env::var(ENV).unwrap_or_else(|_| default.to_string());
    let filter = Filter::parse(&directives);
    if filter.max == LevelFilter::OFF {
        return false;
    }
    tracing::subscriber::set_global_default(StderrLog { filter }).is_ok()
}

/// [`init`] when `RUST_LOG` is set, once per process: what uml's error messages tell users to
/// set to see llama.cpp's log, in any host.
pub fn init_from_env() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if std::env::var_os(ENV).is_some() {
            init("");
        }
    });
}

/// Parsed directives: per target prefix (normalized), the most verbose level shown.
#[derive(Debug, Clone, PartialEq)]
struct Filter {
    /// `(target prefix, level)`, longest prefix first; the empty prefix is every target.
    directives: Vec<(String, LevelFilter)>,
    max: LevelFilter,
}

impl Filter {
    fn parse(text: &str) -> Filter {
        let mut directives: Vec<(String, LevelFilter)> = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (target, level) = match part.split_once('=') {
                Some((target, level)) => (normalize(target.trim()), level.trim()),
                // A bare word is a level, or a target shown at every level.
                None => match part.parse::<LevelFilter>() {
                    Ok(level) => {
                        directives.push((String::new(), level));
                        continue;
                    }
                    Err(_) => (normalize(part), "trace"),
                },
            };
            // An unreadable level shows nothing rather than failing a host.
            let level = level.parse::<LevelFilter>().unwrap_or(LevelFilter::OFF);
            directives.push((target, level));
        }
        // Longest prefix first, and for equal ones the last given wins.
        directives.reverse();
        directives.sort_by_key(|(target, _)| std::cmp::Reverse(target.len()));
        let max = directives
            .iter()
            .map(|(_, level)| *level)
            .max()
            .unwrap_or(LevelFilter::OFF);
        Filter { directives, max }
    }

    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        *metadata.level() <= self.level_for(metadata.target())
    }

    /// The most verbose level shown for `target`.
    fn level_for(&self, target: &str) -> LevelFilter {
        let target = normalize(target);
        self.directives
            .iter()
            .find(|(prefix, _)| target.starts_with(prefix.as_str()))
            .map_or(LevelFilter::OFF, |(_, level)| *level)
    }
}

fn normalize(target: &str) -> String {
    target.replace('-', "_")
}

/// Events as one line each on stderr: `[uml] WARN target: message key=value ...`. Spans are
/// not tracked (uml's code logs events only).
struct StderrLog {
    filter: Filter,
}

impl Subscriber for StderrLog {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        self.filter.enabled(metadata)
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(self.filter.max)
    }

    fn new_span(&self, _span: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _span: &Id, _values: &Record<'_>) {}

    fn record_follows_from(&self, _span: &Id, _follows: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let metadata = event.metadata();
        let mut line = Line::default();
        event.record(&mut line);
        let target = line.module.as_deref().unwrap_or(metadata.target());
        let message = line.message.trim_end();
        eprintln!(
            "[uml] {} {target}: {message}{}",
            metadata.level(),
            line.fields
        );
    }

    fn enter(&self, _span: &Id) {}

    fn exit(&self, _span: &Id) {}
}

/// One event's fields: `message` (and llama-cpp-2's `module`) apart, the rest as ` key=value`.
#[derive(Default)]
struct Line {
    message: String,
    module: Option<String>,
    fields: String,
}

impl Line {
    /// The field `name`: `text` for the message and module, `value` shown as Debug for others.
    fn put(&mut self, name: &str, text: impl FnOnce() -> String, value: &dyn std::fmt::Debug) {
        match name {
            "message" => self.message = text(),
            "module" => self.module = Some(text()),
            name => {
                let _ = write!(self.fields, " {name}={value:?}");
            }
        }
    }
}

impl Visit for Line {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field.name(), || value.to_string(), &value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field.name(), || format!("{value:?}"), value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directives_pick_the_most_specific_target_and_accept_either_spelling() {
        let f = Filter::parse("warn, llama_cpp_2=info ,uml_core::model=debug");
        assert_eq!(f.max, LevelFilter::DEBUG);
        assert_eq!(f.level_for("llama-cpp-2"), LevelFilter::INFO);
        assert_eq!(f.level_for("uml_core::model"), LevelFilter::DEBUG);
        assert_eq!(f.level_for("uml_core::estimate"), LevelFilter::WARN);
        assert_eq!(
            Filter::parse("uml_core=warn").level_for("llama-cpp-2"),
            LevelFilter::OFF
        );
        assert_eq!(Filter::parse("").max, LevelFilter::OFF);
        assert_eq!(Filter::parse("off").max, LevelFilter::OFF);
        // A bare target is every level of it; a bad level shows nothing of it.
        assert_eq!(Filter::parse("uml_core").max, LevelFilter::TRACE);
        assert_eq!(Filter::parse("uml_core=loud").max, LevelFilter::OFF);
    }
}
