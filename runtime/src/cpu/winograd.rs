//! Winograd convolution F(m×m, r×r) for 3×3 and 5×5, and F(1×m, 1×r) and F(m×1, r×1) for 1×7 and 7×1,
//! stride-1, undilated, ungrouped convolutions: the layers that hold most of the multiply-adds of GoogLeNet,
//! ResNet and Inception-v3.
//!
//! The output is cut into `m × m` tiles, each computed from the `α × α` input patch under it (`α = m + r - 1`)
//! as `Y = Aᵀ [ U ⊙ V ] A` with `V = Bᵀ d B` (the input transform) and `U = G g Gᵀ` (the filter transform,
//! done once per layer, see [`transform_filters`]). Summed over input channels, the element-wise products
//! become `α²` independent matrix products, `M_ξ [out, tiles] = U_ξ [out, in] × V_ξ [in, tiles]`, which take
//! `α² / m²` multiply-adds per output and input channel instead of `r²`: for 3×3, 4 with F(2×2, 3×3)
//! ([`Tile::F2`], 2.25× fewer), 2.78 with F(3×3, 3×3) ([`Tile::F3`], 3.24× fewer) and 2.25 with F(4×4, 3×3)
//! ([`Tile::F4`], 4× fewer, with larger rounding errors: its transforms multiply by up to 8 and 5); for 5×5,
//! 9 with F(2×2, 5×5) ([`Tile::F2K5`], 2.78× fewer), whose patches, interpolation points and so input
//! transform are F(4×4, 3×3)'s. A kernel of one row or column
//! (Inception-v3's 1×7 and 7×1) is transformed along its one long side only: F(2, 7) takes 4 multiply-adds per
//! output instead of 7 ([`Tile::F1x2K7`], [`Tile::F2x1K7`]). In general a tile is `m_h × m_w` outputs from an
//! `α_h × α_w` patch, `α_h · α_w` products, each side with its own transform (the identity for a side of 1).
//!
//! One image runs in blocks of tiles (numbered row by row; a block may start and end mid-row), so that the
//! transformed input of a block, all its channels, stays in the core's cache between its transform and the
//! products:
//!
//! 1. Input transform, per channel: the padded rows under the block are copied into *phase rows*, each row's
//!    columns split by their position modulo `m_w`, so that for every tile column `tx` each of the `α_w`
//!    columns of the tile is at index `tx` of some phase run. [`LANES`] consecutive tiles are then transformed
//!    at once, one per vector lane, into `V` laid out `[in][α_h · α_w][tiles]`.
//! 2. For blocks of output channels: the `α_h · α_w` products ([`super::gemm`], the filters packed once per
//!    layer) into `M` `[out][α_h · α_w][tiles]`, then the output transform `A_hᵀ · A_w`, again [`LANES`]
//!    tiles at once, with the epilogue (bias, folded batch norm, ReLU) applied as each output row is written.
//!
//! Threads take whole images when there are enough images; otherwise an image is split between them
//! ([`Split`]): in bands of tile rows, each thread all of its band's work, where there are tiles enough and
//! the filters are small; else each block is, its input transform by input channel and its products by output
//! channel.
//!
//! The transforms are plain Rust over [`LANES`] tiles at once, compiled twice, for the baseline target and
//! with AVX2 and FMA (chosen at run time), as in [`super::depthwise`]; on AVX-512 CPUs the output transform
//! runs the same arithmetic on sixteen tiles a register and stores each output row under a mask
//! (`output_tiles_avx512`). Which layers are worth it is decided by shape, from measurements ([`choose`]).

use std::cell::Cell;
use std::mem::MaybeUninit;
use std::ops::Range;

use rayon::prelude::*;

use super::Isa;
use super::{gemm, valid_range, ConvGeometry, Epilogue};

/// The output tile of a Winograd convolution, and the kernel it is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tile {
    /// F(2×2, 3×3): 4×4 input patches, 16 products, 4 multiply-adds per output and input channel (9 direct).
    F2,
    /// F(3×3, 3×3): 5×5 input patches, 25 products, 2.78 multiply-adds per output and input channel (9
    /// direct); for maps whose side is a multiple of 3 or just under (14×14: 5×5 tiles cover 15×15, where
    /// F(4×4)'s 4×4 tiles cover 16×16 and F(2×2)'s do 4 multiply-adds an output).
    F3,
    /// F(4×4, 3×3): 6×6 input patches, 36 products, 2.25 multiply-adds per output and input channel (9 direct).
    F4,
    /// F(2×2, 5×5): 6×6 input patches, 36 products, 9 multiply-adds per output and input channel (25 direct).
    F2K5,
    /// F(1×2, 1×7), for a kernel one row high: 1×8 input patches, 8 products, 4 multiply-adds per output and
    /// input channel (7 direct).
    F1x2K7,
    /// F(2×1, 7×1), for a kernel one column wide: 8×1 input patches, 8 products, 4 multiply-adds per output and
    /// input channel (7 direct).
    F2x1K7,
}

impl Tile {
    /// The output tile's `(height, width)`, `(m_h, m_w)`.
    pub fn outputs(self) -> (usize, usize) {
        match self {
            Tile::F2 | Tile::F2K5 => (2, 2),
            Tile::F3 => (3, 3),
            Tile::F4 => (4, 4),
            Tile::F1x2K7 => (1, 2),
            Tile::F2x1K7 => (2, 1),
        }
    }

    /// The `(height, width)` of the kernel the tile is for, `(r_h, r_w)`.
    pub fn kernel(self) -> (usize, usize) {
        match self {
            Tile::F2 | Tile::F3 | Tile::F4 => (3, 3),
            Tile::F2K5 => (5, 5),
            Tile::F1x2K7 => (1, 7),
            Tile::F2x1K7 => (7, 1),
        }
    }

    /// The input patch's `(height, width)`, `(α_h, α_w) = (m_h + r_h - 1, m_w + r_w - 1)`.
    pub fn patch(self) -> (usize, usize) {
        let ((mh, mw), (rh, rw)) = (self.outputs(), self.kernel());
        (mh + rh - 1, mw + rw - 1)
    }

    /// The tile rows and tile columns that cover an `(oh, ow)` output.
    fn grid(self, (oh, ow): (usize, usize)) -> (usize, usize) {
        let (m_h, m_w) = self.outputs();
        (oh.div_ceil(m_h), ow.div_ceil(m_w))
    }

    /// The products per tile and pair of channels, `α_h · α_w`.
    pub fn products(self) -> usize {
        let (ah, aw) = self.patch();
        ah * aw
    }

    /// Whether this tile computes a convolution of geometry `g`: one that Winograd [`applies`] to, with the
    /// tile's kernel.
    pub(crate) fn fits(self, g: &ConvGeometry) -> bool {
        applies(g) && g.kernel == self.kernel()
    }
}

/// The input and output transforms of one tile size, applied to a vector of tiles at once ([`Vector`]): `Bᵀ`
/// to a column of `α` values, `Aᵀ` to a column of `α` products. Written out rather than as matrix products so
/// that no multiply by 0 or ±1 is left and common terms are shared. `FUSED` multiplies and adds with one
/// rounding.
trait Transform {
    /// The output tile's side, `m`.
    const M: usize;
    /// The input patch's side, `α = m + r - 1`.
    const A: usize;
    /// `Bᵀ d` for the first `α` values of `d`, into the first `α` of the result.
    fn input<V: Vector, const FUSED: bool>(d: &[V; PATCH]) -> [V; PATCH];
    /// `Aᵀ p` for the first `α` values of `p`, into the first `m` of the result.
    fn output<V: Vector, const FUSED: bool>(p: &[V; PATCH]) -> [V; 4];
}

/// `$call` with `$h` and `$w` naming the transforms of `$tile` down its columns and across its rows (the
/// identity along a side of one tap): the one place that says which transforms each tile takes.
macro_rules! with_transforms {
    ($tile:expr, |$h:ident, $w:ident| $call:expr) => {
        with_transforms!(@ $tile, $h, $w, $call;
            F2 => (F2, F2), F3 => (F3, F3), F4 => (F4, F4), F2K5 => (F2K5, F2K5),
            F1x2K7 => (Identity, F2K7), F2x1K7 => (F2K7, Identity))
    };
    (@ $tile:expr, $h:ident, $w:ident, $call:expr; $($t:ident => ($down:ty, $across:ty)),*) => {
        match $tile {
            $(Tile::$t => {
                type $h = $down;
                type $w = $across;
                $call
            })*
        }
    };
}

/// The longest side of an input patch, `α` (F(2, 7)'s).
const PATCH: usize = 8;

/// The side of a tile along which the kernel has one tap: nothing to transform (`m = α = 1`).
#[derive(Debug, Clone, Copy)]
struct Identity;

/// F(2×2, 3×3) with interpolation points 0, 1, -1 and ∞ (Lavin and Gray, 2016):
///
/// ```text
///      [1  0 -1  0]         [1   0   0]
/// Bᵀ = [0  1  1  0]     G = [½   ½   ½]     Aᵀ = [1  1  1  0]
///      [0 -1  1  0]         [½  -½   ½]          [0  1 -1 -1]
///      [0  1  0 -1]         [0   0   1]
/// ```
#[derive(Debug, Clone, Copy)]
struct F2;

/// F(3×3, 3×3) with interpolation points 0, 1, -1, 2 and ∞ (derived as Lavin's `wincnn` does):
///
/// ```text
///      [2 -1 -2  1  0]         [ 1/2     0     0]
///      [0 -2 -1  1  0]         [-1/2  -1/2  -1/2]          [1  1  1  1  0]
/// Bᵀ = [0  2 -3  1  0]     G = [-1/6   1/6  -1/6]     Aᵀ = [0  1 -1  2  0]
///      [0 -1  0  1  0]         [ 1/6   1/3   2/3]          [0  1  1  4  1]
///      [0  2 -1 -2  1]         [   0     0     1]
/// ```
#[derive(Debug, Clone, Copy)]
struct F3;

/// F(4×4, 3×3) with interpolation points 0, ±1, ±2 and ∞ (Lavin and Gray, 2016):
///
/// ```text
///      [4  0 -5  0  1  0]         [ 1/4     0     0]
///      [0 -4 -4  1  1  0]         [-1/6  -1/6  -1/6]          [1  1  1  1  1  0]
/// Bᵀ = [0  4 -4 -1  1  0]     G = [-1/6   1/6  -1/6]     Aᵀ = [0  1 -1  2 -2  0]
///      [0 -2 -1  2  1  0]         [1/24  1/12   1/6]          [0  1  1  4  4  0]
///      [0  2 -1 -2  1  0]         [1/24 -1/12   1/6]          [0  1 -1  8 -8  1]
///      [0  4  0 -5  0  1]         [   0     0     1]
/// ```
#[derive(Debug, Clone, Copy)]
struct F4;

/// F(2×2, 5×5) with F(4×4, 3×3)'s interpolation points, 0, ±1, ±2 and ∞, so with its `Bᵀ` (the input
/// transform depends only on the points): `Aᵀ` is the first two rows of F(4×4)'s evaluation at the points, with
/// ∞ moved to the last row's degree, and `G` evaluates the five taps at the points, scaled as F(4×4)'s:
///
/// ```text
///      [ 1/4     0     0     0      0]
///      [-1/6  -1/6  -1/6  -1/6   -1/6]
/// G =  [-1/6   1/6  -1/6   1/6   -1/6]     Aᵀ = [1  1  1  1  1  0]
///      [1/24  1/12   1/6   1/3    2/3]          [0  1 -1  2 -2  1]
///      [1/24 -1/12   1/6  -1/3    2/3]
///      [   0     0     0     0      1]
/// ```
#[derive(Debug, Clone, Copy)]
struct F2K5;

