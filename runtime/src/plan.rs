//! How a generated model runs in inference, decided here rather than in the generated code.
//!
//! A generated model says what it is twice over, in two plain forms: `forward_t` in candle's ops, which
//! training, gradients and every device run exactly as written, and [`Describe::describe`], the same network
//! as a tree of [`Op`]s. When no gradient can be wanted (inference on a CPU `f32` input), the model's [`Plan`]
//! runs that tree instead, with the optimisations it was given: each convolution with the batch norm and
//! activation after it folded into one pass of the CPU kernels (a direct kernel for depthwise ones), a
//! depthwise-separable block (1×1 expansion, depthwise convolution, 1×1 projection, and the residual sum of an
//! inverted residual) band by band, the 1×1 convolutions that start sibling branches of a concatenation as one
//! product (and, at batch 1 on several threads, the convolutions that end its branches writing straight into
//! their slices of it), pools in one pass, batch norms, activations, residual sums and squeeze-and-excitation
//! products in one element-wise pass each, and batches larger than the thread pool in micro-batches.
//! Every combination computes the same values up to rounding; the options belong to one model instance.

use std::any::Any;
use std::sync::atomic::{AtomicBool, Ordering};

use candle_core::{Module, Result, Tensor};

use crate::cpu::Activation;
use crate::fused::{
    activation_with, batch_norm_with, conv_bn_act_into, conv_bn_act_with, conv_bn_add_act,
    conv_max_pool_with, cpu_kernels_apply, in_micro_batches_with, linear_with, product_with,
    runs_as_streams, separable_with, sibling_heads_with, sum_with, FusedHead, Optimizations,
};
use crate::{AvgPool2d, BatchNorm, Conv2d, MaxPool2d};

