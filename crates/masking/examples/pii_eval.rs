//! Writes the detector's predictions on a `shared/pii-eval` corpus in the JSONL format its
//! `score.py` reads, with character offsets (converted from the detector's byte offsets):
//!
//! ```text
//! cargo run --release -p modelgate-masking --example pii_eval -- ../shared/pii-eval/dev.jsonl > /tmp/pred.jsonl
//! python3 ../shared/pii-eval/score.py ../shared/pii-eval/dev.jsonl /tmp/pred.jsonl --map '{"SECRET_OPENAI_KEY":"SECRET_GENERIC","SECRET_ANTHROPIC_KEY":"SECRET_GENERIC","SECRET_GITLAB_TOKEN":"SECRET_GENERIC","SECRET_SLACK_TOKEN":"SECRET_GENERIC"}'
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, Write};

fn main() {
    let path = std::env::args().nth(1).unwrap_or_else(|| "../shared/pii-eval/dev.jsonl".into());
    let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let out = std::io::stdout();
    let mut out = out.lock();
    for line in std::io::BufReader::new(file).lines() {
        let line = line.unwrap();
        if line.trim().is_empty() {
            continue;
        }
        let row: serde_json::Value = serde_json::from_str(&line).unwrap();
        let text = row["text"].as_str().unwrap();
        let mut spans = Vec::new();
        masking::scan(text.as_bytes(), |f| {
            let start = text[..f.start].chars().count();
            let end = start + text[f.start..f.end].chars().count();
            spans.push(serde_json::json!({"type": f.entity.name(), "start": start, "end": end}));
        });
        writeln!(out, "{}", serde_json::json!({"id": row["id"], "spans": spans})).unwrap();
    }
}