/// F(2, 7) along one side, with interpolation points 0, ±1, ±2, ±½ and ∞ (those of the common F(6, 3)):
///
/// ```text
///      [1    0  -21/4     0   21/4     0   -1  0]          [  1       0      0      0      0      0     0 ]
///      [0    1     1  -17/4  -17/4     1    1  0]          [-2/9   -2/9   -2/9   -2/9   -2/9   -2/9  -2/9 ]
///      [0   -1     1   17/4  -17/4    -1    1  0]          [-2/9    2/9   -2/9    2/9   -2/9    2/9  -2/9 ]
/// Bᵀ = [0  1/2   1/4   -5/2   -5/4     2    1  0]      G = [1/90   1/45   2/45   4/45   8/45  16/45 32/45 ]
///      [0 -1/2   1/4    5/2   -5/4    -2    1  0]          [1/90  -1/45   2/45  -4/45   8/45 -16/45 32/45 ]
///      [0    2     4   -5/2     -5   1/2    1  0]          [32/45 16/45   8/45   4/45   2/45   1/45  1/90 ]
///      [0   -2     4    5/2     -5  -1/2    1  0]          [32/45 -16/45  8/45  -4/45   2/45  -1/45  1/90 ]
///      [0   -1     0   21/4      0 -21/4    0  1]          [  0       0      0      0      0      0     1 ]
///
/// Aᵀ = [1  1  1  1  1    1    1  0]
///      [0  1 -1  2 -2  1/2 -1/2  1]
/// ```
#[derive(Debug, Clone, Copy)]
struct F2K7;

/// The values the transforms work on: [`LANES`] tiles' values ([`Lanes`]) or, in the AVX-512 output
/// transform, sixteen in a register.
trait Vector: Copy {
    fn zero() -> Self;
    fn add(a: &Self, b: &Self) -> Self;
    fn sub(a: &Self, b: &Self) -> Self;
    fn scaled(c: f32, a: &Self) -> Self;
    /// `c · a + b`; one rounding if `FUSED`.
    fn mul_add<const FUSED: bool>(c: f32, a: &Self, b: &Self) -> Self;
}

impl Vector for Lanes {
    #[inline(always)]
    fn zero() -> Lanes {
        [0.0; LANES]
    }

    #[inline(always)]
    fn add(a: &Lanes, b: &Lanes) -> Lanes {
        std::array::from_fn(|l| a[l] + b[l])
    }

    #[inline(always)]
    fn sub(a: &Lanes, b: &Lanes) -> Lanes {
        std::array::from_fn(|l| a[l] - b[l])
    }

    #[inline(always)]
    fn scaled(c: f32, a: &Lanes) -> Lanes {
        std::array::from_fn(|l| c * a[l])
    }

    #[inline(always)]
    fn mul_add<const FUSED: bool>(c: f32, a: &Lanes, b: &Lanes) -> Lanes {
        std::array::from_fn(|l| {
            if FUSED {
                a[l].mul_add(c, b[l])
            } else {
                c * a[l] + b[l]
            }
        })
    }
}

/// `a + b`, lane by lane.
#[inline(always)]
fn add<V: Vector>(a: &V, b: &V) -> V {
    V::add(a, b)
}

/// `a - b`, lane by lane.
#[inline(always)]
fn sub<V: Vector>(a: &V, b: &V) -> V {
    V::sub(a, b)
}

/// `c · a`, lane by lane.
#[inline(always)]
fn scaled<V: Vector>(c: f32, a: &V) -> V {
    V::scaled(c, a)
}

/// `c · a + b`, lane by lane; one rounding if `FUSED`.
#[inline(always)]
fn mul_add<const FUSED: bool, V: Vector>(c: f32, a: &V, b: &V) -> V {
    V::mul_add::<FUSED>(c, a, b)
}

impl Transform for F2 {
    const M: usize = 2;
    const A: usize = 4;

    #[inline(always)]
    fn input<V: Vector, const FUSED: bool>(d: &[V; PATCH]) -> [V; PATCH] {
        let zero = V::zero();
        [
            sub(&d[0], &d[2]),
            add(&d[1], &d[2]),
            sub(&d[2], &d[1]),
            sub(&d[1], &d[3]),
            zero,
            zero,
            zero,
            zero,
        ]
    }

    #[inline(always)]
    fn output<V: Vector, const FUSED: bool>(p: &[V; PATCH]) -> [V; 4] {
        let zero = V::zero();
        [
            add(&add(&p[0], &p[1]), &p[2]),
            sub(&sub(&p[1], &p[2]), &p[3]),
            zero,
            zero,
        ]
    }
}

impl Transform for F3 {
    const M: usize = 3;
    const A: usize = 5;

    #[inline(always)]
    fn input<V: Vector, const FUSED: bool>(d: &[V; PATCH]) -> [V; PATCH] {
        let zero = V::zero();
        let d3_1 = sub(&d[3], &d[1]);
        let d3_2 = sub(&d[3], &d[2]);
        [
            mul_add::<FUSED, _>(2.0, &sub(&d[0], &d[2]), &d3_1),
            mul_add::<FUSED, _>(-2.0, &d[1], &d3_2),
            mul_add::<FUSED, _>(2.0, &sub(&d[1], &d[2]), &d3_2),
            d3_1,
            mul_add::<FUSED, _>(-2.0, &d3_1, &sub(&d[4], &d[2])),
            zero,
            zero,
            zero,
        ]
    }

    #[inline(always)]
    fn output<V: Vector, const FUSED: bool>(p: &[V; PATCH]) -> [V; 4] {
        let zero = V::zero();
        let p12 = add(&p[1], &p[2]);
        let p1_2 = sub(&p[1], &p[2]);
        [
            add(&add(&p[0], &p12), &p[3]),
            mul_add::<FUSED, _>(2.0, &p[3], &p1_2),
            add(&mul_add::<FUSED, _>(4.0, &p[3], &p12), &p[4]),
            zero,
        ]
    }
}

impl Transform for F4 {
    const M: usize = 4;
    const A: usize = 6;

    #[inline(always)]
    fn input<V: Vector, const FUSED: bool>(d: &[V; PATCH]) -> [V; PATCH] {
        let zero = V::zero();
        // Rows 1 to 4 share sums and differences of d1..d4.
        let d12 = add(&d[1], &d[2]);
        let d34 = add(&d[3], &d[4]);
        let d1_2 = sub(&d[1], &d[2]);
        let d4_3 = sub(&d[4], &d[3]);
        let d4_2 = sub(&d[4], &d[2]);
        let d3_1 = sub(&d[3], &d[1]);
        [
            mul_add::<FUSED, _>(-5.0, &d[2], &mul_add::<FUSED, _>(4.0, &d[0], &d[4])),
            mul_add::<FUSED, _>(-4.0, &d12, &d34),
            mul_add::<FUSED, _>(4.0, &d1_2, &d4_3),
            mul_add::<FUSED, _>(2.0, &d3_1, &d4_2),
            mul_add::<FUSED, _>(-2.0, &d3_1, &d4_2),
            mul_add::<FUSED, _>(-5.0, &d[3], &mul_add::<FUSED, _>(4.0, &d[1], &d[5])),
            zero,
            zero,
        ]
    }

    #[inline(always)]
    fn output<V: Vector, const FUSED: bool>(p: &[V; PATCH]) -> [V; 4] {
        let p12 = add(&p[1], &p[2]);
        let p34 = add(&p[3], &p[4]);
        let p1_2 = sub(&p[1], &p[2]);
        let p3_4 = sub(&p[3], &p[4]);
        [
            add(&add(&p[0], &p12), &p34),
            mul_add::<FUSED, _>(2.0, &p3_4, &p1_2),
            mul_add::<FUSED, _>(4.0, &p34, &p12),
            add(&mul_add::<FUSED, _>(8.0, &p3_4, &p1_2), &p[5]),
        ]
    }
}

impl Transform for F2K5 {
    const M: usize = 2;
    const A: usize = 6;

    #[inline(always)]
    fn input<V: Vector, const FUSED: bool>(d: &[V; PATCH]) -> [V; PATCH] {
        F4::input::<V, FUSED>(d)
    }

    #[inline(always)]
    fn output<V: Vector, const FUSED: bool>(p: &[V; PATCH]) -> [V; 4] {
        let zero = V::zero();
        let p12 = add(&p[1], &p[2]);
        let p34 = add(&p[3], &p[4]);
        let p1_2 = sub(&p[1], &p[2]);
        let p3_4 = sub(&p[3], &p[4]);
        [
            add(&add(&p[0], &p12), &p34),
            add(&mul_add::<FUSED, _>(2.0, &p3_4, &p1_2), &p[5]),
            zero,
            zero,
        ]
    }
}

impl Transform for F2K7 {
    const M: usize = 2;
    const A: usize = 8;

    #[inline(always)]
    fn input<V: Vector, const FUSED: bool>(d: &[V; PATCH]) -> [V; PATCH] {
        // Rows 1 to 6 in pairs `a ± b`, `a` from the even values, `b` from the odd.
        let a1 = mul_add::<FUSED, _>(-4.25, &d[4], &add(&d[2], &d[6]));
        let b1 = mul_add::<FUSED, _>(-4.25, &d[3], &add(&d[1], &d[5]));
        let a3 = mul_add::<FUSED, _>(0.25, &d[2], &mul_add::<FUSED, _>(-1.25, &d[4], &d[6]));
        let b3 = mul_add::<FUSED, _>(
            0.5,
            &d[1],
            &mul_add::<FUSED, _>(-2.5, &d[3], &scaled(2.0, &d[5])),
        );
        let a5 = mul_add::<FUSED, _>(4.0, &d[2], &mul_add::<FUSED, _>(-5.0, &d[4], &d[6]));
        let b5 = mul_add::<FUSED, _>(
            2.0,
            &d[1],
            &mul_add::<FUSED, _>(-2.5, &d[3], &scaled(0.5, &d[5])),
        );
        [
            mul_add::<FUSED, _>(5.25, &sub(&d[4], &d[2]), &sub(&d[0], &d[6])),
            add(&a1, &b1),
            sub(&a1, &b1),
            add(&a3, &b3),
            sub(&a3, &b3),
            add(&a5, &b5),
            sub(&a5, &b5),
            mul_add::<FUSED, _>(5.25, &sub(&d[3], &d[5]), &sub(&d[7], &d[1])),
        ]
    }

    #[inline(always)]
    fn output<V: Vector, const FUSED: bool>(p: &[V; PATCH]) -> [V; 4] {
        let zero = V::zero();
        let p12 = add(&p[1], &p[2]);
        let p34 = add(&p[3], &p[4]);
        let p56 = add(&p[5], &p[6]);
        let p1_2 = sub(&p[1], &p[2]);
        let p3_4 = sub(&p[3], &p[4]);
        let p5_6 = sub(&p[5], &p[6]);
        [
            add(&add(&p[0], &p12), &add(&p34, &p56)),
            add(
                &mul_add::<FUSED, _>(0.5, &p5_6, &mul_add::<FUSED, _>(2.0, &p3_4, &p1_2)),
                &p[7],
            ),
            zero,
            zero,
        ]
    }
}

