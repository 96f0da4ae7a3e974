//! The fused training ops against their plain definitions on random inputs: flash attention
//! (several tile sizes, sequence lengths that are not multiples of the tile, GQA, sliding window)
//! and the chunked linear + cross-entropy (ignored targets, several chunk sizes, tied weights),
//! forward values and gradients.

mod common;

use burn::tensor::{Int, Tensor, TensorData};
use common::*;
use graft_llama::attention::grouped_attention;
use graft_llama::ops::{flash_attention, linear_cross_entropy, FlashOptions, LinearCeOptions};
use graft_llama::{causal_lm_loss_sum, LlamaConfig, IGNORE_INDEX};

fn values<Bk: burn::tensor::backend::Backend, const D: usize>(t: Tensor<Bk, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().to_vec::<f32>().expect("f32")
}

/// Values in [-2, 2) from a seeded generator of the test's own (the backend RNG is process-wide
/// and the tests run in parallel).
fn random<const D: usize>(shape: [usize; D], seed: u64) -> Tensor<AB, D> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let n = shape.iter().product();
    let values: Vec<f32> = (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32 * 4.0 - 2.0
        })
        .collect();
    Tensor::from_data(TensorData::new(values, shape), &Default::default())
}

/// Additive mask: key `j` visible from query `i` iff `j ≤ i` and `i − j < window`.
fn mask(seq: usize, window: Option<usize>) -> Tensor<AB, 2> {
    let rows: Vec<f32> = (0..seq)
        .flat_map(|i| {
            (0..seq).map(move |j| {
                let visible = j <= i && window.is_none_or(|w| i - j < w);
                if visible {
                    0.0
                } else {
                    f32::NEG_INFINITY
                }
            })
        })
        .collect();
    Tensor::from_data(TensorData::new(rows, [seq, seq]), &Default::default())
}

/// Output and `[dq, dk, dv]` of `sum(attention(q, k, v) · w)`, by flash or by the plain path.
fn attend(flash: Option<FlashOptions>, seq: usize, window: Option<usize>) -> Vec<Vec<f32>> {
    let [q, k, v] = [
        random([2, 4, seq, 8], 1).require_grad(),
        random([2, 2, seq, 8], 2).require_grad(),
        random([2, 2, seq, 8], 3).require_grad(),
    ];
    let out = match flash {
        Some(options) => flash_attention(q.clone(), k.clone(), v.clone(), options),
        None => grouped_attention(q.clone(), k.clone(), v.clone(), &mask(seq, window)),
    };
    let weights = random([2, 4, seq, 8], 4);
    let grads = (out.clone() * weights).sum().backward();
    let mut all = vec![values(out)];
    for t in [q, k, v] {
        all.push(values(t.grad(&grads).expect("gradient")));
    }
    all
}

fn assert_close(a: &[Vec<f32>], b: &[Vec<f32>], tol: f32, what: &str) {
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        let d = max_abs_diff(x, y);
        assert!(
            d <= tol,
            "{what}: tensor {i} (out, dq, dk, dv) differs by {d}"
        );
    }
}

#[test]
fn flash_attention_equals_plain_attention() {
    for (seq, window) in [
        (19, None),
        (33, None),
        (19, Some(5)),
        (40, Some(16)),
        (7, Some(1)),
    ] {
        let plain = attend(None, seq, window);
        for tile in [1, 4, 8, 64] {
            let options = FlashOptions::causal(8).with_window(window).with_tile(tile);
            let flash = attend(Some(options), seq, window);
            assert_close(
                &flash,
                &plain,
                2e-5,
                &format!("seq {seq}, window {window:?}, tile {tile}"),
            );
        }
    }
}

#[test]
fn sliding_window_changes_attention() {
    let full = attend(Some(FlashOptions::causal(8).with_tile(4)), 19, None);
    let windowed = attend(
        Some(FlashOptions::causal(8).with_tile(4).with_window(Some(5))),
        19,
        None,
    );
    assert!(
        max_abs_diff(&full[0], &windowed[0]) > 1e-3,
        "the window must matter"
    );
}

