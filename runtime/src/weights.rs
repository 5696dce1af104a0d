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
//!
//! A tensor the model asks for and the file lacks is reported with the closest names the file does hold (a
//! statement renamed in the `.arch` file, a module PyTorch nests one level deeper): [`load_tensor`]'s error
//! ends in ``closest in the file: `layer1.0.conv1.weight` [64, 64, 3, 3]``, and the unused-tensor warning
//! puts each unused tensor next to the missing name it is closest to. A close name has the same last component
//! (`weight`, `bias`, ...) and nests differently (`layer1.0.conv1` for `layer1.0.main.conv1`) or renames a
//! module the file lacks, with the same shape (`classifier` for `fc`); the same shape ranks first, then the
//! fewest single-character edits to the path.
//!
//! [`load_tensor`]: crate::load_tensor

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use candle_core::safetensors::{BufferedSafetensors, Load};
use candle_core::{DType, Device, Result, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder};
use safetensors::tensor::{Metadata, TensorView};

use crate::error;

/// The longest header safetensors reads (its `MAX_HEADER_SIZE`, 100 MB).
const MAX_HEADER_LEN: u64 = 100_000_000;

/// The tensor dtypes a weight may have; it is converted to the builder's dtype when loaded.
const FLOAT_DTYPES: &str = "F16, BF16, F32 or F64";

/// A safetensors weight file, validated, that hands out [`VarBuilder`]s and remembers which tensors they
/// loaded. [`Weights::open`] keeps the file open and reads each tensor when a builder asks for it, so that
/// the file's contents are never in memory beside the model's copy of them; [`Weights::from_bytes`] works from
/// contents already in memory.
pub struct Weights {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    data: Data,
    /// Every tensor name in the file, sorted, with its shape.
    names: BTreeMap<String, Vec<usize>>,
    /// The names a builder has asked for (and that exist).
    used: Mutex<BTreeSet<String>>,
    /// The names a builder has asked for that the file lacks, with the shape wanted when it was given.
    missing: Mutex<BTreeMap<String, Option<Vec<usize>>>>,
}

impl Weights {
    /// Opens and validates the safetensors file at `path`: its header is read and checked here, each tensor's
    /// data when a builder loads it (so a model's weights are in memory once, not also as the file's
    /// contents). The tensors' dtypes are checked when they are loaded, not here.
    pub fn open(path: impl AsRef<Path>) -> Result<Weights> {
        let path = path.as_ref();
        let shown = path.display();
        if path.is_dir() {
            return Err(error(format!(
                "{shown}: is a directory, not a safetensors weight file"
            )));
        }
        let cannot_read =
            |e: std::io::Error| error(format!("{shown}: cannot read the weight file: {e}"));
        let mut file = File::open(path).map_err(cannot_read)?;
        let len = file.metadata().map_err(cannot_read)?.len();
        // The 8-byte header length (or what there is of it), then the header it announces, if the file holds it.
        let mut prefix = Vec::with_capacity(8);
        (&mut file)
            .take(8)
            .read_to_end(&mut prefix)
            .map_err(cannot_read)?;
        let header_len = check_prefix(path, &prefix, len)?;
        let mut header = vec![0; header_len as usize];
        file.read_exact(&mut header).map_err(cannot_read)?;
        check_header(path, &header, len - 8 - header_len)?;
        let invalid = |e: &dyn std::fmt::Display| {
            error(format!("{shown}: not a valid safetensors file: {e}"))
        };
        let metadata: Metadata = serde_json::from_slice(&header).map_err(|e| invalid(&e))?;
        // safetensors' own rule, as `BufferedSafetensors` applies it: the data is exactly the tensors'.
        let end = metadata
            .tensors()
            .values()
            .map(|info| info.data_offsets.1)
            .max()
            .unwrap_or(0);
        if end as u64 != len - 8 - header_len {
            return Err(invalid(&format!(
                "{} bytes follow the tensors' data",
                len - 8 - header_len - end as u64
            )));
        }
        let names = metadata
            .tensors()
            .into_iter()
            .map(|(name, info)| (name, info.shape.clone()))
            .collect();
        Ok(Weights::new(
            path.to_path_buf(),
            Data::File {
                file: Mutex::new(file),
                data_start: 8 + header_len,
                metadata,
            },
            names,
        ))
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
            .map(|(name, view)| (name, view.shape().to_vec()))
            .collect();
        Ok(Weights::new(path, Data::Memory(safetensors), names))
    }

