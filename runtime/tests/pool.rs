//! Pooling against values worked out by hand and against plain loops written straight from
//! PyTorch's definitions (ATen's CPU kernels for max and average pooling, and the adaptive bins
//! of `adaptive_avg_pool2d`).

mod common;

use archc_runtime::candle_core::{DType, Device, Module, Tensor};
use archc_runtime::{adaptive_avg_pool2d, AdaptiveAvgPool2d, AvgPool2d, MaxPool2d};
use common::{assert_close, iota, nchw, values, Rng};

fn max_pool(k: usize, s: usize, p: usize, ceil_mode: bool) -> MaxPool2d {
    MaxPool2d {
        kernel: (k, k),
        stride: (s, s),
        pad: (p, p),
        dilation: (1, 1),
        ceil_mode,
    }
}

fn avg_pool(k: usize, s: usize, p: usize, ceil_mode: bool, count_include_pad: bool) -> AvgPool2d {
    AvgPool2d {
        kernel: (k, k),
        stride: (s, s),
        pad: (p, p),
        ceil_mode,
        count_include_pad,
    }
}

// ---------------------------------------------------------------------------------------------
// Hand-computed examples. Inputs are `iota`: x[r][c] = W * r + c, so the maximum of a window is
// its bottom-right element and its mean is W * mean(rows) + mean(cols).

#[test]
fn max_pool_ceil_mode_keeps_the_partial_last_window() {
    // 5x5, kernel 2, stride 2, ceil: out = ceil((5 - 2) / 2) + 1 = 3. Windows along each axis
    // are {0,1}, {2,3}, {4}: the last one hangs over the edge. Maxima sit at rows/cols 1, 3, 4,
    // so out[i][j] = 5 * e[i] + e[j] with e = [1, 3, 4].
    let y = max_pool(2, 2, 0, true).forward(&iota(5, 5)).unwrap();
    #[rustfmt::skip]
    let expected = [
        6., 8., 9.,
        16., 18., 19.,
        21., 23., 24.,
    ];
    assert_close(&y, &[1, 1, 3, 3], &expected, 0.0, "ceil");
    // Floor mode drops the partial window: out = floor(3 / 2) + 1 = 2.
    let y = max_pool(2, 2, 0, false).forward(&iota(5, 5)).unwrap();
    assert_close(&y, &[1, 1, 2, 2], &[6., 8., 16., 18.], 0.0, "floor");
}

#[test]
fn max_pool_kernel3_stride2_ceil_like_googlenet() {
    // 6x6, kernel 3, stride 2, ceil: out = ceil(3 / 2) + 1 = 3, windows {0..2}, {2..4}, {4,5}:
    // maxima at e = [2, 4, 5], out = 6 * e[i] + e[j].
    let y = max_pool(3, 2, 0, true).forward(&iota(6, 6)).unwrap();
    #[rustfmt::skip]
    let expected = [
        14., 16., 17.,
        26., 28., 29.,
        32., 34., 35.,
    ];
    assert_close(&y, &[1, 1, 3, 3], &expected, 0.0, "6x6 k3 s2 ceil");
}

#[test]
fn max_pool_pads_with_negative_infinity() {
    // -iota(4, 4), kernel 3, stride 2, pad 1: out = floor(3 / 2) + 1 = 2, windows {-1,0,1} and
    // {1,2,3}. All values are <= 0, so zero padding would win; -inf padding must not. The
    // maximum of -x is at the top-left real element: rows/cols s = [0, 1], out = -(4 s_i + s_j).
    let x = (iota(4, 4) * -1.0).unwrap();
    let y = max_pool(3, 2, 1, false).forward(&x).unwrap();
    assert_close(
        &y,
        &[1, 1, 2, 2],
        &[0., -1., -4., -5.],
        0.0,
        "negative input",
    );
}