/// Loss and `[d hidden, d weight]` of the fused op, or of logits + `causal_lm_loss_sum`.
fn cross_entropy(fused: Option<usize>, targets: &[i64]) -> Vec<Vec<f32>> {
    let n = targets.len();
    let hidden = random([n, 16], 5).require_grad();
    let weight = random([50, 16], 6).require_grad();
    let device = Default::default();
    let t = Tensor::<AB, 1, Int>::from_data(TensorData::new(targets.to_vec(), [n]), &device);
    let loss = match fused {
        Some(chunk_elements) => {
            let options = LinearCeOptions {
                ignore_index: IGNORE_INDEX,
                chunk_elements,
            };
            linear_cross_entropy(hidden.clone(), weight.clone(), t, options)
        }
        None => {
            // `causal_lm_loss_sum` shifts by one: prepend a dummy label, drop the last logits row
            let logits = hidden
                .clone()
                .matmul(weight.clone().transpose())
                .unsqueeze::<3>();
            let logits = Tensor::cat(vec![logits, Tensor::zeros([1, 1, 50], &device)], 1);
            let labels = Tensor::cat(vec![Tensor::<AB, 1, Int>::zeros([1], &device), t], 0);
            causal_lm_loss_sum(logits, labels.unsqueeze::<2>(), IGNORE_INDEX).0
        }
    };
    let grads = (loss.clone() * 0.75).backward();
    vec![
        values(loss),
        values(hidden.grad(&grads).expect("d hidden")),
        values(weight.grad(&grads).expect("d weight")),
    ]
}

#[test]
fn fused_linear_cross_entropy_equals_logits_and_loss() {
    let targets: Vec<i64> = vec![3, 49, IGNORE_INDEX, 0, 17, 17, IGNORE_INDEX, 8, 42, 1, 2];
    let plain = cross_entropy(None, &targets);
    assert!(plain[0][0] > 0.0);
    // one row per chunk, a few rows, all rows at once
    for chunk_elements in [50, 150, 1 << 20] {
        let fused = cross_entropy(Some(chunk_elements), &targets);
        for (i, (x, y)) in fused.iter().zip(&plain).enumerate() {
            let d = max_abs_diff(x, y);
            assert!(
                d <= 1e-5,
                "chunk {chunk_elements}: tensor {i} (loss, dh, dw) differs by {d}"
            );
        }
    }
    let rows = LinearCeOptions {
        ignore_index: IGNORE_INDEX,
        chunk_elements: 150,
    }
    .chunk_rows(50);
    assert_eq!(rows, 3);
}

#[test]
fn tied_embeddings_get_both_gradients() {
    let config = LlamaConfig {
        vocab_size: 64,
        hidden_size: 32,
        intermediate_size: 48,
        num_hidden_layers: 1,
        num_attention_heads: 4,
        num_key_value_heads: 2,
        head_dim: 8,
        tie_word_embeddings: true,
        rms_norm_eps: 1e-5,
        max_position_embeddings: 64,
        rope_theta: 10000.0,
        rope_scaling: None,
        bos_token_id: None,
        eos_token_ids: vec![],
        torch_dtype: None,
        sliding_window: None,
    };
    let device = Default::default();
    let model = config.init::<AB>(&device).materialize();
    let tokens = Tensor::<AB, 2, Int>::from_data(
        TensorData::new(
            (0..24).map(|i| (i * 7 % 64) as i64).collect::<Vec<_>>(),
            [2, 12],
        ),
        &device,
    );
    let fused = model.loss(tokens.clone(), tokens.clone(), IGNORE_INDEX);
    let plain = graft_llama::causal_lm_loss(model.forward(tokens.clone()), tokens, IGNORE_INDEX);
    let embed =
        |loss: Tensor<AB, 1>| values(model.embed_tokens.val().grad(&loss.backward()).unwrap());
    let (fv, pv) = (values(fused.clone())[0], values(plain.clone())[0]);
    assert!((fv - pv).abs() <= 1e-5, "loss {fv} vs {pv}");
    let d = max_abs_diff(&embed(fused), &embed(plain));
    assert!(d <= 1e-5, "tied embedding gradient differs by {d}");
}

#[test]
fn cpu_row_kernel_equals_tensor_ops() {
    use burn::backend::Flex;
    use graft_llama::ops::{linear_ce, FusedOps};
    // a vocabulary over several of the kernel's 1024-element blocks, with a remainder
    let (rows, vocab) = (5, 2500);
    let logits = random::<2>([rows, vocab], 7).inner() * 4.0;
    let targets = vec![0, vocab as i64 - 1, IGNORE_INDEX, 1234, 17];
    let device = Default::default();
    let t = Tensor::<Flex, 1, Int>::from_data(TensorData::new(targets, [rows]), &device);
    for grad in [true, false] {
        let (want_loss, want_grad) =
            linear_ce::cross_entropy_rows(logits.clone(), t.clone(), IGNORE_INDEX, grad);
        let (loss, g) = Flex::cross_entropy_rows(
            logits.clone().into_primitive().tensor(),
            t.clone().into_primitive(),
            IGNORE_INDEX,
            grad,
        );
        let loss = values(Tensor::<Flex, 1>::from_primitive(
            burn::tensor::TensorPrimitive::Float(loss),
        ));
        assert!(max_abs_diff(&loss, &values(want_loss)) <= 2e-6, "{loss:?}");
        assert_eq!(loss[2], 0.0, "an ignored row adds nothing");
        assert_eq!(g.is_some(), grad);
        if let (Some(g), Some(want)) = (g, want_grad) {
            let g = values(Tensor::<Flex, 2>::from_primitive(
                burn::tensor::TensorPrimitive::Float(g),
            ));
            assert!(max_abs_diff(&g, &values(want)) <= 1e-7);
            assert!(g[2 * vocab..3 * vocab].iter().all(|&x| x == 0.0));
        }
    }
}

