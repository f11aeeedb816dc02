//! Human-friendly sizes ("16MiB") and durations ("30s", "5m", "1h30m").

use std::time::Duration;

/// Parses a byte size: a plain number or one with a unit (B, KB, KiB, MB, MiB, GB, GiB).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("invalid size \"{s}\" (try \"16MiB\")"))?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KB" | "kB" => 1000,
        "KiB" => 1 << 10,
        "MB" => 1000 * 1000,
        "MiB" => 1 << 20,
        "GB" => 1000 * 1000 * 1000,
        "GiB" => 1 << 30,
        other => return Err(format!("invalid size unit \"{other}\" in \"{s}\" (use B, KiB, MiB, GiB, KB, MB or GB)")),
    };
    n.checked_mul(mult).ok_or_else(|| format!("size \"{s}\" is too large"))
}

/// Parses a duration like "500ms", "30s", "5m", "1h30m" or "7d".
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("invalid duration \"{s}\": {e} (try \"30s\", \"5m\", \"1h\")"))
}
