//! Pooling layers with PyTorch's exact semantics: padding, ceil mode, dilation, and
//! `count_include_pad`, which candle's own `max_pool2d` / `avg_pool2d` do not have.
//!
//! The input is padded once per axis, with `-inf` for max pooling and zeros for average pooling,
//! far enough that every window, including a ceil-mode window hanging over the end, lies inside.
//! An undilated max pool is then candle's own unpadded pool, except when a gradient is wanted
//! (candle's own pool has no correct gradient: see `MaxPool2d::forward`). Otherwise each spatial
//! axis is pooled in turn, because a max or a sum over a rectangular window is the max or sum over its
//! rows of the max or sum over its columns: the `kernel * out` window elements along the axis are
//! gathered with one `index_select` into a `[.., kernel, out, ..]` layout and reduced over the
//! kernel axis. All of this is tensor ops, so it runs on any candle device; only the window
//! indices and the average pool's divisors, which depend on shapes and not on data, are computed
//! on the host.

use candle_core::{Device, Error, Module, Result, Tensor};

use crate::cpu;
use crate::fused::{cpu_kernels_apply, cpu_tensor, with_images};
use crate::shape::{expect_nchw, narrow, pool_out_size, wide};

/// `torch.nn.MaxPool2d`: the maximum over each `kernel` window, with the input padded by `pad`
/// on both sides with `-inf` (so padding never wins), windows spaced by `stride`, window
/// elements spaced by `dilation`, and `ceil_mode` allowing a last window that hangs over the end
/// of the padded input (the part that hangs over does not count).
///
/// All pairs are `(height, width)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxPool2d {
    /// Window size.
    pub kernel: (usize, usize),
    /// Distance between window starts; PyTorch's default is the kernel size.
    pub stride: (usize, usize),
    /// Implicit `-inf` padding on each side; at most half the kernel, dilated or not, as in
    /// PyTorch.
    pub pad: (usize, usize),
    /// Distance between the elements of a window; 1 for an ordinary pool.
    pub dilation: (usize, usize),
    /// Round the output size up instead of down.
    pub ceil_mode: bool,
}

impl MaxPool2d {
    /// A pool with PyTorch's defaults: stride equal to the kernel, no padding, no dilation,
    /// floor mode.
    pub fn new(kernel: (usize, usize)) -> Self {
        Self {
            kernel,
            stride: kernel,
            pad: (0, 0),
            dilation: (1, 1),
            ceil_mode: false,
        }
    }

    /// The `(height, width)` this pool produces from an input of `(height, width)`.
    pub fn output_size(&self, input: (usize, usize)) -> Result<(usize, usize)> {
        Ok((
            self.axis(input.0, Axis::Height)?.out,
            self.axis(input.1, Axis::Width)?.out,
        ))
    }

    fn axis(&self, input: usize, axis: Axis) -> Result<AxisWindows> {
        AxisWindows::along(
            "max_pool2d",
            axis,
            input,
            [self.kernel, self.stride, self.pad, self.dilation],
            self.ceil_mode,
        )
    }
}

impl MaxPool2d {
    /// The windows along the rows and the columns of an `(h, w)` map, as the CPU kernels take them; an error
    /// where the pool does not fit the map.
    #[cfg(all(target_arch = "x86_64", feature = "avx512"))]
    pub(crate) fn cpu_axes(
        &self,
        (h, w): (usize, usize),
    ) -> Result<(cpu::PoolAxis, cpu::PoolAxis)> {
        Ok((
            self.axis(h, Axis::Height)?.cpu_axis(),
            self.axis(w, Axis::Width)?.cpu_axis(),
        ))
    }

    /// Checks the options on their own: a map exactly one window large must pool.
    pub(crate) fn validate(&self) -> Result<()> {
        let extent = |k: usize, d: usize| k.saturating_sub(1).saturating_mul(d).saturating_add(1);
        let probe = (
            extent(self.kernel.0, self.dilation.0),
            extent(self.kernel.1, self.dilation.1),
        );
        self.output_size(probe).map(|_| ())
    }
}

impl Module for MaxPool2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_with(x, true)
    }
}