/// One node of a network as the plan sees it.
pub enum Op<'a> {
    Conv(&'a Conv2d),
    BatchNorm(&'a BatchNorm),
    Relu,
    MaxPool(&'a MaxPool2d),
    AvgPool(&'a AvgPool2d),
    Flatten,
    /// Passes its input through (dropout and stochastic depth in inference, too).
    Identity,
    /// Any other layer, run as it is, except those the plan knows a faster way to run (candle's activations
    /// and linear layers, see [`Layer`]).
    Module(&'a dyn Layer),
    /// Operations in sequence.
    Chain(Vec<Op<'a>>),
    /// Branches reading the same input, concatenated along channels.
    Concat(Vec<Op<'a>>),
    /// Branches reading the same input, summed.
    Add(Vec<Op<'a>>),
    /// Branches reading the same input, multiplied (a `[N, C, 1, 1]` branch broadcast over the map).
    Mul(Vec<Op<'a>>),
}

impl<'a> Op<'a> {
    /// [`Op::Chain`] of `ops`: `Op::chain([Op::Conv(&self.conv), Op::Relu])`.
    pub fn chain(ops: impl IntoIterator<Item = Op<'a>>) -> Op<'a> {
        Op::Chain(ops.into_iter().collect())
    }

    /// [`Op::Concat`] of `branches`.
    pub fn concat(branches: impl IntoIterator<Item = Op<'a>>) -> Op<'a> {
        Op::Concat(branches.into_iter().collect())
    }

    /// [`Op::Add`] of `branches`.
    pub fn add(branches: impl IntoIterator<Item = Op<'a>>) -> Op<'a> {
        Op::Add(branches.into_iter().collect())
    }

    /// [`Op::Mul`] of `branches`.
    pub fn mul(branches: impl IntoIterator<Item = Op<'a>>) -> Op<'a> {
        Op::Mul(branches.into_iter().collect())
    }
}

/// A layer of [`Op::Module`]: any candle [`Module`], which the plan can also look at as the type it is
/// (`candle_nn::Activation::Silu` is an activation it may fold into the convolution before it). Every
/// `Module + 'static` is one.
pub trait Layer: Module {
    /// The layer as `Any`, for the plan to recognise the layers it knows.
    fn as_any(&self) -> &dyn Any;
}

impl<T: Module + 'static> Layer for T {
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// A network, or part of one, described for its [`Plan`].
pub trait Describe {
    /// The inference path as a tree of operations (training-only side outputs left out).
    fn describe(&self) -> Op<'_>;
}

/// How one model instance runs inference: the optimisations it applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    options: Optimizations,
}

impl Default for Plan {
    /// Every optimisation on.
    fn default() -> Self {
        Plan {
            options: Optimizations::ALL,
        }
    }
}

impl Plan {
    /// A plan with the given optimisations, e.g. one switched off to measure what it brings.
    pub fn new(options: Optimizations) -> Plan {
        Plan { options }
    }

    /// The optimisations this plan applies.
    pub fn options(&self) -> Optimizations {
        self.options
    }

    /// Drops the weights that the convolutions of `network` prepared for the CPU kernels (packed for the matrix
    /// product, or Winograd-transformed), so the next inference prepares them again from the weights as they are then: needed after
    /// weights were written in place, e.g. a `VarMap` that the model's tensors share storage with was trained or
    /// loaded ([`crate::prepared`]). Layers inside an [`Op::Module`] are not reached.
    pub fn forget_prepared(network: &impl Describe) {
        forget_prepared(&network.describe());
    }

    /// Runs `network` on `xs` when the plan applies (inference on a CPU `f32` input that wants no gradient);
    /// `None` otherwise, and the caller runs its own `forward_t`.
    ///
    /// The network runs on one of rayon's threads, the calling thread waiting for it, so that the kernels'
    /// parallel loops start from inside the pool. Started from another thread, each of them (several per layer
    /// at batch 1) is a job handed to the pool, which wakes the pool's threads and puts the caller to sleep
    /// until they are done, then wakes it again: on two cores that cost ResNet-50 about 4 ms in 28. From
    /// inside, a loop pushes its second half where the other thread steals it, and the first half runs at once.
    /// Hence `Sync`: `network` is read from that thread (every generated model is `Sync`). With one thread too:
    /// run on the calling thread, every loop was still handed to the pool's one thread (GoogLeNet 26.8 → 23.8
    /// ms on the pool's thread; ResNet-50, measured 2-5% slower there in an earlier session for its page faults
    /// from another of the C allocator's arenas, was within noise: 81.2 and 81.5 ms, 4% more faults).
    pub fn run(
        &self,
        xs: &Tensor,
        train: bool,
        network: &(impl Describe + Sync),
    ) -> Result<Option<Tensor>> {
        if train || !cpu_kernels_apply(xs) {
            return Ok(None);
        }
        if self.options.retain_memory {
            crate::memory::retain_freed_memory();
        }
        let run = || {
            // Each image thread describes the network for itself (a description is not `Sync`; the network is).
            // The layers after the last that needs a map (the classifier) run once on the whole batch after the
            // streams, so that their weights are read once per batch rather than once per image.
            let description = network.describe();
            let ops = flattened(&description);
            let split = batch_tail(&ops);
            if split > 0 {
                let each =
                    |x: &Tensor| self.eval_chain(&flattened(&network.describe())[..split], x);
                if let Some(ys) = in_micro_batches_with(self.options, xs, each)? {
                    return self.eval_chain(&ops[split..], &ys).map(Some);
                }
            }
            self.eval_chain(&ops, xs).map(Some)
        };
        let threads = rayon::current_num_threads();
        // With one thread there is no other to spin, but the network still runs on the pool's thread (see
        // above; tests/one_thread.rs).
        if threads == 1 || !self.options.spin_threads || runs_as_streams(self.options, xs) {
            return rayon::scope(|_| run());
        }
        let done = AtomicBool::new(false);
        let done = &done;
        rayon::scope(|scope| {
            let runner = rayon::current_thread_index();
            for _ in 1..threads {
                scope.spawn(move |_| helper(done, runner));
            }
            // Set however `run` ends, a panic included: the scope waits for the helpers before it returns or
            // unwinds.
            let _finished = Finished(done);
            run()
        })
    }

    fn eval(&self, op: &Op<'_>, x: &Tensor) -> Result<Tensor> {
        self.eval_chain(&flattened(op), x)
    }

    /// A sequence of leaves and groups; a convolution takes the batch norm and activation right after it along,
    /// and so do a batch norm on its own and a sum.
    fn eval_chain(&self, ops: &[&Op<'_>], x: &Tensor) -> Result<Tensor> {
        let mut x = x.clone();
        let mut i = 0;
        while i < ops.len() {
            let (y, used) = crate::profile::step(
                || self.step(&ops[i..], &x),
                |(y, used)| describe_step(&ops[i..i + used], &x, y),
            )?;
            x = y;
            i += used;
        }
        Ok(x)
    }

    /// The first step of `ops` on `x`: its output and how many operations it took.
    fn step(&self, ops: &[&Op<'_>], x: &Tensor) -> Result<(Tensor, usize)> {
        let options = self.options;
        if let Some((block, len)) = separable_at(ops) {
            let y = separable_with(
                options,
                x,
                block.expand,
                block.depthwise,
                block.project,
                false,
            )?;
            if let Some(y) = y {
                return Ok((y, len));
            }
        }
        if let Some((head, len)) = head_at(ops) {
            if let Some(Op::MaxPool(pool)) = ops.get(len) {
                let layers = (head.conv, head.bn, head.activation);
                if let Some(y) = conv_max_pool_with(options, x, layers, pool)? {
                    return Ok((y, len + 1));
                }
            }
            let y = conv_bn_act_with(options, x, head.conv, head.bn, head.activation, false)?;
            return Ok((y, len));
        }
        // The activation right after this operation, which a batch norm or a sum applies in the same pass.
        let next = ops.get(1).and_then(|op| activation_of(op));
        Ok(match ops[0] {
            Op::Conv(_) | Op::Chain(_) => unreachable!("taken by `head_at` or flattened"),
            Op::BatchNorm(bn) => match next {
                Some(activation) => (batch_norm_with(options, x, bn, activation, false)?, 2),
                None => (
                    batch_norm_with(options, x, bn, Activation::Identity, false)?,
                    1,
                ),
            },
            Op::Add(branches) => {
                let (activation, used) = match next {
                    Some(activation) => (activation, 2),
                    None => (Activation::Identity, 1),
                };
                (self.sum(branches, x, activation)?, used)
            }
            Op::Relu => (activation_with(options, x, Activation::Relu)?, 1),
            op @ Op::Module(module) => {
                let linear = module.as_any().downcast_ref::<candle_nn::Linear>();
                match (activation_of(op), linear, next) {
                    (Some(activation), _, _) => (activation_with(options, x, activation)?, 1),
                    (None, Some(linear), Some(activation)) => {
                        (linear_with(options, x, linear, activation)?, 2)
                    }
                    (None, Some(linear), None) => {
                        (linear_with(options, x, linear, Activation::Identity)?, 1)
                    }
                    (None, None, _) => (module.forward(x)?, 1),
                }
            }
            Op::MaxPool(pool) => (pool.forward_with(x, options.pool_kernels)?, 1),
            Op::AvgPool(pool) => (pool.forward_with(x, options.pool_kernels)?, 1),
            Op::Flatten => (x.flatten_from(1)?, 1),
            Op::Identity => (x.clone(), 1),
            Op::Concat(branches) => (self.concat(branches, x)?, 1),
            Op::Mul(branches) => (product_with(options, &self.branches(branches, x)?)?, 1),
        })
    }

    /// `activation` of the sum of the branches. With two branches, one of which ends in a convolution (and its
    /// batch norm) with no activation after it, the other branch is computed first and added in that
    /// convolution's own pass, with the activation ([`conv_bn_add_act`]): a residual block's last convolution,
    /// its shortcut and the ReLU after the sum, in one pass over the output instead of three.
    fn sum<'a>(&self, branches: &[Op<'a>], x: &Tensor, activation: Activation) -> Result<Tensor> {
        if let [first, second] = branches {
            let (first, second) = (flattened(first), flattened(second));
            // The branch to finish with the sum: the longer one ending in a convolution, if either does.
            let main = [&first, &second]
                .into_iter()
                .enumerate()
                .filter_map(|(i, ops)| {
                    tail_head(ops).map(|(start, head)| (ops.len(), i, start, head))
                })
                .max_by_key(|&(len, ..)| len);
            if let Some((_, main, start, head)) = main {
                let (main_ops, other_ops) = if main == 0 {
                    (&first, &second)
                } else {
                    (&second, &first)
                };
                // An inverted residual: a whole separable block beside the identity.
                let block = separable_at(main_ops).filter(|&(_, len)| len == main_ops.len());
                if let (Some((block, _)), true) =
                    (block, other_ops.iter().all(|op| is_identity(op)))
                {
                    let project = FusedHead {
                        activation,
                        ..block.project
                    };
                    let fused = crate::profile::step_if_run(
                        || {
                            separable_with(
                                self.options,
                                x,
                                block.expand,
                                block.depthwise,
                                project,
                                true,
                            )
                        },
                        |y| with_residual(describe_step(main_ops, x, y)),
                    )?;
                    if let Some(y) = fused {
                        return Ok(y);
                    }
                }
                let residual = self.eval_chain(other_ops, x)?;
                let y = self.eval_chain(&main_ops[..start], x)?;
                let fused = crate::profile::step_if_run(
                    || conv_bn_add_act(self.options, &y, head.conv, head.bn, &residual, activation),
                    |out| with_residual(describe_step(&main_ops[start..], &y, out)),
                )?;
                if let Some(out) = fused {
                    return Ok(out);
                }
                let z = conv_bn_act_with(
                    self.options,
                    &y,
                    head.conv,
                    head.bn,
                    Activation::Identity,
                    false,
                )?;
                return sum_with(self.options, &[z, residual], activation);
            }
        }
        let parts = self.branches(branches, x)?;
        sum_with(self.options, &parts, activation)
    }

    /// Each branch's output from `x`.
    fn branches(&self, branches: &[Op<'_>], x: &Tensor) -> Result<Vec<Tensor>> {
        branches.iter().map(|branch| self.eval(branch, x)).collect()
    }

    /// The branches of a concatenation; the convolutions that start them are offered to
    /// [`sibling_heads_with`], which may run the pointwise ones as one product.
    fn concat(&self, branches: &[Op<'_>], x: &Tensor) -> Result<Tensor> {
        let flat: Vec<Vec<&Op<'_>>> = branches.iter().map(flattened).collect();
        let heads: Vec<Option<(FusedHead<'_>, usize)>> =
            flat.iter().map(|ops| head_at(ops)).collect();
        let offered: Vec<Option<FusedHead<'_>>> =
            heads.iter().map(|h| h.map(|(head, _)| head)).collect();
        let fused = if offered.iter().flatten().count() >= 2 {
            // Recorded only when some heads ran as one product (fewer than two may qualify).
            let fused = crate::profile::step_if_run(
                || {
                    let fused = sibling_heads_with(self.options, x, &offered, false)?;
                    Result::Ok(fused.iter().any(Option::is_some).then_some(fused))
                },
                |fused| {
                    let (names, macs): (Vec<String>, u64) = flat
                        .iter()
                        .zip(&heads)
                        .zip(fused)
                        .filter_map(|((ops, head), y)| {
                            Some((&ops[..head.as_ref()?.1], y.as_ref()?))
                        })
                        .fold((Vec::new(), 0), |(mut names, macs), (ops, y)| {
                            let (name, more) = describe_ops(ops, x);
                            names.push(format!("{name} (→ {})", dims(y)));
                            (names, macs + more)
                        });
                    (format!("sibling {} ({})", names.join(" ‖ "), dims(x)), macs)
                },
            )?;
            fused.unwrap_or_else(|| vec![None; branches.len()])
        } else {
            vec![None; branches.len()]
        };
        // Each branch's input and the operations left of it: the sibling product's output for the head it ran,
        // or `x`.
        let starts: Vec<(Tensor, &[&Op<'_>])> = flat
            .iter()
            .zip(heads)
            .zip(fused)
            .map(|((ops, head), fused)| match (fused, head) {
                (Some(y), Some((_, len))) => (y, &ops[len..]),
                _ => (x.clone(), &ops[..]),
            })
            .collect();
        // On one thread the copy is worth its pass: it leaves the concatenation in cache for the next layer,
        // which read it about 0.15 ms faster in all in GoogLeNet, as much as the copies took (with the
        // branches written in place, GoogLeNet took 1% longer). On two, the copy ran on one thread while the
        // other waited, and the copies took longer than on one.
        let threads = rayon::current_num_threads();
        if self.options.concat_in_place && threads > 1 && x.dim(0)? == 1 && cpu_kernels_apply(x) {
            return self.concat_in_place(&starts);
        }
        let outputs = starts
            .iter()
            .map(|(y, ops)| self.eval_chain(ops, y))
            .collect::<Result<Vec<_>>>()?;
        Tensor::cat(&outputs, 1)
    }

    /// The branches of a concatenation of one image, from their inputs: each runs up to the convolution that
    /// ends it (with its batch norm and activation), if any, and once every branch's output size is known,
    /// those convolutions write straight into their slices of the concatenation ([`conv_bn_act_into`]); the
    /// other branches' outputs are copied in. At batch 1 a channel slice is one contiguous run.
    fn concat_in_place(&self, starts: &[(Tensor, &[&Op<'_>])]) -> Result<Tensor> {
        /// A branch run up to its last convolution (its input, the convolution, and the operations from it
        /// on), or run whole.
        enum Part<'o, 'a> {
            Tail(Tensor, FusedHead<'a>, &'o [&'o Op<'a>]),
            Done(Tensor),
        }
        let parts = starts
            .iter()
            .map(
                |&(ref y, ops)| match end_head(ops).filter(|_| !ends_separable(ops)) {
                    Some((start, head)) => Ok(Part::Tail(
                        self.eval_chain(&ops[..start], y)?,
                        head,
                        &ops[start..],
                    )),
                    None => Ok(Part::Done(self.eval_chain(ops, y)?)),
                },
            )
            .collect::<Result<Vec<_>>>()?;
        // Each part's `(channels, height, width)`, if every part is a map of one image.
        let maps = parts
            .iter()
            .map(|part| match part {
                Part::Tail(y, head, _) => {
                    let g = crate::fused::conv_geometry(y, head.conv)?;
                    Ok(Some((g.c_out, g.out.0, g.out.1)))
                }
                Part::Done(t) => Ok(match t.dims() {
                    &[1, c, h, w] => Some((c, h, w)),
                    _ => None,
                }),
            })
            .collect::<Result<Option<Vec<_>>>>()?;
        let size = maps
            .as_ref()
            .and_then(|maps| maps.first())
            .map(|&(_, h, w)| (h, w));
        let same_size =
            |maps: &Vec<(usize, usize, usize)>| maps.iter().all(|&(_, h, w)| Some((h, w)) == size);
        let (Some(maps), Some((h, w))) = (maps.filter(same_size), size) else {
            // Maps of different sizes, or not maps: candle's concatenation says what is wrong.
            let outputs = parts
                .into_iter()
                .map(|part| match part {
                    Part::Tail(y, _, ops) => self.eval_chain(ops, &y),
                    Part::Done(t) => Ok(t),
                })
                .collect::<Result<Vec<_>>>()?;
            return Tensor::cat(&outputs, 1);
        };
        let channels: usize = maps.iter().map(|&(c, _, _)| c).sum();
        let mut out = crate::cpu::Fresh::new(channels * h * w);
        let mut rest = out.values();
        for (part, (c, _, _)) in parts.into_iter().zip(maps) {
            let (slice, after) = rest.split_at_mut(c * h * w);
            rest = after;
            let done = match part {
                Part::Tail(y, head, ops) => {
                    let layers = (head.conv, head.bn, head.activation);
                    let wrote = crate::profile::step_if_run(
                        || {
                            conv_bn_act_into(self.options, &y, layers, &mut *slice)
                                .map(|wrote| wrote.then_some(()))
                        },
                        |()| {
                            let (names, macs) = describe_ops(ops, &y);
                            let into = format!("{c}×{h}×{w}, into the concatenation");
                            (format!("{names} ({} → {into})", dims(&y)), macs)
                        },
                    )?;
                    match wrote {
                        Some(()) => continue,
                        None => self.eval_chain(ops, &y)?,
                    }
                }
                Part::Done(t) => t,
            };
            crate::fused::with_f32(&done, |values| {
                // A map of the slice's shape (`maps`), so as many values.
                assert_eq!(values.len(), slice.len(), "a branch of another size");
                for (dst, &v) in slice.iter_mut().zip(values) {
                    dst.write(v);
                }
            })?;
        }
        // SAFETY: the slices cover `out` (their channels add up to `channels`), and each was written whole: by
        // `conv_bn_act_into` (which wrote all of it) or by a copy of a branch output of the slice's shape.
        let out = unsafe { out.assume_written() };
        Ok(crate::fused::cpu_tensor(out, (1, channels, h, w)))
    }
}

/// A step for [`crate::profile`]: what its operations are, its input's and output's sizes, and its
/// multiply-adds ([`describe_ops`]).
fn describe_step(ops: &[&Op<'_>], x: &Tensor, y: &Tensor) -> (String, u64) {
    let (names, macs) = describe_ops(ops, x);
    (format!("{names} ({} → {})", dims(x), dims(y)), macs)
}

/// What `ops` are, applied to `x` (`conv 3×3/2 64→128 + batch norm + relu`), and their multiply-adds: those of
/// the convolutions and linear layers among them; a group's are counted by the steps inside it.
fn describe_ops(ops: &[&Op<'_>], x: &Tensor) -> (String, u64) {
    let batch = x.dims().first().copied().unwrap_or(1) as u64;
    let mut size = match x.dims() {
        [_, _, h, w] => Some((*h, *w)),
        _ => None,
    };
    let mut macs = 0u64;
    let mut names = Vec::with_capacity(ops.len());
    for op in ops {
        names.push(match op {
            Op::Conv(conv) => {
                let (out, per_group, kh, kw) = conv.weight().dims4().unwrap_or_default();
                let spec = conv.spec();
                size = size.and_then(|hw| conv.output_size(hw).ok());
                if let Some((h, w)) = size {
                    macs += batch * (out * per_group * kh * kw * h * w) as u64;
                }
                let stride = match spec.stride {
                    (1, 1) => String::new(),
                    (sh, sw) if sh == sw => format!("/{sh}"),
                    (sh, sw) => format!("/{sh}×{sw}"),
                };
                let groups = match spec.groups {
                    1 => String::new(),
                    g if conv.is_depthwise() => format!(" depthwise ×{g}"),
                    g => format!(" ×{g} groups"),
                };
                let channels_in = per_group * spec.groups;
                format!("conv {kh}×{kw}{stride} {channels_in}→{out}{groups}")
            }
            Op::BatchNorm(_) => "batch norm".to_string(),
            Op::Relu => "relu".to_string(),
            Op::MaxPool(pool) => {
                size = size.and_then(|hw| pool.output_size(hw).ok());
                format!(
                    "max pool {}×{}/{}",
                    pool.kernel.0, pool.kernel.1, pool.stride.0
                )
            }
            Op::AvgPool(pool) => {
                size = size.and_then(|hw| pool.output_size(hw).ok());
                format!(
                    "avg pool {}×{}/{}",
                    pool.kernel.0, pool.kernel.1, pool.stride.0
                )
            }
            Op::Flatten => "flatten".to_string(),
            Op::Identity => "identity".to_string(),
            Op::Module(layer) => match layer.as_any().downcast_ref::<candle_nn::Linear>() {
                Some(linear) => {
                    let (out, inp) = linear.weight().dims2().unwrap_or_default();
                    macs += batch * (out * inp) as u64;
                    format!("linear {inp}→{out}")
                }
                None => match activation_of(op) {
                    Some(activation) => format!("{activation:?}").to_lowercase(),
                    None => "layer".to_string(),
                },
            },
            Op::Chain(_) => "chain".to_string(),
            Op::Concat(branches) => format!("concat of {} branches", branches.len()),
            Op::Add(branches) => format!("sum of {} branches", branches.len()),
            Op::Mul(branches) => format!("product of {} branches", branches.len()),
        });
    }
    (names.join(" + "), macs)
}

/// An activation's size without the batch: `64×56×56`.
fn dims(t: &Tensor) -> String {
    match t.dims() {
        [_, rest @ ..] if !rest.is_empty() => rest
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join("×"),
        _ => "scalar".to_string(),
    }
}

/// [`describe_step`]'s description of a step that adds a residual in its pass.
fn with_residual((label, macs): (String, u64)) -> (String, u64) {
    (format!("{label} + residual"), macs)
}

/// Sets its flag when dropped.
struct Finished<'a>(&'a AtomicBool);

impl Drop for Finished<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// What the pool's other threads do while one runs a network (`Optimizations::spin_threads`): take the work it
/// shares out as soon as it is there, and look again at once, until `done`. Between two layers' parallel
/// loops an idle rayon thread goes to sleep and must be woken for the next one; spinning took 3-5% off
/// ResNet-50's and MobileNet-V2's batch-1 time on two threads (bench/RESULTS.md). ONNX Runtime's and OpenMP's
/// pools spin the same way.
///
/// A helper returns at once where waiting for `done` could wait for itself: on the thread running the network
/// (a thread waiting for its parallel loop may pick up a queued helper), and on a thread that is already a
/// helper (which, inside a job it took from the network, may pick up another helper while it waits: the
/// network would then wait for that job, and the job for the network).
fn helper(done: &AtomicBool, runner: Option<usize>) {
    thread_local! {
        static HELPING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }
    if rayon::current_thread_index() == runner || HELPING.get() {
        return;
    }
    HELPING.set(true);
    while !done.load(Ordering::Acquire) {
        if rayon::yield_now() != Some(rayon::Yield::Executed) {
            std::hint::spin_loop();
        }
    }
    HELPING.set(false);
}

/// [`Plan::forget_prepared`] for every convolution in `op`.
fn forget_prepared(op: &Op<'_>) {
    match op {
        Op::Conv(conv) => conv.forget_prepared(),
        Op::Chain(ops) | Op::Concat(ops) | Op::Add(ops) | Op::Mul(ops) => {
            ops.iter().for_each(forget_prepared)
        }
        Op::BatchNorm(_)
        | Op::Relu
        | Op::MaxPool(_)
        | Op::AvgPool(_)
        | Op::Flatten
        | Op::Identity
        | Op::Module(_) => {}
    }
}

/// Where the batch-wise tail of a network's operations `ops` starts: the operations after which every one treats
/// each image as a row of features (flattening, linear layers, activations, dropout), so that they run as well
/// on the whole batch at once as on each image. A batch run as whole-image streams runs them once, after the
/// streams: a classifier's weights are then read once per batch instead of once per image (MobileNet-V2's 5 MB,
/// VGG-16's 480 MB).
fn batch_tail(ops: &[&Op<'_>]) -> usize {
    let row_wise = |op: &Op<'_>| match op {
        Op::Flatten | Op::Identity | Op::Relu => true,
        Op::Module(layer) => {
            layer.as_any().is::<candle_nn::Linear>() || activation_of(op).is_some()
        }
        _ => false,
    };
    // The tail starts at a flatten: before it, an activation or dropout may still act on a map.
    let tail = ops.len() - ops.iter().rev().take_while(|op| row_wise(op)).count();
    ops[tail..]
        .iter()
        .position(|op| matches!(op, Op::Flatten))
        .map_or(ops.len(), |at| tail + at)
}

/// The leaves and groups of `op` in order, nested chains opened.
fn flattened<'o, 'a>(op: &'o Op<'a>) -> Vec<&'o Op<'a>> {
    let mut ops = Vec::new();
    flatten_chain(op, &mut ops);
    ops
}

/// [`flattened`], into `out`.
fn flatten_chain<'o, 'a>(op: &'o Op<'a>, out: &mut Vec<&'o Op<'a>>) {
    match op {
        Op::Chain(ops) => ops.iter().for_each(|op| flatten_chain(op, out)),
        other => out.push(other),
    }
}

/// A convolution that ends `ops`, with its batch norm and activation if any: where it starts and the
/// convolution with its batch norm and activation.
fn end_head<'a>(ops: &[&Op<'a>]) -> Option<(usize, FusedHead<'a>)> {
    // The longest head that reaches the end: a convolution, a batch norm, an activation.
    (ops.len().saturating_sub(3)..ops.len()).find_map(|start| match head_at(&ops[start..]) {
        Some((head, len)) if start + len == ops.len() => Some((start, head)),
        _ => None,
    })
}

/// Whether `ops` end with a whole depthwise-separable block, which runs as one step ([`separable_at`]) that
/// taking its last convolution apart would undo.
fn ends_separable(ops: &[&Op<'_>]) -> bool {
    (0..ops.len()).any(|i| separable_at(&ops[i..]).is_some_and(|(_, len)| i + len == ops.len()))
}

/// A convolution that ends `ops`, with the batch norm after it if any and no activation: where it starts and
/// the convolution with its batch norm.
fn tail_head<'a>(ops: &[&Op<'a>]) -> Option<(usize, FusedHead<'a>)> {
    let start = ops.len().checked_sub(match ops.last()? {
        Op::BatchNorm(_) => 2,
        _ => 1,
    })?;
    match head_at(&ops[start..]) {
        Some((head, len))
            if start + len == ops.len() && head.activation == Activation::Identity =>
        {
            Some((start, head))
        }
        _ => None,
    }
}

/// The layers of a depthwise-separable block at the start of `ops` ([`separable_with`] checks the rest).
struct Separable<'a> {
    expand: Option<FusedHead<'a>>,
    depthwise: FusedHead<'a>,
    project: FusedHead<'a>,
}

/// A depthwise-separable block at the start of `ops`, each convolution with its batch norm and activation: a
/// convolution that is not depthwise, a depthwise one and another that is not (an expansion, the depthwise
/// convolution and a projection), or the last two alone; and how many operations that is.
fn separable_at<'a>(ops: &[&Op<'a>]) -> Option<(Separable<'a>, usize)> {
    let (first, first_len) = head_at(ops)?;
    let (second, second_len) = head_at(&ops[first_len..])?;
    if first.conv.is_depthwise() {
        if second.conv.is_depthwise() {
            return None;
        }
        let block = Separable {
            expand: None,
            depthwise: first,
            project: second,
        };
        return Some((block, first_len + second_len));
    }
    let (third, third_len) = head_at(&ops[first_len + second_len..])?;
    if !second.conv.is_depthwise() || third.conv.is_depthwise() {
        return None;
    }
    let block = Separable {
        expand: Some(first),
        depthwise: second,
        project: third,
    };
    Some((block, first_len + second_len + third_len))
}

/// Whether `op` passes its input through.
fn is_identity(op: &Op<'_>) -> bool {
    match op {
        Op::Identity => true,
        Op::Chain(ops) => ops.iter().all(is_identity),
        _ => false,
    }
}

/// A convolution at the start of `ops` with the batch norm and activation that directly follow it, and how
/// many operations that is. Whether the activation folds into the convolution's pass is for
/// [`conv_bn_act_with`] and [`sibling_heads_with`] to decide, by the options.
fn head_at<'a>(ops: &[&Op<'a>]) -> Option<(FusedHead<'a>, usize)> {
    let Some(Op::Conv(conv)) = ops.first() else {
        return None;
    };
    let mut len = 1;
    let bn = match ops.get(len) {
        Some(Op::BatchNorm(bn)) => {
            len += 1;
            Some(*bn)
        }
        _ => None,
    };
    let activation = match ops.get(len).and_then(|op| activation_of(op)) {
        Some(activation) => {
            len += 1;
            activation
        }
        None => Activation::Identity,
    };
    Some((
        FusedHead {
            conv,
            bn,
            activation,
        },
        len,
    ))
}

/// The activation `op` is, if it is one the kernels compute: ReLU, or one of candle's activations.
fn activation_of(op: &Op<'_>) -> Option<Activation> {
    match op {
        Op::Relu => Some(Activation::Relu),
        Op::Module(layer) => layer
            .as_any()
            .downcast_ref::<candle_nn::Activation>()
            .and_then(Activation::of),
        _ => None,
    }
}