impl Transform for Identity {
    const M: usize = 1;
    const A: usize = 1;

    #[inline(always)]
    fn input<V: Vector, const FUSED: bool>(d: &[V; PATCH]) -> [V; PATCH] {
        let mut out = [V::zero(); PATCH];
        out[0] = d[0];
        out
    }

    #[inline(always)]
    fn output<V: Vector, const FUSED: bool>(p: &[V; PATCH]) -> [V; 4] {
        let mut out = [V::zero(); 4];
        out[0] = p[0];
        out
    }
}

/// `G` of F(2×2, 3×3), `α × 3`.
const G2: [[f64; 3]; 4] = [
    [1.0, 0.0, 0.0],
    [0.5, 0.5, 0.5],
    [0.5, -0.5, 0.5],
    [0.0, 0.0, 1.0],
];

/// `G` of F(3×3, 3×3), `α × 3`.
const G3: [[f64; 3]; 5] = [
    [0.5, 0.0, 0.0],
    [-0.5, -0.5, -0.5],
    [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
    [1.0 / 6.0, 1.0 / 3.0, 2.0 / 3.0],
    [0.0, 0.0, 1.0],
];

/// `G` of F(4×4, 3×3), `α × 3`.
const G4: [[f64; 3]; 6] = [
    [1.0 / 4.0, 0.0, 0.0],
    [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
    [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
    [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
    [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
    [0.0, 0.0, 1.0],
];

/// `G` of F(2×2, 5×5), `α × 5`.
const G2K5: [[f64; 5]; 6] = [
    [1.0 / 4.0, 0.0, 0.0, 0.0, 0.0],
    [-1.0 / 6.0; 5],
    [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
    [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0, 1.0 / 3.0, 2.0 / 3.0],
    [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0, -1.0 / 3.0, 2.0 / 3.0],
    [0.0, 0.0, 0.0, 0.0, 1.0],
];

/// `G` of F(2, 7), `α × 7`.
const G2K7: [[f64; 7]; 8] = [
    [1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
    [-2.0 / 9.0; 7],
    [
        -2.0 / 9.0,
        2.0 / 9.0,
        -2.0 / 9.0,
        2.0 / 9.0,
        -2.0 / 9.0,
        2.0 / 9.0,
        -2.0 / 9.0,
    ],
    [
        1.0 / 90.0,
        1.0 / 45.0,
        2.0 / 45.0,
        4.0 / 45.0,
        8.0 / 45.0,
        16.0 / 45.0,
        32.0 / 45.0,
    ],
    [
        1.0 / 90.0,
        -1.0 / 45.0,
        2.0 / 45.0,
        -4.0 / 45.0,
        8.0 / 45.0,
        -16.0 / 45.0,
        32.0 / 45.0,
    ],
    [
        32.0 / 45.0,
        16.0 / 45.0,
        8.0 / 45.0,
        4.0 / 45.0,
        2.0 / 45.0,
        1.0 / 45.0,
        1.0 / 90.0,
    ],
    [
        32.0 / 45.0,
        -16.0 / 45.0,
        8.0 / 45.0,
        -4.0 / 45.0,
        2.0 / 45.0,
        -1.0 / 45.0,
        1.0 / 90.0,
    ],
    [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0],
];

/// `G` of a side with one tap: `[1]`.
const G_IDENTITY: [[f64; 1]; 1] = [[1.0]];

/// Whether a Winograd convolution computes this geometry: a 3×3, 5×5, 1×7 or 7×1 kernel, stride 1, no
/// dilation, one group (any padding, any size).
pub(crate) fn applies(g: &ConvGeometry) -> bool {
    matches!(g.kernel, (3, 3) | (5, 5) | (1, 7) | (7, 1))
        && g.stride == (1, 1)
        && g.dilation == (1, 1)
        && g.groups == 1
}

/// The tile a convolution of this geometry runs fastest with, or `None` where the direct kernel
/// ([`super::conv2d_into`]) is faster or Winograd does not apply; `split` says whether each image is shared
/// between the threads ([`super::split_images`]). The thresholds are measured: one image, one thread, square
/// maps of 1 to 112 and 8 to 512 channels in and out (`bench/RESULTS.md`, *Winograd*).
///
/// * Winograd at all needs 16 channels in and out (with 8, F(2×2) ran at 0.9x the direct kernel's speed,
///   with 16 at 1.2-1.35x: the transforms cost per channel, the products per pair of channels) and 16 tiles of
///   2×2 (a 7×7 map): every image reads all `α² · c_out · c_in` transformed filters, which a map of a few
///   tiles does not pay back (512 channels: 0.6x at 4×4, 1.9x at 7×7). Below 49 such tiles (a 7×7 map), 64
///   channels: GoogLeNet's 32 → 128 and 48 → 128 on 7×7 took 0.028 and 0.035 ms against the direct kernel's
///   0.023 and 0.033 on one thread (`bench_conv`, 2026-11-29), its 160 → 320 0.19 against 0.24.
/// * F(4×4, 3×3) where it beat F(2×2): 64 channels from 28×28 on (at 64, 1.8x the direct kernel against
///   1.7x; at 128 and 192 on 28×28, 1.2-1.3x F(2×2)'s speed on one thread and two). At 32 channels the two ran
///   even, and F(4×4)'s larger rounding on Inception-v3's 32 → 32 and 32 → 64 layers on 147×147 maps put its
///   logits 1.2-1.6e-4 from PyTorch's (relative to their largest), against 5.4e-5 with F(2×2) there: F(4×4)
///   from 64 channels since issue 13's session 10. Never on 7×7 and 8×8 maps, which are 4 tiles of 4×4
///   (0.8-0.9x the direct kernel's speed; 448 → 384 on 8×8 0.98 ms by F(2×2), 2.10 by F(4×4)).
/// * F(3×3, 3×3) on maps of 13 to 20 (16 to 25 tiles of 4×4) from 96 channels, where F(2×2) computes 49 to
///   100 tiles of 16 products: always on 17×17 to 20×20 (`bench_winograd`, issue 13 session 15: 192 on 17×17
///   1.18 → 0.87 ms on one thread, 0.65 → 0.49 on two; 128 on 20×20 0.69 → 0.55 and 0.40 → 0.35; with the
///   filters flushed from the caches first, `bench_conv --flush 64`, 192 on 17×17 1.31 → 1.03 on one thread);
///   on 13×13 to 16×16 only for an image split between threads (`split`): on two threads 96 → 208 on 14×14
///   0.411 → 0.371 ms, 128 → 256 0.568 → 0.515, 160 → 320 0.791 → 0.706, and in GoogLeNet at batch 1 its
///   five 14×14 layers 0.1 ms less in all. An image on one thread keeps F(2×2) there: F(3×3)'s 25 tiles fill
///   a 32-column product tile to 78% and it ran even with F(2×2); F(4×4), 8–15% faster with its filters in
///   cache, was slower in the network (GoogLeNet one thread, +0.04 to +0.07 ms on each 14×14 layer), its
///   36 transformed matrices (2.25 times F(2×2)'s) read from memory for 16 tiles. At 64 channels on 14×14
///   the three ran even or F(2×2) ahead (0.110, 0.109, 0.124 ms).
pub(crate) fn choose(g: &ConvGeometry, split: bool) -> Option<Tile> {
    if !applies(g) {
        return None;
    }
    let channels = g.c_in.min(g.c_out);
    let tiles = |m: usize| g.out.0.div_ceil(m) * g.out.1.div_ceil(m);
    if channels < 16 || tiles(2) < 16 || (tiles(2) < 49 && channels < 64) {
        return None;
    }
    match g.kernel {
        (5, 5) => return (channels >= 24).then_some(Tile::F2K5),
        (1, 7) => return (channels >= 128).then_some(Tile::F1x2K7),
        (7, 1) => return (channels >= 128).then_some(Tile::F2x1K7),
        _ => {}
    }
    if channels >= 64 && tiles(4) >= 49 {
        return Some(Tile::F4);
    }
    if channels >= 96 && (16..=25).contains(&tiles(4)) && (split || tiles(4) > 16) {
        return Some(Tile::F3);
    }
    Some(Tile::F2)
}

/// The filters of a `[c_out, c_in, r_h, r_w]` weight transformed for `tile` (whose kernel is `r_h × r_w`) and
/// packed for the product kernels of `isa`: `U_ξ = G_h g G_wᵀ` for every output and input channel (computed in
/// `f64` and rounded once), one `[c_out, c_in]` matrix per product `ξ`, each packed by [`gemm::pack`], one after
/// the other.
pub(crate) fn transform_filters(
    weight: &[f32],
    c_out: usize,
    c_in: usize,
    tile: Tile,
    isa: gemm::Isa,
) -> Vec<f32> {
    let transformed = transform(weight, c_out, c_in, tile);
    transformed
        .chunks_exact(c_out * c_in)
        .flat_map(|u| gemm::pack(isa, u, c_out, c_in))
        .collect()
}

/// The transformed filters of [`transform_filters`] before packing, `[α_h · α_w][c_out][c_in]`.
fn transform(weight: &[f32], c_out: usize, c_in: usize, tile: Tile) -> Vec<f32> {
    // `G` of each side, `α × r`, row by row.
    let (g_h, g_w): (&[f64], &[f64]) = match tile {
        Tile::F2 => (G2.as_flattened(), G2.as_flattened()),
        Tile::F3 => (G3.as_flattened(), G3.as_flattened()),
        Tile::F4 => (G4.as_flattened(), G4.as_flattened()),
        Tile::F2K5 => (G2K5.as_flattened(), G2K5.as_flattened()),
        Tile::F1x2K7 => (G_IDENTITY.as_flattened(), G2K7.as_flattened()),
        Tile::F2x1K7 => (G2K7.as_flattened(), G_IDENTITY.as_flattened()),
    };
    let ((_, alpha_w), (r_h, r_w)) = (tile.patch(), tile.kernel());
    let plane = c_out * c_in;
    let taps = r_h * r_w;
    assert_eq!(
        weight.len(),
        plane * taps,
        "a [c_out, c_in, {r_h}, {r_w}] weight"
    );
    let mut out = vec![0f32; tile.products() * plane];
    // One product's matrix per task: `U_ξ[k][c] = Σ_ij G_h[a][i] w[k][c][i][j] G_w[b][j]`.
    out.par_chunks_mut(plane).enumerate().for_each(|(xi, dst)| {
        let (a, b) = (xi / alpha_w, xi % alpha_w);
        let mut coef = vec![0f64; taps];
        for i in 0..r_h {
            for j in 0..r_w {
                coef[i * r_w + j] = g_h[a * r_h + i] * g_w[b * r_w + j];
            }
        }
        for (d, w) in dst.iter_mut().zip(weight.chunks_exact(taps)) {
            let sum: f64 = coef.iter().zip(w).map(|(&c, &v)| c * f64::from(v)).sum();
            *d = sum as f32;
        }
    });
    out
}

/// Tiles per block: about as many as keep the block's transformed input, `c_in · α² · tiles` values, within
/// this many (half a MiB, inside a core's L2 cache with room for the products' output), but at least
/// [`MIN_BLOCK`].
const BLOCK_VALUES: usize = 1 << 17;

/// [`BLOCK_VALUES`] for an image whose blocks are split between the threads: four times larger (2 MiB, in
/// the shared L3 cache), since every block costs two hand-overs between threads (its input transform, then its
/// products), each about 10 µs, as much as a small layer's whole block.
const SPLIT_BLOCK_VALUES: usize = 4 * BLOCK_VALUES;

/// The fewest tiles per block (unless the image has fewer). Every block reads all the transformed filters,
/// `α² · c_out · c_in` values (16 MiB for F(2×2) at 512 channels), so with many channels, blocks sized for
/// the L2 cache alone (16 tiles at 512) read them from memory several times per image: 512 channels of 14×14
/// ran at 1.2x the direct kernel's speed instead of 1.9x.
const MIN_BLOCK: usize = 64;

/// Output channels whose products and output transform run together, at most: their `M` block stays in cache.
/// A multiple of every product kernel's panel height (4, 6 and 12 rows), so that blocks are whole panels of
/// the packed filters.
const CHANNEL_BLOCK: usize = 48;

/// Values of `M` a block of output channels holds, at most (1 MiB, a core's L2 cache): with blocks of tiles
/// sized for an image split between threads ([`SPLIT_BLOCK_VALUES`]) and few input channels, 48 channels'
/// products took 3 MiB (F(2×2) on Inception-v3's 32 → 64 layer on 147×147, `1024 tiles · 16 · 48`), written
/// to memory and read back: the layer took longer on two threads than on one.
const PRODUCT_VALUES: usize = 1 << 18;

/// The output channels whose products and output transform run together, for products `per_channel` values
/// apart: [`CHANNEL_BLOCK`], or fewer (a multiple of 12, at least 12) for their `M` to fit in
/// [`PRODUCT_VALUES`].
fn channel_block(per_channel: usize) -> usize {
    (PRODUCT_VALUES / per_channel.max(1) / 12 * 12).clamp(12, CHANNEL_BLOCK)
}

/// Values of one phase run of a map of `cols` tile columns: one per tile column, and [`LANES`] more for a run
/// of tiles starting at the last column, and as many again as a tile reaches into the next tiles' phases
/// (its columns `m_w..α_w` are those of the next `⌊(α_w - 1) / m_w⌋` tiles: one for F(2×2, 3×3) and
/// F(4×4, 3×3), two for F(2×2, 5×5), three for F(1×2, 1×7)).
fn run_len(cols: usize, tile: Tile) -> usize {
    cols + LANES + (tile.patch().1 - 1) / tile.outputs().1
}

/// How one image's output is cut into tiles, and the tiles (numbered row by row) into blocks.
#[derive(Debug, Clone, Copy)]
struct Grid {
    tile: Tile,
    /// Tile columns, `⌈ow / m⌉`.
    cols: usize,
    /// Tiles, `⌈oh / m⌉ · cols`.
    tiles: usize,
    /// Tiles per block: a multiple of 16, the product kernels' vector width (a ragged edge costs a whole
    /// vector), unless the image has fewer.
    block: usize,
    /// Distance between consecutive products' tiles in `V` and `M`: a block's tiles and [`LANES`] values of
    /// slack (the transforms read and write whole runs of `LANES` tiles), rounded up to 64 bytes.
    stride: usize,
    /// Distance between consecutive channels in `V` and `M`: `α²` products' runs and 16 values more, so that
    /// the rows a product reads are not a power of two apart (at 4 KiB apart, all of a product's rows map to the
    /// same L1 cache set and evict each other: the products ran at half speed).
    per_channel: usize,
    /// For each column phase `p < m`, the phase-run indices `lo..hi` whose padded column `m·i + p` is inside
    /// the input.
    phases: [(usize, usize); 4],
}

impl Grid {
    /// The grid of `g` with `tile`, blocks sized for `block_values` ([`BLOCK_VALUES`] or
    /// [`SPLIT_BLOCK_VALUES`]).
    fn new(g: &ConvGeometry, tile: Tile, block_values: usize) -> Grid {
        let m_w = tile.outputs().1;
        let (rows, cols) = tile.grid(g.out);
        let tiles = rows * cols;
        let products = tile.products();
        let most = (block_values / (g.c_in * products).max(1) / 16 * 16).max(MIN_BLOCK);
        // Blocks of about equal size, so the last is not a sliver.
        let blocks = tiles.div_ceil(most).max(1);
        let block = tiles.div_ceil(blocks).next_multiple_of(16).min(tiles);
        let stride = (block + LANES).next_multiple_of(16);
        let run = run_len(cols, tile);
        let mut phases = [(0, 0); 4];
        for (p, range) in phases.iter_mut().enumerate().take(m_w) {
            *range = valid_range(p, g.pad_before.1, m_w, g.w, run);
        }
        Grid {
            tile,
            cols,
            tiles,
            block,
            stride,
            per_channel: products * stride + 16,
            phases,
        }
    }

    /// Values of one phase run ([`run_len`]).
    fn run_len(&self) -> usize {
        run_len(self.cols, self.tile)
    }

    /// Values of a row in phase layout: `m_w` phase runs.
    fn row_len(&self) -> usize {
        self.tile.outputs().1 * self.run_len()
    }

    /// The tile rows that the tiles `tiles` lie in, each with the columns `lo..hi` of its tiles among them.
    fn rows(&self, tiles: &Range<usize>) -> impl Iterator<Item = (usize, Range<usize>)> + '_ {
        let first = tiles.start / self.cols;
        let last = tiles.end.div_ceil(self.cols);
        let tiles = tiles.clone();
        (first..last).map(move |ty| {
            let row = ty * self.cols;
            let lo = tiles.start.saturating_sub(row);
            let hi = (tiles.end - row).min(self.cols);
            (ty, lo..hi)
        })
    }
}

thread_local! {
    /// Each thread's buffer for the transformed input `V` of a block, reused across calls; taken and put back
    /// rather than borrowed, as `super::PATCHES` is, so a convolution stolen by a waiting thread allocates its
    /// own instead of aliasing it.
    static TRANSFORMED: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
    /// Each thread's buffer for the products' output `M` of a block of output channels, likewise.
    static PRODUCTS: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
}

/// [`conv2d_into`] into a buffer of its own, returned.
#[cfg(test)]
fn conv2d(
    x: &[f32],
    batch: usize,
    image_stride: usize,
    filters: Filters<'_>,
    tile: Tile,
    g: &ConvGeometry,
    epilogue: &Epilogue,
) -> Vec<f32> {
    conv2d_for(
        Isa::detect(),
        (x, batch, image_stride),
        filters,
        tile,
        g,
        epilogue,
    )
}

/// Convolves `batch` images by Winograd into `out`: `images` is `(x, batch, image_stride)`, `x` holding image
/// `n` at `x[n * image_stride..]` as a contiguous `[c_in, h, w]` block; `filters` is [`transform_filters`]'s
/// output for `tile` and the kernels of `filters.isa`. `out` must hold the contiguous `[batch, c_out, oh, ow]`
/// output exactly (a tensor's, or a channel slice of a concatenation at batch 1); every value of it is
/// written, with `epilogue` applied, as [`super::conv2d_into`] does. Needs [`applies`].
pub(crate) fn conv2d_into(
    images: (&[f32], usize, usize),
    filters: Filters<'_>,
    (tile, g): (Tile, &ConvGeometry),
    epilogue: &Epilogue,
    out: &mut [MaybeUninit<f32>],
) {
    write_for(Isa::detect(), images, filters, (tile, g), epilogue, out);
}

/// [`conv2d`] with the transforms compiled for `isa`, which the CPU must support.
#[cfg(test)]
fn conv2d_for(
    isa: Isa,
    images: (&[f32], usize, usize),
    filters: Filters<'_>,
    tile: Tile,
    g: &ConvGeometry,
    epilogue: &Epilogue,
) -> Vec<f32> {
    // Not zeroed: the tiles cover every output value of every channel (a zero-fill was 4% of GoogLeNet's
    // 64 -> 192 layer on 56×56).
    let mut out = super::Fresh::new(images.1 * g.c_out * g.out.0 * g.out.1);
    write_for(isa, images, filters, (tile, g), epilogue, out.values());
    // SAFETY: `write_for` writes every value of `out`.
    unsafe { out.assume_written() }
}

/// [`conv2d_into`] with the transforms compiled for `isa`, which the CPU must support.
fn write_for(
    isa: Isa,
    (x, batch, image_stride): (&[f32], usize, usize),
    filters: Filters<'_>,
    (tile, g): (Tile, &ConvGeometry),
    epilogue: &Epilogue,
    out: &mut [MaybeUninit<f32>],
) {
    assert!(tile.fits(g), "not a convolution {tile:?} computes: {g:?}");
    assert_eq!(
        filters.values.len(),
        tile.products() * gemm::packed_len(filters.isa, g.c_out, g.c_in),
        "filters transformed for another layer or tile"
    );
    let image_out = g.c_out * g.out.0 * g.out.1;
    assert_eq!(out.len(), batch * image_out, "output of another shape");
    if image_out == 0 {
        return;
    }
    let threads = rayon::current_num_threads();
    // Fewer images than threads: each image is split between the threads.
    let split = if super::split_images(batch) {
        Split::choose(g, tile, threads)
    } else {
        Split::None
    };
    let block_values = if split == Split::Channels {
        SPLIT_BLOCK_VALUES
    } else {
        BLOCK_VALUES
    };
    let grid = Grid::new(g, tile, block_values);
    let layer = Layer {
        isa,
        grid,
        filters,
        g,
        epilogue,
    };
    let image_in = g.c_in * g.h * g.w;
    let image = |n: usize| &x[n * image_stride..n * image_stride + image_in];
    if threads > 1 && split == Split::None {
        // Enough images to keep every thread busy: one image per task.
        out.par_chunks_mut(image_out)
            .enumerate()
            .for_each(|(n, dst)| layer.image(image(n), dst, Split::None));
    } else {
        for (n, dst) in out.chunks_mut(image_out).enumerate() {
            layer.image(image(n), dst, split);
        }
    }
    // Every image's output tiles, all its channels', are written (see `Layer::image`), and the tiles cover the
    // output.
}

/// How the threads share one image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Split {
    /// They do not: an image per thread, or one thread.
    None,
    /// Each thread a band of tile rows, all of its work: no value passes between threads, but each reads all
    /// the transformed filters.
    Bands,
    /// Each block of tiles by all the threads, its input transform by input channel and its products and
    /// output transform by output channel: each thread reads its share of the filters, but every block's
    /// transformed input passes between them.
    Channels,
}

/// Transformed filter values up to which an image is split into bands ([`Split::Bands`]): 4 MiB, which each
/// thread then reads for each of its blocks.
const BAND_FILTER_VALUES: usize = 1 << 20;

impl Split {
    /// How `threads` threads share an image of geometry `g` with `tile`: in bands where each thread has blocks
    /// of tiles enough and the filters are small (Inception-v3's and GoogLeNet's early layers; on a host whose
    /// two cores passed a value in 370 ns, Inception-v3's 32 → 64 layer on 147×147 took 4.0 ms on two threads
    /// split by channel, against 3.1 ms on one), otherwise by channel.
    fn choose(g: &ConvGeometry, tile: Tile, threads: usize) -> Split {
        let (rows, cols) = tile.grid(g.out);
        let filters = tile.products() * g.c_out * g.c_in;
        if rows * cols >= threads * MIN_BLOCK && filters <= BAND_FILTER_VALUES {
            Split::Bands
        } else {
            Split::Channels
        }
    }
}

/// Rows `rows` of the `[oh, ow]` output planes of `channels` consecutive output channels of one image: what
/// one task writes, whole planes or a band of rows of each.
struct Planes<'a> {
    ptr: *mut MaybeUninit<f32>,
    channels: usize,
    out: (usize, usize),
    rows: Range<usize>,
    _dst: std::marker::PhantomData<&'a mut [MaybeUninit<f32>]>,
}

// SAFETY: a `Planes` is the only access to its rows of its planes (`whole` borrows them, `band`'s contract
// says so), so it moves to another thread as the `&mut` slices it stands for would.
unsafe impl Send for Planes<'_> {}

impl<'a> Planes<'a> {
    /// The whole planes `dst` holds.
    fn whole(dst: &'a mut [MaybeUninit<f32>], (oh, ow): (usize, usize)) -> Planes<'a> {
        Planes {
            ptr: dst.as_mut_ptr(),
            channels: dst.len() / (oh * ow).max(1),
            out: (oh, ow),
            rows: 0..oh,
            _dst: std::marker::PhantomData,
        }
    }

    /// Rows `rows` of the `channels` planes from `ptr`.
    ///
    /// # Safety
    /// `ptr` must point at `channels` contiguous `[oh, ow]` planes whose rows `rows` nothing else reads or
    /// writes while the result lives.
    unsafe fn band(
        ptr: *mut MaybeUninit<f32>,
        channels: usize,
        (oh, ow): (usize, usize),
        rows: Range<usize>,
    ) -> Planes<'a> {
        assert!(rows.end <= oh, "rows past the plane");
        Planes {
            ptr,
            channels,
            out: (oh, ow),
            rows,
            _dst: std::marker::PhantomData,
        }
    }

    /// Channel `i`'s rows, from the band's first.
    fn channel(&mut self, i: usize) -> &mut [MaybeUninit<f32>] {
        assert!(i < self.channels, "channel past the planes");
        let (oh, ow) = self.out;
        // SAFETY: rows `rows` of plane `i` are inside the planes and this task's alone (`whole`, `band`);
        // `&mut self` lends one channel's at a time.
        unsafe {
            std::slice::from_raw_parts_mut(
                self.ptr.add(i * oh * ow + self.rows.start * ow),
                self.rows.len() * ow,
            )
        }
    }
}

/// [`transform_filters`]'s output, and the product kernels it was packed for.
#[derive(Clone, Copy)]
pub(crate) struct Filters<'a> {
    pub isa: gemm::Isa,
    pub values: &'a [f32],
}

/// One convolution: everything an image's computation reads besides the image.
struct Layer<'a> {
    isa: Isa,
    grid: Grid,
    filters: Filters<'a>,
    g: &'a ConvGeometry,
    epilogue: &'a Epilogue,
}

/// A task's buffers for the input transform.
#[derive(Default)]
struct InputScratch {
    /// The block's padded input rows of one channel in phase layout.
    phased: Vec<f32>,
    /// The layer whose padding columns `phased` holds zeros for (see `input_tiles`).
    zeroed_for: Option<(ConvGeometry, Tile)>,
}

impl Layer<'_> {
    /// One image `x` (`[c_in, h, w]`) into `dst` (`[c_out, oh, ow]`), shared between the threads as `split`
    /// says.
    fn image(&self, x: &[f32], dst: &mut [MaybeUninit<f32>], split: Split) {
        let (g, grid) = (self.g, &self.grid);
        match split {
            Split::None => self.tiles(x, 0..grid.tiles, Planes::whole(dst, g.out)),
            Split::Bands => {
                let rows = grid.tiles / grid.cols;
                let per_task = rows.div_ceil(rayon::current_num_threads());
                let m_h = grid.tile.outputs().0;
                let oh = g.out.0;
                assert!(dst.len() >= g.c_out * oh * g.out.1, "output too short");
                let ptr = dst.as_mut_ptr();
                // Each task its tile rows and the output rows under them.
                let bands: Vec<_> = (0..rows)
                    .step_by(per_task)
                    .map(|first| {
                        let last = (first + per_task).min(rows);
                        // SAFETY: `dst` holds the `c_out` planes (asserted above) and is borrowed for the
                        // tasks' whole run; the bands' output rows, those of their tile rows, are disjoint.
                        let planes = unsafe {
                            Planes::band(
                                ptr,
                                g.c_out,
                                g.out,
                                (first * m_h).min(oh)..(last * m_h).min(oh),
                            )
                        };
                        (first * grid.cols..last * grid.cols, planes)
                    })
                    .collect();
                bands
                    .into_par_iter()
                    .for_each(|(tiles, planes)| self.tiles(x, tiles, planes));
            }
            Split::Channels => self.image_by_channels(x, dst),
        }
    }

    /// The tiles `tiles` (whole tile rows, or all) of the image `x` into `planes`, block by block, on this
    /// thread.
    fn tiles(&self, x: &[f32], tiles: Range<usize>, mut planes: Planes<'_>) {
        let (g, grid) = (self.g, &self.grid);
        let mut transformed_buffer = TRANSFORMED.take();
        let transformed = super::scratch(&mut transformed_buffer, g.c_in * grid.per_channel);
        let plane_in = g.h * g.w;
        let mut scratch = InputScratch::default();
        for start in tiles.clone().step_by(grid.block) {
            let block = start..(start + grid.block).min(tiles.end);
            for (c, v) in transformed.chunks_mut(grid.per_channel).enumerate() {
                let src = &x[c * plane_in..(c + 1) * plane_in];
                self.input_channel(src, block.clone(), &mut scratch, v);
            }
            self.output_channels(transformed, block, 0, &mut planes);
        }
        TRANSFORMED.set(transformed_buffer);
    }

    /// One image `x` into `dst` ([`Split::Channels`]): every block's input transform spread over the threads
    /// by input channel, its products and output transform by output channel.
    fn image_by_channels(&self, x: &[f32], dst: &mut [MaybeUninit<f32>]) {
        let (g, grid) = (self.g, &self.grid);
        let per_channel = grid.per_channel;
        let mut transformed_buffer = TRANSFORMED.take();
        let transformed = super::scratch(&mut transformed_buffer, g.c_in * per_channel);
        let plane_in = g.h * g.w;
        let plane_out = g.out.0 * g.out.1;
        let threads = rayon::current_num_threads();
        // About one block of output channels per thread, a multiple of 8.
        let block_channels = g
            .c_out
            .div_ceil(threads)
            .next_multiple_of(8)
            .clamp(1, g.c_out);
        for start in (0..grid.tiles).step_by(grid.block) {
            let tiles = start..(start + grid.block).min(grid.tiles);
            let input = |scratch: &mut InputScratch, (c, v): (usize, &mut [f32])| {
                let src = &x[c * plane_in..(c + 1) * plane_in];
                self.input_channel(src, tiles.clone(), scratch, v);
            };
            transformed
                .par_chunks_mut(per_channel)
                .enumerate()
                .for_each_init(InputScratch::default, input);
            let transformed = &*transformed;
            dst.par_chunks_mut(block_channels * plane_out)
                .enumerate()
                .for_each(|(block, dst)| {
                    let mut planes = Planes::whole(dst, g.out);
                    self.output_channels(
                        transformed,
                        tiles.clone(),
                        block * block_channels,
                        &mut planes,
                    );
                });
        }
        TRANSFORMED.set(transformed_buffer);
    }

    /// The input transform of one channel's plane `src` (`[h, w]`) for the tiles `tiles`, into `v`
    /// (`[α²][grid.stride]`, from the block's first tile).
    fn input_channel(
        &self,
        src: &[f32],
        tiles: Range<usize>,
        scratch: &mut InputScratch,
        v: &mut [f32],
    ) {
        #[cfg(target_arch = "x86_64")]
        if self.isa != Isa::Portable {
            // SAFETY: the instruction sets past `Portable` are only chosen (by `detect` or `available`) on a CPU
            // that has AVX2 and FMA. The input transform takes AVX2 on AVX-512 CPUs too: compiled for AVX-512
            // it ran slower, and written for sixteen tiles a register (as the output transform is) even
            // (bench/RESULTS.md).
            return unsafe {
                with_transforms!(self.grid.tile, |H, W| input_tiles_avx2::<H, W>(
                    self, src, tiles, scratch, v
                ))
            };
        }
        with_transforms!(self.grid.tile, |H, W| input_tiles::<H, W, false>(
            self, src, tiles, scratch, v
        ))
    }

    /// For the output channels `first..` that `dst` holds (their planes' rows under `tiles`, at least), the
    /// products of the tiles `tiles` with the block's transformed input `v`, then their output transform into
    /// `dst`.
    fn output_channels(&self, v: &[f32], tiles: Range<usize>, first: usize, dst: &mut Planes<'_>) {
        let (g, grid) = (self.g, &self.grid);
        let xis = grid.tile.products();
        let count = tiles.len();
        let per_channel = grid.per_channel;
        let mut products_buffer = PRODUCTS.take();
        // With `LANES` values of slack at the end for the output transform's reads (see `output_tiles`).
        let m = super::scratch(
            &mut products_buffer,
            channel_block(per_channel).min(g.c_out) * per_channel + LANES,
        );
        let channel_block = channel_block(per_channel);
        for start in (0..dst.channels).step_by(channel_block) {
            let channels = channel_block.min(dst.channels - start);
            let k0 = first + start;
            let per_xi = gemm::packed_len(self.filters.isa, g.c_out, g.c_in);
            for xi in 0..xis {
                let u = gemm::Packed::new(
                    self.filters.isa,
                    &self.filters.values[xi * per_xi..(xi + 1) * per_xi],
                    g.c_out,
                    g.c_in,
                )
                .slice_rows(k0, channels);
                // M_ξ [channels, tiles] = U_ξ [channels, c_in] × V_ξ [c_in, tiles], rows `per_channel` apart
                // in both `V` and `M`.
                let (v, m) = (&v[xi * grid.stride..], &mut m[xi * grid.stride..]);
                assert!(
                    count <= per_channel
                        && v.len() >= (g.c_in - 1) * per_channel + count
                        && m.len() >= (channels - 1) * per_channel + count,
                    "Winograd products out of their buffers"
                );
                // SAFETY: `V_ξ`'s `c_in` rows and `M_ξ`'s `channels` rows of `count` values, `per_channel`
                // apart, are inside `v` and `m` (asserted above); `m` is borrowed mutably.
                unsafe {
                    gemm::multiply(
                        &[u],
                        gemm::Rhs::rows(v.as_ptr(), per_channel),
                        count,
                        (m.as_mut_ptr(), per_channel),
                        gemm::Finish::NONE,
                        gemm::Walk::DownColumns,
                    );
                }
            }
            let first_row = dst.rows.start;
            for i in 0..channels {
                let products = &m[i * per_channel..(i + 1) * per_channel + LANES];
                let plane = dst.channel(start + i);
                self.output_channel(products, tiles.clone(), k0 + i, (plane, first_row));
            }
        }
        PRODUCTS.set(products_buffer);
    }

    /// The output transform of one channel's products `m` (`[α_h · α_w][grid.stride]`) for the tiles `tiles`,
    /// with the epilogue, into its output plane (`[oh, ow]`), of which `dst.0` holds the rows from `dst.1` on.
    fn output_channel(
        &self,
        m: &[f32],
        tiles: Range<usize>,
        channel: usize,
        dst: (&mut [MaybeUninit<f32>], usize),
    ) {
        let finish = Finish {
            scale: self.epilogue.scale.as_ref().map_or(1.0, |s| s[channel]),
            shift: self.epilogue.shift.as_ref().map_or(0.0, |s| s[channel]),
            // The plan takes Winograd only for these two (`fused::conv_on_cpu`).
            relu: self.epilogue.activation == super::Activation::Relu,
        };
        let grid = &self.grid;
        let out = self.g.out;
        #[cfg(all(target_arch = "x86_64", feature = "avx512"))]
        if self.isa == Isa::Avx512 {
            // SAFETY: `Avx512` is only chosen on a CPU that has AVX-512F.
            return unsafe {
                with_transforms!(grid.tile, |H, W| output_tiles_avx512::<H, W>(
                    grid, out, m, tiles, finish, dst
                ))
            };
        }
        #[cfg(target_arch = "x86_64")]
        if self.isa != Isa::Portable {
            // SAFETY: as in `input_channel`: AVX2 and FMA are there.
            return unsafe {
                with_transforms!(grid.tile, |H, W| output_tiles_avx2::<H, W>(
                    grid, out, m, tiles, finish, dst
                ))
            };
        }
        with_transforms!(grid.tile, |H, W| output_tiles::<Lanes, H, W, false>(
            grid, out, m, tiles, finish, dst
        ))
    }
}

/// One output channel's epilogue: `act(scale · y + shift)`.
#[derive(Debug, Clone, Copy)]
struct Finish {
    scale: f32,
    shift: f32,
    relu: bool,
}

/// Tiles transformed together, one per vector lane: eight 8-lane AVX2 registers' worth of each value.
const LANES: usize = 8;

/// A value of [`LANES`] tiles.
type Lanes = [f32; LANES];

/// [`input_tiles`] compiled with AVX2 and FMA.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn input_tiles_avx2<H: Transform, W: Transform>(
    layer: &Layer<'_>,
    src: &[f32],
    tiles: Range<usize>,
    scratch: &mut InputScratch,
    v: &mut [f32],
) {
    input_tiles::<H, W, true>(layer, src, tiles, scratch, v);
}