#[test]
fn max_pool_ceil_mode_drops_a_window_starting_in_the_right_padding() {
    // 5x5, kernel 2, stride 2, pad 1, ceil: ceil((5 + 2 - 2) / 2) + 1 = 4, but window 3 would
    // start at 3 * 2 = 6 >= 5 + 1, inside the padding only, so PyTorch drops it: out = 3.
    // Windows (input coordinates) {-1,0}, {1,2}, {3,4}: maxima at e = [0, 2, 4].
    let y = max_pool(2, 2, 1, true).forward(&iota(5, 5)).unwrap();
    #[rustfmt::skip]
    let expected = [
        0., 2., 4.,
        10., 12., 14.,
        20., 22., 24.,
    ];
    assert_close(&y, &[1, 1, 3, 3], &expected, 0.0, "dropped window");
}

#[test]
fn max_pool_with_dilation() {
    // 1x5 rows of a 5x5 iota, kernel (1, 2), dilation (1, 2), stride 1: windows {c, c + 2} for
    // c = 0, 1, 2, maximum x[r][c + 2].
    let pool = MaxPool2d {
        kernel: (1, 2),
        stride: (1, 1),
        pad: (0, 0),
        dilation: (1, 2),
        ceil_mode: false,
    };
    let y = pool.forward(&iota(2, 5)).unwrap();
    assert_close(
        &y,
        &[1, 1, 2, 3],
        &[2., 3., 4., 7., 8., 9.],
        0.0,
        "dilation",
    );
}

#[test]
fn avg_pool_padding_with_and_without_count_include_pad() {
    // 4x4 iota, kernel 3, stride 2, pad 1: windows (input coordinates) {0,1} (padded window
    // -1..1, 3 long) and {1,2,3}.
    //   (0,0): 0+1+4+5 = 10          include: /9   exclude: /4
    //   (0,1): 1+2+3+5+6+7 = 24      include: /9   exclude: /6
    //   (1,0): 4+5+8+9+12+13 = 51    include: /9   exclude: /6
    //   (1,1): 5+6+7+9+10+11+13+14+15 = 90, /9 either way
    let x = iota(4, 4);
    let y = avg_pool(3, 2, 1, false, true).forward(&x).unwrap();
    let expected = [10. / 9., 24. / 9., 51. / 9., 10.];
    assert_close(&y, &[1, 1, 2, 2], &expected, 1e-6, "include pad");
    let y = avg_pool(3, 2, 1, false, false).forward(&x).unwrap();
    assert_close(&y, &[1, 1, 2, 2], &[2.5, 4., 8.5, 10.], 1e-6, "exclude pad");
}

#[test]
fn avg_pool_ceil_mode_divisor_is_clipped_to_the_padded_input() {
    // 4x4 iota, kernel 3, stride 2, pad 1, ceil: ceil((4 + 2 - 3) / 2) + 1 = 3, and the last
    // window starts at 2 * 2 = 4 < 4 + 1, so it stays. Per axis, window starts -1, 1, 3:
    //   end = min(start + 3, 4 + 1) = 2, 4, 5  -> padded window sizes p = [3, 3, 2]
    //   real elements {0,1}, {1,2,3}, {3}      -> counts        n = [2, 3, 1]
    // The third window runs to 6 but only counts to the end of the padding (5): size 2, not 3.
    // Sums S(i,j) = 4 * n_j * sum(R_i) + n_i * sum(C_j) with row/col sums [1, 6, 3]:
    //   [[10, 24, 10], [51, 90, 33], [25, 42, 15]]
    let x = iota(4, 4);
    let y = avg_pool(3, 2, 1, true, true).forward(&x).unwrap();
    #[rustfmt::skip]
    let include = [
        10. / 9., 24. / 9., 10. / 6.,
        51. / 9., 90. / 9., 33. / 6.,
        25. / 6., 42. / 6., 15. / 4.,
    ];
    assert_close(&y, &[1, 1, 3, 3], &include, 1e-6, "ceil include pad");
    let y = avg_pool(3, 2, 1, true, false).forward(&x).unwrap();
    #[rustfmt::skip]
    let exclude = [
        2.5, 4., 5.,
        8.5, 10., 11.,
        12.5, 14., 15.,
    ];
    assert_close(&y, &[1, 1, 3, 3], &exclude, 1e-6, "ceil exclude pad");
}

