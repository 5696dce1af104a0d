//! What the kernel benchmarks (`bench_depthwise`, `bench_winograd`) share: deterministic data, the median, and
//! reading a layer's comma-separated sizes.

/// Deterministic values in [-1, 1) (xorshift), so every run times the same numbers.
pub fn values(len: usize, seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// The median of `samples` (which it sorts).
pub fn median(samples: &mut [f64]) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// The comma-separated sizes of a `--layer` argument (`64,64,56,56`).
pub fn sizes(text: &str) -> Result<Vec<usize>, String> {
    text.split(',')
        .map(|p| p.trim().parse::<usize>())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("layer `{text}`: {e}"))
}