/// The input transform `V = B_hᵀ d B_w` of the tiles `tiles` of one channel's plane `src` (`H` down the
/// patch's columns, `W` across its rows), into `v` (`[α_h · α_w][grid.stride]`, from tile `tiles.start`).
#[inline(always)]
fn input_tiles<H: Transform, W: Transform, const FUSED: bool>(
    layer: &Layer<'_>,
    src: &[f32],
    tiles: Range<usize>,
    scratch: &mut InputScratch,
    v: &mut [f32],
) {
    let (g, grid) = (layer.g, &layer.grid);
    let (m_h, alpha_h, m, alpha) = (H::M, H::A, W::M, W::A);
    let (run, row_len) = (grid.run_len(), grid.row_len());
    let (pt, pl) = g.pad_before;
    // The padded rows under the block's tile rows, in phase layout: padded column `m·i + p` at `p·run + i`.
    let first_row = tiles.start / grid.cols;
    let tile_rows = tiles.end.div_ceil(grid.cols) - first_row;
    let padded_rows = m_h * tile_rows + alpha_h - m_h;
    // A phase run's values outside `lo..hi` (the padding columns and the run's slack) are zeroed when the
    // buffer is first used for this layer and never written with anything else: filling them per row and
    // phase was a `memset` call each, 2% of ResNet-50's time. Padding rows are zeroed whole, as a row may hold
    // input values from another block.
    if scratch.zeroed_for != Some((*g, grid.tile)) {
        scratch.phased.clear();
        scratch.zeroed_for = Some((*g, grid.tile));
    }
    let phased = super::scratch(&mut scratch.phased, padded_rows * row_len);
    for (r, dst) in phased.chunks_exact_mut(row_len).enumerate() {
        let Some(iy) = (m_h * first_row + r).checked_sub(pt).filter(|&iy| iy < g.h) else {
            dst.fill(0.0);
            continue;
        };
        let src_row = &src[iy * g.w..(iy + 1) * g.w];
        for (p, phase) in dst.chunks_exact_mut(run).enumerate() {
            let (lo, hi) = grid.phases[p];
            if lo < hi {
                let first = lo * m + p - pl;
                let src = &src_row[first..first + (hi - lo - 1) * m + 1];
                for (d, &s) in phase[lo..hi].iter_mut().zip(src.iter().step_by(m)) {
                    *d = s;
                }
            }
        }
    }
    // `LANES` tiles at a time, every value in registers: the patch `d`, `Bᵀ d` down its columns, then
    // `(Bᵀ d) B` across. Column `j` of tile `tx` is phase `j mod m` at `tx + j / m`. The last run of a row may
    // reach past its tiles: the phase runs are long enough to read, and what is written past the row's tiles
    // is either overwritten by the next row's or lands in the slack at the end of each product's run
    // (`Grid::stride`).
    for (ty, columns) in grid.rows(&tiles) {
        let patch_rows = &phased[(ty - first_row) * m_h * row_len..][..alpha_h * row_len];
        for tx in columns.step_by(LANES) {
            // Where tile `(ty, tx)` is in the block.
            let at = ty * grid.cols + tx - tiles.start;
            let mut d = [[[0f32; LANES]; PATCH]; PATCH];
            for (r, d_row) in d.iter_mut().enumerate().take(alpha_h) {
                let row = &patch_rows[r * row_len..][..row_len];
                for (j, d) in d_row.iter_mut().enumerate().take(alpha) {
                    d.copy_from_slice(&row[(j % m) * run + j / m + tx..][..LANES]);
                }
            }
            // B_hᵀ down each column of the patch, then B_w across each row of the result.
            let mut down = [[[0f32; LANES]; PATCH]; PATCH];
            for j in 0..alpha {
                let column = H::input::<Lanes, FUSED>(&std::array::from_fn(|r| d[r][j]));
                for (a, value) in column.iter().enumerate().take(alpha_h) {
                    down[a][j] = *value;
                }
            }
            for (a, down_row) in down.iter().enumerate().take(alpha_h) {
                let across = W::input::<Lanes, FUSED>(down_row);
                for (b, value) in across.iter().enumerate().take(alpha) {
                    v[(a * alpha + b) * grid.stride + at..][..LANES].copy_from_slice(value);
                }
            }
        }
    }
}