/// The CPU flash kernel (`Flex`'s override) against the tensor-op version it replaces, on the
/// layout the model hands it: q/k/v as `[batch, heads, seq, d]` views of `[batch, seq, heads, d]`
/// projections. Output, log-sum-exp and all three gradients, with GQA, windows, batch 2 and
/// tiles that do not divide the sequence.
#[test]
fn cpu_flash_kernel_equals_tensor_ops() {
    use burn::backend::Flex;
    use burn::tensor::TensorPrimitive;
    use graft_llama::ops::{flash, FusedOps};
    let float = |t: burn::tensor::ops::FloatTensor<Flex>| {
        values(Tensor::<Flex, 4>::from_primitive(TensorPrimitive::Float(t)))
    };
    let (batch, heads, kv_heads, d) = (2, 6, 2, 16);
    for (seq, window, tile) in [
        (70, None, 512),
        (70, None, 16),
        (133, Some(40), 32),
        (9, Some(3), 4),
        (65, None, 1),
    ] {
        // seq-major projections, viewed head-major as attention receives them
        let view = |h: usize, seed: u64| {
            random::<4>([batch, seq, h, d], seed)
                .inner()
                .swap_dims(1, 2)
        };
        let [q, k, v, grad] = [
            view(heads, 11),
            view(kv_heads, 12),
            view(kv_heads, 13),
            view(heads, 14),
        ];
        let options = FlashOptions::causal(d).with_window(window).with_tile(tile);
        let what = format!("seq {seq}, window {window:?}, tile {tile}");

        let (want_out, want_lse) = flash::forward(q.clone(), k.clone(), v.clone(), &options);
        let prim = |t: &Tensor<Flex, 4>| t.clone().into_primitive().tensor();
        let (out, lse) = Flex::flash_attention_with_lse(prim(&q), prim(&k), prim(&v), options);
        let (out_t, lse_t) = (
            Tensor::<Flex, 4>::from_primitive(TensorPrimitive::Float(out.clone())),
            Tensor::<Flex, 4>::from_primitive(TensorPrimitive::Float(lse.clone())),
        );
        assert_eq!(out_t.dims(), [batch, heads, seq, d], "{what}");
        assert_eq!(
            lse_t.dims(),
            [batch, kv_heads, heads / kv_heads, seq],
            "{what}"
        );
        let diff = max_abs_diff(&float(out.clone()), &values(want_out.clone()));
        assert!(diff <= 2e-6, "{what}: output differs by {diff}");
        let diff = max_abs_diff(&float(lse.clone()), &values(want_lse.clone()));
        assert!(diff <= 2e-6, "{what}: log-sum-exp differs by {diff}");

        let want = flash::backward(
            [q.clone(), k.clone(), v.clone()],
            want_out,
            want_lse,
            grad.clone(),
            &options,
        );
        let got = Flex::flash_attention_backward(
            [prim(&q), prim(&k), prim(&v)],
            out,
            lse,
            prim(&grad),
            options,
        );
        for (name, (g, w)) in ["dq", "dk", "dv"].iter().zip(got.into_iter().zip(want)) {
            assert_eq!(
                Tensor::<Flex, 4>::from_primitive(TensorPrimitive::Float(g.clone())).dims(),
                w.dims(),
                "{what}: {name} shape"
            );
            let diff = max_abs_diff(&float(g), &values(w));
            assert!(diff <= 1e-5, "{what}: {name} differs by {diff}");
        }
    }
}

