//! Opening a safetensors weight file for a generated model, with errors that name the file and the culprit,
//! and a record of which tensors the model read, so the extra ones can be reported.
//!
//! ```no_run
//! # use archc_runtime::candle_core::{DType, Device, Result};
//! # use archc_runtime::candle_nn::VarBuilder;
//! # fn new_model(vb: VarBuilder) -> Result<()> { Ok(()) }
//! # fn main() -> Result<()> {
//! use archc_runtime::weights::{is_batch_norm_counter, Weights};
//!
//! let weights = Weights::open("googlenet.safetensors")?;
//! let model = new_model(weights.var_builder(DType::F32, &Device::Cpu))?; // googlenet::Model::new(vb, &cfg)
//! // PyTorch's `num_batches_tracked` counters are never read by inference; anything else left over is
//! // worth a look (a head the `.arch` file does not have, a misspelt statement name).
//! if let Some(warning) = weights.unused_warning(is_batch_norm_counter) {
//!     eprintln!("{warning}");
//! }
//! # Ok(())
//! # }
//! ```
//!
//! Failures, each a [`candle_core::Error`] whose text names what went wrong:
//!
//! - [`Weights::open`]: a path that does not exist or is a directory; a file too short to hold its header, a
//!   header that is not safetensors JSON, a file cut short (the header's tensor data does not fit in what
//!   follows it); anything else safetensors rejects, with the file named.
//! - The builder: a tensor whose dtype is not a float (an `I64` where a weight is expected), naming the
//!   tensor, its dtype and the dtypes accepted; a mis-shaped tensor, as candle's `UnexpectedShape` so that
//!   [`load_tensor`](crate::load_tensor) reports the expected and found shapes and the `.arch` statement.
//!
//! Checking the dtype only when a tensor is read (not at `open`) matters: torchvision checkpoints hold int64
//! `num_batches_tracked` buffers that a model never asks for.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use candle_core::safetensors::BufferedSafetensors;
use candle_core::{DType, Device, Result, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder};

use crate::error;

/// The tensor dtypes a weight may have; it is converted to the builder's dtype when loaded.
const FLOAT_DTYPES: &str = "F16, BF16, F32 or F64";

/// A safetensors weight file, read into memory and validated, that hands out [`VarBuilder`]s and remembers
/// which tensors they loaded.
pub struct Weights {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    safetensors: BufferedSafetensors,
    /// Every tensor name in the file, sorted.
    names: BTreeSet<String>,
    /// The names a builder has asked for (and that exist).
    used: Mutex<BTreeSet<String>>,
}

impl Weights {
    /// Reads and validates the safetensors file at `path`. The tensors' dtypes are checked when they are
    /// loaded, not here.
    pub fn open(path: impl AsRef<Path>) -> Result<Weights> {
        let path = path.as_ref();
        let shown = path.display();
        if path.is_dir() {
            return Err(error(format!(
                "{shown}: is a directory, not a safetensors weight file"
            )));
        }
        let bytes = std::fs::read(path)
            .map_err(|e| error(format!("{shown}: cannot read the weight file: {e}")))?;
        Weights::from_bytes(path, bytes)
    }

    /// Validates `bytes` as the contents of the safetensors file `path` (used in messages only).
    pub fn from_bytes(path: impl AsRef<Path>, bytes: Vec<u8>) -> Result<Weights> {
        let path = path.as_ref().to_path_buf();
        check_layout(&path, &bytes)?;
        let safetensors = BufferedSafetensors::new(bytes).map_err(|e| {
            error(format!(
                "{}: not a valid safetensors file: {e}",
                path.display()
            ))
        })?;
        let names = safetensors
            .tensors()
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        Ok(Weights {
            inner: Arc::new(Inner {
                path,
                safetensors,
                names,
                used: Mutex::new(BTreeSet::new()),
            }),
        })
    }

    /// The file's path, as given to [`Weights::open`].
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Every tensor name in the file, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.inner.names.iter().map(String::as_str)
    }

    /// A builder over the file's tensors, converting them to `dtype` on `device`. Every tensor it loads is
    /// marked used; any number of builders may be made, they share the record.
    pub fn var_builder(&self, dtype: DType, device: &Device) -> VarBuilder<'static> {
        let backend = TrackingBackend {
            inner: Arc::clone(&self.inner),
        };
        VarBuilder::from_backend(Box::new(backend), dtype, device.clone())
    }

    /// The tensors in the file that no builder has loaded, sorted. Call it after building the model.
    pub fn unused(&self) -> Vec<String> {
        let used = self.inner.used.lock().unwrap_or_else(|e| e.into_inner());
        self.inner.names.difference(&used).cloned().collect()
    }

    /// A warning listing the unused tensors, grouped by their first name component
    /// (`aux1.{conv.bn.bias, fc1.weight, ...}`), or `None` when every tensor not `skip`ped was used. Tensors
    /// for which `skip` is true are counted, not listed: pass [`is_batch_norm_counter`] for a PyTorch
    /// checkpoint, or `|_| false` to list everything.
    pub fn unused_warning(&self, skip: impl Fn(&str) -> bool) -> Option<String> {
        let (skipped, listed): (Vec<String>, Vec<String>) =
            self.unused().into_iter().partition(|name| skip(name));
        if listed.is_empty() {
            return None;
        }
        let mut text = format!(
            "warning: {} not used by the model in {}",
            count(listed.len(), "tensor is", "tensors are"),
            self.inner.path.display()
        );
        if !skipped.is_empty() {
            text.push_str(&format!(
                " ({} skipped by the filter)",
                count(skipped.len(), "other", "others")
            ));
        }
        text.push(':');
        for line in grouped(&listed) {
            text.push_str("\n    ");
            text.push_str(&line);
        }
        Some(text)
    }
}