/// [`output_tiles`] compiled with AVX2 and FMA, eight tiles at a time.
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn output_tiles_avx2<H: Transform, W: Transform>(
    grid: &Grid,
    out: (usize, usize),
    m: &[f32],
    tiles: Range<usize>,
    finish: Finish,
    dst: (&mut [MaybeUninit<f32>], usize),
) {
    output_tiles::<Lanes, H, W, true>(grid, out, m, tiles, finish, dst);
}

/// [`output_tiles`] compiled with AVX-512F, sixteen tiles a register: the products read under a mask, each
/// output row put in output order in registers and stored under a mask straight into its plane. Eight tiles
/// at a time the transform goes through arrays on the stack, zeroed for every eight tiles, and copies each
/// row out with a `memcpy` call: that zeroing and those copies were a third of GoogLeNet's 64 → 192 layer on
/// 56×56. The same operations in the same order, so the same values as the AVX2 version, bit for bit.
///
/// # Safety
/// The CPU must support AVX-512F.
#[cfg(all(target_arch = "x86_64", feature = "avx512"))]
#[target_feature(enable = "avx512f")]
unsafe fn output_tiles_avx512<H: Transform, W: Transform>(
    grid: &Grid,
    out: (usize, usize),
    m: &[f32],
    tiles: Range<usize>,
    finish: Finish,
    dst: (&mut [MaybeUninit<f32>], usize),
) {
    output_tiles::<Zmm, H, W, true>(grid, out, m, tiles, finish, dst);
}

