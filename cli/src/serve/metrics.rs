//! `GET /metrics`: Prometheus text. Requests by route and status, their latency and the time
//! to first token as histograms, tokens by model, and from the manager: the models, their
//! state, memory, running and waiting calls, and the budget.

use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;
use uml_core::manager::{Manager, ModelState};

/// Histogram bucket bounds, in seconds.
const BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

#[derive(Default)]
struct Histogram {
    /// Counts per bucket (not cumulative), then the overflow.
    counts: [u64; BUCKETS.len() + 1],
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        let i = BUCKETS
            .iter()
            .position(|&b| seconds <= b)
            .unwrap_or(BUCKETS.len());
        self.counts[i] += 1;
        self.sum += seconds;
    }

    fn write(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (i, bound) in BUCKETS.iter().enumerate() {
            cumulative += self.counts[i];
            let _ = writeln!(out, "{name}_bucket{{{labels}le=\"{bound}\"}} {cumulative}");
        }
        cumulative += self.counts[BUCKETS.len()];
        let _ = writeln!(out, "{name}_bucket{{{labels}le=\"+Inf\"}} {cumulative}");
        let trimmed = labels.trim_end_matches(',');
        let braces = if trimmed.is_empty() {
            String::new()
        } else {
            format!("{{{trimmed}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braces} {cumulative}");
    }
}

#[derive(Default)]
struct Counters {
    requests: BTreeMap<(String, u16), u64>,
    latency: BTreeMap<String, Histogram>,
    first_token: BTreeMap<String, Histogram>,
    /// Prompt and completion tokens by model.
    tokens: BTreeMap<String, (u64, u64)>,
}

/// The server's counters.
#[derive(Default)]
pub struct Metrics {
    counters: Mutex<Counters>,
}

impl Metrics {
    /// A request to `route` answered with `status` after `took` (for a stream: until its
    /// headers).
    pub fn request(&self, route: &str, status: u16, took: Duration) {
        let mut c = self.counters.lock();
        *c.requests.entry((route.to_string(), status)).or_default() += 1;
        c.latency
            .entry(route.to_string())
            .or_default()
            .observe(took.as_secs_f64());
    }

    /// A generation on `model` gave its first text after `took`.
    pub fn first_token(&self, model: &str, took: Duration) {
        self.counters
            .lock()
            .first_token
            .entry(model.to_string())
            .or_default()
            .observe(took.as_secs_f64());
    }

    /// A generation on `model` ended, having evaluated `prompt` and made `completion` tokens.
    pub fn tokens(&self, model: &str, prompt: u32, completion: u32) {
        let mut c = self.counters.lock();
        let t = c.tokens.entry(model.to_string()).or_default();
        t.0 += u64::from(prompt);
        t.1 += u64::from(completion);
    }

    /// Everything, in Prometheus' text format.
    pub fn render(&self, manager: &Manager) -> String {
        let mut out = String::new();
        let c = self.counters.lock();
        out += "# HELP uml_requests_total HTTP requests by route and status.\n";
        out += "# TYPE uml_requests_total counter\n";
        for ((route, status), n) in &c.requests {
            let _ = writeln!(
                out,
                "uml_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
        out += "# HELP uml_request_duration_seconds Time to the response (a stream's headers).\n";
        out += "# TYPE uml_request_duration_seconds histogram\n";
        for (route, h) in &c.latency {
            h.write(
                &mut out,
                "uml_request_duration_seconds",
                &format!("route=\"{route}\","),
            );
        }
        out +=
            "# HELP uml_time_to_first_token_seconds Time from request to first generated text.\n";
        out += "# TYPE uml_time_to_first_token_seconds histogram\n";
        for (model, h) in &c.first_token {
            h.write(
                &mut out,
                "uml_time_to_first_token_seconds",
                &format!("model=\"{model}\","),
            );
        }
        out += "# HELP uml_prompt_tokens_total Prompt tokens of finished generations.\n";
        out += "# TYPE uml_prompt_tokens_total counter\n";
        for (model, (prompt, _)) in &c.tokens {
            let _ = writeln!(out, "uml_prompt_tokens_total{{model=\"{model}\"}} {prompt}");
        }
        out += "# HELP uml_completion_tokens_total Generated tokens of finished generations.\n";
        out += "# TYPE uml_completion_tokens_total counter\n";
        for (model, (_, completion)) in &c.tokens {
            let _ = writeln!(
                out,
                "uml_completion_tokens_total{{model=\"{model}\"}} {completion}"
            );
        }
        drop(c);
        let models = manager.list();
        out += "# HELP uml_model_loaded Whether a model is in memory (1) or not (0).\n";
        out += "# TYPE uml_model_loaded gauge\n";
        for m in &models {
            let loaded = matches!(m.state, ModelState::Idle | ModelState::InUse);
            let _ = writeln!(
                out,
                "uml_model_loaded{{model=\"{}\"}} {}",
                m.id,
                u8::from(loaded)
            );
        }
        out += "# HELP uml_model_memory_bytes The memory estimate of a loaded model.\n";
        out += "# TYPE uml_model_memory_bytes gauge\n";
        for m in &models {
            let _ = writeln!(
                out,
                "uml_model_memory_bytes{{model=\"{}\"}} {}",
                m.id, m.memory_bytes
            );
        }
        out += "# HELP uml_running Generations and embedding calls running on a model.\n";
        out += "# TYPE uml_running gauge\n";
        for m in &models {
            let _ = writeln!(
                out,
                "uml_running{{model=\"{}\"}} {}",
                m.id, m.activity.running
            );
        }
        out += "# HELP uml_queue_depth Calls waiting for a model's slots.\n";
        out += "# TYPE uml_queue_depth gauge\n";
        for m in &models {
            let _ = writeln!(
                out,
                "uml_queue_depth{{model=\"{}\"}} {}",
                m.id, m.activity.queued
            );
        }
        out += "# HELP uml_memory_budget_bytes The memory the loaded models may take together.\n";
        out += "# TYPE uml_memory_budget_bytes gauge\n";
        let _ = writeln!(out, "uml_memory_budget_bytes {}", manager.budget_bytes());
        out += "# HELP uml_memory_used_bytes The loaded models' memory estimates together.\n";
        out += "# TYPE uml_memory_used_bytes gauge\n";
        let _ = writeln!(out, "uml_memory_used_bytes {}", manager.used_bytes());
        out
    }
}
