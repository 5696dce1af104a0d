//! The matrix product behind the convolutions, `C [m, n] = A [m, k] × B [k, n]`, with the layer's weights as
//! `A`, packed once per layer ([`pack`]), and the patch matrix (or, for a pointwise convolution, the input)
//! as `B`, read in place. Each finished value goes through the convolution's per-row epilogue
//! (`scale * acc + shift + residual`, then ReLU or ReLU6) before it is stored, so the output is written once.
//!
//! The layout is the usual one for register-tiled products (Goto and van de Geijn, *Anatomy of
//! High-Performance Matrix Multiplication*, 2008): a microkernel keeps an `MR × NR` tile of `C` in registers
//! and, for each `l < k`, broadcasts `MR` values of `A`'s column `l` and multiplies them by `NR` values of
//! `B`'s row `l`. `A` is stored as panels of `MR` rows, column by column (`[panel][k][MR]`, the last panel
//! padded with zeros), so the kernel reads it as one stream, and asks for it well ahead (the weights of a
//! layer come from memory once per pass); `B` is read where it is, `KC` rows by `NR` columns per tile, its
//! ragged right edge under a mask (AVX-512) or copied out first, in segments of rows where it is a strided
//! convolution's phase planes ([`Rhs`]). Copying all of `B` into panels per block, as GEMM libraries do,
//! measured slower here (`B` is already row-major and its block stays in cache) but where its rows are a page
//! or more apart ([`Rhs::copied_if_far_apart`]). The tiles of a block are visited down the columns or along
//! the rows ([`Walk`]): a shallow convolution's output, which goes to memory, is written along its rows
//! ([`Walk::for_output`]). The kernels are chosen at run time ([`Isa::detect`]): AVX-512 (12 × 32 tile, 24 of
//! the 32 vector registers, 12 × 16 for a ragged edge, and a column-vector kernel for an edge of at most 8
//! columns), AVX2 with FMA (6 × 16, 12 of 16), and a portable one (4 × 16) that the compiler vectorises for
//! the baseline target. Every one of them is tested on the machine that runs the tests, whatever `detect`
//! would choose there ([`Isa::available`]).
//!
//! Everything is single-threaded: the convolutions split the work (by images, output columns or row panels).

use std::cell::Cell;

use super::Activation;

/// The instruction sets the microkernels are written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Isa {
    /// The baseline target (SSE2 on x86-64), by the compiler's vectorisation of plain loops.
    Portable,
    /// AVX2 with fused multiply-add.
    #[cfg(target_arch = "x86_64")]
    Avx2Fma,
    /// AVX-512F.
    #[cfg(all(target_arch = "x86_64", feature = "avx512"))]
    Avx512,
}

/// The environment variable that narrows the CPU kernels' instruction set for a whole process: `portable`,
/// `avx2` or `avx512` (the default is the widest the CPU has). For measuring the narrower kernels on a wider
/// CPU, and for a user whose CPU slows down under AVX-512.
pub const ISA_VARIABLE: &str = "ARCHC_CPU_ISA";

impl Isa {
    /// The kernels this process runs: the widest the CPU supports, or narrower where [`ISA_VARIABLE`] asks
    /// for it. Read once per process, so weights packed for one kernel are never read by another.
    pub(crate) fn detect() -> Isa {
        static CHOSEN: std::sync::OnceLock<Isa> = std::sync::OnceLock::new();
        *CHOSEN.get_or_init(|| Isa::chosen(std::env::var(ISA_VARIABLE).ok().as_deref()))
    }

    /// The widest available kernel that `request` (an [`ISA_VARIABLE`] value) allows: every one for `None` or
    /// an empty value; a name that is none of `portable`, `avx2`, `avx512` is reported on stderr and ignored.
    fn chosen(request: Option<&str>) -> Isa {
        let available = Isa::available();
        let widest = *available
            .last()
            .expect("the portable kernel is always available");
        let Some(request) = request.map(str::trim).filter(|r| !r.is_empty()) else {
            return widest;
        };
        let cap = match request.to_ascii_lowercase().as_str() {
            "portable" => 0,
            "avx2" => 1,
            "avx512" => 2,
            _ => {
                eprintln!(
                    "archc: {ISA_VARIABLE}={request:?} is not one of portable, avx2, avx512; using {widest:?}"
                );
                return widest;
            }
        };
        available
            .into_iter()
            .rfind(|isa| isa.rank() <= cap)
            .unwrap_or(Isa::Portable)
    }

    /// The order of the instruction sets, narrowest first.
    const fn rank(self) -> u8 {
        match self {
            Isa::Portable => 0,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2Fma => 1,
            #[cfg(all(target_arch = "x86_64", feature = "avx512"))]
            Isa::Avx512 => 2,
        }
    }

    /// Whether the chosen kernels may use AVX2 and FMA (for the passes with their own AVX2 code).
    pub(crate) fn has_avx2() -> bool {
        Isa::detect().rank() >= 1
    }

    /// Whether the chosen kernels may use AVX-512F.
    #[cfg(all(target_arch = "x86_64", feature = "avx512"))]
    pub(crate) fn has_avx512() -> bool {
        Isa::detect().rank() >= 2
    }

    /// Every kernel the running CPU can run, narrowest first, so tests can compare them all.
    pub(crate) fn available() -> Vec<Isa> {
        #[allow(unused_mut)]
        let mut isas = vec![Isa::Portable];
        #[cfg(target_arch = "x86_64")]
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            isas.push(Isa::Avx2Fma);
            #[cfg(feature = "avx512")]
            if is_x86_feature_detected!("avx512f") {
                isas.push(Isa::Avx512);
            }
        }
        isas
    }

    /// `MR`: the rows of `C` a kernel keeps in registers, and the height of `A`'s packed panels.
    pub(crate) const fn rows(self) -> usize {
        match self {
            Isa::Portable => 4,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2Fma => 6,
            #[cfg(all(target_arch = "x86_64", feature = "avx512"))]
            Isa::Avx512 => 12,
        }
    }

    /// Whether the kernel reads a ragged edge of `B` in place, masking the columns past it.
    const fn masks_loads(self) -> bool {
        match self {
            #[cfg(all(target_arch = "x86_64", feature = "avx512"))]
            Isa::Avx512 => true,
            _ => false,
        }
    }

    /// The columns of the next tile when `left` columns are left: `NR`, or fewer at the ragged edge. The
    /// AVX-512 kernels split an edge of 17 to 24 columns into a 16-column tile and a narrow one (49 columns,
    /// a 7 × 7 map, cost 32 + 16 + 1 instead of 64), the others take the edge in one tile.
    fn tile_columns(self, left: usize) -> usize {
        match self {
            #[cfg(all(target_arch = "x86_64", feature = "avx512"))]
            Isa::Avx512 if (17..=16 + NARROW).contains(&left) => 16,
            _ => left.min(self.columns()),
        }
    }

    /// `NR`: the columns of `C` a kernel keeps in registers.
    const fn columns(self) -> usize {
        match self {
            Isa::Portable => 16,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2Fma => 16,
            #[cfg(all(target_arch = "x86_64", feature = "avx512"))]
            Isa::Avx512 => 32,
        }
    }
}

/// How many rows ahead [`copy_tiles`] asks for the rows it copies.
const COPY_AHEAD: usize = 8;