/// The output transform `Y = A_hᵀ M A_w` of the tiles `tiles` of one output channel, whose products `m` are
/// laid out `[α_h · α_w][grid.stride]` from tile `tiles.start`, with `finish` applied, into the channel's
/// `[oh, ow]` plane (`out` being `(oh, ow)`), of which `dst` holds the rows from `dst.1` on; the parts of edge
/// tiles past the output are dropped. `V::TILES` tiles at a time, one per vector lane; it must be called from
/// a function compiled for `V`'s instructions.
#[inline(always)]
fn output_tiles<V: OutputVector, H: Transform, W: Transform, const FUSED: bool>(
    grid: &Grid,
    (oh, ow): (usize, usize),
    m: &[f32],
    tiles: Range<usize>,
    finish: Finish,
    (dst, first_row): (&mut [MaybeUninit<f32>], usize),
) {
    let (m_h, alpha_h, side, alpha) = (H::M, H::A, W::M, W::A);
    for (ty, columns) in grid.rows(&tiles) {
        // Only the row's tiles among `tiles` are written.
        let end = columns.end;
        for tx in columns.step_by(V::TILES) {
            let count = (end - tx).min(V::TILES);
            let at = ty * grid.cols + tx - tiles.start;
            assert!(
                (alpha_h * alpha - 1) * grid.stride + at + V::reads(count) <= m.len(),
                "Winograd products out of their buffer"
            );
            // A_wᵀ across each row of products, then A_hᵀ down each column of the result: `y = A_hᵀ M A_w`.
            let mut across = [[V::zero(); 4]; PATCH];
            for (a, across_row) in across.iter_mut().enumerate().take(alpha_h) {
                let mut products = [V::zero(); PATCH];
                for (b, value) in products.iter_mut().enumerate().take(alpha) {
                    // SAFETY: the values `load` reads are inside `m` (asserted above); the callers are compiled
                    // for `V`'s instructions.
                    *value = unsafe {
                        V::load(m.as_ptr().add((a * alpha + b) * grid.stride + at), count)
                    };
                }
                *across_row = W::output::<V, FUSED>(&products);
            }
            let mut y = [[V::zero(); 4]; 4];
            for j in 0..side {
                let mut column = [V::zero(); PATCH];
                for (a, value) in column.iter_mut().enumerate().take(alpha_h) {
                    *value = across[a][j];
                }
                let column = H::output::<V, FUSED>(&column);
                for (i, value) in column.iter().enumerate().take(m_h) {
                    y[i][j] = value.finish(&finish);
                }
            }
            // The output columns these tiles cover, clipped to the map.
            let x0 = tx * side;
            let width = (count * side).min(ow - x0);
            for (i, y_row) in y.iter().enumerate().take(m_h) {
                let oy = ty * m_h + i;
                if oy >= oh {
                    break;
                }
                let dst_row = &mut dst[(oy - first_row) * ow + x0..][..width];
                // SAFETY: `width` values, `dst_row`'s (`MaybeUninit<f32>` has `f32`'s layout); the callers are
                // compiled for `V`'s instructions.
                unsafe {
                    V::store_row::<FUSED>(&y_row[..side], dst_row.as_mut_ptr().cast(), width)
                };
            }
        }
    }
}

/// What the output transform does with its vectors besides their arithmetic ([`Vector`]): read a vector of
/// tiles' products, finish its values, and write a row of tiles out in output order.
trait OutputVector: Vector {
    /// Tiles in a vector.
    const TILES: usize;

    /// The values [`OutputVector::load`] reads for `count` tiles.
    fn reads(count: usize) -> usize;

    /// The products of `count` tiles (at most [`OutputVector::TILES`]) from `src`, in the first `count` lanes.
    ///
    /// # Safety
    /// `Self::reads(count)` values from `src` must be readable, and the CPU must have the vector's
    /// instructions.
    unsafe fn load(src: *const f32, count: usize) -> Self;

