//! LoRA dropout masks from a per-thread stream, so that data-parallel peers (one thread each)
//! draw reproducible masks however their threads interleave.
//!
//! Burn's `Dropout` draws from the backend RNG, which is process-wide: with several peers in one
//! process, which peer's draw comes next depends on thread timing. Here every thread (every
//! data-parallel rank) has its own stream, `(seed, draw index)`, that the training step sets from
//! `(run seed, step, rank, micro-batch[, layer])` ([`seed_dropout`]); each mask is drawn on the
//! device by reseeding the backend RNG from the stream's next value and drawing at once, under a
//! process-wide lock, so no other thread's draw can come between (on a lazy backend the draw is
//! forced before the lock is released: see [`dropout`]). The mask is a function of the
//! stream alone: nothing needs saving for a resume (the step sets the stream again).

use std::cell::Cell;
use std::sync::Mutex;

use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor};

thread_local! {
    /// This thread's dropout stream: seed and index of the next draw.
    static STREAM: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

/// Held between reseeding the backend RNG and drawing a mask.
static BACKEND_RNG: Mutex<()> = Mutex::new(());

/// Start this thread's dropout stream at `seed` (the next mask is its first draw).
pub fn seed_dropout(seed: u64) {
    STREAM.with(|s| s.set((seed, 0)));
}

/// Inverted dropout of `x` with drop probability `prob`, active only on an autodiff backend (as
/// Burn's `Dropout`, with the same arithmetic), the mask drawn from this thread's stream.
///
/// # Shapes
/// - `x`, output: any
pub fn dropout<B: Backend, const D: usize>(x: Tensor<B, D>, prob: f64) -> Tensor<B, D> {
    if prob == 0.0 || !B::ad_enabled(&x.device()) {
        return x;
    }
    let (seed, draw) = STREAM.with(|s| {
        let (seed, draw) = s.get();
        s.set((seed, draw + 1));
        (seed, draw)
    });
    let keep = 1.0 - prob;
    let device = x.device();
    let mask = {
        let _one_at_a_time = BACKEND_RNG.lock().unwrap_or_else(|e| e.into_inner());
        B::seed(&device, mix(seed, draw));
        let mask = x.random_like(Distribution::Bernoulli(keep));
        // a lazy backend (burn-fusion, CUDA) runs the draw when this thread's stream is drained,
        // which seeding does: reseeding now draws the mask here, under the lock
        B::seed(&device, !mix(seed, draw));
        mask
    };
    (x * mask) * (1.0 / keep)
}

/// SplitMix64 of the stream's seed and draw index.
fn mix(seed: u64, draw: u64) -> u64 {
    let mut z = seed ^ draw.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    type AB = burn::backend::Autodiff<burn::backend::Flex>;

    /// `n` masks of 256 elements drawn on this thread from stream `seed`.
    fn masks(seed: u64, n: usize) -> Vec<Vec<f32>> {
        seed_dropout(seed);
        (0..n)
            .map(|_| {
                let x = Tensor::<AB, 1>::ones([256], &Default::default());
                dropout(x, 0.5).into_data().to_vec::<f32>().unwrap()
            })
            .collect()
    }

    #[test]
    fn masks_depend_on_the_thread_stream_alone() {
        let alone = [masks(1, 20), masks(2, 20)];
        assert_ne!(alone[0], alone[1]);
        assert!(alone[0][0].contains(&0.0) && alone[0][0].contains(&2.0));
        // two threads drawing at once, and reseeding the backend RNG in between, get the same
        for _ in 0..3 {
            let both: Vec<_> = std::thread::scope(|s| {
                let h: Vec<_> = [1, 2].map(|seed| s.spawn(move || masks(seed, 20))).into();
                h.into_iter().map(|h| h.join().unwrap()).collect()
            });
            assert_eq!(both, alone);
        }
        // the inner backend (evaluation) does not drop
        let x = Tensor::<burn::backend::Flex, 1>::ones([8], &Default::default());
        assert_eq!(
            dropout(x, 0.5).into_data().to_vec::<f32>().unwrap(),
            [1.0; 8]
        );
    }
}
