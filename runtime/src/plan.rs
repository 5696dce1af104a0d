//! How a generated model runs in inference, decided here rather than in the generated code.
//!
//! A generated model says what it is twice over, in two plain forms: `forward_t` in candle's ops, which
//! training, gradients and every device run exactly as written, and [`Describe::describe`], the same network
//! as a tree of [`Op`]s. When no gradient can be wanted (inference on a CPU `f32` input), the model's [`Plan`]
//! runs that tree instead, with the optimisations it was given: each convolution with the batch norm and ReLU
//! after it folded into one pass of the CPU kernels (a direct kernel for depthwise ones), the 1×1 convolutions
//! that start sibling branches of a concatenation as one product, pools in one pass, and batches larger than the
//! thread pool in micro-batches.
//! Every combination computes the same values up to rounding; the options belong to one model instance.

use candle_core::{Module, ModuleT, Result, Tensor};

use crate::fused::{
    conv_bn_act_with, cpu_kernels_apply, in_micro_batches_with, sibling_heads_with, Head,
    Optimizations,
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
    /// Any other layer, run as it is.
    Module(&'a dyn Module),
    /// Operations in sequence.
    Chain(Vec<Op<'a>>),
    /// Branches reading the same input, concatenated along channels.
    Concat(Vec<Op<'a>>),
    /// Branches reading the same input, summed.
    Add(Vec<Op<'a>>),
    /// Branches reading the same input, multiplied (a `[N, C, 1, 1]` branch broadcast over the map).
    Mul(Vec<Op<'a>>),
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

    /// Drops the weights that the convolutions of `network` prepared for the CPU kernels (Winograd-transformed
    /// filters), so the next inference prepares them again from the weights as they are then: needed after
    /// weights were written in place, e.g. a `VarMap` that the model's tensors share storage with was trained or
    /// loaded ([`crate::prepared`]). Layers inside an [`Op::Module`] are not reached.
    pub fn forget_prepared(network: &impl Describe) {
        forget_prepared(&network.describe());
    }

    /// Runs `network` on `xs` when the plan applies (inference on a CPU `f32` input that wants no gradient);
    /// `None` otherwise, and the caller runs its own `forward_t`.
    pub fn run(&self, xs: &Tensor, train: bool, network: &impl Describe) -> Result<Option<Tensor>> {
        if train || !cpu_kernels_apply(xs) {
            return Ok(None);
        }
        let op = network.describe();
        match in_micro_batches_with(self.options, xs, |x| self.eval(&op, x))? {
            Some(ys) => Ok(Some(ys)),
            None => self.eval(&op, xs).map(Some),
        }
    }

    fn eval(&self, op: &Op<'_>, x: &Tensor) -> Result<Tensor> {
        let mut ops = Vec::new();
        flatten_chain(op, &mut ops);
        self.eval_chain(&ops, x)
    }

    /// A sequence of leaves and groups; a convolution takes the batch norm and ReLU right after it along.
    fn eval_chain(&self, ops: &[&Op<'_>], x: &Tensor) -> Result<Tensor> {
        let mut x = x.clone();
        let mut i = 0;
        while i < ops.len() {
            if let Some((head, len)) = head_at(&ops[i..]) {
                x = conv_bn_act_with(self.options, &x, head.conv, head.bn, head.relu, false)?;
                i += len;
                continue;
            }
            x = match ops[i] {
                Op::Conv(_) | Op::Chain(_) => unreachable!("taken by `head_at` or flattened"),
                Op::BatchNorm(bn) => bn.forward_t(&x, false)?,
                Op::Relu => x.relu()?,
                Op::MaxPool(pool) => pool.forward_with(&x, self.options.pool_kernels)?,
                Op::AvgPool(pool) => pool.forward_with(&x, self.options.pool_kernels)?,
                Op::Flatten => x.flatten_from(1)?,
                Op::Identity => x,
                Op::Module(module) => module.forward(&x)?,
                Op::Concat(branches) => self.concat(branches, &x)?,
                Op::Add(branches) => crate::nn::sum(&self.branches(branches, &x)?)?,
                Op::Mul(branches) => crate::nn::product(&self.branches(branches, &x)?)?,
            };
            i += 1;
        }
        Ok(x)
    }

    /// Each branch's output from `x`.
    fn branches(&self, branches: &[Op<'_>], x: &Tensor) -> Result<Vec<Tensor>> {
        branches.iter().map(|branch| self.eval(branch, x)).collect()
    }

    /// The branches of a concatenation; the convolutions that start them are offered to
    /// [`sibling_heads_with`], which may run the pointwise ones as one product.
    fn concat(&self, branches: &[Op<'_>], x: &Tensor) -> Result<Tensor> {
        let flat: Vec<Vec<&Op<'_>>> = branches
            .iter()
            .map(|branch| {
                let mut ops = Vec::new();
                flatten_chain(branch, &mut ops);
                ops
            })
            .collect();
        let heads: Vec<Option<(Head<'_>, usize)>> = flat.iter().map(|ops| head_at(ops)).collect();
        let offered: Vec<Option<Head<'_>>> =
            heads.iter().map(|h| h.map(|(head, _)| head)).collect();
        let fused = if offered.iter().flatten().count() >= 2 {
            sibling_heads_with(self.options, x, &offered, false)?
        } else {
            vec![None; branches.len()]
        };
        let outputs = flat
            .iter()
            .zip(heads)
            .zip(fused)
            .map(|((ops, head), fused)| match (fused, head) {
                (Some(y), Some((_, len))) => self.eval_chain(&ops[len..], &y),
                _ => self.eval_chain(ops, x),
            })
            .collect::<Result<Vec<_>>>()?;
        Tensor::cat(&outputs, 1)
    }
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

/// The leaves and groups of `op` in order, nested chains opened.
fn flatten_chain<'o, 'a>(op: &'o Op<'a>, out: &mut Vec<&'o Op<'a>>) {
    match op {
        Op::Chain(ops) => ops.iter().for_each(|op| flatten_chain(op, out)),
        other => out.push(other),
    }
}

/// A convolution at the start of `ops` with the batch norm and ReLU that directly follow it, and how many
/// operations that is.
fn head_at<'a>(ops: &[&Op<'a>]) -> Option<(Head<'a>, usize)> {
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
    let relu = matches!(ops.get(len), Some(Op::Relu));
    if relu {
        len += 1;
    }
    Some((Head { conv, bn, relu }, len))
}