    fn new(path: PathBuf, data: Data, names: BTreeMap<String, Vec<usize>>) -> Weights {
        Weights {
            inner: Arc::new(Inner {
                path,
                data,
                names,
                used: Mutex::new(BTreeSet::new()),
                missing: Mutex::new(BTreeMap::new()),
            }),
        }
    }

    /// The file's path, as given to [`Weights::open`].
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Every tensor name in the file, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.inner.names.keys().map(String::as_str)
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
        self.inner.unused()
    }

    /// A warning listing the unused tensors, grouped by their first name component
    /// (`aux1.{conv.bn.bias, fc1.weight, ...}`), or `None` when every tensor not `skip`ped was used. Tensors
    /// for which `skip` is true are counted, not listed: pass [`is_batch_norm_counter`] for a PyTorch
    /// checkpoint, or `|_| false` to list everything. An unused tensor close to a name the model asked for and
    /// did not find is listed on its own line with that name:
    /// ``layer1.0.conv1.weight: closest to the missing `layer1.0.main.conv1.weight` ``.
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
        let missing = self.inner.missing.lock().unwrap_or_else(|e| e.into_inner());
        let in_file = |prefix: &str| self.inner.has_prefix(prefix);
        // Each unused tensor with the missing name it is the closest candidate for, if any.
        let mut plain = Vec::new();
        let mut near = Vec::new();
        for name in &listed {
            let found = self.inner.names.get(name).map(Vec::as_slice);
            let wanted = missing
                .iter()
                .filter_map(|(wanted, expected)| {
                    let rank = rank(wanted, expected.as_deref(), name, found, &in_file)?;
                    Some((rank, wanted.as_str()))
                })
                .min();
            match wanted {
                Some((_, wanted)) => {
                    near.push(format!("{name}: closest to the missing `{wanted}`"))
                }
                None => plain.push(name.clone()),
            }
        }
        for line in grouped(&plain).into_iter().chain(near) {
            text.push_str("\n    ");
            text.push_str(&line);
        }
        Some(text)
    }
}

/// Where a [`Weights`]' tensors are read from.
enum Data {
    /// The file's contents, in memory ([`Weights::from_bytes`]).
    Memory(BufferedSafetensors),
    /// The open file ([`Weights::open`]): its validated header, and the offset of its tensor data.
    File {
        file: Mutex<File>,
        data_start: u64,
        metadata: Metadata,
    },
}

impl Inner {
    /// Whether a tensor name in the file starts with `prefix`.
    fn has_prefix(&self, prefix: &str) -> bool {
        self.names
            .range(prefix.to_string()..)
            .next()
            .is_some_and(|(name, _)| name.starts_with(prefix))
    }

    fn unused(&self) -> Vec<String> {
        let used = self.used.lock().unwrap_or_else(|e| e.into_inner());
        self.names
            .keys()
            .filter(|name| !used.contains(*name))
            .cloned()
            .collect()
    }

    /// The error for a tensor the file lacks: candle's `CannotFindTensor`, with the closest unused names in
    /// the file as its context (which [`near_misses`] reads back).
    fn missing(&self, name: &str, expected: Option<&Shape>) -> candle_core::Error {
        let expected = expected.map(|shape| shape.dims().to_vec());
        self.missing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string(), expected.clone());
        let unused = self.unused();
        let candidates = unused.iter().map(|candidate| {
            let dims = self.names.get(candidate).map(Vec::as_slice);
            (candidate.as_str(), dims)
        });
        let near: Vec<String> = closest(name, expected.as_deref(), candidates, &|prefix| {
            self.has_prefix(prefix)
        })
        .into_iter()
        .map(|candidate| match self.names.get(candidate) {
            Some(dims) => format!("`{candidate}` {dims:?}"),
            None => format!("`{candidate}`"),
        })
        .collect();
        let error = candle_core::Error::CannotFindTensor {
            path: name.to_string(),
        };
        if near.is_empty() {
            return error;
        }
        candle_core::Error::Context {
            inner: Box::new(error),
            context: Box::new(NearMisses(near.join(", "))),
        }
    }
}

