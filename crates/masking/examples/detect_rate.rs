//! Measures `detect` throughput on chat-completion request bodies, one core:
//! `cargo run --release -p modelgate-masking --example detect_rate [SECONDS]` (default 1 per case).
//!
//! Cases: 1 KiB without any secret, 1 KiB with one secret (a GitHub token) or one email address,
//! and 4 KiB / 64 KiB of prose without entities, plus 64 KiB of base64 image data.

use std::hint::black_box;
use std::time::{Duration, Instant};

const PROSE: &str = "Could you help me rewrite the onboarding section of our internal wiki? It should explain, \
in plain language, how a new engineer requests access to the staging cluster, which team approves it, and \
what to do when the approval takes longer than two working days. Keep the tone friendly but precise; avoid \
jargon where a simpler word will do, and use short paragraphs with a bulleted checklist at the end. ";

/// A chat request whose user message is `content`, padded with prose to `size` bytes.
fn chat_body(size: usize, content: &str) -> Vec<u8> {
    let head = r#"{"model":"llama-3-70b-instruct","messages":[{"role":"system","content":"You are a concise, helpful assistant for an engineering team."},{"role":"user","content":""#;
    let tail = r#""}],"temperature":0.7,"max_tokens":512,"stream":true}"#;
    let mut text = String::from(content);
    while head.len() + text.len() + tail.len() < size {
        text.push_str(PROSE);
    }
    let room = size.saturating_sub(head.len() + tail.len());
    let mut cut = room.min(text.len());
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    text.truncate(cut);
    format!("{head}{text}{tail}").into_bytes()
}

fn base64_body(size: usize) -> Vec<u8> {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut x: u32 = 0x9e37_79b9;
    let mut body =
        br#"{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,"#
            .to_vec();
    while body.len() < size - 8 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        body.push(alphabet[(x % 64) as usize]);
    }
    body.extend_from_slice(br#""}}]}]}"#);
    body
}

fn rate(name: &str, body: &[u8], budget: Duration) {
    let found = masking::detect(body);
    let start = Instant::now();
    let mut calls: u64 = 0;
    while start.elapsed() < budget {
        for _ in 0..256 {
            black_box(masking::detect(black_box(body)));
        }
        calls += 256;
    }
    let secs = start.elapsed().as_secs_f64();
    let mb = (body.len() as u64 * calls) as f64 / 1e6;
    println!(
        "{name:<34} {:>6} B  {:>8.0} MB/s  {:>8.0} ns/call  found {:?}",
        body.len(),
        mb / secs,
        secs * 1e9 / calls as f64,
        found
    );
}

fn main() {
    let secs: f64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1.0);
    let budget = Duration::from_secs_f64(secs);
    let token = "ghp_u8jzPde0IgxLd6GncfBAepfJBd0Kh8oOOL8d";
    rate("1 KiB chat, no entity", &chat_body(1024, ""), budget);
    rate("1 KiB chat, one GitHub token", &chat_body(1024, &format!("My token is {token}, is it valid? ")), budget);
    rate("1 KiB chat, one email", &chat_body(1024, "Reply to jane.doe@example.com please. "), budget);
    rate("4 KiB chat, no entity", &chat_body(4096, ""), budget);
    rate("64 KiB chat, no entity", &chat_body(65536, ""), budget);
    rate("64 KiB base64 image, no entity", &base64_body(65536), budget);
}
