//! runc's conversions between OCI (cgroup v1 shaped) values and cgroup v2
//! files, so a config.json means the same thing under wren as under runc.

use super::CgroupError;

/// cgroup v1 `cpu.shares` (2..=262144, default 1024) → v2 `cpu.weight`
/// (1..=10000, default 100). 0 means unset.
///
/// This is the quadratic mapping runc and crun switched to in 2025 (it sends
/// the v1 default 1024 to the v2 default 100, where the old linear formula
/// gave 39): `weight = ceil(10^((l² + 125·l) / 612 − 7/34))` with
/// `l = log2(shares)`; it maps 2 → 1 and 262144 → 10000 exactly.
pub fn cpu_shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    if shares <= 2 {
        return 1;
    }
    if shares >= 262_144 {
        return 10_000;
    }
    let l = (shares as f64).log2();
    let exponent = (l * l + 125.0 * l) / 612.0 - 7.0 / 34.0;
    // The small epsilon keeps exact powers (1024 → 10^2) from rounding up to 101.
    let w = (10f64.powf(exponent) - 1e-9).ceil() as u64;
    w.clamp(1, 10_000)
}

/// cgroup v1 `blkio.weight` (10..=1000) → v2 `io.weight` (1..=10000), runc's
/// linear mapping. 0 means unset.
pub fn blkio_weight_to_io_weight(weight: u64) -> u64 {
    if weight == 0 {
        return 0;
    }
    1 + (weight.saturating_sub(10)) * 9999 / 990
}

/// OCI `memory.swap` is the v1 *memory+swap* limit; v2's `memory.swap.max`
/// is swap alone. Returns what to write to `memory.swap.max`
/// (`None`: leave it; `Some(-1)`: "max").
pub fn swap_to_v2(swap: Option<i64>, limit: Option<i64>) -> Result<Option<i64>, CgroupError> {
    let swap = swap.unwrap_or(0);
    let limit = limit.unwrap_or(0);
    // Unlimited memory with swap unset means unlimited swap too (v1 compatible).
    if limit == -1 && swap == 0 {
        return Ok(Some(-1));
    }
    if swap == -1 {
        return Ok(Some(-1));
    }
    if swap == 0 {
        return Ok(None);
    }
    let invalid = |reason: &str| CgroupError::Invalid {
        field: "memory.swap".into(),
        reason: reason.into(),
    };
    if limit <= 0 {
        return Err(invalid("a swap limit needs a memory limit"));
    }
    if swap < limit {
        return Err(invalid("is memory+swap and must be at least memory.limit"));
    }
    Ok(Some(swap - limit))
}

/// An i64 limit where -1 (or, for some fields, any negative) means unlimited.
pub(crate) fn limit_str(v: i64) -> String {
    if v < 0 {
        "max".to_owned()
    } else {
        v.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_to_weight_matches_runc() {
        assert_eq!(cpu_shares_to_weight(0), 0);
        assert_eq!(cpu_shares_to_weight(2), 1);
        assert_eq!(cpu_shares_to_weight(1024), 100);
        assert_eq!(cpu_shares_to_weight(262_144), 10_000);
        // Monotonic in between.
        let mut last = 0;
        for s in [3u64, 10, 100, 512, 2048, 100_000] {
            let w = cpu_shares_to_weight(s);
            assert!(w > last, "{s} -> {w}");
            last = w;
        }
        assert_eq!(cpu_shares_to_weight(512), 59);
        assert_eq!(cpu_shares_to_weight(2048), 174);
    }

    #[test]
    fn blkio_to_io_weight_matches_runc() {
        assert_eq!(blkio_weight_to_io_weight(10), 1);
        assert_eq!(blkio_weight_to_io_weight(1000), 10_000);
        assert_eq!(blkio_weight_to_io_weight(500), 1 + 490 * 9999 / 990);
    }

    #[test]
    fn swap_semantics() {
        assert_eq!(swap_to_v2(None, None).unwrap(), None);
        assert_eq!(swap_to_v2(None, Some(-1)).unwrap(), Some(-1));
        assert_eq!(swap_to_v2(Some(-1), Some(100)).unwrap(), Some(-1));
        assert_eq!(swap_to_v2(Some(300), Some(100)).unwrap(), Some(200));
        assert_eq!(swap_to_v2(Some(100), Some(100)).unwrap(), Some(0));
        assert!(swap_to_v2(Some(50), Some(100)).is_err());
        assert!(swap_to_v2(Some(50), None).is_err());
    }
}