/// The fewest rows in a block of `B` for [`Rhs::copied`] to copy it.
const MIN_COPIED_DEPTH: usize = 64;

/// The rows of `B` a tile multiplies before its values are stored (and added to on the next block): a tile's
/// `KC × NR` values of `B` (32 KiB for AVX-512) stay in the first-level cache while the kernel runs down `A`
/// ([`Walk::DownColumns`]), or a row panel's `MR × KC` of `A` while it runs along `B` ([`Walk::AlongRows`]).
const KC: usize = 256;

/// The columns of `B` taken at a time: `KC × NC` values (256 KiB) stay in the second-level cache while every
/// row panel of `A` is multiplied by them.
const NC: usize = 256;

/// The rows of `A` multiplied by one block of `B` before the next: `MC × KC` values (384 KiB) of `A` stay in
/// the second-level cache across the block's column tiles (going down the columns; along the rows, the block
/// of `B` stays there across the row panels).
const MC: usize = 384;

/// How many steps of `k` ahead of its reads of `A` a kernel asks for `A`'s next values: without it the first
/// pass over a layer's packed weights streamed from memory at the kernel's pace (ResNet-50, one thread: 48.9 →
/// 43.2 ms with the AVX-512 kernel, 92 → 83.5 ms with the AVX2 one; 16 steps gave 46.1, 64 43.8, 256 44.9).
#[cfg(target_arch = "x86_64")]
const PREFETCH_STEPS: usize = 128;

/// Where a kernel asks for `A`'s values [`PREFETCH_STEPS`] steps after step `l` of its panel `a` of `depth`
/// steps of `mr` values: in the panel, or, past its end, in the next tile's panel `next`. (A prefetch reads
/// nothing: the addresses are computed with `wrapping_add`.)
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn ahead(a: *const f32, next: *const f32, l: usize, depth: usize, mr: usize) -> *const i8 {
    let step = l + PREFETCH_STEPS;
    let at = if step < depth {
        a.wrapping_add(step * mr)
    } else {
        next.wrapping_add((step - depth) * mr)
    };
    at.cast()
}

/// Values in the packing of an `[m, k]` matrix for `isa`.
pub(crate) fn packed_len(isa: Isa, m: usize, k: usize) -> usize {
    m.div_ceil(isa.rows()) * isa.rows() * k
}

/// `a` (`[m, k]`, row-major, rows `k` apart) packed for `isa`'s kernels: panels of `MR` rows, each stored
/// column by column, the last padded with zero rows.
pub(crate) fn pack(isa: Isa, a: &[f32], m: usize, k: usize) -> Vec<f32> {
    assert!(a.len() >= m * k, "matrix to pack too short");
    let mr = isa.rows();
    let mut packed = vec![0f32; packed_len(isa, m, k)];
    if k == 0 {
        return packed;
    }
    for (panel, dst) in packed.chunks_exact_mut(mr * k).enumerate() {
        for r in 0..mr.min(m - panel * mr) {
            let row = &a[(panel * mr + r) * k..][..k];
            for (l, &v) in row.iter().enumerate() {
                dst[l * mr + r] = v;
            }
        }
    }
    packed
}

/// Rows `first..first + rows` of an `A` of depth `depth` that [`pack`] packed for `isa`'s kernels.
#[derive(Clone, Copy)]
pub(crate) struct Packed<'a> {
    pub isa: Isa,
    values: &'a [f32],
    first: usize,
    pub rows: usize,
    pub depth: usize,
}

impl<'a> Packed<'a> {
    /// All `rows` rows of the packed matrix `values`.
    pub(crate) fn new(isa: Isa, values: &'a [f32], rows: usize, depth: usize) -> Packed<'a> {
        assert_eq!(
            values.len(),
            packed_len(isa, rows, depth),
            "packed matrix of another shape"
        );
        Packed {
            isa,
            values,
            first: 0,
            rows,
            depth,
        }
    }

    /// Rows `first..first + count` of these.
    pub(crate) fn slice_rows(&self, first: usize, count: usize) -> Packed<'a> {
        assert!(first + count <= self.rows, "packed rows out of range");
        Packed {
            first: self.first + first,
            rows: count,
            ..*self
        }
    }
}

/// What happens to each finished value `acc` of row `i`, column `j`:
/// `activation(scale[i] * acc + shift[i] + residual[i, j])`, a missing `scale` meaning 1, a missing `shift` or
/// `residual` 0. `scale` and `shift` start at the product's first row; `residual` is laid out as the
/// destination is (the same first value, the same row stride): a residual connection's other branch, added
/// before the activation that follows the sum.
#[derive(Clone, Copy)]
pub(crate) struct Finish<'a> {
    pub scale: Option<&'a [f32]>,
    pub shift: Option<&'a [f32]>,
    pub residual: Option<&'a [f32]>,
    pub activation: Clamp,
}

impl<'a> Finish<'a> {
    /// Nothing: the products as they are.
    pub(crate) const NONE: Finish<'static> = Finish {
        scale: None,
        shift: None,
        residual: None,
        activation: Clamp::None,
    };

    /// The per-row part of the finish, from row `first` on (the residual is the tile's, see [`Tile`]).
    fn rows_from(&self, first: usize) -> Finish<'a> {
        Finish {
            scale: self.scale.map(|s| &s[first..]),
            shift: self.shift.map(|s| &s[first..]),
            residual: None,
            activation: self.activation,
        }
    }
}

/// The activations a kernel applies as it stores: those that are a clamp. The others run as a pass after
/// the product ([`Clamp::of`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Clamp {
    None,
    /// `max(v, 0)`, NaN becoming 0 as with [`f32::max`] (the element-wise kernels' ReLU).
    Relu,
    /// `v` limited to `0..=6`, NaN staying NaN (the element-wise kernels' ReLU6, candle's clamp).
    Relu6,
}

impl Clamp {
    /// The clamp a kernel applies for `activation`, and whether the activation is left to a pass of its own.
    pub(crate) fn of(activation: Activation) -> (Clamp, bool) {
        match activation {
            Activation::Identity => (Clamp::None, false),
            Activation::Relu => (Clamp::Relu, false),
            Activation::Relu6 => (Clamp::Relu6, false),
            _ => (Clamp::None, true),
        }
    }

    fn apply(self, v: f32) -> f32 {
        match self {
            Clamp::None => v,
            Clamp::Relu => v.max(0.0),
            Clamp::Relu6 => super::elementwise::clamp(v, 0.0, 6.0),
        }
    }
}

thread_local! {
    /// Each thread's copies of tiles of `B` (a ragged edge for the kernels that read whole rows, or every
    /// tile of a block: [`Rhs::copied`]), reused across calls (taken and put back, as `super::PATCHES`).
    static COPIES: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
}

/// The order in which a product visits the tiles of one block (`NC` columns of `B` by up to `MC` rows of `A`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Walk {
    /// Every row tile of a column panel before the next panel: the panel (`KC × NR` values of `B`) stays in
    /// the first-level cache while the rows of `A` stream past it. For a product whose output stays in cache.
    DownColumns,
    /// Every column tile of a row panel before the next: each row of the output (and of the residual) is
    /// written (read) left to right in runs the hardware prefetcher follows, where going down the columns
    /// touches two cache lines in each of `MR` rows a map apart per tile, and waits for each.
    AlongRows,
}

