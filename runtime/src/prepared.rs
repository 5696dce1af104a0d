//! Weights prepared once per layer: what a CPU kernel derives from a layer's weights before it can run (a
//! convolution's weights packed into the matrix product's panels, the Winograd-transformed filters of a 3×3
//! convolution), computed on the layer's first inference call that needs
//! it and kept in the layer for the calls after, as an inference session prepares its weights once.
//!
//! A prepared copy is a function of the weights' values at the time it was made. Those values cannot change
//! through the layer (its weight tensor is fixed at construction), but they can change in place under it: a
//! tensor that shares its storage with a `Var` (`Var::detach`, [`crate::load::detached`]) follows the `Var` when
//! it is trained or loaded (`Var::set`), and `Tensor::slice_set` writes any tensor. Layers whose weights *are*
//! `Var`s never get here (they run as candle ops, for their gradients). After writing weights in place, call
//! [`crate::Conv2d::forget_prepared`] on the layer, or [`crate::plan::Plan::forget_prepared`] on the model, so
//! that the next call prepares them again. What is cheap to derive (the batch-norm fold) is still derived on
//! every call.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use candle_core::Result;

use crate::cpu::winograd::Tile;
use crate::cpu::Isa;

/// What a layer's weights were prepared for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum PreparedKind {
    /// The filters transformed for a Winograd convolution with this tile, packed for these matrix-product
    /// kernels.
    Winograd(Tile, Isa),
    /// The weights packed for these matrix-product kernels ([`crate::cpu::pack_weights`]).
    Packed(Isa),
}

impl PreparedKind {
    fn public(self) -> Prepared {
        match self {
            PreparedKind::Winograd(tile, _) => Prepared::Winograd(tile),
            PreparedKind::Packed(_) => Prepared::Packed,
        }
    }
}

/// What a convolution's weights were prepared for ([`crate::Conv2d::prepared`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Prepared {
    /// Packed for the matrix product of the direct convolution kernel.
    Packed,
    /// Transformed for a Winograd convolution with this tile.
    Winograd(Tile),
}

/// Weights prepared for one kind, shared with the calls using them.
type Slot = (PreparedKind, Arc<Vec<f32>>);

/// A layer's prepared weights, by kind. Clones share them: a cloned layer holds the same weight tensor.
#[derive(Clone, Default)]
pub(crate) struct PreparedWeights {
    slots: Arc<Mutex<Vec<Slot>>>,
}

impl std::fmt::Debug for PreparedWeights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.lock().iter().map(|(kind, _)| kind))
            .finish()
    }
}

impl PreparedWeights {
    fn lock(&self) -> MutexGuard<'_, Vec<Slot>> {
        // A panic while the lock was held cannot leave the list half-changed (one push or clear), so a poisoned
        // lock is used as it is.
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn find(&self, kind: &PreparedKind) -> Option<Arc<Vec<f32>>> {
        let slots = self.lock();
        slots
            .iter()
            .find(|(k, _)| k == kind)
            .map(|(_, data)| Arc::clone(data))
    }

    /// The weights prepared for `kind`, prepared by `prepare` first if they are not yet.
    pub(crate) fn get_or_prepare(
        &self,
        kind: PreparedKind,
        prepare: impl FnOnce() -> Result<Vec<f32>>,
    ) -> Result<Arc<Vec<f32>>> {
        if let Some(found) = self.find(&kind) {
            return Ok(found);
        }
        // Prepared without holding the lock: `prepare` may run rayon tasks, and a thread waiting for them may
        // pick up another inference of this same layer (a micro-batch), which must not block on the lock its
        // own thread holds. Two threads may then both prepare; the first to finish is kept.
        let data = Arc::new(prepare()?);
        let mut slots = self.lock();
        if let Some((_, kept)) = slots.iter().find(|(k, _)| *k == kind) {
            return Ok(Arc::clone(kept));
        }
        slots.push((kind, Arc::clone(&data)));
        Ok(data)
    }

    /// What is prepared, in the order it was.
    pub(crate) fn kinds(&self) -> Vec<Prepared> {
        self.lock().iter().map(|(kind, _)| kind.public()).collect()
    }

    /// Bytes held by everything prepared.
    pub(crate) fn bytes(&self) -> usize {
        let slots = self.lock();
        slots
            .iter()
            .map(|(_, data)| std::mem::size_of_val(data.as_slice()))
            .sum()
    }

    /// Drops everything prepared, so the next call prepares it again from the weights as they are then.
    pub(crate) fn forget(&self) {
        self.lock().clear();
    }
}