impl MaxPool2d {
    /// The forward pass, through the one-pass CPU kernel where it applies and `kernels` allows it.
    pub fn forward_with(&self, x: &Tensor, kernels: bool) -> Result<Tensor> {
        let (_, _, h, w) = expect_nchw(x, "max_pool2d")?;
        let rows = self.axis(h, Axis::Height)?;
        let cols = self.axis(w, Axis::Width)?;
        if kernels && cpu_kernels_apply(x) {
            return pool_on_cpu(x, &rows, &cols, |planes, data, rows, cols| {
                cpu::max_pool2d(data, planes, rows, cols)
            });
        }
        // A forward pass that is being differentiated takes the gather path below: candle's native
        // pool has no gradient for overlapping windows (kernel != stride), and for the others its
        // gradient is off by a factor (candle 0.11 multiplies it by the share of the window that
        // holds the maximum, 1 / (kh * kw) for a single maximum, where PyTorch passes it whole).
        if self.dilation == (1, 1) && !x.track_op() {
            // Once padded with -inf to exactly cover every window, this is an unpadded,
            // floor-mode pool, which candle has natively and runs several times faster.
            let x = pad_with_value(x, 3, cols.pad_before, cols.pad_after, f64::NEG_INFINITY)?
                .narrow(3, 0, cols.covered_len())?;
            let x = pad_with_value(&x, 2, rows.pad_before, rows.pad_after, f64::NEG_INFINITY)?
                .narrow(2, 0, rows.covered_len())?;
            return x
                .contiguous()?
                .max_pool2d_with_stride(self.kernel, self.stride);
        }
        let select = if x.track_op() {
            window_argmax
        } else {
            window_max
        };
        let x = pad_with_value(x, 3, cols.pad_before, cols.pad_after, f64::NEG_INFINITY)?;
        let x = select(&cols.gather(&x, 3)?, 3)?;
        let x = pad_with_value(&x, 2, rows.pad_before, rows.pad_after, f64::NEG_INFINITY)?;
        select(&rows.gather(&x, 2)?, 2)
    }
}

/// The maximum of each window, `windows` holding the window elements along `dim`.
fn window_max(windows: &Tensor, dim: usize) -> Result<Tensor> {
    windows.max(dim)
}

/// The same values, picked out at each window's first maximum so that the gradient goes to that one
/// element, as in PyTorch. A plain `max` passes the gradient to every element equal to the maximum, and
/// ties are common in training: after an overlapping pool, neighbouring outputs often hold the same
/// input element, so the next pool (an Inception branch's 3×3, stride 1) sees it twice, and would send
/// its gradient back twice.
fn window_argmax(windows: &Tensor, dim: usize) -> Result<Tensor> {
    let first = windows.argmax_keepdim(dim)?;
    windows.gather(&first, dim)?.squeeze(dim)
}

/// `torch.nn.AvgPool2d`: the mean over each `kernel` window, with zero padding `pad` on both
/// sides, windows spaced by `stride`, and `ceil_mode` as for [`MaxPool2d`].
///
/// The divisor follows ATen's kernel exactly. A window starting at `start = o * stride - pad`
/// is first clipped to the padded input, `end = min(start + kernel, input + pad)`; with
/// `count_include_pad` the divisor is that clipped window's size `end - start` (padding counts,
/// but the part of a ceil-mode window beyond the padding does not); without it the divisor is
/// the number of real input elements, `min(end, input) - max(start, 0)`. The 2-D divisor is the
/// product of the two axes' divisors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AvgPool2d {
    /// Window size.
    pub kernel: (usize, usize),
    /// Distance between window starts; PyTorch's default is the kernel size.
    pub stride: (usize, usize),
    /// Implicit zero padding on each side; at most half the kernel.
    pub pad: (usize, usize),
    /// Round the output size up instead of down.
    pub ceil_mode: bool,
    /// Count padding elements in the divisor; PyTorch's default is `true`.
    pub count_include_pad: bool,
}

impl AvgPool2d {
    /// A pool with PyTorch's defaults: stride equal to the kernel, no padding, floor mode,
    /// `count_include_pad = true`.
    pub fn new(kernel: (usize, usize)) -> Self {
        Self {
            kernel,
            stride: kernel,
            pad: (0, 0),
            ceil_mode: false,
            count_include_pad: true,
        }
    }