impl Walk {
    /// The walk for a product whose output goes to memory (a convolution's): along the rows when the product
    /// has a single block of depth, so that each tile's stores are a large share of its work (ResNet-50's 64
    /// → 256 on 56×56, in the network, one thread: 1.59 → 1.36 ms, with the residual added 1.76 → 1.59),
    /// down the columns when the depth is larger (its 512 → 2048 on 7×7 and 3×3 layers were 3–5% slower
    /// along the rows, their weights a larger share).
    pub(crate) fn for_output(depth: usize) -> Walk {
        if depth <= KC {
            Walk::AlongRows
        } else {
            Walk::DownColumns
        }
    }
}

/// A tile of `C`: where its first value goes, the row stride, how many of the kernel's columns are real,
/// whether to add the values already there, the finish to apply (`None` until the last block of `k`), and
/// where the tile's residual values are (rows `ldc` apart, as the tile's), if any.
struct Tile<'a> {
    /// Where the kernel asks for the values of `A` past the end of its panel's steps: the panel of the tile
    /// that comes next (see [`ahead`]). Only the x86-64 kernels ask for values ahead.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    a_next: *const f32,
    c: *mut f32,
    ldc: usize,
    width: usize,
    accumulate: bool,
    finish: Option<Finish<'a>>,
    residual: Option<*const f32>,
}

impl Tile<'_> {
    /// Asks for the first and last cache line of each of the tile's `rows` rows of the destination and of
    /// the residual, which its kernel reads or writes only after its whole depth of products: by then they
    /// are in cache, and the hardware prefetcher, seeing those lines asked for, follows the rows on. For
    /// [`Walk::AlongRows`] (ResNet-50's 64 → 256 on 56×56 with its residual, in the network, one thread, 1.59
    /// → 1.39 ms on top of that walk).
    fn prefetch(&self, rows: usize) {
        #[cfg(target_arch = "x86_64")]
        for r in 0..rows {
            for j in [0, self.width - 1] {
                use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
                let at = r * self.ldc + j;
                // SAFETY: SSE is in every x86-64 CPU, and a prefetch never faults, whatever the address.
                unsafe {
                    _mm_prefetch::<_MM_HINT_T0>(self.c.wrapping_add(at).cast::<i8>());
                    if let Some(residual) = self.residual {
                        _mm_prefetch::<_MM_HINT_T0>(residual.wrapping_add(at).cast::<i8>());
                    }
                }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = rows;
    }
}

/// Where the product reads the rows of `B`: in segments of `rows` rows each (`segments.len() × rows = k`),
/// segment `s` starting `segments[s]` values past `ptr`, its rows `stride` apart. A row-major matrix is one
/// segment ([`Rhs::rows`]); a strided convolution reads one segment per tap of its window from the input's
/// phase planes, each the input's channels shifted by the tap, where a patch matrix would copy them all
/// (see `super::Phased`). The depth blocks of the product never straddle two segments.
#[derive(Clone, Copy)]
pub(crate) struct Rhs<'a> {
    pub ptr: *const f32,
    pub stride: usize,
    pub segments: &'a [usize],
    /// Rows of each segment; `None`: the product's whole depth, in one segment.
    pub rows: Option<usize>,
    /// Whether the product copies each block of `B` of at least [`MIN_COPIED_DEPTH`] rows into panels, a column
    /// tile's rows one after the other, before multiplying it, rather than reading it in place
    /// ([`Rhs::copied_if_far_apart`]).
    pub copied: bool,
}

impl<'a> Rhs<'a> {
    /// A row-major `[k, n]` matrix at `ptr`, its rows `stride` apart.
    pub(crate) fn rows(ptr: *const f32, stride: usize) -> Rhs<'static> {
        Rhs {
            ptr,
            stride,
            segments: &[0],
            rows: None,
            copied: false,
        }
    }

    /// These rows, copied into panels block by block where they are a page (4 KiB) or more apart: read in
    /// place, each of a tile's rows is then on a page of its own, and a block of 64 rows or more
    /// ([`MIN_COPIED_DEPTH`]) reaches about as many pages as the first-level TLB holds (72 on Zen 4), where the
    /// copy reads each row's run of a block once. ResNet-50's 1×1 convolutions on 56×56 maps, in the network,
    /// one thread: 64 → 256 with the residual 5.00 → 4.21 ms (three layers), 256 → 64 3.02 → 2.44, 256 → 128
    /// 2.52 → 2.19; on 28×28 and smaller maps, rows 3 KiB or less apart, copying gained nothing or lost up to
    /// 3%. Not for Winograd's products, nor MobileNet-V2's bands of rows (depth 16 to 32 at 112×112 and 56×56:
    /// 5–13% slower copied), nor a strided convolution's taps (5% slower copied).
    pub(crate) fn copied_if_far_apart(self) -> Rhs<'a> {
        Rhs {
            copied: self.stride * std::mem::size_of::<f32>() >= 4096,
            ..self
        }
    }

    /// The rows of each segment of a product of depth `k`, checked against the segments' count.
    fn segment_rows(&self, k: usize) -> usize {
        let rows = self.rows.unwrap_or(k);
        assert_eq!(
            rows * self.segments.len(),
            k,
            "segments of B that do not make up the depth"
        );
        rows
    }

    /// The depth blocks of a product of depth `k`: `(first row, rows, where the block's first row starts)`,
    /// each of at most about `KC` rows, of nearly equal sizes within a segment, inside one segment.
    fn blocks(self, k: usize) -> impl Iterator<Item = (usize, usize, *const f32)> + 'a {
        let rows = self.segment_rows(k);
        let kc = rows.div_ceil(rows.div_ceil(KC).max(1)).max(1);
        self.segments
            .iter()
            .enumerate()
            .flat_map(move |(s, &offset)| {
                (0..rows).step_by(kc).map(move |p| {
                    let ptr = self.ptr.wrapping_add(offset + p * self.stride);
                    (s * rows + p, kc.min(rows - p), ptr)
                })
            })
    }
}