/// The closest names in the file to a missing tensor, as `` `name` [dims], ...``: the context of the
/// `CannotFindTensor` error a [`Weights`] builder returns.
struct NearMisses(String);

impl std::fmt::Display for NearMisses {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "closest in the file: {}", self.0)
    }
}

/// The closest names in the file that a [`Weights`] builder attached to its missing-tensor error
/// (``closest in the file: `layer1.0.conv1.weight` [64, 64, 3, 3]``), if `err` is one and there were any.
pub(crate) fn near_misses(err: &candle_core::Error) -> Option<String> {
    use candle_core::Error;
    match err {
        Error::Context { inner, context } if matches!(**inner, Error::CannotFindTensor { .. }) => {
            Some(context.to_string())
        }
        Error::WithBacktrace { inner, .. }
        | Error::Context { inner, .. }
        | Error::WithPath { inner, .. } => near_misses(inner),
        _ => None,
    }
}

/// Names longer than this are not compared (edit distance costs the product of the lengths).
const MAX_COMPARED_LEN: usize = 512;

/// How close `candidate` (a name in the file, of shape `found`) is to `wanted` (a name the model asks for, of
/// shape `expected` when known), lower is closer; `None` when it is not a likely mix-up. A likely mix-up has
/// the same last component (`weight`, `bias`, ...) and either nests differently (one path's components are
/// the other's with some left out: `layer1.0.main.conv1.weight` and `layer1.0.conv1.weight`) or renames one
/// module that the file does not have at all, with the same shape (`fc.weight` and `classifier.weight`). A
/// sibling of a module the file does have (`branch3` for a missing `branch2.0.conv.weight`) is not one: the
/// model will ask for it too. The rank: the same shape first, then the edit distance of the paths.
fn rank(
    wanted: &str,
    expected: Option<&[usize]>,
    candidate: &str,
    found: Option<&[usize]>,
    in_file: &impl Fn(&str) -> bool,
) -> Option<(bool, usize)> {
    if candidate == wanted || wanted.len() > MAX_COMPARED_LEN || candidate.len() > MAX_COMPARED_LEN
    {
        return None;
    }
    let wanted_parts: Vec<&str> = wanted.split('.').collect();
    let parts: Vec<&str> = candidate.split('.').collect();
    if parts.last() != wanted_parts.last() {
        return None;
    }
    let same_shape = expected.is_some() && expected == found;
    let nested = is_subsequence(&parts, &wanted_parts) || is_subsequence(&wanted_parts, &parts);
    let renamed = same_shape
        && renamed_part(&wanted_parts, &parts)
            .is_some_and(|i| !in_file(&format!("{}.", wanted_parts[..=i].join("."))));
    (nested || renamed).then(|| (!same_shape, strsim::levenshtein(wanted, candidate)))
}

/// Whether `short` is `long` with some components left out.
fn is_subsequence(short: &[&str], long: &[&str]) -> bool {
    let mut rest = long.iter();
    short.len() < long.len() && short.iter().all(|part| rest.any(|other| other == part))
}

/// The one component in which two paths of the same length differ, if there is exactly one.
fn renamed_part(a: &[&str], b: &[&str]) -> Option<usize> {
    if a.len() != b.len() {
        return None;
    }
    let mut differing = (0..a.len()).filter(|&i| a[i] != b[i]);
    match (differing.next(), differing.next()) {
        (Some(i), None) => Some(i),
        _ => None,
    }
}

/// The candidates closest to `wanted` by [`rank`]: the closest and any tied with it, at most three.
fn closest<'a>(
    wanted: &str,
    expected: Option<&[usize]>,
    candidates: impl Iterator<Item = (&'a str, Option<&'a [usize]>)>,
    in_file: &impl Fn(&str) -> bool,
) -> Vec<&'a str> {
    let mut ranked: Vec<((bool, usize), &str)> = candidates
        .filter_map(|(name, found)| Some((rank(wanted, expected, name, found, in_file)?, name)))
        .collect();
    ranked.sort_unstable();
    let best = ranked.first().map(|(rank, _)| *rank);
    ranked
        .into_iter()
        .take_while(|(rank, _)| Some(*rank) == best)
        .take(3)
        .map(|(_, name)| name)
        .collect()
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
    let header_len = check_prefix(path, bytes.get(..8).unwrap_or(bytes), bytes.len() as u64)?;
    let (header, data) = bytes[8..].split_at(header_len as usize);
    check_header(path, header, data.len() as u64)
}