#[test]
fn avg_pool_ceil_mode_without_padding() {
    // 5x5 iota, kernel 2, stride 2, ceil: windows {0,1}, {2,3}, {4}, whose padded size is also
    // clipped (to 5 + 0): divisors 2, 2, 1. Means of rows/cols m = [0.5, 2.5, 4]:
    // out = 5 * m_i + m_j.
    let y = avg_pool(2, 2, 0, true, true).forward(&iota(5, 5)).unwrap();
    #[rustfmt::skip]
    let expected = [
        3., 5., 6.5,
        13., 15., 16.5,
        20.5, 22.5, 24.,
    ];
    assert_close(&y, &[1, 1, 3, 3], &expected, 1e-6, "ceil no pad");
}

#[test]
fn adaptive_pool_6_to_4_uses_overlapping_bins() {
    // Bins for 6 -> 4: [floor(6i/4), ceil(6(i+1)/4)) = [0,2), [1,3), [3,5), [4,6); their means
    // m = [0.5, 1.5, 3.5, 4.5], so out[i][j] = 6 * m_i + m_j.
    let m = [0.5f32, 1.5, 3.5, 4.5];
    let expected: Vec<f32> = m
        .iter()
        .flat_map(|mi| m.iter().map(move |mj| 6.0 * mi + mj))
        .collect();
    let y = adaptive_avg_pool2d(&iota(6, 6), (4, 4)).unwrap();
    assert_close(&y, &[1, 1, 4, 4], &expected, 1e-6, "6 -> 4");
    assert_eq!(expected[0], 3.5);
    assert_eq!(expected[15], 31.5);
}

#[test]
fn adaptive_pool_14_to_4_like_the_googlenet_aux_head() {
    // Bins for 14 -> 4: [0,4), [3,7), [7,11), [10,14): means of rows 1.5, 4.5, 8.5, 11.5.
    let y = AdaptiveAvgPool2d::new((4, 1))
        .forward(&iota(14, 1))
        .unwrap();
    assert_close(&y, &[1, 1, 4, 1], &[1.5, 4.5, 8.5, 11.5], 1e-6, "14 -> 4");
}

#[test]
fn adaptive_pool_divisible_and_global() {
    // 4x4 -> 2x2: disjoint 2x2 blocks, mean 4 * m_i + m_j with m = [0.5, 2.5].
    let y = adaptive_avg_pool2d(&iota(4, 4), (2, 2)).unwrap();
    assert_close(&y, &[1, 1, 2, 2], &[2.5, 4.5, 10.5, 12.5], 1e-6, "4 -> 2");
    // Global: the mean of 0..15 is 7.5.
    let y = adaptive_avg_pool2d(&iota(4, 4), (1, 1)).unwrap();
    assert_close(&y, &[1, 1, 1, 1], &[7.5], 1e-6, "global");
    // Upsampling 2 -> 3: bins [0,1), [0,2), [1,2).
    let y = adaptive_avg_pool2d(&iota(1, 2), (1, 3)).unwrap();
    assert_close(&y, &[1, 1, 1, 3], &[0., 0.5, 1.], 1e-6, "2 -> 3");
}

#[test]
fn pools_reject_non_nchw_inputs_and_impossible_windows() {
    let flat = Tensor::zeros((3, 4), DType::F32, &Device::Cpu).unwrap();
    for err in [
        max_pool(2, 2, 0, false).forward(&flat).unwrap_err(),
        avg_pool(2, 2, 0, false, true).forward(&flat).unwrap_err(),
        adaptive_avg_pool2d(&flat, (1, 1)).unwrap_err(),
    ] {
        let err = err.to_string();
        assert!(
            err.contains("rank-4 NCHW") && err.contains("[3, 4]"),
            "{err}"
        );
    }
    let err = max_pool(8, 1, 0, false)
        .forward(&iota(7, 7))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("kernel 8 is larger than the padded input 7"),
        "{err}"
    );
    let err = avg_pool(3, 1, 2, false, true)
        .forward(&iota(7, 7))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("pad 2 should be at most half of the kernel 3"),
        "{err}"
    );
    assert!(adaptive_avg_pool2d(&iota(4, 4), (0, 2)).is_err());
}