/// `dst [m, n] = a × b`, `a` being the rows of the packed matrices `a` one after the other (`m` in all, each of
/// depth `k`, for one instruction set), `b` being `[k, n]`, read where [`Rhs`] says its rows are, and `dst` rows
/// `dst_stride` apart, `finish` applied to every value. The destination is overwritten (it may hold anything
/// before). Several matrices make one product of sibling convolutions without a stacked copy of their weights.
///
/// # Safety
/// `b`'s `k` rows (row `l` of segment `s` at `b.ptr + b.segments[s] + l * b.stride`) must each have `n` readable
/// values, `dst[i * dst_stride + j]` for `i < m`, `j < n` be writable and accessed by nothing else during the
/// call, with `dst_stride >= n`; `finish`'s slices must hold `m` values.
pub(crate) unsafe fn multiply(
    a: &[Packed<'_>],
    b: Rhs<'_>,
    n: usize,
    (dst, dst_stride): (*mut f32, usize),
    finish: Finish<'_>,
    walk: Walk,
) {
    let Some(first) = a.first() else { return };
    let (k, isa) = (first.depth, first.isa);
    let m: usize = a.iter().map(|part| part.rows).sum();
    if m == 0 || n == 0 {
        return;
    }
    for part in a {
        assert!(
            part.isa == isa && part.depth == k,
            "stacked matrices of different depths or kernels"
        );
        assert!(
            part.values.len() >= packed_len(isa, part.first + part.rows, k),
            "packed matrix too short"
        );
    }
    assert!(
        [finish.scale, finish.shift]
            .iter()
            .all(|values| values.map_or(m, <[f32]>::len) >= m),
        "epilogue shorter than the rows"
    );
    assert!(
        finish
            .residual
            .iter()
            .all(|r| r.len() >= (m - 1) * dst_stride + n),
        "residual shorter than the destination"
    );
    let residual_at = |i: usize, j: usize| finish.residual.map_or(0.0, |r| r[i * dst_stride + j]);
    if k == 0 {
        for i in 0..m {
            for j in 0..n {
                let v = finish_value(&finish, i, 0.0) + residual_at(i, j);
                let v = finish.activation.apply(v);
                // SAFETY: inside the destination, as the caller guarantees.
                unsafe { *dst.add(i * dst_stride + j) = v };
            }
        }
        return;
    }
    let (mr, nr) = (isa.rows(), isa.columns());
    // Blocks of nearly equal size, so that a depth ([`Rhs::blocks`]) or width just past a multiple of the block
    // size does not leave one thin block.
    let nc = n.div_ceil(n.div_ceil(NC)).next_multiple_of(nr);
    // Blocks of at most `MC` rows of one matrix each: (matrix, its first row, rows, the first row of `dst`).
    // Listed afresh where they are walked rather than collected: a `Vec` per call was an allocation for each of
    // the small products of a Winograd layer (16 or 36 per block of tiles).
    let blocks = || {
        let mut dst_row = 0;
        a.iter().flat_map(move |part| {
            let first_dst = dst_row;
            dst_row += part.rows;
            (0..part.rows).step_by(MC).map(move |start| {
                let rows = MC.min(part.rows - start);
                (part, part.first + start, rows, first_dst + start)
            })
        })
    };
    let mut copies = COPIES.take();
    for jc in (0..n).step_by(nc) {
        let width = nc.min(n - jc);
        // The column tiles of the block, `(first column, columns)`.
        let col_tiles = || {
            let mut col = jc;
            std::iter::from_fn(move || {
                (col < jc + width).then(|| {
                    let columns = isa.tile_columns(jc + width - col);
                    col += columns;
                    (col - columns, columns)
                })
            })
        };
        for (pc, depth, b_rows) in b.blocks(k) {
            let last = pc + depth == k;
            // The tiles that read the block of `B` from a copy, made once for every row of `A`: all of them
            // where `B` is copied ([`Rhs::copied`]), or a ragged edge for the kernels that read whole rows of
            // `NR` values. Each copy is `depth` rows of `NR` (padded with zeros) at `copy_at(its first column)`
            // (tiles are `NR` wide but for the last one or two).
            let copy_all = b.copied && depth >= MIN_COPIED_DEPTH;
            let from_copy = |columns: usize| copy_all || (columns < nr && !isa.masks_loads());
            let copy_at = |col: usize| (col - jc).div_ceil(nr) * depth * nr;
            // The copied tiles, `(first column, columns, where the copy starts)`.
            let copied = col_tiles()
                .filter(|&(_, columns)| from_copy(columns))
                .map(|(col, columns)| (col, columns, copy_at(col)));
            // Only where a tile is copied: the copy goes row by row over the tiles, and walking them for each
            // row to find none was 6–10% of Winograd's small products.
            if let Some(len) = copied.clone().map(|(_, _, at)| at + depth * nr).max() {
                // Grown only: each copy writes all of its `depth × NR` values.
                if len > copies.len() {
                    copies.resize(len, 0.0);
                }
                // SAFETY: rows `pc..pc + depth`, columns `col..col + columns` of each tile are inside `b`.
                unsafe { copy_tiles((b_rows, b.stride), depth, copied, nr, &mut copies) };
            }
            for (part, first_row, block_rows, first_dst) in blocks() {
                // Tiles of the rows of one panel each (a slice of rows may start inside a panel), as
                // `(rows done before them, rows)`.
                let row_tiles = || {
                    let mut done = 0;
                    std::iter::from_fn(move || {
                        (done < block_rows).then(|| {
                            let row = first_row + done;
                            let rows = (mr - row % mr).min(block_rows - done);
                            done += rows;
                            (done - rows, rows)
                        })
                    })
                };
                // Where row tile `done`'s steps of `A` start in the packed values (a tile may start inside a
                // panel).
                let a_at = |done: usize| {
                    let row = first_row + done;
                    row / mr * mr * k + pc * mr + row % mr
                };
                let run = |(col, columns): (usize, usize),
                           (done, rows): (usize, usize),
                           next: Option<(usize, usize)>| {
                    let panel = if from_copy(columns) {
                        (copies[copy_at(col)..].as_ptr(), nr)
                    } else {
                        // SAFETY: row `pc`, column `col` is inside `b`.
                        (unsafe { b_rows.add(col) }, b.stride)
                    };
                    let a_panel = &part.values[a_at(done)..][..(depth - 1) * mr + rows];
                    let i = first_dst + done;
                    let tile = Tile {
                        // The next row tile's panel, or past this one's steps (the next block of depth).
                        a_next: part.values.as_ptr().wrapping_add(
                            next.map_or(a_at(done) + depth * mr, |(next, _)| a_at(next)),
                        ),
                        // SAFETY: row `i`, column `col` is inside the destination.
                        c: unsafe { dst.add(i * dst_stride + col) },
                        ldc: dst_stride,
                        width: columns,
                        accumulate: pc > 0,
                        finish: last.then(|| finish.rows_from(i)),
                        // SAFETY: row `i`, column `col` is inside the residual (asserted above).
                        residual: finish
                            .residual
                            .map(|r| unsafe { r.as_ptr().add(i * dst_stride + col) }),
                    };
                    if walk == Walk::AlongRows {
                        tile.prefetch(rows);
                    }
                    // SAFETY: `a_panel` holds `depth` steps of `mr` values, the last `rows`; `panel` has
                    // `depth` rows of `columns` readable values (`nr` once copied); the tile is inside the
                    // destination.
                    unsafe { kernel(isa, rows, depth, a_panel.as_ptr(), panel, &tile) };
                };
                // Each kernel asks for the first steps of the next row tile's panel as it nears its own
                // panel's end: where the weights come from memory, the start of every panel waited for them.
                match walk {
                    Walk::DownColumns => {
                        for c in col_tiles() {
                            let mut tiles = row_tiles().peekable();
                            while let Some(r) = tiles.next() {
                                run(c, r, tiles.peek().copied());
                            }
                        }
                    }
                    Walk::AlongRows => {
                        let mut tiles = row_tiles().peekable();
                        while let Some(r) = tiles.next() {
                            let next = tiles.peek().copied();
                            col_tiles().for_each(|c| run(c, r, next));
                        }
                    }
                }
            }
        }
    }
    COPIES.set(copies);
}

/// Rows `first..first + count` of the rows of `parts` one after the other.
pub(crate) fn slice_rows<'a>(parts: &[Packed<'a>], first: usize, count: usize) -> Vec<Packed<'a>> {
    let mut skip = first;
    let mut left = count;
    let mut sliced = Vec::new();
    for part in parts {
        if left == 0 {
            break;
        }
        if skip >= part.rows {
            skip -= part.rows;
            continue;
        }
        let take = left.min(part.rows - skip);
        sliced.push(part.slice_rows(skip, take));
        skip = 0;
        left -= take;
    }
    assert_eq!(left, 0, "rows past the stacked matrices");
    sliced
}