/// The header length that a file of `len` bytes starting with `prefix` (its first 8 bytes, or all of it if
/// it is shorter) announces, if it is a safetensors file's: 8 bytes, and no longer than what follows them.
fn check_prefix(path: &Path, prefix: &[u8], len: u64) -> Result<u64> {
    let shown = path.display();
    let Some(prefix) = prefix.first_chunk::<8>() else {
        return Err(error(format!(
            "{shown}: not a safetensors file: {len} bytes, fewer than the 8-byte header length that starts one"
        )));
    };
    let header_len = u64::from_le_bytes(*prefix);
    let after_prefix = len - 8;
    if header_len > after_prefix {
        return Err(error(format!(
            "{shown}: truncated or not a safetensors file: the header length field says {header_len} bytes, \
             only {after_prefix} follow it"
        )));
    }
    // safetensors' own limit, checked before the header is read into memory.
    if header_len > MAX_HEADER_LEN {
        return Err(error(format!(
            "{shown}: not a safetensors file: the header length field says {header_len} bytes, more than the \
             {MAX_HEADER_LEN} safetensors allows"
        )));
    }
    Ok(header_len)
}

/// Checks that `header` is a JSON object of tensors whose data fits in the `available` bytes after it.
fn check_header(path: &Path, header: &[u8], available: u64) -> Result<()> {
    let shown = path.display();
    let header_len = header.len();
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
    /// Loads `name`; `expected`: the shape the builder asks for, when it gives one (used only to suggest
    /// names when the tensor is missing).
    fn load(
        &self,
        name: &str,
        expected: Option<&Shape>,
        dtype: DType,
        device: &Device,
    ) -> Result<Tensor> {
        let inner = &self.inner;
        let found = match &inner.data {
            Data::Memory(safetensors) => safetensors.get(name).ok().map(|view| view.dtype()),
            Data::File { metadata, .. } => metadata.info(name).map(|info| info.dtype),
        };
        let found = found.ok_or_else(|| inner.missing(name, expected))?;
        inner
            .used
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string());
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
        let tensor = match &inner.data {
            Data::Memory(safetensors) => safetensors.load(name, device)?,
            Data::File {
                file,
                data_start,
                metadata,
            } => {
                let info = metadata.info(name).expect("found above");
                let (begin, end) = info.data_offsets;
                let mut bytes = vec![0; end - begin];
                let mut file = file.lock().unwrap_or_else(|e| e.into_inner());
                file.seek(SeekFrom::Start(data_start + begin as u64))
                    .and_then(|_| file.read_exact(&mut bytes))
                    .map_err(|e| {
                        error(format!(
                            "{}: cannot read `{name}` from the weight file: {e}",
                            inner.path.display()
                        ))
                    })?;
                let view =
                    TensorView::new(info.dtype, info.shape.clone(), &bytes).map_err(|e| {
                        error(format!(
                            "{}: `{name}` is not a valid tensor: {e}",
                            inner.path.display()
                        ))
                    })?;
                view.load(device)?
            }
        };
        tensor.to_dtype(dtype)
    }
}

impl SimpleBackend for TrackingBackend {
    fn get(&self, shape: Shape, name: &str, _: Init, dtype: DType, dev: &Device) -> Result<Tensor> {
        let tensor = self.load(name, Some(&shape), dtype, dev)?;
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
        self.load(name, None, dtype, dev)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.inner.names.contains_key(name)
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

    fn shaped<'a>(
        names: &'a [(&'a str, &'a [usize])],
    ) -> impl Iterator<Item = (&'a str, Option<&'a [usize]>)> {
        names.iter().map(|(name, dims)| (*name, Some(*dims)))
    }

