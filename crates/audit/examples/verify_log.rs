//! Runs `audit verify` over a data dir without the CLI, for measuring the verifier:
//! `cargo run --release -p modelgate-audit --example verify_log -- DIR [--no-fields] [--content]
//! [--threads N]`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use modelgate_audit::verify::{Options, verify};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = PathBuf::from(args.first().expect("usage: verify_log DIR [flags]"));
    let num = |flag: &str| {
        args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).and_then(|n| n.parse().ok()).unwrap_or(0)
    };
    let opts = Options {
        fields: !args.iter().any(|a| a == "--no-fields"),
        content: args.iter().any(|a| a == "--content"),
        threads: num("--threads"),
        ..Options::default()
    };
    let report = verify(&dir, &opts).unwrap();
    print!("{}", report.to_text());
    println!("{}", serde_json::to_string(&report.stages).unwrap());
}