/// `finish`'s scale and shift applied to row `i`'s value `v` (the residual and the activation come after).
fn finish_value(finish: &Finish<'_>, i: usize, v: f32) -> f32 {
    let scale = finish.scale.map_or(1.0, |s| s[i]);
    let shift = finish.shift.map_or(0.0, |s| s[i]);
    v * scale + shift
}

/// Copies `depth` rows of the column tiles `tiles` of `b` (rows `b.1` apart), each given as `(first column,
/// columns, where its copy starts in `copy`)`, into `copy` as rows of `nr` (16 or 32), padded with zeros. Row
/// by row, so that each row's run of the block is read left to right once, in the order the hardware
/// prefetcher follows, and asked for [`COPY_AHEAD`] rows ahead (tile by tile, a block of 256 rows a page apart
/// touched two lines of each of 256 pages per tile); a whole tile's row is a copy of a constant length, which
/// the compiler writes as a few vector moves where a call to `memcpy` per row took a tenth of a 1×1
/// convolution's time (64 → 256 on 56×56).
///
/// # Safety
/// `b.0[l * b.1 + j]` must be readable for `l < depth` and `j` in each tile's columns.
unsafe fn copy_tiles(
    b: (*const f32, usize),
    depth: usize,
    tiles: impl Iterator<Item = (usize, usize, usize)> + Clone,
    nr: usize,
    copy: &mut [f32],
) {
    // SAFETY: the caller's contract.
    unsafe {
        match nr {
            16 => copy_tiles_of::<16>(b, depth, tiles, copy),
            32 => copy_tiles_of::<32>(b, depth, tiles, copy),
            _ => unreachable!("tiles of {nr} columns"),
        }
    }
}

/// [`copy_tiles`] for tiles of `NR` columns.
///
/// # Safety
/// As [`copy_tiles`].
unsafe fn copy_tiles_of<const NR: usize>(
    b: (*const f32, usize),
    depth: usize,
    tiles: impl Iterator<Item = (usize, usize, usize)> + Clone,
    copy: &mut [f32],
) {
    let span = tiles
        .clone()
        .map(|(col, columns, _)| (col, col + columns))
        .reduce(|(first, end), (col, col_end)| (first.min(col), end.max(col_end)));
    for l in 0..depth {
        #[cfg(target_arch = "x86_64")]
        if let Some((first, end)) = span.filter(|_| l + COPY_AHEAD < depth) {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            let row = b.0.wrapping_add((l + COPY_AHEAD) * b.1);
            for j in (first..end + 15).step_by(16) {
                // SAFETY: SSE is in every x86-64 CPU, and a prefetch never faults, whatever the address.
                unsafe {
                    _mm_prefetch::<_MM_HINT_T0>(row.wrapping_add(j.min(end - 1)).cast::<i8>())
                };
            }
        }
        for (col, columns, at) in tiles.clone() {
            // SAFETY: row `l`'s columns `col..col + columns` are inside `b`.
            let src = unsafe { b.0.add(l * b.1 + col) };
            let row: &mut [f32; NR] = (&mut copy[at + l * NR..][..NR])
                .try_into()
                .expect("NR values");
            if columns == NR {
                // SAFETY: `NR` values of row `l` from column `col` are inside `b`.
                *row = unsafe { src.cast::<[f32; NR]>().read_unaligned() };
            } else {
                // SAFETY: `columns` values of row `l` from column `col` are inside `b`.
                row[..columns].copy_from_slice(unsafe { std::slice::from_raw_parts(src, columns) });
                row[columns..].fill(0.0);
            }
        }
    }
}

/// Runs `isa`'s kernel for a tile of `rows` rows (at most `MR`).
///
/// # Safety
/// As [`multiply`]: `a` holds `depth × MR` values; `b` has `depth` rows, `b.1` apart, of `NR` readable values
/// (of `tile.width` for a kernel that masks its loads); the tile is inside the destination.
unsafe fn kernel(
    isa: Isa,
    rows: usize,
    depth: usize,
    a: *const f32,
    b: (*const f32, usize),
    tile: &Tile<'_>,
) {
    macro_rules! by_rows {
        ($kernel:ident, $($r:literal)*) => {
            match rows {
                $($r => $kernel::<$r>(depth, a, b, tile),)*
                _ => unreachable!("{rows} rows in a tile"),
            }
        };
        ($kernel:ident::<_, $v:literal>, $($r:literal)*) => {
            match rows {
                $($r => $kernel::<$r, $v>(depth, a, b, tile),)*
                _ => unreachable!("{rows} rows in a tile"),
            }
        };
    }
    // SAFETY: each ISA's kernel is only chosen on a CPU that has it (`Isa::available`); the rest is the
    // caller's contract.
    unsafe {
        match isa {
            Isa::Portable => by_rows!(kernel_portable, 1 2 3 4),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2Fma => by_rows!(kernel_avx2, 1 2 3 4 5 6),
            #[cfg(all(target_arch = "x86_64", feature = "avx512"))]
            // A ragged edge of a few columns takes a vector per column (of the tile's rows) ...
            Isa::Avx512 if tile.width <= NARROW => match tile.width {
                1 => kernel_avx512_narrow::<1>(rows, depth, a, b, tile),
                2 => kernel_avx512_narrow::<2>(rows, depth, a, b, tile),
                3 => kernel_avx512_narrow::<3>(rows, depth, a, b, tile),
                4 => kernel_avx512_narrow::<4>(rows, depth, a, b, tile),
                5 => kernel_avx512_narrow::<5>(rows, depth, a, b, tile),
                6 => kernel_avx512_narrow::<6>(rows, depth, a, b, tile),
                7 => kernel_avx512_narrow::<7>(rows, depth, a, b, tile),
                8 => kernel_avx512_narrow::<8>(rows, depth, a, b, tile),
                width => unreachable!("{width} columns in a narrow tile"),
            },
            #[cfg(all(target_arch = "x86_64", feature = "avx512"))]
            // ... one of at most 16 columns one vector a row: half the work of two.
            Isa::Avx512 if tile.width <= 16 => {
                by_rows!(kernel_avx512::<_, 1>, 1 2 3 4 5 6 7 8 9 10 11 12)
            }
            #[cfg(all(target_arch = "x86_64", feature = "avx512"))]
            Isa::Avx512 => by_rows!(kernel_avx512::<_, 2>, 1 2 3 4 5 6 7 8 9 10 11 12),
        }
    }
}

