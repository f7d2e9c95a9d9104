"""Summaries of repeated measurements: median and spread (p10-p90), kept
with the raw samples so results.json can be re-analysed."""

import statistics


def percentile(xs, q):
    """Nearest-rank-with-interpolation percentile of `xs`, 0 <= q <= 100."""
    xs = sorted(xs)
    if len(xs) == 1:
        return xs[0]
    pos = (len(xs) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def summary(xs, unit="ms"):
    xs = list(xs)
    return {
        "unit": unit,
        "n": len(xs),
        "median": statistics.median(xs),
        "p10": percentile(xs, 10),
        "p90": percentile(xs, 90),
        "min": min(xs),
        "max": max(xs),
        "mean": statistics.fmean(xs),
        "stdev": statistics.stdev(xs) if len(xs) > 1 else 0.0,
        "samples": [round(x, 3) for x in xs],
    }


def ratio(wren, ref):
    """wren median / reference median."""
    return wren["median"] / ref["median"] if ref["median"] else None