#[test]
fn a_dilated_max_pool_takes_no_more_padding_than_half_its_kernel() {
    // Kernel 2 with dilation 3 spans 4 rows, but PyTorch 2.15's `pool2d_shape_check` still
    // limits padding to 2 / 2 = 1: `F.max_pool2d(x, 2, 1, 2, 3)` raises "pad should be smaller
    // than or equal to half of kernel size" (shape/tests/pytorch_table.csv has the row).
    let pool = |pad: usize| MaxPool2d {
        kernel: (2, 2),
        stride: (1, 1),
        pad: (pad, pad),
        dilation: (3, 3),
        ceil_mode: false,
    };
    let x = iota(8, 8);
    // (8 + 2 - 4) / 1 + 1 = 7.
    assert_eq!(pool(1).forward(&x).unwrap().dims(), [1, 1, 7, 7]);
    let err = pool(2).forward(&x).unwrap_err().to_string();
    assert!(
        err.contains("pad 2 should be at most half of the kernel 2"),
        "{err}"
    );
}

#[test]
fn pools_accept_non_contiguous_inputs() {
    let mut rng = Rng::new(7);
    let x = nchw(rng.vec(2 * 3 * 7 * 9), (2, 3, 7, 9));
    let xt = x.transpose(2, 3).unwrap();
    let xt_contiguous = xt.contiguous().unwrap();
    let pool = max_pool(3, 2, 1, true);
    assert_eq!(
        values(&pool.forward(&xt).unwrap()),
        values(&pool.forward(&xt_contiguous).unwrap())
    );
    let pool = avg_pool(3, 2, 1, true, false);
    assert_eq!(
        values(&pool.forward(&xt).unwrap()),
        values(&pool.forward(&xt_contiguous).unwrap())
    );
    assert_eq!(
        values(&adaptive_avg_pool2d(&xt, (4, 3)).unwrap()),
        values(&adaptive_avg_pool2d(&xt_contiguous, (4, 3)).unwrap())
    );
}

// ---------------------------------------------------------------------------------------------
// Plain reference loops, written from the PyTorch definitions and nothing in this crate.

/// PyTorch's pooling output size, computed in floating point from the documented formula.
fn reference_out(input: usize, k: usize, s: usize, p: usize, d: usize, ceil_mode: bool) -> i64 {
    let span = (input + 2 * p) as f64 - (d * (k - 1)) as f64 - 1.0;
    let q = span / s as f64;
    let mut out = if ceil_mode { q.ceil() } else { q.floor() } as i64 + 1;
    if ceil_mode && (out - 1) * s as i64 >= (input + p) as i64 {
        out -= 1;
    }
    out
}

struct Plane<'a> {
    data: &'a [f32],
    h: usize,
    w: usize,
}

impl Plane<'_> {
    fn at(&self, r: i64, c: i64) -> f32 {
        self.data[r as usize * self.w + c as usize]
    }
}

/// ATen's max pool: the window is clipped to the input, skipping padded taps by the dilation.
#[allow(clippy::too_many_arguments)]
fn reference_max(
    x: &Plane,
    k: (usize, usize),
    s: (usize, usize),
    p: (usize, usize),
    d: (usize, usize),
    out: (usize, usize),
) -> Vec<f32> {
    let mut y = Vec::new();
    for oh in 0..out.0 {
        for ow in 0..out.1 {
            let mut hstart = (oh * s.0) as i64 - p.0 as i64;
            let mut wstart = (ow * s.1) as i64 - p.1 as i64;
            let hend = (hstart + ((k.0 - 1) * d.0 + 1) as i64).min(x.h as i64);
            let wend = (wstart + ((k.1 - 1) * d.1 + 1) as i64).min(x.w as i64);
            while hstart < 0 {
                hstart += d.0 as i64;
            }
            while wstart < 0 {
                wstart += d.1 as i64;
            }
            let mut m = f32::NEG_INFINITY;
            let mut r = hstart;
            while r < hend {
                let mut c = wstart;
                while c < wend {
                    m = m.max(x.at(r, c));
                    c += d.1 as i64;
                }
                r += d.0 as i64;
            }
            y.push(m);
        }
    }
    y
}