    /// `closest` over `file`, whose names are also what `in_file` knows.
    fn closest_in<'a>(
        file: &'a [(&'a str, &'a [usize])],
        wanted: &str,
        expected: &[usize],
    ) -> Vec<&'a str> {
        let in_file = |prefix: &str| file.iter().any(|(name, _)| name.starts_with(prefix));
        closest(wanted, Some(expected), shaped(file), &in_file)
    }

    const RESNET: [(&str, &[usize]); 7] = [
        ("layer1.0.conv1.weight", &[64, 64, 3, 3]),
        ("layer1.0.conv2.weight", &[64, 64, 3, 3]),
        ("layer1.0.bn1.weight", &[64]),
        ("layer1.0.bn1.bias", &[64]),
        ("layer1.1.conv1.weight", &[64, 64, 3, 3]),
        ("layer1.1.conv2.weight", &[64, 64, 3, 3]),
        ("fc.weight", &[1000, 512]),
    ];

    #[test]
    fn a_module_nested_differently_is_suggested() {
        // `main.` inserted: layer1.0.conv1.weight is the model's path without it (5 edits). layer1.1.conv1.weight
        // is that too, once `main` and `0` are left out, but 6 edits away.
        assert_eq!(
            closest_in(&RESNET, "layer1.0.main.conv1.weight", &[64, 64, 3, 3]),
            ["layer1.0.conv1.weight"]
        );
        // With another shape the same name is still the closest (the message shows both shapes).
        assert_eq!(
            closest_in(&RESNET, "layer1.0.main.conv1.weight", &[64, 64, 1, 1]),
            ["layer1.0.conv1.weight"]
        );
        // And the other way: the file nests deeper than the model.
        let file: [(&str, &[usize]); 2] =
            [("stem.0.conv.weight", &[8, 3, 3, 3]), ("head.weight", &[8])];
        assert_eq!(
            closest_in(&file, "stem.conv.weight", &[8, 3, 3, 3]),
            ["stem.0.conv.weight"]
        );
    }

    #[test]
    fn a_renamed_module_absent_from_the_file_is_suggested_with_the_same_shape_only() {
        // `fc` -> `classifier`: 9 edits in 17 characters, but the file has nothing under `fc.` and the shape
        // agrees.
        let head: [(&str, &[usize]); 3] = [
            ("classifier.weight", &[1000, 512]),
            ("classifier.bias", &[1000]),
            ("features.0.weight", &[64, 3, 3, 3]),
        ];
        assert_eq!(
            closest_in(&head, "fc.weight", &[1000, 512]),
            ["classifier.weight"]
        );
        assert!(closest_in(&head, "fc.weight", &[10, 512]).is_empty());
    }

    #[test]
    fn siblings_and_unrelated_names_are_not_suggested() {
        // `layer1.1.bn1.weight` is missing, `layer1.0.bn1.weight` one edit away has its shape; but the file has
        // `layer1.1` (its conv1, conv2): layer1.0 is a sibling, which the model asks for under its own name.
        assert!(closest_in(&RESNET, "layer1.1.bn1.weight", &[64]).is_empty());
        // A ResNet-50 block on a ResNet-18 file: no conv3, and conv1 and conv2 do not have its shape.
        assert!(closest_in(&RESNET, "layer1.0.conv3.weight", &[256, 64, 1, 1]).is_empty());
        // layer1.2 is absent from the file: a renamed block, and both blocks of the same shape are equally close.
        assert_eq!(
            closest_in(&RESNET, "layer1.2.conv1.weight", &[64, 64, 3, 3]),
            ["layer1.0.conv1.weight", "layer1.1.conv1.weight"]
        );
        // A weight is never offered for a bias, nor anything unrelated.
        assert!(closest_in(&RESNET, "layer1.0.conv1.bias", &[64]).is_empty());
        assert!(closest_in(&RESNET, "stem.weight", &[3]).is_empty());
    }

    #[test]
    fn batch_norm_counters_are_recognised_by_their_last_component() {
        assert!(is_batch_norm_counter("conv1.bn.num_batches_tracked"));
        assert!(is_batch_norm_counter("num_batches_tracked"));
        assert!(!is_batch_norm_counter("conv1.bn.running_mean"));
        assert!(!is_batch_norm_counter("my_num_batches_tracked.weight"));
    }
}