    /// `act(scale · v + shift)`, a product and a sum each rounded, then ReLU if `finish` asks for it. `max`
    /// returns its second operand when either is NaN: ReLU's NaN becomes 0, as with `f32::max`.
    fn finish(&self, finish: &Finish) -> Self;

    /// The first `width` values of the output row whose tile `l`'s column `j` is lane `l` of `columns[j]`
    /// (value `side · l + j`, `side` being `columns.len()`), written to `dst`. `FUSED`: compiled with AVX2.
    ///
    /// # Safety
    /// `width` values from `dst` must be writable, at most `side · TILES`; the CPU must have the vector's
    /// instructions.
    unsafe fn store_row<const FUSED: bool>(columns: &[Self], dst: *mut f32, width: usize);
}

impl OutputVector for Lanes {
    const TILES: usize = LANES;

    /// All eight: each product's run has `LANES` values of slack past its tiles (`Grid::stride`).
    fn reads(_: usize) -> usize {
        LANES
    }

    #[inline(always)]
    unsafe fn load(src: *const f32, _: usize) -> Lanes {
        // SAFETY: `LANES` values are readable (the caller's contract).
        unsafe { src.cast::<Lanes>().read_unaligned() }
    }

    #[inline(always)]
    fn finish(&self, finish: &Finish) -> Lanes {
        self.map(|v| {
            let v = v * finish.scale + finish.shift;
            if finish.relu {
                v.max(0.0)
            } else {
                v
            }
        })
    }

    #[inline(always)]
    unsafe fn store_row<const FUSED: bool>(columns: &[Lanes], dst: *mut f32, width: usize) {
        let mut row = [0f32; 4 * LANES];
        #[cfg(target_arch = "x86_64")]
        if FUSED {
            // SAFETY: `output_tiles::<_, true>` is only called from `output_tiles_avx2` and
            // `output_tiles_avx512`, on a CPU with AVX.
            unsafe { interleave_avx(columns, &mut row) };
        } else {
            interleave(columns, &mut row);
        }
        #[cfg(not(target_arch = "x86_64"))]
        interleave(columns, &mut row);
        let whole = columns.len() * LANES;
        // SAFETY: `width` values are writable at `dst` (the caller's contract), and a local array does not
        // overlap them. A whole row is a copy of a size known at compile time, inlined rather than a call to
        // `memcpy`.
        unsafe {
            if width == whole {
                std::ptr::copy_nonoverlapping(row.as_ptr(), dst, whole);
            } else {
                std::ptr::copy_nonoverlapping(row.as_ptr(), dst, width);
            }
        }
    }
}

/// Sixteen tiles' values of one product in an AVX-512 register.
#[cfg(all(target_arch = "x86_64", feature = "avx512"))]
#[derive(Clone, Copy)]
struct Zmm(std::arch::x86_64::__m512);

// SAFETY (of the intrinsics in these methods): they are only inlined into `output_tiles_avx512`, which is
// compiled for AVX-512F.
#[cfg(all(target_arch = "x86_64", feature = "avx512"))]
impl Vector for Zmm {
    #[inline(always)]
    fn zero() -> Zmm {
        use std::arch::x86_64::*;
        unsafe { Zmm(_mm512_setzero_ps()) }
    }

    #[inline(always)]
    fn add(a: &Zmm, b: &Zmm) -> Zmm {
        use std::arch::x86_64::*;
        unsafe { Zmm(_mm512_add_ps(a.0, b.0)) }
    }

    #[inline(always)]
    fn sub(a: &Zmm, b: &Zmm) -> Zmm {
        use std::arch::x86_64::*;
        unsafe { Zmm(_mm512_sub_ps(a.0, b.0)) }
    }

    #[inline(always)]
    fn scaled(c: f32, a: &Zmm) -> Zmm {
        use std::arch::x86_64::*;
        unsafe { Zmm(_mm512_mul_ps(_mm512_set1_ps(c), a.0)) }
    }

    #[inline(always)]
    fn mul_add<const FUSED: bool>(c: f32, a: &Zmm, b: &Zmm) -> Zmm {
        use std::arch::x86_64::*;
        unsafe {
            let c = _mm512_set1_ps(c);
            Zmm(if FUSED {
                _mm512_fmadd_ps(a.0, c, b.0)
            } else {
                _mm512_add_ps(_mm512_mul_ps(c, a.0), b.0)
            })
        }
    }
}

// SAFETY (of the intrinsics in these methods): as for `Vector for Zmm`.
#[cfg(all(target_arch = "x86_64", feature = "avx512"))]
impl OutputVector for Zmm {
    const TILES: usize = 16;

    /// The `count` tiles' values alone: the others are masked off.
    fn reads(count: usize) -> usize {
        count
    }

    #[inline(always)]
    unsafe fn load(src: *const f32, count: usize) -> Zmm {
        use std::arch::x86_64::*;
        // SAFETY: the `count` values loaded are readable (the caller's contract); the others are not read.
        unsafe { Zmm(_mm512_maskz_loadu_ps(super::avx512::lane_mask(count), src)) }
    }

    #[inline(always)]
    fn finish(&self, finish: &Finish) -> Zmm {
        use std::arch::x86_64::*;
        unsafe {
            let v = _mm512_add_ps(
                _mm512_mul_ps(self.0, _mm512_set1_ps(finish.scale)),
                _mm512_set1_ps(finish.shift),
            );
            Zmm(if finish.relu {
                _mm512_max_ps(v, _mm512_setzero_ps())
            } else {
                v
            })
        }
    }

    #[inline(always)]
    unsafe fn store_row<const FUSED: bool>(columns: &[Zmm], dst: *mut f32, width: usize) {
        use std::arch::x86_64::*;
        let side = columns.len();
        let column = |j: usize| columns.get(j).map_or(Zmm::zero(), |c| *c).0;
        for (o, (index, upper)) in interleaving(side).iter().enumerate().take(side) {
            let lanes = width.saturating_sub(16 * o).min(16);
            if lanes == 0 {
                break;
            }
            // SAFETY: `index` holds sixteen `i32`s; the stored lanes are among the `width` values writable at
            // `dst` (the caller's contract).
            unsafe {
                let index = _mm512_loadu_si512(index.as_ptr().cast());
                let low = _mm512_permutex2var_ps(column(0), index, column(1));
                let v = if side > 2 {
                    let high = _mm512_permutex2var_ps(column(2), index, column(3));
                    _mm512_mask_blend_ps(*upper, low, high)
                } else {
                    low
                };
                _mm512_mask_storeu_ps(dst.add(16 * o), super::avx512::lane_mask(lanes), v);
            }
        }
    }
}

/// For an output row of sixteen tiles `side` columns wide (`out[side·l + j] = y_j[l]`), its vector `o`
/// (values `16·o..16·o + 16`): each lane's index into `y_0, y_1` (or `y_2, y_3`) for
/// `_mm512_permutex2var_ps` (`j mod 2` picks the register, `l` the lane), and a mask of the lanes that come
/// from `y_2` or `y_3`.
#[cfg(all(target_arch = "x86_64", feature = "avx512"))]
const fn interleaving_table(side: usize) -> [([i32; 16], u16); 4] {
    let mut table = [([0; 16], 0); 4];
    let mut o = 0;
    while o < 4 {
        let mut q = 0;
        while q < 16 {
            let p = 16 * o + q;
            let (l, j) = (p / side, p % side);
            // Past the sixteenth tile (vectors a row of fewer than four columns has not): any index.
            table[o].0[q] = if l < 16 { ((j & 1) * 16 + l) as i32 } else { 0 };
            if j >= 2 {
                table[o].1 |= 1 << q;
            }
            q += 1;
        }
        o += 1;
    }
    table
}

/// [`interleaving_table`] for a row of tiles `side` (1 to 4) columns wide, computed at compile time.
#[cfg(all(target_arch = "x86_64", feature = "avx512"))]
fn interleaving(side: usize) -> &'static [([i32; 16], u16); 4] {
    const TABLES: [[([i32; 16], u16); 4]; 4] = [
        interleaving_table(1),
        interleaving_table(2),
        interleaving_table(3),
        interleaving_table(4),
    ];
    &TABLES[side - 1]
}

/// One output row of `LANES` tiles in output order: `row[side·l + j] = columns[j][l]`, `side` being
/// `columns.len()`.
fn interleave(columns: &[Lanes], row: &mut [f32; 4 * LANES]) {
    let side = columns.len();
    for (j, column) in columns.iter().enumerate() {
        for (l, &v) in column.iter().enumerate() {
            row[l * side + j] = v;
        }
    }
}