/// ATen's average pool: divisor from the window clipped to input + pad, or the real elements.
fn reference_avg(
    x: &Plane,
    k: (usize, usize),
    s: (usize, usize),
    p: (usize, usize),
    include: bool,
    out: (usize, usize),
) -> Vec<f32> {
    let mut y = Vec::new();
    for oh in 0..out.0 {
        for ow in 0..out.1 {
            let mut h0 = (oh * s.0) as i64 - p.0 as i64;
            let mut w0 = (ow * s.1) as i64 - p.1 as i64;
            let mut h1 = (h0 + k.0 as i64).min((x.h + p.0) as i64);
            let mut w1 = (w0 + k.1 as i64).min((x.w + p.1) as i64);
            let pool_size = (h1 - h0) * (w1 - w0);
            h0 = h0.max(0);
            w0 = w0.max(0);
            h1 = h1.min(x.h as i64);
            w1 = w1.min(x.w as i64);
            if h0 >= h1 || w0 >= w1 {
                y.push(0.0);
                continue;
            }
            let mut sum = 0.0f32;
            for r in h0..h1 {
                for c in w0..w1 {
                    sum += x.at(r, c);
                }
            }
            let divisor = if include {
                pool_size
            } else {
                (h1 - h0) * (w1 - w0)
            };
            y.push(sum / divisor as f32);
        }
    }
    y
}

/// `adaptive_avg_pool2d`: bin i spans floor(i * n / m) .. ceil((i + 1) * n / m).
fn reference_adaptive(x: &Plane, out: (usize, usize)) -> Vec<f32> {
    let mut y = Vec::new();
    for i in 0..out.0 {
        let h0 = (i as f64 * x.h as f64 / out.0 as f64).floor() as usize;
        let h1 = ((i + 1) as f64 * x.h as f64 / out.0 as f64).ceil() as usize;
        for j in 0..out.1 {
            let w0 = (j as f64 * x.w as f64 / out.1 as f64).floor() as usize;
            let w1 = ((j + 1) as f64 * x.w as f64 / out.1 as f64).ceil() as usize;
            let mut sum = 0.0f32;
            for r in h0..h1 {
                for c in w0..w1 {
                    sum += x.data[r * x.w + c];
                }
            }
            y.push(sum / ((h1 - h0) * (w1 - w0)) as f32);
        }
    }
    y
}

/// Runs `reference` on each of the N*C planes of `x` and concatenates the results.
fn per_plane(x: &Tensor, mut reference: impl FnMut(&Plane) -> Vec<f32>) -> Vec<f32> {
    let (n, c, h, w) = x.dims4().unwrap();
    let data = values(x);
    (0..n * c)
        .flat_map(|i| {
            reference(&Plane {
                data: &data[i * h * w..(i + 1) * h * w],
                h,
                w,
            })
        })
        .collect()
}

/// Maps from one value to rows of several 16-lane vectors (17: one and a value, 35: two and three values, 113:
/// seven and one; 16 and 64: whole vectors, which an even window padded by half of it widens by one), as the
/// AVX-512 pool reads them.
const SIZES: [(usize, usize); 12] = [
    (1, 1),
    (2, 3),
    (5, 6),
    (6, 5),
    (7, 7),
    (4, 9),
    (14, 14),
    (3, 17),
    (4, 35),
    (2, 113),
    (3, 16),
    (2, 64),
];

#[test]
fn max_pool_matches_reference_loops() {
    let mut rng = Rng::new(1);
    let mut checked = 0;
    for (h, w) in SIZES {
        let x = nchw(rng.vec(2 * 3 * h * w), (2, 3, h, w));
        for k in 1usize..=4 {
            for s in 1..=3 {
                for d in 1..=2 {
                    // PyTorch allows padding up to half the kernel, dilated or not.
                    for p in 0..=k / 2 {
                        for ceil_mode in [false, true] {
                            // Non-square: the width axis gets kernel k, stride s, pad p; the
                            // height axis a smaller kernel where possible.
                            let kh = k.saturating_sub(1).max(1);
                            let ph = p.min(kh / 2);
                            let oh = reference_out(h, kh, s, ph, d, ceil_mode);
                            let ow = reference_out(w, k, s, p, d, ceil_mode);
                            let pool = MaxPool2d {
                                kernel: (kh, k),
                                stride: (s, s),
                                pad: (ph, p),
                                dilation: (d, d),
                                ceil_mode,
                            };
                            let what = format!("{h}x{w} {pool:?}");
                            if oh < 1 || ow < 1 {
                                assert!(pool.forward(&x).is_err(), "{what}: expected an error");
                                continue;
                            }
                            let (oh, ow) = (oh as usize, ow as usize);
                            let y = pool.forward(&x).unwrap_or_else(|e| panic!("{what}: {e}"));
                            let expected = per_plane(&x, |pl| {
                                reference_max(pl, (kh, k), (s, s), (ph, p), (d, d), (oh, ow))
                            });
                            assert_close(&y, &[2, 3, oh, ow], &expected, 0.0, &what);
                            checked += 1;
                        }
                    }
                }
            }
        }
    }
    assert!(checked > 300, "only {checked} configurations checked");
}

