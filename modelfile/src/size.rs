//! Sizes as people write them (`1GB`, `512MiB`, `300MB`): the one parser behind the worker's
//! `--max-ram` and `--cache-max` and the coordinator's `--transfer-rate`, so a size means the same
//! on both sides of a farm.

/// Why a size was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid size {0:?}: expected a number of bytes with an optional unit (B, kB, MB, GB, TB, KiB, MiB, GiB, TiB), e.g. 1GB or 512MiB"
)]
pub struct SizeError(pub String);

/// Parses a size such as `1GB` (10^9 bytes), `512MiB` (2^29 bytes), `1.5GiB` or `4096`.
/// Units are case-insensitive; decimal units are powers of 1000, binary (`i`) ones of 1024. Zero is
/// refused: no limit a farm sets is usefully zero.
pub fn parse_size(text: &str) -> Result<u64, SizeError> {
    let bad = || SizeError(text.to_string());
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let value: f64 = number.parse().map_err(|_| bad())?;
    let multiplier: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" | "k" => 1e3,
        "mb" | "m" => 1e6,
        "gb" | "g" => 1e9,
        "tb" | "t" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return Err(bad()),
    };
    let bytes = (value * multiplier).round();
    if !bytes.is_finite() || bytes < 1.0 || bytes > u64::MAX as f64 {
        return Err(bad());
    }
    Ok(bytes as u64)
}

/// Parses a rate: a size per second, with or without the `/s` (`20MB/s`, `20MB`).
pub fn parse_rate(text: &str) -> Result<u64, SizeError> {
    let trimmed = text.trim();
    let size = trimmed
        .strip_suffix("/s")
        .or_else(|| trimmed.strip_suffix("/S"))
        .unwrap_or(trimmed);
    parse_size(size).map_err(|_| SizeError(text.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_rates() {
        assert_eq!(parse_size("300MB"), Ok(300_000_000));
        assert_eq!(parse_size("512MiB"), Ok(512 << 20));
        assert_eq!(parse_rate("20MB/s"), Ok(20_000_000));
        assert_eq!(parse_rate(" 1.5GiB "), Ok(3 << 29));
        for bad in ["", "0", "fast", "1XB", "-1MB", "MB/s"] {
            assert!(parse_rate(bad).is_err(), "{bad:?}");
        }
    }
}
