//! Loading named tensors from a [`VarBuilder`] with errors a model author can act on.
//!
//! candle reports a missing tensor as `cannot find tensor NAME` (or, for a single safetensors
//! file, a bare safetensors error) and a mis-shaped one as `shape mismatch for NAME`, without
//! saying which layer asked for it. These helpers wrap `VarBuilder::get_with_hints` so the error
//! names the full tensor path, the expected shape and the shape found (or that the tensor is
//! missing), and a caller-supplied context such as
//! ``statement `inception3a` at architectures/googlenet.arch:24:5``.

use candle_core::{Error, Result, Shape, Tensor};
use candle_nn::{Init, VarBuilder};

/// Loads tensor `name` under `vb`'s prefix, which must have shape `shape`.
///
/// A `VarBuilder` backed by a `VarMap` creates missing tensors instead of failing; they are
/// initialised to zero here, like `VarBuilder::get`. Use [`load_tensor_with_init`] to choose the
/// initialisation.
///
/// On failure the error reads, for example:
///
/// ```text
/// cannot load `inception3a.branch2.0.conv.weight` for statement `inception3a` at
/// architectures/googlenet.arch:24:5: expected shape [128, 96, 3, 3], found [128, 96, 5, 5]
/// ```
///
/// or, for a tensor missing from a file opened with [`Weights`](crate::weights::Weights), with the closest
/// names it holds:
///
/// ```text
/// cannot load `layer1.0.main.conv1.weight` for statement `layer1` at resnet18.arch:31:5: expected shape
/// [64, 64, 3, 3], but the tensor is missing; closest in the file: `layer1.0.conv1.weight` [64, 64, 3, 3]
/// ```
pub fn load_tensor<S: Into<Shape>>(
    vb: &VarBuilder,
    name: &str,
    shape: S,
    context: &str,
) -> Result<Tensor> {
    load_tensor_with_init(vb, name, shape, Init::Const(0.0), context)
}

/// Like [`load_tensor`], with `init` used by builders that create tensors (a `VarMap`).
pub fn load_tensor_with_init<S: Into<Shape>>(
    vb: &VarBuilder,
    name: &str,
    shape: S,
    init: Init,
    context: &str,
) -> Result<Tensor> {
    let shape = shape.into();
    match vb.get_with_hints(shape.clone(), name, init) {
        Ok(tensor) => Ok(tensor),
        Err(err) => Err(describe_load_error(vb, name, &shape, err, context)),
    }
}

/// Loads an optional `bias` of `len` values; a `VarMap`-backed builder initialises it uniformly in
/// `±1 / sqrt(fan_in)`, as PyTorch's convolution and linear layers do.
pub fn load_bias(vb: &VarBuilder, len: usize, fan_in: usize, context: &str) -> Result<Tensor> {
    let bound = 1.0 / (fan_in.max(1) as f64).sqrt();
    let init = Init::Uniform {
        lo: -bound,
        up: bound,
    };
    load_tensor_with_init(vb, "bias", len, init, context)
}