/// Stores a tile whose value in row `i`, column `j` is `value(i, j)` through `tile`: `rows` rows of the
/// values to the left of `tile.width`, added to what is there when accumulating, finished when it is the last
/// block. The AVX2, portable and narrow AVX-512 kernels store this way; the wide AVX-512 one stores from its
/// registers with masks.
///
/// # Safety
/// The tile's `rows` rows of `tile.width` values are inside the destination.
unsafe fn store_tile(rows: usize, tile: &Tile<'_>, value: impl Fn(usize, usize) -> f32) {
    for i in 0..rows {
        // SAFETY: the caller's contract.
        let dst = unsafe { std::slice::from_raw_parts_mut(tile.c.add(i * tile.ldc), tile.width) };
        for (j, d) in dst.iter_mut().enumerate() {
            let v = value(i, j);
            let v = if tile.accumulate { *d + v } else { v };
            *d = match &tile.finish {
                Some(finish) => {
                    // SAFETY: the residual is laid out as the tile (the caller's contract).
                    let r = tile
                        .residual
                        .map_or(0.0, |r| unsafe { *r.add(i * tile.ldc + j) });
                    finish.activation.apply(finish_value(finish, i, v) + r)
                }
                None => v,
            };
        }
    }
}

/// The portable kernel: `R × 16`, plain loops over arrays, which the compiler turns into vector code for the
/// baseline target.
///
/// # Safety
/// As [`kernel`].
unsafe fn kernel_portable<const R: usize>(
    depth: usize,
    a: *const f32,
    (b, ldb): (*const f32, usize),
    tile: &Tile<'_>,
) {
    const MR: usize = Isa::Portable.rows();
    const NR: usize = Isa::Portable.columns();
    let mut acc = [[0f32; NR]; R];
    // SAFETY: `a` holds `depth` steps of `MR` values.
    let a = unsafe { std::slice::from_raw_parts(a, depth * MR) };
    for (l, a) in a.chunks_exact(MR).enumerate() {
        // SAFETY: row `l` of `b` has `NR` readable values.
        let b = unsafe { &*(b.add(l * ldb) as *const [f32; NR]) };
        for (row, &a) in acc.iter_mut().zip(a) {
            for (c, &b) in row.iter_mut().zip(b) {
                *c += a * b;
            }
        }
    }
    // SAFETY: the caller's contract.
    unsafe { store_tile(R, tile, |i, j| acc[i][j]) };
}

/// The AVX2 kernel: `R × 16`, two 8-lane accumulators per row.
///
/// # Safety
/// As [`kernel`], on a CPU with AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn kernel_avx2<const R: usize>(
    depth: usize,
    a: *const f32,
    (b, ldb): (*const f32, usize),
    tile: &Tile<'_>,
) {
    use std::arch::x86_64::*;
    const MR: usize = 6;
    const NR: usize = 16;
    let mut acc = [[_mm256_setzero_ps(); 2]; R];
    // SAFETY: `a` holds `depth` steps of `MR` values, each of `b`'s `depth` rows `NR` values; a prefetch reads
    // nothing (its address, past the end of `a` near the end, is computed with `wrapping_add`).
    unsafe {
        for l in 0..depth {
            _mm_prefetch::<_MM_HINT_T0>(ahead(a, tile.a_next, l, depth, MR));
            let b0 = _mm256_loadu_ps(b.add(l * ldb));
            let b1 = _mm256_loadu_ps(b.add(l * ldb + 8));
            for (r, acc) in acc.iter_mut().enumerate() {
                let a = _mm256_broadcast_ss(&*a.add(l * MR + r));
                acc[0] = _mm256_fmadd_ps(a, b0, acc[0]);
                acc[1] = _mm256_fmadd_ps(a, b1, acc[1]);
            }
        }
    }
    let mut values = [[0f32; NR]; R];
    for (row, acc) in values.iter_mut().zip(&acc) {
        // SAFETY: `row` holds 16 values.
        unsafe {
            _mm256_storeu_ps(row.as_mut_ptr(), acc[0]);
            _mm256_storeu_ps(row.as_mut_ptr().add(8), acc[1]);
        }
    }
    // SAFETY: the caller's contract.
    unsafe { store_tile(R, tile, |i, j| values[i][j]) };
}

/// The AVX-512 kernel: `R × 16V`, `V` 16-lane accumulators per row (two, or one for a ragged edge of at most
/// 16 columns), stored with masks for a tile narrower than that and finished in registers.
///
/// # Safety
/// As [`kernel`], on a CPU with AVX-512F.
#[cfg(all(target_arch = "x86_64", feature = "avx512"))]
#[target_feature(enable = "avx512f")]
unsafe fn kernel_avx512<const R: usize, const V: usize>(
    depth: usize,
    a: *const f32,
    (b, ldb): (*const f32, usize),
    tile: &Tile<'_>,
) {
    use std::arch::x86_64::*;
    const MR: usize = 12;
    let width = tile.width.min(16 * V) as u32;
    let mask = (((1u64 << width) - 1) & 0xffff_ffff) as u32;
    let masks = [mask as u16, (mask >> 16) as u16];
    let mut acc = [[_mm512_setzero_ps(); V]; R];
    // SAFETY: `a` holds `depth` steps of `MR` values, each of `b`'s `depth` rows `tile.width` values (the
    // masked loads read no others); a prefetch reads nothing (its address, past the end of `a` near the end,
    // is computed with `wrapping_add`).
    unsafe {
        for l in 0..depth {
            _mm_prefetch::<_MM_HINT_T0>(ahead(a, tile.a_next, l, depth, MR));
            let mut bv = [_mm512_setzero_ps(); V];
            for (v, bv) in bv.iter_mut().enumerate() {
                *bv = _mm512_maskz_loadu_ps(masks[v], b.add(l * ldb + 16 * v));
            }
            for (r, acc) in acc.iter_mut().enumerate() {
                let a = _mm512_set1_ps(*a.add(l * MR + r));
                for (acc, &bv) in acc.iter_mut().zip(&bv) {
                    *acc = _mm512_fmadd_ps(a, bv, *acc);
                }
            }
        }
    }
    let zero = _mm512_setzero_ps();
    let six = _mm512_set1_ps(6.0);
    // Row `i`'s vectors, finished and stored.
    macro_rules! store_row {
        ($i:expr) => {{
            let i = $i;
            for (half, (&v, &mask)) in acc[i].iter().zip(&masks).enumerate() {
                // SAFETY: the masked lanes are the tile's columns, inside the destination.
                unsafe {
                    let dst = tile.c.add(i * tile.ldc + half * 16);
                    let mut v = v;
                    if tile.accumulate {
                        v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, dst));
                    }
                    if let Some(finish) = &tile.finish {
                        let scale = finish.scale.map_or(1.0, |s| s[i]);
                        let shift = finish.shift.map_or(0.0, |s| s[i]);
                        v = _mm512_add_ps(
                            _mm512_mul_ps(v, _mm512_set1_ps(scale)),
                            _mm512_set1_ps(shift),
                        );
                        if let Some(r) = tile.residual {
                            let r = _mm512_maskz_loadu_ps(mask, r.add(i * tile.ldc + half * 16));
                            v = _mm512_add_ps(v, r);
                        }
                        // `max` and `min` return their second operand when either is NaN: ReLU's NaN becomes 0
                        // (as with `f32::max`), ReLU6's stays NaN (as with candle's clamp).
                        match finish.activation {
                            Clamp::None => {}
                            Clamp::Relu => v = _mm512_max_ps(v, zero),
                            Clamp::Relu6 => v = _mm512_min_ps(six, _mm512_max_ps(zero, v)),
                        }
                    }
                    _mm512_mask_storeu_ps(dst, mask, v);
                }
            }
        }};
    }
    // The rows one by one, unrolled (`R` is a constant), so that the accumulators stay in registers: a loop
    // over them kept them in an array on the stack, zeroed by a call to `memset` for every tile (1.6% of
    // ResNet-50's time).
    macro_rules! store_rows {
        ($($i:literal)*) => {$(
            if $i < R {
                store_row!($i);
            }
        )*};
    }
    // The rows listed are the panel's `MR`: a tile of more would leave rows unstored.
    const { assert!(R <= MR) };
    store_rows!(0 1 2 3 4 5 6 7 8 9 10 11);
}