#[test]
fn avg_pool_matches_reference_loops() {
    let mut rng = Rng::new(2);
    let mut checked = 0;
    for (h, w) in SIZES {
        let x = nchw(rng.vec(2 * 3 * h * w), (2, 3, h, w));
        for k in 1..=5 {
            for s in 1..=3 {
                for p in 0..=k / 2 {
                    for ceil_mode in [false, true] {
                        for include in [false, true] {
                            let kh = (k + 1).min(5);
                            let ph = p.min(kh / 2);
                            let sh = s % 3 + 1;
                            let oh = reference_out(h, kh, sh, ph, 1, ceil_mode);
                            let ow = reference_out(w, k, s, p, 1, ceil_mode);
                            let pool = AvgPool2d {
                                kernel: (kh, k),
                                stride: (sh, s),
                                pad: (ph, p),
                                ceil_mode,
                                count_include_pad: include,
                            };
                            let what = format!("{h}x{w} {pool:?}");
                            if oh < 1 || ow < 1 {
                                assert!(pool.forward(&x).is_err(), "{what}: expected an error");
                                continue;
                            }
                            let (oh, ow) = (oh as usize, ow as usize);
                            let y = pool.forward(&x).unwrap_or_else(|e| panic!("{what}: {e}"));
                            let expected = per_plane(&x, |pl| {
                                reference_avg(pl, (kh, k), (sh, s), (ph, p), include, (oh, ow))
                            });
                            assert_close(&y, &[2, 3, oh, ow], &expected, 1e-6, &what);
                            checked += 1;
                        }
                    }
                }
            }
        }
    }
    assert!(checked > 300, "only {checked} configurations checked");
}

#[test]
fn avg_pool_ceil_mode_drop_cases_match_reference() {
    // Configurations where ceil mode adds a window, and where the added window would start in
    // the right padding and is dropped again.
    let mut rng = Rng::new(3);
    for (size, k, s, p) in [
        (6, 2, 2, 1),
        (5, 2, 2, 1),
        (7, 3, 3, 1),
        (8, 3, 2, 1),
        (4, 4, 3, 2),
    ] {
        let x = nchw(rng.vec(size * size), (1, 1, size, size));
        for include in [false, true] {
            let pool = avg_pool(k, s, p, true, include);
            let o = reference_out(size, k, s, p, 1, true) as usize;
            let y = pool.forward(&x).unwrap();
            let expected = per_plane(&x, |pl| {
                reference_avg(pl, (k, k), (s, s), (p, p), include, (o, o))
            });
            assert_close(
                &y,
                &[1, 1, o, o],
                &expected,
                1e-6,
                &format!("{size} {pool:?}"),
            );
            let y = max_pool(k, s, p, true).forward(&x).unwrap();
            let expected = per_plane(&x, |pl| {
                reference_max(pl, (k, k), (s, s), (p, p), (1, 1), (o, o))
            });
            assert_close(
                &y,
                &[1, 1, o, o],
                &expected,
                0.0,
                &format!("{size} max k{k} s{s} p{p}"),
            );
        }
    }
}

#[test]
fn adaptive_avg_pool_matches_reference_loops() {
    let mut rng = Rng::new(4);
    for (h, w) in SIZES {
        let x = nchw(rng.vec(2 * 3 * h * w), (2, 3, h, w));
        for oh in 1..=5 {
            for ow in [1, 2, 3, 4, 7] {
                let y = adaptive_avg_pool2d(&x, (oh, ow)).unwrap();
                let expected = per_plane(&x, |pl| reference_adaptive(pl, (oh, ow)));
                assert_close(
                    &y,
                    &[2, 3, oh, ow],
                    &expected,
                    1e-6,
                    &format!("{h}x{w} -> {oh}x{ow}"),
                );
            }
        }
    }
}