/// [`interleave`] with AVX shuffles for both tile sizes (the compiler's version went through the stack value
/// by value: the output transform was 7% of Inception-v3's time).
///
/// # Safety
/// The CPU must support AVX.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
#[inline]
unsafe fn interleave_avx(columns: &[Lanes], row: &mut [f32; 4 * LANES]) {
    use std::arch::x86_64::*;
    let load = |j: usize| {
        // SAFETY: `columns[j]` holds `LANES` (8) values; the CPU has AVX (the caller's contract).
        unsafe { _mm256_loadu_ps(columns[j].as_ptr()) }
    };
    let out = row.as_mut_ptr();
    // SAFETY: `row` holds 32 values; the CPU has AVX.
    unsafe {
        match columns.len() {
            2 => {
                let (a, b) = (load(0), load(1));
                // [a0 b0 a1 b1 | a4 b4 a5 b5], [a2 b2 a3 b3 | a6 b6 a7 b7]
                let (lo, hi) = (_mm256_unpacklo_ps(a, b), _mm256_unpackhi_ps(a, b));
                _mm256_storeu_ps(out, _mm256_permute2f128_ps::<0x20>(lo, hi));
                _mm256_storeu_ps(out.add(8), _mm256_permute2f128_ps::<0x31>(lo, hi));
            }
            4 => {
                let (a, b, c, d) = (load(0), load(1), load(2), load(3));
                let (ab_lo, ab_hi) = (_mm256_unpacklo_ps(a, b), _mm256_unpackhi_ps(a, b));
                let (cd_lo, cd_hi) = (_mm256_unpacklo_ps(c, d), _mm256_unpackhi_ps(c, d));
                // Tile 0 | 4, 1 | 5, 2 | 6, 3 | 7, each `[a b c d]`.
                let t04 = _mm256_shuffle_ps::<0x44>(ab_lo, cd_lo);
                let t15 = _mm256_shuffle_ps::<0xEE>(ab_lo, cd_lo);
                let t26 = _mm256_shuffle_ps::<0x44>(ab_hi, cd_hi);
                let t37 = _mm256_shuffle_ps::<0xEE>(ab_hi, cd_hi);
                _mm256_storeu_ps(out, _mm256_permute2f128_ps::<0x20>(t04, t15));
                _mm256_storeu_ps(out.add(8), _mm256_permute2f128_ps::<0x20>(t26, t37));
                _mm256_storeu_ps(out.add(16), _mm256_permute2f128_ps::<0x31>(t04, t15));
                _mm256_storeu_ps(out.add(24), _mm256_permute2f128_ps::<0x31>(t26, t37));
            }
            _ => interleave(columns, row),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{naive_conv, out_len, values};
    use super::*;

    /// A stride-1 convolution with an `r_h × r_w` kernel.
    fn geometry(
        c_in: usize,
        (h, w): (usize, usize),
        c_out: usize,
        pad: [usize; 4],
        (r_h, r_w): (usize, usize),
    ) -> ConvGeometry {
        let [top, bottom, left, right] = pad;
        ConvGeometry {
            c_in,
            h,
            w,
            c_out,
            kernel: (r_h, r_w),
            stride: (1, 1),
            pad_before: (top, left),
            dilation: (1, 1),
            groups: 1,
            out: (
                out_len(h, r_h, 1, (top, bottom), 1),
                out_len(w, r_w, 1, (left, right), 1),
            ),
        }
    }

    /// The largest difference from `want`, over the largest value of `want` (at least 1).
    fn relative_error(got: &[f32], want: &[f32]) -> f32 {
        assert_eq!(got.len(), want.len());
        let scale = want.iter().fold(1f32, |m, v| m.max(v.abs()));
        let diff = got
            .iter()
            .zip(want)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        diff / scale
    }

    #[test]
    fn every_tile_and_instruction_set_matches_the_definition() {
        // (kernel, c_in, (h, w), c_out, pad [top, bottom, left, right], batch): odd sizes, maps smaller than a
        // tile, asymmetric padding, more than one block of tiles (starting mid-row) and of output channels,
        // with the blocks sized both for one image per thread and for an image split between threads; 3×3,
        // 5×5, 1×7 and 7×1 kernels.
        let cases = [
            ((3, 3), 1, (1, 1), 1, [1, 1, 1, 1], 1),
            ((3, 3), 2, (5, 7), 3, [0, 0, 0, 0], 2),
            ((3, 3), 3, (5, 7), 4, [1, 1, 1, 1], 3),
            ((3, 3), 4, (13, 13), 5, [2, 2, 2, 2], 1),
            ((3, 3), 3, (6, 9), 2, [0, 2, 1, 0], 2),
            ((3, 3), 5, (3, 3), 2, [0, 0, 0, 0], 1),
            ((3, 3), 8, (40, 37), 50, [1, 1, 1, 1], 1),
            ((3, 3), 70, (30, 30), 9, [1, 1, 1, 1], 2),
            ((3, 3), 130, (40, 40), 5, [1, 1, 1, 1], 1),
            ((5, 5), 1, (1, 1), 1, [2, 2, 2, 2], 1),
            ((5, 5), 2, (5, 7), 3, [0, 0, 0, 0], 2),
            ((5, 5), 3, (6, 9), 4, [2, 2, 2, 2], 3),
            ((5, 5), 4, (13, 11), 5, [1, 3, 0, 2], 1),
            ((5, 5), 8, (35, 35), 50, [2, 2, 2, 2], 1),
            ((5, 5), 70, (30, 31), 9, [2, 2, 2, 2], 2),
            ((1, 7), 1, (1, 1), 1, [0, 0, 3, 3], 1),
            ((1, 7), 3, (17, 17), 4, [0, 0, 3, 3], 2),
            ((1, 7), 2, (5, 9), 3, [1, 0, 0, 0], 3),
            ((1, 7), 5, (6, 20), 7, [0, 2, 2, 5], 1),
            ((1, 7), 40, (17, 17), 60, [0, 0, 3, 3], 1),
            ((1, 7), 70, (30, 33), 9, [0, 0, 3, 3], 2),
            ((7, 1), 1, (1, 1), 1, [3, 3, 0, 0], 1),
            ((7, 1), 3, (17, 17), 4, [3, 3, 0, 0], 2),
            ((7, 1), 2, (9, 5), 3, [0, 0, 1, 0], 3),
            ((7, 1), 5, (20, 6), 7, [2, 5, 0, 2], 1),
            ((7, 1), 40, (17, 17), 60, [3, 3, 0, 0], 1),
            ((7, 1), 70, (33, 30), 9, [3, 3, 0, 0], 2),
        ];
        // One thread, an image per thread, and images split between threads.
        let pools: Vec<rayon::ThreadPool> = [1, 2, 3]
            .iter()
            .map(|&n| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(n)
                    .build()
                    .unwrap()
            })
            .collect();
        let tiles = [
            Tile::F2,
            Tile::F3,
            Tile::F4,
            Tile::F2K5,
            Tile::F1x2K7,
            Tile::F2x1K7,
        ];
        let mut splits = std::collections::HashSet::new();
        for (case, &(kernel, c_in, size, c_out, pad, batch)) in cases.iter().enumerate() {
            let g = geometry(c_in, size, c_out, pad, kernel);
            let x = values(batch * c_in * size.0 * size.1, case as u32);
            let weight = values(c_out * c_in * kernel.0 * kernel.1, 50 + case as u32);
            let want = naive_conv(&x, batch, &weight, &g);
            for tile in tiles {
                if !tile.fits(&g) {
                    continue;
                }
                let products = gemm::Isa::available();
                let packed: Vec<_> = products
                    .iter()
                    .map(|&isa| transform_filters(&weight, c_out, c_in, tile, isa))
                    .collect();
                for (pass, (isa, pool)) in Isa::available()
                    .into_iter()
                    .flat_map(|isa| pools.iter().map(move |p| (isa, p)))
                    .enumerate()
                {
                    // Every product kernel in turn.
                    let which = pass % products.len();
                    let filters = Filters {
                        isa: products[which],
                        values: &packed[which],
                    };
                    let got = pool.install(|| {
                        conv2d_for(
                            isa,
                            (&x, batch, c_in * size.0 * size.1),
                            filters,
                            tile,
                            &g,
                            &Epilogue::default(),
                        )
                    });
                    let error = relative_error(&got, &want);
                    let bound = if tile == Tile::F2 { 1e-5 } else { 5e-5 };
                    let threads = pool.current_num_threads();
                    assert!(
                        error <= bound,
                        "case {case} {tile:?} {isa:?} {:?} {threads} threads: relative error {error}",
                        filters.isa
                    );
                    if threads > 1 && batch < threads {
                        splits.insert(Split::choose(&g, tile, threads));
                    }
                }
            }
        }
        assert_eq!(
            splits.len(),
            2,
            "both ways of splitting an image between threads, {splits:?}"
        );
    }

    /// The tiles `choose` gives the zoo's 3×3 stride-1 layers, per the measurements in its documentation.
    #[test]
    fn the_tile_follows_the_map_the_channels_and_the_split() {
        let layer = |c: usize, side: usize| geometry(c, (side, side), 2 * c, [1; 4], (3, 3));
        // (channels, side, tile for an image on one thread, for an image split between threads)
        let cases = [
            (64, 56, Some(Tile::F4), Some(Tile::F4)),
            (96, 28, Some(Tile::F4), Some(Tile::F4)),
            (160, 14, Some(Tile::F2), Some(Tile::F3)),
            (96, 14, Some(Tile::F2), Some(Tile::F3)),
            (64, 14, Some(Tile::F2), Some(Tile::F2)),
            (192, 17, Some(Tile::F3), Some(Tile::F3)),
            (128, 20, Some(Tile::F3), Some(Tile::F3)),
            (192, 8, Some(Tile::F2), Some(Tile::F2)),
            (512, 7, Some(Tile::F2), Some(Tile::F2)),
            (32, 7, None, None),
            (8, 56, None, None),
        ];
        for (c, side, whole, split) in cases {
            let g = layer(c, side);
            assert_eq!(
                choose(&g, false),
                whole,
                "{c} channels on {side}×{side}, whole"
            );
            assert_eq!(
                choose(&g, true),
                split,
                "{c} channels on {side}×{side}, split"
            );
        }
    }

    /// The AVX-512 output transform against the AVX2 one, which the test above checks against the definition:
    /// the same values bit for bit, epilogue included, for every tile, ragged rows of tiles (fewer than
    /// sixteen, and rows past the map's edge) and blocks that start mid-row, on one thread and with the image
    /// split between threads.
    #[cfg(all(target_arch = "x86_64", feature = "avx512"))]
    #[test]
    fn the_avx512_output_transform_gives_the_avx2_values_bit_for_bit() {
        if !Isa::available().contains(&Isa::Avx512) {
            return;
        }
        let cases = [
            ((3, 3), 3, (5, 7), 4, [1, 1, 1, 1]),
            ((3, 3), 8, (40, 37), 50, [1, 1, 1, 1]),
            ((3, 3), 70, (30, 30), 9, [0, 2, 1, 0]),
            ((5, 5), 4, (13, 11), 5, [1, 3, 0, 2]),
            ((1, 7), 5, (6, 37), 7, [0, 2, 2, 5]),
            ((7, 1), 5, (37, 6), 7, [2, 5, 0, 2]),
        ];
        let pools: Vec<rayon::ThreadPool> = [1, 2]
            .iter()
            .map(|&n| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(n)
                    .build()
                    .unwrap()
            })
            .collect();
        for (case, &(kernel, c_in, size, c_out, pad)) in cases.iter().enumerate() {
            let g = geometry(c_in, size, c_out, pad, kernel);
            let x = values(c_in * size.0 * size.1, case as u32);
            let weight = values(c_out * c_in * kernel.0 * kernel.1, 20 + case as u32);
            let epilogue = Epilogue {
                scale: Some(values(c_out, 30 + case as u32)),
                shift: Some(values(c_out, 40 + case as u32)),
                activation: super::super::Activation::Relu,
            };
            for tile in [
                Tile::F2,
                Tile::F3,
                Tile::F4,
                Tile::F2K5,
                Tile::F1x2K7,
                Tile::F2x1K7,
            ] {
                if !tile.fits(&g) {
                    continue;
                }
                let packed = transform_filters(&weight, c_out, c_in, tile, Isa::Avx512);
                let filters = Filters {
                    isa: Isa::Avx512,
                    values: &packed,
                };
                for pool in &pools {
                    let [avx2, avx512] = [Isa::Avx2Fma, Isa::Avx512].map(|isa| {
                        pool.install(|| {
                            let image = (&x[..], 1, x.len());
                            conv2d_for(isa, image, filters, tile, &g, &epilogue)
                        })
                    });
                    let threads = pool.current_num_threads();
                    for (i, (a, b)) in avx2.iter().zip(&avx512).enumerate() {
                        assert_eq!(
                            a.to_bits(),
                            b.to_bits(),
                            "case {case} {tile:?} {threads} threads, value {i}: {a} against {b}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn the_epilogue_applies_per_output_channel() {
        let g = geometry(3, (7, 6), 4, [1, 1, 1, 1], (3, 3));
        let x = values(3 * 7 * 6, 1);
        let weight = values(4 * 3 * 9, 2);
        let want = naive_conv(&x, 1, &weight, &g);
        let epilogue = Epilogue {
            scale: Some(values(4, 3)),
            shift: Some(values(4, 4)),
            activation: super::super::Activation::Relu,
        };
        let plane = g.out.0 * g.out.1;
        let isa = gemm::Isa::detect();
        let filters = transform_filters(&weight, 4, 3, Tile::F2, isa);
        let filters = Filters {
            isa,
            values: &filters,
        };
        let got = conv2d(&x, 1, 3 * 7 * 6, filters, Tile::F2, &g, &epilogue);
        for (i, (&a, &e)) in got.iter().zip(&want).enumerate() {
            let c = i / plane;
            let e = (e * epilogue.scale.as_ref().unwrap()[c] + epilogue.shift.as_ref().unwrap()[c])
                .max(0.0);
            assert!((a - e).abs() < 1e-5, "element {i}: {a} vs {e}");
        }
    }
}