    /// The `(height, width)` this pool produces from an input of `(height, width)`.
    pub fn output_size(&self, input: (usize, usize)) -> Result<(usize, usize)> {
        Ok((
            self.axis(input.0, Axis::Height)?.out,
            self.axis(input.1, Axis::Width)?.out,
        ))
    }

    fn axis(&self, input: usize, axis: Axis) -> Result<AxisWindows> {
        AxisWindows::along(
            "avg_pool2d",
            axis,
            input,
            [self.kernel, self.stride, self.pad, (1, 1)],
            self.ceil_mode,
        )
    }
}

impl AvgPool2d {
    /// Checks the options on their own: a map exactly one window large must pool.
    pub(crate) fn validate(&self) -> Result<()> {
        self.output_size((self.kernel.0.max(1), self.kernel.1.max(1)))
            .map(|_| ())
    }
}

impl Module for AvgPool2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_with(x, true)
    }
}

impl AvgPool2d {
    /// The forward pass, through the one-pass CPU kernel where it applies and `kernels` allows it.
    pub fn forward_with(&self, x: &Tensor, kernels: bool) -> Result<Tensor> {
        let (_, _, h, w) = expect_nchw(x, "avg_pool2d")?;
        let rows = self.axis(h, Axis::Height)?;
        let cols = self.axis(w, Axis::Width)?;
        let row_divisors = rows.divisors(self.count_include_pad);
        let col_divisors = cols.divisors(self.count_include_pad);
        let divisors: Vec<f32> = row_divisors
            .iter()
            .flat_map(|r| col_divisors.iter().map(move |c| (r * c) as f32))
            .collect();
        if kernels && cpu_kernels_apply(x) {
            return pool_on_cpu(x, &rows, &cols, |planes, data, rows, cols| {
                cpu::avg_pool2d(data, planes, rows, cols, &divisors)
            });
        }
        let x = x.pad_with_zeros(3, cols.pad_before, cols.pad_after)?;
        let x = cols.gather(&x, 3)?.sum(3)?;
        let x = x.pad_with_zeros(2, rows.pad_before, rows.pad_after)?;
        let sums = rows.gather(&x, 2)?.sum(2)?;
        let divisors =
            Tensor::from_vec(divisors, (rows.out, cols.out), x.device())?.to_dtype(x.dtype())?;
        sums.broadcast_div(&divisors)
    }
}

/// Runs a CPU pooling kernel over every `[h, w]` plane of `x`; `pool` gets the plane count, the planes and the
/// windows along each axis.
fn pool_on_cpu(
    x: &Tensor,
    rows: &AxisWindows,
    cols: &AxisWindows,
    pool: impl FnOnce(usize, &[f32], &cpu::PoolAxis, &cpu::PoolAxis) -> Vec<f32>,
) -> Result<Tensor> {
    let (n, c, _, _) = expect_nchw(x, "pooling")?;
    let x = x.contiguous()?;
    let (row_axis, col_axis) = (rows.cpu_axis(), cols.cpu_axis());
    let out = with_images(&x, |data, _| pool(n * c, data, &row_axis, &col_axis))?;
    Ok(cpu_tensor(out, (n, c, rows.out, cols.out)))
}

/// `torch.nn.AdaptiveAvgPool2d` as a layer; see [`adaptive_avg_pool2d`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdaptiveAvgPool2d {
    /// The `(height, width)` of the output.
    pub output: (usize, usize),
}

impl AdaptiveAvgPool2d {
    /// An adaptive pool producing `output = (height, width)`.
    pub fn new(output: (usize, usize)) -> Self {
        Self { output }
    }
}

impl Module for AdaptiveAvgPool2d {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        adaptive_avg_pool2d(x, self.output)
    }
}