/// PyTorch's batch-norm step counters (`*.num_batches_tracked`, int64): saved in every `state_dict` with batch
/// norm, never read by inference, and not loaded by archc models. A filter for [`Weights::unused_warning`].
pub fn is_batch_norm_counter(name: &str) -> bool {
    name.rsplit('.').next() == Some("num_batches_tracked")
}

fn count(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Sorted names grouped by their first component: `aux1.{conv.weight, fc.bias}`, or the name alone when it is
/// the only one in its group.
fn grouped(names: &[String]) -> Vec<String> {
    let mut lines = Vec::new();
    let mut rest = names;
    while let Some(first) = rest.first() {
        let head = first.split('.').next().unwrap_or(first);
        let prefix = format!("{head}.");
        let len = rest
            .iter()
            .take_while(|name| name.starts_with(&prefix))
            .count()
            .max(1);
        let (group, tail) = rest.split_at(len);
        lines.push(if group.len() == 1 {
            group[0].clone()
        } else {
            let tails: Vec<&str> = group.iter().map(|name| &name[prefix.len()..]).collect();
            format!("{head}.{{{}}}", tails.join(", "))
        });
        rest = tail;
    }
    lines
}

/// Checks the framing safetensors will parse, to say what is wrong in terms of the file: an 8-byte
/// little-endian header length, that many bytes of JSON header, then the tensor data the header describes.
fn check_layout(path: &Path, bytes: &[u8]) -> Result<()> {
    let shown = path.display();
    let Some(prefix) = bytes.first_chunk::<8>() else {
        return Err(error(format!(
            "{shown}: not a safetensors file: {} bytes, fewer than the 8-byte header length that starts one",
            bytes.len()
        )));
    };
    let header_len = u64::from_le_bytes(*prefix);
    let after_prefix = (bytes.len() - 8) as u64;
    if header_len > after_prefix {
        return Err(error(format!(
            "{shown}: truncated or not a safetensors file: the header length field says {header_len} bytes, \
             only {after_prefix} follow it"
        )));
    }
    let (header, data) = bytes[8..].split_at(header_len as usize);
    let header: serde_json::Value = serde_json::from_slice(header).map_err(|e| {
        error(format!(
            "{shown}: not a safetensors file: its {header_len}-byte header is not JSON ({e})"
        ))
    })?;
    let Some(entries) = header.as_object() else {
        return Err(error(format!(
            "{shown}: not a safetensors file: its header is not a JSON object of tensors"
        )));
    };
    // The end of the last tensor's data; safetensors itself checks that the offsets are contiguous.
    let needed = entries
        .iter()
        .filter(|(name, _)| name.as_str() != "__metadata__")
        .filter_map(|(_, entry)| entry.get("data_offsets")?.get(1)?.as_u64())
        .max()
        .unwrap_or(0);
    let available = data.len() as u64;
    if available < needed {
        return Err(error(format!(
            "{shown}: truncated: the header describes {needed} bytes of tensor data, the file holds {available} \
             ({} bytes missing; was the download or copy interrupted?)",
            needed - available
        )));
    }
    Ok(())
}

/// The `VarBuilder` backend: loads from the buffer, checks dtype and shape, records what was asked for.
struct TrackingBackend {
    inner: Arc<Inner>,
}

impl TrackingBackend {
    fn load(&self, name: &str, dtype: DType, device: &Device) -> Result<Tensor> {
        let inner = &self.inner;
        let view =
            inner
                .safetensors
                .get(name)
                .map_err(|_| candle_core::Error::CannotFindTensor {
                    path: name.to_string(),
                })?;
        inner
            .used
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string());
        let found = view.dtype();
        let is_weight = matches!(
            DType::try_from(found),
            Ok(DType::F16 | DType::BF16 | DType::F32 | DType::F64)
        );
        if !is_weight {
            return Err(error(format!(
                "`{name}` in {} has dtype {found:?}, expected a floating-point weight ({FLOAT_DTYPES}; \
                 converted to {dtype:?})",
                inner.path.display()
            )));
        }
        inner.safetensors.load(name, device)?.to_dtype(dtype)
    }
}

impl SimpleBackend for TrackingBackend {
    fn get(&self, shape: Shape, name: &str, _: Init, dtype: DType, dev: &Device) -> Result<Tensor> {
        let tensor = self.load(name, dtype, dev)?;
        if tensor.shape() != &shape {
            return Err(candle_core::Error::UnexpectedShape {
                msg: format!(
                    "shape mismatch for `{name}` in {}",
                    self.inner.path.display()
                ),
                expected: shape,
                got: tensor.shape().clone(),
            });
        }
        Ok(tensor)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> Result<Tensor> {
        self.load(name, dtype, dev)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.inner.names.contains(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_names_by_their_first_component() {
        let names: Vec<String> = [
            "aux1.conv.weight",
            "aux1.fc.bias",
            "aux10.fc.bias",
            "extra",
            "layer.weight",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            grouped(&names),
            [
                "aux1.{conv.weight, fc.bias}",
                "aux10.fc.bias",
                "extra",
                "layer.weight"
            ]
        );
    }

    #[test]
    fn batch_norm_counters_are_recognised_by_their_last_component() {
        assert!(is_batch_norm_counter("conv1.bn.num_batches_tracked"));
        assert!(is_batch_norm_counter("num_batches_tracked"));
        assert!(!is_batch_norm_counter("conv1.bn.running_mean"));
        assert!(!is_batch_norm_counter("my_num_batches_tracked.weight"));
    }
}
