//! Winograd convolutions at the tensor level: which layers a [`Plan`](crate::plan::Plan) runs by Winograd, the
//! transformed filters each layer prepares once ([`crate::prepared`]), and an entry point that forces a tile,
//! for tests and benchmarks that compare the paths. The kernel is `crate::cpu::winograd`.

use candle_core::{Result, Tensor};

use crate::cpu::{self, ConvGeometry, Epilogue};
use crate::fused::{
    conv_geometry, conv_kernels_apply, conv_output, epilogue, with_f32, with_images,
};
use crate::prepared::PreparedKind;
use crate::{BatchNorm, Conv2d};

pub use crate::cpu::winograd::Tile;

/// The tile a plan runs a convolution of this geometry with, `None` for the direct kernel.
pub(crate) fn choose(geometry: &ConvGeometry, images: usize) -> Option<Tile> {
    cpu::winograd::choose(geometry, cpu::split_images(images))
}

/// `conv`'s output on `x` by Winograd with `tile`, `epilogue` applied; the CPU kernels must apply
/// ([`conv_kernels_apply`]) and `tile` must fit the convolution ([`Tile::fits`]). The
/// transformed filters are taken from the layer, prepared there on first use.
pub(crate) fn run(
    x: &Tensor,
    conv: &Conv2d,
    geometry: &ConvGeometry,
    epilogue: &Epilogue,
    tile: Tile,
) -> Result<Tensor> {
    // Not zeroed: the tiles cover every output value of every channel (a zero-fill was 4% of GoogLeNet's
    // 64 -> 192 layer on 56×56).
    let layer = (conv, geometry, tile);
    // SAFETY: `run_into` writes every value of its output or fails.
    unsafe { conv_output(x.dim(0)?, geometry, |out| run_into(x, layer, epilogue, out)) }
}

/// [`run`] into `out`, which must hold the `[n, c_out, oh, ow]` output exactly; every value is written.
pub(crate) fn run_into(
    x: &Tensor,
    (conv, geometry, tile): (&Conv2d, &ConvGeometry, Tile),
    epilogue: &Epilogue,
    out: &mut [std::mem::MaybeUninit<f32>],
) -> Result<()> {
    let (c_out, c_in) = (geometry.c_out, geometry.c_in);
    let isa = cpu::Isa::detect();
    let filters =
        conv.prepared_weights()
            .get_or_prepare(PreparedKind::Winograd(tile, isa), || {
                with_f32(conv.weight(), |w| {
                    cpu::winograd::transform_filters(w, c_out, c_in, tile, isa)
                })
            })?;
    let filters = cpu::winograd::Filters {
        isa,
        values: &filters,
    };
    let n = x.dim(0)?;
    with_images(x, |images, image_stride| {
        let images = (images, n, image_stride);
        cpu::winograd::conv2d_into(images, filters, (tile, geometry), epilogue, out)
    })
}

/// `relu(bn(conv(x)))`, the batch norm and ReLU optional, as [`crate::conv_bn_act`] computes it in inference,
/// but always by Winograd with `tile`, whatever a plan would choose for the layer: for comparing the paths.
/// The transformed filters are prepared in `conv` on first use and kept, as in a plan.
///
/// An error unless the CPU kernels apply (a CPU `f32` input and weight, no gradient wanted) and the convolution
/// has the tile's kernel ([`Tile::kernel`]: 3×3 for [`Tile::F2`] and [`Tile::F4`], 5×5 for [`Tile::F2K5`], 1×7
/// and 7×1 for [`Tile::F1x2K7`] and [`Tile::F2x1K7`]), stride 1, dilation 1 and one group.
pub fn conv_bn_act_winograd(
    x: &Tensor,
    conv: &Conv2d,
    bn: Option<&BatchNorm>,
    relu: bool,
    tile: Tile,
) -> Result<Tensor> {
    if !conv_kernels_apply(x, conv, bn) {
        return Err(crate::error(
            "Winograd convolution needs a CPU f32 input and weight that no gradient is wanted for",
        ));
    }
    let geometry = conv_geometry(x, conv)?;
    if !tile.fits(&geometry) {
        let (r_h, r_w) = tile.kernel();
        return Err(crate::error(format!(
            "Winograd convolution {tile:?} needs a {r_h}x{r_w} kernel, stride 1, dilation 1 and one group, found \
             kernel {:?}, stride {:?}, dilation {:?}, {} groups",
            geometry.kernel, geometry.stride, geometry.dilation, geometry.groups
        )));
    }
    let activation = if relu {
        cpu::Activation::Relu
    } else {
        cpu::Activation::Identity
    };
    let epilogue = epilogue(conv, bn, activation, geometry.c_out)?;
    run(x, conv, &geometry, &epilogue, tile)
}