#[test]
fn max_pool_propagates_nan_and_infinities_for_every_window_shape() {
    // PyTorch's max pool returns NaN for any window holding one (`val > max || isnan(val)`), and infinities
    // are ordinary values. Swept over kernels, strides, dilations, padding and ceil mode on tiny inputs.
    let mut rng = Rng::new(21);
    let mut checked = 0;
    for h in [1usize, 2, 3, 5, 8] {
        let w = h + 1;
        for k in 1..=4usize {
            for s in 1..=3usize {
                for d in 1..=2usize {
                    // PyTorch allows padding up to half the kernel, dilated or not.
                    for p in 0..=k / 2 {
                        for ceil_mode in [false, true] {
                            let mut data = rng.vec(6 * h * w);
                            let len = data.len();
                            data[1] = f32::NAN;
                            data[5 % len] = f32::INFINITY;
                            data[7 % len] = f32::NEG_INFINITY;
                            let pool = MaxPool2d {
                                kernel: (k, k),
                                stride: (s, s),
                                pad: (p, p),
                                dilation: (d, d),
                                ceil_mode,
                            };
                            let x = nchw(data.clone(), (2, 3, h, w));
                            let Ok(y) = pool.forward(&x) else { continue };
                            let (oh, ow) = (y.dim(2).unwrap(), y.dim(3).unwrap());
                            let taps = |o: usize, len: usize| {
                                (0..k).filter_map(move |t| {
                                    (o * s + t * d).checked_sub(p).filter(|&i| i < len)
                                })
                            };
                            let mut expected = Vec::new();
                            for plane in 0..6 {
                                for oy in 0..oh {
                                    for ox in 0..ow {
                                        let mut max = f32::NEG_INFINITY;
                                        for iy in taps(oy, h) {
                                            for ix in taps(ox, w) {
                                                let v = data[(plane * h + iy) * w + ix];
                                                if v > max || v.is_nan() {
                                                    max = v;
                                                }
                                            }
                                        }
                                        expected.push(max);
                                    }
                                }
                            }
                            for (i, (g, e)) in values(&y).iter().zip(&expected).enumerate() {
                                assert!(
                                    g == e || (g.is_nan() && e.is_nan()),
                                    "{pool:?} on {h}x{w}, element {i}: {g} vs {e}"
                                );
                            }
                            checked += 1;
                        }
                    }
                }
            }
        }
    }
    assert!(checked > 100, "only {checked} pools were valid");
}

#[test]
fn maps_with_no_rows_or_no_columns_are_errors_and_an_empty_batch_an_empty_output() {
    // Padding lets a window fit a map of no rows or columns (kernel 2, pad 1: one window of padding only);
    // PyTorch rejects such maps, and so does archc, with an error naming the axis, never a panic.
    let max_pools = [max_pool(2, 2, 1, false), max_pool(3, 1, 1, true)];
    let avg_pools = [
        avg_pool(2, 2, 1, false, true),
        avg_pool(3, 1, 1, true, false),
    ];
    for (dims, axis) in [
        ((1, 2, 0, 0), "height"),
        ((1, 2, 3, 0), "width"),
        ((1, 2, 0, 3), "height"),
    ] {
        let x = Tensor::zeros(dims, DType::F32, &Device::Cpu).unwrap();
        let errors = max_pools
            .iter()
            .map(|p| p.forward(&x))
            .chain(avg_pools.iter().map(|p| p.forward(&x)));
        for result in errors {
            let message = result.expect_err("a map of no rows or columns").to_string();
            assert!(
                message.contains(&format!("input {axis} 0")),
                "{dims:?}: {message}"
            );
        }
    }
    // No images: the output has none either.
    let x = Tensor::zeros((0, 2, 4, 4), DType::F32, &Device::Cpu).unwrap();
    for y in max_pools
        .iter()
        .map(|p| p.forward(&x))
        .chain(avg_pools.iter().map(|p| p.forward(&x)))
    {
        assert_eq!(y.unwrap().dims()[..2], [0, 2]);
    }
}