/// The widest ragged edge the AVX-512 narrow kernel takes: a step of `k` costs it one load of `A` and one
/// broadcast and one multiply-add per column, against the 12 multiply-adds of a 12 × 16 tile, so it wins up to
/// about ten columns.
#[cfg(all(target_arch = "x86_64", feature = "avx512"))]
const NARROW: usize = 8;

/// The AVX-512 kernel for a ragged edge of `W` (at most [`NARROW`]) columns: each column of the tile is one
/// vector of its rows (a step of `k` loads the packed panel's `MR` values of `A` at once, masked to the tile's
/// rows, and broadcasts each of `B`'s `W` values), so 49 columns cost three vectors and a column instead of
/// four vectors (7 × 7 maps, Winograd's 49-tile products), and 196 six 32-column tiles and four narrow columns
/// instead of a 16-column tile for the last four. A column's sum is split over several accumulators, every
/// `split`-th step of `k` each, so that the multiply-adds do not wait on one another; the tile is stored
/// transposed through [`store_tile`].
///
/// # Safety
/// As [`kernel`], with `rows` at most `MR`, on a CPU with AVX-512F.
#[cfg(all(target_arch = "x86_64", feature = "avx512"))]
#[target_feature(enable = "avx512f")]
unsafe fn kernel_avx512_narrow<const W: usize>(
    rows: usize,
    depth: usize,
    a: *const f32,
    (b, ldb): (*const f32, usize),
    tile: &Tile<'_>,
) {
    use std::arch::x86_64::*;
    const MR: usize = 12;
    // Eight accumulators in all: enough independent sums to keep both multiply-add units busy.
    const SUMS: usize = 8;
    let split = SUMS / W;
    let mask = ((1u32 << rows) - 1) as u16;
    let mut acc = [_mm512_setzero_ps(); SUMS];
    // SAFETY: `a` holds `depth` steps of `MR` values, the first `rows` of each read (masked); each of `b`'s
    // `depth` rows has `W` readable values; a prefetch reads nothing (its address, past the end of `a` near
    // the end, is computed with `wrapping_add`).
    unsafe {
        // One step of `k` into the `sum`-th set of accumulators.
        macro_rules! step {
            ($l:expr, $sum:expr) => {{
                let (l, sum) = ($l, $sum);
                _mm_prefetch::<_MM_HINT_T0>(ahead(a, tile.a_next, l, depth, MR));
                let av = _mm512_maskz_loadu_ps(mask, a.add(l * MR));
                for j in 0..W {
                    let bv = _mm512_set1_ps(*b.add(l * ldb + j));
                    acc[sum * W + j] = _mm512_fmadd_ps(av, bv, acc[sum * W + j]);
                }
            }};
        }
        let whole = depth - depth % split;
        for l in (0..whole).step_by(split) {
            for sum in 0..split {
                step!(l + sum, sum);
            }
        }
        for l in whole..depth {
            step!(l, 0);
        }
    }
    let mut columns = [[0f32; 16]; W];
    for (j, column) in columns.iter_mut().enumerate() {
        let mut v = acc[j];
        for sum in 1..split {
            v = _mm512_add_ps(v, acc[sum * W + j]);
        }
        // SAFETY: `column` holds 16 values.
        unsafe { _mm512_storeu_ps(column.as_mut_ptr(), v) };
    }
    // SAFETY: the caller's contract.
    unsafe { store_tile(rows, tile, |i, j| columns[j][i]) };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(len: usize, seed: u32) -> Vec<f32> {
        crate::cpu::tests::values(len, seed)
    }

    /// `a [m, k] × b [k, n]` in `f64`, then the finish, its residual rows `stride` apart.
    fn reference(
        a: &[f32],
        b: &[f32],
        (m, k, n): (usize, usize, usize),
        finish: &Finish<'_>,
        stride: usize,
    ) -> Vec<f32> {
        let mut c = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                let sum: f64 = (0..k)
                    .map(|l| a[i * k + l] as f64 * b[l * n + j] as f64)
                    .sum();
                let scale = finish.scale.map_or(1.0, |s| s[i]);
                let shift = finish.shift.map_or(0.0, |s| s[i]);
                let residual = finish.residual.map_or(0.0, |r| r[i * stride + j]);
                let v = sum as f32 * scale + shift + residual;
                c[i * n + j] = finish.activation.apply(v);
            }
        }
        c
    }

    #[test]
    fn every_kernel_matches_the_definition_on_ragged_and_blocked_shapes() {
        // Shapes around the tiles (1, MR ± 1 rows; 1, NR ± 1 columns), past one block of k (KC = 256) and
        // of n (NC = 256), and past MC rows.
        let shapes = [
            (1, 1, 1),
            (5, 3, 17),
            (12, 256, 32),
            (13, 257, 33),
            (7, 600, 31),
            (25, 64, 290),
            (400, 20, 40),
            (6, 0, 9),
            // Every ragged edge of at most 16 columns after a 32-wide tile (7 × 7 maps, 14 × 14).
            (11, 19, 35),
            (12, 9, 36),
            (12, 5, 37),
            (24, 70, 38),
            (3, 31, 39),
            (13, 4, 45),
            (14, 3, 49),
            (5, 40, 50),
            (26, 33, 56),
            (12, 300, 196),
            // Two blocks of columns, the second with a ragged edge, and two of depth.
            (30, 270, 300),
        ];
        for (isa, walk) in Isa::available()
            .into_iter()
            .flat_map(|isa| [(isa, Walk::DownColumns), (isa, Walk::AlongRows)])
        {
            for (case, &(m, k, n)) in shapes.iter().enumerate() {
                let a = values(m * k, case as u32);
                let b = values(k * n, 50 + case as u32);
                let scale = values(m, 7);
                let shift = values(m, 8);
                // A destination wider than the product, filled with NaN: every value must be written, and
                // nothing beyond the product's columns. A residual is laid out as the destination.
                let stride = n + 3;
                let residual = values(m * stride, 9);
                for clamp in [Clamp::None, Clamp::Relu, Clamp::Relu6] {
                    let finish = Finish {
                        scale: Some(&scale),
                        shift: Some(&shift),
                        residual: None,
                        activation: clamp,
                    };
                    let with_residual = Finish {
                        residual: Some(&residual),
                        ..finish
                    };
                    // Read in place, and copied into panels (every other time, to keep the test short).
                    let copied = (case + clamp as usize) % 2 == 1;
                    for finish in [finish, with_residual, Finish::NONE] {
                        let expected = reference(&a, &b, (m, k, n), &finish, stride);
                        let packed = pack(isa, &a, m, k);
                        let mut got = vec![f32::NAN; m * stride];
                        let a_packed = Packed::new(isa, &packed, m, k);
                        // SAFETY: `b` holds `k × n` values, `got` `m` rows of `stride >= n`.
                        unsafe {
                            multiply(
                                &[a_packed],
                                Rhs {
                                    copied,
                                    ..Rhs::rows(b.as_ptr(), n)
                                },
                                n,
                                (got.as_mut_ptr(), stride),
                                finish,
                                walk,
                            )
                        };
                        for i in 0..m {
                            for j in 0..stride {
                                let g = got[i * stride + j];
                                if j >= n {
                                    assert!(
                                        g.is_nan(),
                                        "{isa:?} {walk:?} {m}x{k}x{n}: wrote past the columns"
                                    );
                                    continue;
                                }
                                let e = expected[i * n + j];
                                assert!(
                                    (g - e).abs() <= 1e-4 * (1.0 + e.abs()),
                                    "{isa:?} {walk:?} {m}x{k}x{n} {clamp:?} copied {copied} ({i}, {j}): {g}, expected {e}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn stacked_and_sliced_matrices_multiply_as_their_rows() {
        for isa in Isa::available() {
            // Two matrices of one depth, stacked, then a slice that starts inside a panel of the first and
            // ends inside the second.
            let (m1, m2, k, n) = (2 * isa.rows() + 3, isa.rows() + 2, 40, 37);
            let a = values((m1 + m2) * k, 1);
            let b = values(k * n, 2);
            let packed1 = pack(isa, &a[..m1 * k], m1, k);
            let packed2 = pack(isa, &a[m1 * k..], m2, k);
            let stack = [
                Packed::new(isa, &packed1, m1, k),
                Packed::new(isa, &packed2, m2, k),
            ];
            let (first, count) = (3, m1 + m2 - 5);
            let sliced = slice_rows(&stack, first, count);
            assert_eq!(sliced.len(), 2);
            let shift = values(count, 3);
            let finish = Finish {
                scale: None,
                shift: Some(&shift),
                residual: None,
                activation: Clamp::None,
            };
            let mut got = vec![0f32; count * n];
            // SAFETY: `b` holds `k × n` values, `got` `count` rows of `n`.
            unsafe {
                multiply(
                    &sliced,
                    Rhs::rows(b.as_ptr(), n),
                    n,
                    (got.as_mut_ptr(), n),
                    finish,
                    Walk::AlongRows,
                )
            };
            let expected = reference(&a[first * k..], &b, (count, k, n), &finish, n);
            for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
                assert!(
                    (g - e).abs() <= 1e-4 * (1.0 + e.abs()),
                    "{isa:?} {i}: {g} vs {e}"
                );
            }
        }
    }

    /// `B` read in segments (a strided convolution's taps over its phase planes): rows gathered from anywhere
    /// in a buffer multiply as the row-major matrix of those rows, with depth blocks inside each segment (300
    /// rows: two blocks) and a ragged edge of columns.
    #[test]
    fn segments_of_b_multiply_as_the_matrix_of_their_rows() {
        for (isa, walk) in Isa::available()
            .into_iter()
            .flat_map(|isa| [(isa, Walk::DownColumns), (isa, Walk::AlongRows)])
        {
            for (m, rows, n) in [(13, 5, 37), (12, 300, 40), (30, 64, 9)] {
                // Three segments, out of order and overlapping, in a buffer of rows 50 apart.
                let stride = 50;
                let segments = [7, 3, 120];
                let buffer = values((rows + 3) * stride, 4);
                let k = rows * segments.len();
                let mut b = Vec::with_capacity(k * n);
                for &offset in &segments {
                    for l in 0..rows {
                        b.extend_from_slice(&buffer[offset + l * stride..][..n]);
                    }
                }
                let a = values(m * k, 5);
                let shift = values(m, 6);
                let finish = Finish {
                    scale: None,
                    shift: Some(&shift),
                    residual: None,
                    activation: Clamp::Relu,
                };
                let packed = pack(isa, &a, m, k);
                for copied in [false, true] {
                    let rhs = Rhs {
                        ptr: buffer.as_ptr(),
                        stride,
                        segments: &segments,
                        rows: Some(rows),
                        copied,
                    };
                    let mut got = vec![f32::NAN; m * n];
                    // SAFETY: each segment's `rows` rows of `n` values, `stride` apart, are inside `buffer`
                    // (`120 + (rows - 1) * 50 + n <= (rows + 3) * 50`); `got` is `m` rows of `n`.
                    unsafe {
                        multiply(
                            &[Packed::new(isa, &packed, m, k)],
                            rhs,
                            n,
                            (got.as_mut_ptr(), n),
                            finish,
                            walk,
                        )
                    };
                    let expected = reference(&a, &b, (m, k, n), &finish, n);
                    for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
                        assert!(
                            (g - e).abs() <= 1e-4 * (1.0 + e.abs()),
                            "{isa:?} {walk:?} {m}x{rows}x3x{n} copied {copied} {i}: {g} vs {e}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn the_environment_narrows_the_kernels_and_ignores_what_it_cannot_read() {
        let available = Isa::available();
        let widest = *available.last().unwrap();
        assert_eq!(Isa::chosen(None), widest);
        assert_eq!(Isa::chosen(Some(" ")), widest);
        assert_eq!(Isa::chosen(Some("pentium")), widest);
        assert_eq!(Isa::chosen(Some("Portable")), Isa::Portable);
        assert_eq!(Isa::chosen(Some("avx512")), widest);
        #[cfg(target_arch = "x86_64")]
        {
            let avx2 = if available.contains(&Isa::Avx2Fma) {
                Isa::Avx2Fma
            } else {
                Isa::Portable
            };
            assert_eq!(Isa::chosen(Some("AVX2")), avx2);
        }
    }

    #[test]
    fn relu_turns_nan_to_zero_and_relu6_keeps_it_as_the_elementwise_kernels_do() {
        for isa in Isa::available() {
            let a = [f32::NAN, 1.0];
            let b = [1.0f32; 2];
            let packed = pack(isa, &a, 2, 1);
            let mut got = [7f32; 2];
            let finish = Finish {
                scale: None,
                shift: None,
                residual: None,
                activation: Clamp::Relu,
            };
            let a_packed = Packed::new(isa, &packed, 2, 1);
            // SAFETY: `b` is 1 × 1, `got` 2 × 1.
            unsafe {
                multiply(
                    &[a_packed],
                    Rhs::rows(b.as_ptr(), 1),
                    1,
                    (got.as_mut_ptr(), 1),
                    finish,
                    Walk::DownColumns,
                )
            };
            assert_eq!(got, [0.0, 1.0], "{isa:?}");
            let finish = Finish {
                activation: Clamp::Relu6,
                ..finish
            };
            // SAFETY: as above.
            unsafe {
                multiply(
                    &[a_packed],
                    Rhs::rows(b.as_ptr(), 1),
                    1,
                    (got.as_mut_ptr(), 1),
                    finish,
                    Walk::DownColumns,
                )
            };
            assert!(got[0].is_nan() && got[1] == 1.0, "{isa:?}: {got:?}");
        }
    }
}
