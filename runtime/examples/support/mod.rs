//! What the kernel benchmarks (`bench_conv`, `bench_depthwise`, `bench_winograd`) share: deterministic data, the
//! median, and reading a layer's comma-separated sizes (the convolution layer two of them time: `layer.rs`).

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

/// Reads the command line: `--batch` (images a call, default 1), `--iters` (calls a round, whose median counts,
/// default 20) and `--rounds` (the best round counts, default 5), returned in that order, and every other
/// option through `option`, which gets its name and a function that takes its value, and says whether it knew
/// it. Panics on an option nothing knows or a number that does not parse.
pub fn parse_args(
    mut option: impl FnMut(&str, &mut dyn FnMut() -> String) -> bool,
) -> (usize, usize, usize) {
    let (mut batch, mut iters, mut rounds) = (1, 20, 5);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        let number = |v: String| v.parse().unwrap_or_else(|e| panic!("{arg} {v}: {e}"));
        match arg.as_str() {
            "--batch" => batch = number(value()),
            "--iters" => iters = number(value()),
            "--rounds" => rounds = number(value()),
            other => {
                if !option(other, &mut value) {
                    panic!("unknown argument `{other}`");
                }
            }
        }
    }
    (batch, iters, rounds)
}