/// `torch.nn.functional.adaptive_avg_pool2d`: averages an NCHW tensor into `output =
/// (height, width)` bins. Along an axis of length `n` pooled to `m`, bin `i` covers
/// `floor(i * n / m) .. ceil((i + 1) * n / m)`, so bins overlap when `m` does not divide `n`
/// (14 -> 4 gives 0..4, 3..7, 7..11, 10..14).
///
/// `(1, 1)` is a global average pool and is a single mean; when both sizes divide evenly the
/// bins are disjoint and the pool is a reshape and a sum; otherwise each axis is summed with a
/// 0/1 bin-membership matrix, and the sums are divided by the bin areas as PyTorch does.
pub fn adaptive_avg_pool2d(x: &Tensor, output: (usize, usize)) -> Result<Tensor> {
    let (n, c, h, w) = expect_nchw(x, "adaptive_avg_pool2d")?;
    let (oh, ow) = output;
    if oh == 0 || ow == 0 {
        return Err(crate::error(format!(
            "adaptive_avg_pool2d needs a non-empty output size, found ({oh}, {ow})"
        )));
    }
    if h == 0 || w == 0 {
        return Err(crate::error(format!(
            "adaptive_avg_pool2d needs a non-empty input, found shape {:?}",
            x.dims()
        )));
    }
    if (oh, ow) == (1, 1) {
        return x.mean_keepdim((2, 3));
    }
    if h % oh == 0 && w % ow == 0 {
        let (kh, kw) = (h / oh, w / ow);
        return x
            .reshape((n, c, oh, kh, ow, kw))?
            .sum((3, 5))?
            .affine(1.0 / (kh * kw) as f64, 0.0);
    }
    let (row_bins, row_counts) = adaptive_bins(h, oh, x.device())?;
    let (col_bins, col_counts) = adaptive_bins(w, ow, x.device())?;
    let dtype = x.dtype();
    // [n*c*h, w] x [w, ow] sums each row's column bins ...
    let x = x
        .reshape((n * c * h, w))?
        .matmul(&col_bins.to_dtype(dtype)?.t()?)?;
    // ... then, with h moved last, [n*c*ow, h] x [h, oh] sums the row bins.
    let x = x
        .reshape((n * c, h, ow))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((n * c * ow, h))?
        .matmul(&row_bins.to_dtype(dtype)?.t()?)?;
    let sums = x.reshape((n, c, ow, oh))?.transpose(2, 3)?.contiguous()?;
    let areas: Vec<f32> = row_counts
        .iter()
        .flat_map(|r| col_counts.iter().map(move |c| (r * c) as f32))
        .collect();
    let areas = Tensor::from_vec(areas, (oh, ow), sums.device())?.to_dtype(dtype)?;
    sums.broadcast_div(&areas)
}

/// The `[out, input]` 0/1 matrix of PyTorch's adaptive bins and each bin's length.
fn adaptive_bins(input: usize, out: usize, device: &Device) -> Result<(Tensor, Vec<usize>)> {
    let mut membership = vec![0f32; out * input];
    let mut counts = Vec::with_capacity(out);
    for i in 0..out {
        let start = i * input / out;
        let end = ((i + 1) * input).div_ceil(out);
        membership[i * input + start..i * input + end].fill(1.0);
        counts.push(end - start);
    }
    Ok((Tensor::from_vec(membership, (out, input), device)?, counts))
}

#[derive(Debug, Clone, Copy)]
enum Axis {
    Height,
    Width,
}

/// Adds which pool, axis and input length failed to an output-size error.
fn describe_pool_error(e: Error, op: &str, axis: Axis, input: usize) -> Error {
    let axis = match axis {
        Axis::Height => "height",
        Axis::Width => "width",
    };
    crate::error(format!("{op}: input {axis} {input}: {e}"))
}

/// The windows of a pool along one axis, in padded coordinates.
#[derive(Debug, Clone)]
struct AxisWindows {
    input: usize,
    kernel: usize,
    stride: usize,
    pad: usize,
    dilation: usize,
    out: usize,
    /// The padded length the windows span, from the first element of the first window to the
    /// last element of the last one.
    span: usize,
    /// Padding before the input: PyTorch's `pad`.
    pad_before: usize,
    /// Padding after the input: `pad`, plus whatever a ceil-mode window hangs over.
    pad_after: usize,
}

impl AxisWindows {
    /// The windows of a 2-D pool along one `axis`, from its `[kernel, stride, pad, dilation]`
    /// `(height, width)` pairs; errors name the pooling `op`.
    fn along(
        op: &str,
        axis: Axis,
        input: usize,
        pairs: [(usize, usize); 4],
        ceil_mode: bool,
    ) -> Result<AxisWindows> {
        let [kernel, stride, pad, dilation] = pairs.map(|pair| match axis {
            Axis::Height => pair.0,
            Axis::Width => pair.1,
        });
        AxisWindows::new(input, kernel, stride, pad, dilation, ceil_mode)
            .map_err(|e| describe_pool_error(e, op, axis, input))
    }