/// RMSNorm and SwiGLU: the CPU kernels (`Flex`'s overrides) against the tensor-op versions
/// (the defaults, which other backends and dtypes run), values and gradients; and the fused ops
/// under autodiff against the plain chain of tensor ops.
#[test]
fn cpu_row_ops_equal_tensor_ops() {
    use burn::backend::Flex;
    use burn::tensor::activation::silu;
    use burn::tensor::TensorPrimitive;
    use graft_llama::ops::{rms_norm, rows, swiglu, FusedOps};
    let prim = |t: &Tensor<Flex, 2>| t.clone().into_primitive().tensor();
    let tensor = |t| Tensor::<Flex, 2>::from_primitive(TensorPrimitive::Float(t));
    // rows not a multiple of the kernel's blocks; a width with a remainder of its 16 lanes
    let (n, d) = (37, 50);
    let x = random::<2>([n, d], 21).inner() * 3.0;
    let w = random::<1>([d], 22).inner();
    let dy = random::<2>([n, d], 23).inner();
    let (want_y, want_rstd) = rows::rms_norm_forward(x.clone(), w.clone(), 1e-5);
    let (y, rstd) = Flex::rms_norm_forward(prim(&x), w.clone().into_primitive().tensor(), 1e-5);
    let (y, rstd) = (tensor(y), tensor(rstd));
    assert!(max_abs_diff(&values(y), &values(want_y)) <= 1e-5);
    assert!(max_abs_diff(&values(rstd.clone()), &values(want_rstd.clone())) <= 1e-6);
    let (want_dx, want_dw) = rows::rms_norm_backward(x.clone(), w.clone(), want_rstd, dy.clone());
    let (dx, dw) = Flex::rms_norm_backward(
        prim(&x),
        w.clone().into_primitive().tensor(),
        prim(&rstd),
        prim(&dy),
    );
    assert!(max_abs_diff(&values(tensor(dx)), &values(want_dx)) <= 1e-5);
    let dw = Tensor::<Flex, 1>::from_primitive(TensorPrimitive::Float(dw));
    assert!(max_abs_diff(&values(dw), &values(want_dw)) <= 1e-4);

    let (g, u) = (
        random::<2>([n, d], 24).inner() * 6.0,
        random::<2>([n, d], 25).inner(),
    );
    let want_h = rows::swiglu_forward(g.clone(), u.clone());
    let h = tensor(Flex::swiglu(prim(&g), prim(&u)));
    assert!(max_abs_diff(&values(h), &values(want_h)) <= 1e-5);
    let (want_dg, want_du) = rows::swiglu_backward(g.clone(), u.clone(), dy.clone());
    let (dg, du) = Flex::swiglu_backward(prim(&g), prim(&u), prim(&dy));
    assert!(max_abs_diff(&values(tensor(dg)), &values(want_dg)) <= 1e-5);
    assert!(max_abs_diff(&values(tensor(du)), &values(want_du)) <= 1e-5);

    // under autodiff: the fused ops' gradients are those of the plain chain of tensor ops
    let grads_of = |fused: bool| {
        let (x, w) = (
            random::<3>([2, 9, d], 26).require_grad(),
            random::<1>([d], 27).require_grad(),
        );
        let (g, u) = (
            random::<2>([18, d], 28).require_grad(),
            random::<2>([18, d], 29).require_grad(),
        );
        let (y, h) = if fused {
            (
                rms_norm(x.clone(), w.clone(), 1e-5),
                swiglu(g.clone(), u.clone()),
            )
        } else {
            let rstd = (x.clone().square().mean_dim(2) + 1e-5).sqrt().recip();
            (
                x.clone() * rstd * w.clone().unsqueeze(),
                silu(g.clone()) * u.clone(),
            )
        };
        let loss = (y * random::<3>([2, 9, d], 30)).sum() + (h * random::<2>([18, d], 31)).sum();
        let grads = loss.backward();
        vec![
            values(x.grad(&grads).expect("dx")),
            values(w.grad(&grads).expect("dw")),
            values(g.grad(&grads).expect("dg")),
            values(u.grad(&grads).expect("du")),
        ]
    };
    assert_close(
        &grads_of(true),
        &grads_of(false),
        2e-5,
        "fused vs plain autodiff",
    );
}

#[test]
fn frozen_head_still_gives_the_hidden_gradient() {
    let targets: Vec<i64> = vec![3, 49, IGNORE_INDEX, 0, 17];
    let n = targets.len();
    let plain = cross_entropy(None, &targets);
    let hidden = random([n, 16], 5).require_grad();
    let weight = random([50, 16], 6); // not trainable: no d weight is made
    let t = Tensor::<AB, 1, Int>::from_data(TensorData::new(targets, [n]), &Default::default());
    let loss = linear_cross_entropy(
        hidden.clone(),
        weight.clone(),
        t,
        LinearCeOptions::default(),
    );
    let grads = (loss * 0.75).backward();
    assert!(weight.grad(&grads).is_none());
    let dh = values(hidden.grad(&grads).expect("d hidden"));
    assert!(max_abs_diff(&dh, &plain[1]) <= 1e-5);
}