/// The full dotted path of `name` under `vb`'s prefix, as it appears in a safetensors file.
pub fn tensor_path(vb: &VarBuilder, name: &str) -> String {
    let prefix = vb.prefix();
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

/// Turns whatever the backend reported into "expected X, found Y" or "expected X, missing".
fn describe_load_error(
    vb: &VarBuilder,
    name: &str,
    expected: &Shape,
    err: Error,
    context: &str,
) -> Error {
    let path = tensor_path(vb, name);
    let subject = if context.is_empty() {
        format!("cannot load `{path}`")
    } else {
        format!("cannot load `{path}` for {context}")
    };
    let expected_dims = expected.dims();
    if let Some(found) = found_shape(&err) {
        return crate::error(format!(
            "{subject}: expected shape {expected_dims:?}, found {:?}",
            found.dims()
        ));
    }
    if !vb.contains_tensor(name) {
        // A `Weights` builder names the closest tensors in the file.
        let near =
            crate::weights::near_misses(&err).map_or(String::new(), |near| format!("; {near}"));
        return crate::error(format!(
            "{subject}: expected shape {expected_dims:?}, but the tensor is missing{near}"
        ));
    }
    // Some backends (a VarMap) report a mismatch only as text; ask for the tensor unchecked.
    if let Ok(found) = vb.get_unchecked(name) {
        if found.shape() != expected {
            return crate::error(format!(
                "{subject}: expected shape {expected_dims:?}, found {:?}",
                found.dims()
            ));
        }
    }
    crate::error(format!("{subject}: {err}"))
}

/// The shape a backend found, when the error is candle's `UnexpectedShape` (possibly wrapped).
fn found_shape(err: &Error) -> Option<&Shape> {
    match err {
        Error::UnexpectedShape { got, .. } => Some(got),
        Error::WithBacktrace { inner, .. }
        | Error::Context { inner, .. }
        | Error::WithPath { inner, .. } => found_shape(inner),
        _ => None,
    }
}

/// A `VarBuilder` over detached copies of every variable in `varmap`: the same values as plain tensors.
///
/// A layer whose weights are `Var`s keeps their gradients, so it runs as candle ops even in inference (see
/// [`crate::fused`]). To run a model built on a `VarMap` (random weights, or weights just trained) at inference
/// speed, build it again from this builder.
pub fn detached(
    varmap: &candle_nn::VarMap,
    device: &candle_core::Device,
) -> Result<VarBuilder<'static>> {
    let data = varmap
        .data()
        .lock()
        .map_err(|_| crate::error("the VarMap's lock is poisoned"))?;
    let tensors: std::collections::HashMap<String, Tensor> = data
        .iter()
        .map(|(name, var)| (name.clone(), var.as_tensor().detach()))
        .collect();
    let dtype = tensors
        .values()
        .next()
        .map_or(candle_core::DType::F32, Tensor::dtype);
    Ok(VarBuilder::from_tensors(tensors, dtype, device))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use candle_core::{DType, Device};
    use candle_nn::VarMap;

    use super::*;

    fn builder() -> VarBuilder<'static> {
        let mut tensors = HashMap::new();
        tensors.insert(
            "inception3a.branch2.0.conv.weight".to_string(),
            Tensor::zeros((128, 96, 5, 5), DType::F32, &Device::Cpu).unwrap(),
        );
        VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu)
    }

    const CONTEXT: &str = "statement `inception3a` at architectures/googlenet.arch:24:5";

    #[test]
    fn mis_shaped_tensor_names_path_shapes_and_context() {
        let vb = builder().pp("inception3a").pp("branch2").pp("0").pp("conv");
        let err = load_tensor(&vb, "weight", (128, 96, 3, 3), CONTEXT)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "cannot load `inception3a.branch2.0.conv.weight` for statement `inception3a` at \
             architectures/googlenet.arch:24:5: expected shape [128, 96, 3, 3], found [128, 96, 5, 5]"
        );
    }

    #[test]
    fn missing_tensor_says_missing() {
        let vb = builder().pp("inception3a").pp("branch2").pp("0").pp("conv");
        let err = load_tensor(&vb, "bias", 128, CONTEXT)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "cannot load `inception3a.branch2.0.conv.bias` for statement `inception3a` at \
             architectures/googlenet.arch:24:5: expected shape [128], but the tensor is missing"
        );
    }

    #[test]
    fn present_tensor_loads() {
        let vb = builder().pp("inception3a.branch2.0.conv");
        let t = load_tensor(&vb, "weight", (128, 96, 5, 5), "").unwrap();
        assert_eq!(t.dims(), &[128, 96, 5, 5]);
    }

    #[test]
    fn varmap_mismatch_reports_the_found_shape() {
        let map = VarMap::new();
        let vb = VarBuilder::from_varmap(&map, DType::F32, &Device::Cpu);
        load_tensor(&vb.pp("fc"), "weight", (10, 4), "").unwrap();
        let err = load_tensor(&vb.pp("fc"), "weight", (10, 5), "statement `fc`")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("cannot load `fc.weight` for statement `fc`: "),
            "{err}"
        );
        assert!(err.contains("[10, 5]") && err.contains("[10, 4]"), "{err}");
    }

    #[test]
    fn safetensors_file_errors_are_described() {
        let dir = std::env::temp_dir().join(format!("archc-runtime-load-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("weights.safetensors");
        let weight = Tensor::zeros((4, 3, 1, 1), DType::F32, &Device::Cpu).unwrap();
        candle_core::safetensors::save(&HashMap::from([("conv.weight", weight)]), &file).unwrap();
        // SAFETY: the file is written above and not modified while mapped.
        let vb = unsafe {
            VarBuilder::from_mmaped_safetensors(&[&file], DType::F32, &Device::Cpu).unwrap()
        };
        let err = load_tensor(&vb.pp("conv"), "weight", (4, 3, 3, 3), "statement `conv`")
            .unwrap_err()
            .to_string();
        assert!(
            err.ends_with("expected shape [4, 3, 3, 3], found [4, 3, 1, 1]"),
            "{err}"
        );
        let err = load_tensor(&vb.pp("conv"), "bias", 4, "statement `conv`")
            .unwrap_err()
            .to_string();
        assert!(
            err.ends_with("expected shape [4], but the tensor is missing"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