    fn new(
        input: usize,
        kernel: usize,
        stride: usize,
        pad: usize,
        dilation: usize,
        ceil_mode: bool,
    ) -> Result<Self> {
        let out = pool_out_size(input, kernel, stride, pad, dilation, ceil_mode)?;
        let span = archc_shape::windows_span(wide(out), wide(kernel), wide(stride), wide(dilation))
            .map_err(|e| crate::error(e.to_string()))
            .and_then(narrow)?;
        // Every window index, up to the last element of the last window, must fit u32.
        if u32::try_from(span - 1).is_err() {
            return Err(crate::error("pooling window indices overflow u32"));
        }
        // pool_out_size guarantees input + 2 * pad does not overflow.
        let padded = (input + 2 * pad).max(span);
        Ok(Self {
            input,
            kernel,
            stride,
            pad,
            dilation,
            out,
            span,
            pad_before: pad,
            pad_after: padded - input - pad,
        })
    }

    /// The padded length the windows span ([`archc_shape::windows_span`]). An unpadded floor-mode
    /// pool over exactly this length produces `out` windows.
    fn covered_len(&self) -> usize {
        self.span
    }

    /// Gathers the windows of the (already padded) `x` along `dim` and splits that dimension
    /// into `[kernel, out]`, window element first, ready to be reduced over `dim`.
    fn gather(&self, x: &Tensor, dim: usize) -> Result<Tensor> {
        let mut indices = Vec::with_capacity(self.kernel * self.out);
        for k in 0..self.kernel {
            for o in 0..self.out {
                // In range: AxisWindows::new checked the largest of these against u32.
                indices.push((k * self.dilation + o * self.stride) as u32);
            }
        }
        let indices = Tensor::from_vec(indices, self.kernel * self.out, x.device())?;
        // index_select only reads contiguous tensors; `contiguous` is free when x already is.
        let gathered = x.contiguous()?.index_select(&indices, dim)?;
        let mut dims = gathered.dims().to_vec();
        dims.splice(dim..=dim, [self.kernel, self.out]);
        gathered.reshape(dims)
    }

    /// The same windows, for the CPU kernels.
    fn cpu_axis(&self) -> cpu::PoolAxis {
        cpu::PoolAxis {
            len: self.input,
            kernel: self.kernel,
            stride: self.stride,
            pad: self.pad,
            dilation: self.dilation,
            out: self.out,
        }
    }

    /// The average pool divisor of each window along this axis, per ATen's `cpu_avg_pool`.
    fn divisors(&self, count_include_pad: bool) -> Vec<usize> {
        (0..self.out)
            .map(|o| {
                // Window bounds in input coordinates, shifted by `pad` to stay unsigned.
                let start = o * self.stride;
                let end = (start + self.kernel).min(self.input + 2 * self.pad);
                let clipped_start = start.max(self.pad);
                let clipped_end = end.min(self.input + self.pad);
                let divisor = if count_include_pad {
                    end - start
                } else {
                    clipped_end.saturating_sub(clipped_start)
                };
                // An empty window sums to zero; PyTorch outputs 0 there, not 0 / 0.
                divisor.max(1)
            })
            .collect()
    }
}

/// Pads `dim` of `x` with `before` and `after` copies of `value`.
fn pad_with_value(
    x: &Tensor,
    dim: usize,
    before: usize,
    after: usize,
    value: f64,
) -> Result<Tensor> {
    if before == 0 && after == 0 {
        return Ok(x.clone());
    }
    let filler = |len: usize| -> Result<Tensor> {
        let mut dims = x.dims().to_vec();
        dims[dim] = len;
        Tensor::zeros(dims, x.dtype(), x.device())?.affine(1.0, value)
    };
    let mut parts = Vec::with_capacity(3);
    if before > 0 {
        parts.push(filler(before)?);
    }
    parts.push(x.clone());
    if after > 0 {
        parts.push(filler(after)?);
    }
    Tensor::cat(&parts, dim)
}
