//! Measures detection throughput, one core, every built-in detector on:
//! `cargo run --release -p modelgate-masking --example detect_rate [SECONDS]` (default 1 per case).
//!
//! Cases: plain English prose without entities and PII-dense prose (a name, an email address, a
//! phone number, a card, an IBAN, an address, an IP or a key in every sentence) at 256 B, 4 KiB
//! and 64 KiB, scanned as bare text (what the streaming masker scans); chat-completion request
//! bodies of 1 KiB with and without an entity; 64 KiB of base64 image data. Also the cost of
//! `hold_from` on the end of a 4 KiB buffer.

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

/// Sentences each holding an entity or two (synthetic values).
const DENSE: &[&str] = &[
    "Please call Maria Rossi at +39 06 4991 2345 before noon. ",
    "Send the refund to card 4111 1111 1111 1111 and email jane.doe@example.com about it. ",
    "Our office moved to 221 Baker Street, next to the station. ",
    "The transfer used IBAN DE89 3704 0044 0532 0130 00 on Monday. ",
    "Dr. Henrik Johansson logged in from 192.168.14.20 yesterday. ",
    "Her SSN is 342-24-4364 and the phone is (415) 555-0132. ",
    "Set password = \"q_oDxsonGHixeRGS6Ab2z_JEj\" in the config. ",
    "The key AKIAZVL53DGKEIVPVAKF was rotated by John Smith. ",
];

fn text_of(size: usize, sentences: &[&str]) -> Vec<u8> {
    let mut text = String::new();
    let mut i = 0;
    while text.len() < size {
        text.push_str(sentences[i % sentences.len()]);
        i += 1;
    }
    let mut cut = size;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    text.truncate(cut);
    text.into_bytes()
}

fn hold_rate(body: &[u8], budget: Duration) {
    let start = Instant::now();
    let mut calls: u64 = 0;
    while start.elapsed() < budget {
        for _ in 0..1024 {
            black_box(masking::hold_from(black_box(body)));
        }
        calls += 1024;
    }
    let secs = start.elapsed().as_secs_f64();
    println!("{:<34} {:>6} B  {:>8.0} ns/call", "hold_from, 4 KiB buffer", body.len(), secs * 1e9 / calls as f64);
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
    for size in [256, 4096, 65536] {
        rate(&format!("{} prose, no entity", size_name(size)), &text_of(size, &[PROSE]), budget);
    }
    for size in [256, 4096, 65536] {
        rate(&format!("{} prose, PII-dense", size_name(size)), &text_of(size, DENSE), budget);
    }
    hold_rate(&text_of(4096, &[PROSE]), budget);
    let token = "ghp_u8jzPde0IgxLd6GncfBAepfJBd0Kh8oOOL8d";
    rate("1 KiB chat, no entity", &chat_body(1024, ""), budget);
    rate("1 KiB chat, one GitHub token", &chat_body(1024, &format!("My token is {token}, is it valid? ")), budget);
    rate("1 KiB chat, one email", &chat_body(1024, "Reply to jane.doe@example.com please. "), budget);
    rate("4 KiB chat, no entity", &chat_body(4096, ""), budget);
    rate("64 KiB chat, no entity", &chat_body(65536, ""), budget);
    rate("64 KiB base64 image, no entity", &base64_body(65536), budget);
}

fn size_name(size: usize) -> String {
    if size >= 1024 { format!("{} KiB", size / 1024) } else { format!("{size} B") }
}
