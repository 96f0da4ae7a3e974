//! Tests of AdamW, clipping, accumulation and optimizer-state round trips on the toy module.

use burn::module::Module;
use burn::optim::{GradientsAccumulator, GradientsParams};

use crate::clip::{clip_global_norm, global_grad_norm};
use crate::optim::{AdamW, AdamWConfig};
use crate::optim_state::{
    check_state_matches, named_params, optimizer_from_bytes, optimizer_to_bytes,
};
use crate::toy::{batch, flat_params, Toy, TB};

type Inner = burn::backend::Flex;

fn grads_of(model: &Toy<TB>, seed: u64) -> GradientsParams {
    let device = Default::default();
    let (x, y) = batch::<TB>(seed, 3, &device);
    GradientsParams::from_grads(model.loss(x, y).backward(), model)
}

fn grad_values(model: &Toy<TB>, grads: &GradientsParams) -> Vec<(String, Vec<f32>)> {
    let names = named_params::<TB, _>(model);
    let params = flat_params::<TB, _>(model);
    let mut ids = Vec::new();
    struct V(Vec<burn::module::ParamId>);
    impl burn::module::ModuleVisitor<TB> for V {
        fn visit_float<const D: usize>(
            &mut self,
            p: &burn::module::Param<burn::tensor::Tensor<TB, D>>,
        ) {
            self.0.push(p.id);
        }
    }
    let mut v = V(Vec::new());
    model.visit(&mut v);
    for ((n, p), id) in names.iter().zip(&params).zip(v.0) {
        assert_eq!(n.name, p.0);
        let g = match n.shape.len() {
            1 => grads.get::<Inner, 1>(id).map(|t| t.into_data()),
            2 => grads.get::<Inner, 2>(id).map(|t| t.into_data()),
            _ => unreachable!(),
        };
        ids.push((
            n.name.clone(),
            g.map(|d| d.to_vec::<f32>().unwrap()).unwrap_or_default(),
        ));
    }
    ids
}

/// One AdamW step from fresh state is `p·(1 − lr·wd) − lr·g/(|g| + eps)` (bias correction makes
/// m̂ = g and v̂ = g²); 1-D tensors are not decayed.
#[test]
fn first_step_matches_closed_form_and_skips_decay_on_1d() {
    let device = Default::default();
    let model = Toy::<TB>::new(&device);
    let before = flat_params::<TB, _>(&model);
    let grads = grads_of(&model, 1);
    let g = grad_values(&model, &grads);
    let (lr, wd, eps) = (0.01, 0.1, 1e-8);
    let mut opt = AdamW::<Inner>::new(AdamWConfig {
        beta1: 0.9,
        beta2: 0.95,
        eps,
        weight_decay: wd,
        ..AdamWConfig::default()
    });
    let model = opt.step(lr, model, grads);
    let after = flat_params::<TB, _>(&model);
    let shapes = named_params::<TB, _>(&model);
    for (((name, p0), (_, p1)), ((_, g), np)) in
        before.iter().zip(&after).zip(g.iter().zip(&shapes))
    {
        let decay = if np.shape.len() >= 2 {
            1.0 - lr * wd
        } else {
            1.0
        };
        for i in 0..p0.len() {
            let gi = g[i] as f64;
            let want = p0[i] as f64 * decay - lr * gi / (gi.abs() + eps);
            assert!(
                (p1[i] as f64 - want).abs() < 1e-6,
                "{name}[{i}]: {} vs {want}",
                p1[i]
            );
        }
    }
    assert_eq!(opt.state().len(), 5);
    assert!(opt.state().values().all(|s| s.step == 1));
}

/// Several steps against a scalar re-implementation of torch's single-tensor AdamW.
#[test]
fn multi_step_matches_scalar_reference() {
    let device = Default::default();
    let mut model = Toy::<TB>::new(&device);
    let cfg = AdamWConfig {
        beta1: 0.9,
        beta2: 0.95,
        eps: 1e-8,
        weight_decay: 0.1,
        ..AdamWConfig::default()
    };
    let mut opt = AdamW::<Inner>::new(cfg);
    let mut reference: Vec<(Vec<f64>, Vec<f64>, Vec<f64>)> = flat_params::<TB, _>(&model)
        .into_iter()
        .map(|(_, p)| {
            (
                p.iter().map(|&x| x as f64).collect(),
                vec![0.0; p.len()],
                vec![0.0; p.len()],
            )
        })
        .collect();
    let ndims: Vec<usize> = named_params::<TB, _>(&model)
        .iter()
        .map(|p| p.shape.len())
        .collect();
    for t in 1..=4 {
        let lr = 0.01 * t as f64;
        let grads = grads_of(&model, 10 + t);
        let g = grad_values(&model, &grads);
        model = opt.step(lr, model, grads);
        for ((p, m, v), ((_, g), nd)) in reference.iter_mut().zip(g.iter().zip(&ndims)) {
            for i in 0..p.len() {
                let gi = g[i] as f64;
                if *nd >= 2 {
                    p[i] *= 1.0 - lr * cfg.weight_decay;
                }
                m[i] += (gi - m[i]) * (1.0 - cfg.beta1);
                v[i] = v[i] * cfg.beta2 + (1.0 - cfg.beta2) * gi * gi;
                let bc1 = 1.0 - cfg.beta1.powi(t as i32);
                let bc2 = (1.0 - cfg.beta2.powi(t as i32)).sqrt();
                p[i] -= lr / bc1 * m[i] / (v[i].sqrt() / bc2 + cfg.eps);
            }
        }
        // keep the reference on the model's trajectory (the gradients come from the model)
        for ((_, got), (p, _, _)) in flat_params::<TB, _>(&model).iter().zip(&reference) {
            for (a, b) in got.iter().zip(p) {
                assert!((*a as f64 - b).abs() < 1e-5, "step {t}: {a} vs {b}");
            }
        }
    }
}

/// Frozen parameters get no gradient, no update and no optimizer state.
#[test]
fn frozen_parameters_get_no_state() {
    let device = Default::default();
    let mut model = Toy::<TB>::new(&device);
    model.fc1 = model.fc1.no_grad();
    let before = flat_params::<TB, _>(&model);
    let grads = grads_of(&model, 3);
    let mut opt = AdamW::<Inner>::new(AdamWConfig::default());
    let model = opt.step(1e-2, model, grads);
    let after = flat_params::<TB, _>(&model);
    let keys: Vec<&str> = opt.state().keys().map(String::as_str).collect();
    assert_eq!(keys, ["fc2.bias", "fc2.weight", "norm"]);
    assert_eq!(before[0], after[0], "fc1.weight must not change");
    assert_ne!(before[2], after[2], "norm must change");
    let trainable: Vec<bool> = named_params::<TB, _>(&model)
        .iter()
        .map(|p| p.trainable)
        .collect();
    assert_eq!(trainable, [false, false, true, true, true]);
}

/// Saving and restoring the state continues bit-for-bit like an uninterrupted optimizer.
#[test]
fn state_round_trip_is_bit_exact() {
    let device = Default::default();
    let model = Toy::<TB>::new(&device);
    let mut opt = AdamW::<Inner>::new(AdamWConfig::default());
    let model = opt.step(1e-2, model.clone(), grads_of(&model, 4));
    let bytes = optimizer_to_bytes(&opt).unwrap();
    let restored = optimizer_from_bytes::<Inner>(&bytes, "mem".as_ref(), &device).unwrap();
    check_state_matches::<TB, _>(&restored, &model).unwrap();
    let mut opt2 = AdamW::<Inner>::new(AdamWConfig::default());
    opt2.set_state(restored);

    let g1 = grads_of(&model, 5);
    let g2 = grads_of(&model, 5);
    let a = opt.step(2e-2, model.clone(), g1);
    let b = opt2.step(2e-2, model, g2);
    let (a, b) = (flat_params::<TB, _>(&a), flat_params::<TB, _>(&b));
    for ((n, x), (_, y)) in a.iter().zip(&b) {
        let xb: Vec<u32> = x.iter().map(|v| v.to_bits()).collect();
        let yb: Vec<u32> = y.iter().map(|v| v.to_bits()).collect();
        assert_eq!(xb, yb, "{n} differs after restore");
    }
    assert_eq!(opt.state()["fc1.weight"].step, 2);
    assert_eq!(opt2.state()["fc1.weight"].step, 2);
}

/// State saved for one model is rejected for a model with different shapes.
#[test]
fn state_for_other_shapes_is_rejected() {
    let device = Default::default();
    let model = Toy::<TB>::new(&device);
    let mut opt = AdamW::<Inner>::new(AdamWConfig::default());
    let _ = opt.step(1e-2, model.clone(), grads_of(&model, 4));
    let mut state = opt.state().clone();
    state.get_mut("norm").unwrap().shape = vec![9];
    let err = check_state_matches::<TB, _>(&state, &model)
        .unwrap_err()
        .to_string();
    assert!(err.contains("norm") && err.contains("[9]"), "{err}");
}

/// Clipping: the reported norm is the global L2 norm and the clipped gradients have norm `clip`.
#[test]
fn global_norm_clipping() {
    let device = Default::default();
    let model = Toy::<TB>::new(&device);
    let mut grads = grads_of(&model, 6);
    let flat: Vec<f64> = grad_values(&model, &grads)
        .into_iter()
        .flat_map(|(_, g)| g)
        .map(|x| x as f64)
        .collect();
    let want = flat.iter().map(|x| x * x).sum::<f64>().sqrt();
    let clip = want / 4.0;
    let norm = clip_global_norm::<TB, _>(&model, &mut grads, clip);
    assert!((norm - want).abs() < 1e-5 * want, "{norm} vs {want}");
    let after = global_grad_norm::<TB, _>(&model, &grads);
    assert!(
        (after - clip * want / (want + 1e-6)).abs() < 1e-5,
        "{after} vs {clip}"
    );
    // below the threshold nothing changes
    let norm2 = clip_global_norm::<TB, _>(&model, &mut grads, 1e9);
    assert!((norm2 - after).abs() < 1e-9);
}

/// Accumulating `loss/2` over two micro-batches gives the gradient of their mean loss.
#[test]
fn accumulated_gradients_equal_mean_of_micro_batches() {
    let device = Default::default();
    let model = Toy::<TB>::new(&device);
    let mut acc = GradientsAccumulator::new();
    for seed in [7, 8] {
        let (x, y) = batch::<TB>(seed, 3, &device);
        let loss = model.loss(x, y).div_scalar(2.0);
        acc.accumulate(&model, GradientsParams::from_grads(loss.backward(), &model));
    }
    let accumulated = grad_values(&model, &acc.grads());
    let (x1, y1) = batch::<TB>(7, 3, &device);
    let (x2, y2) = batch::<TB>(8, 3, &device);
    let loss = (model.loss(x1, y1) + model.loss(x2, y2)).div_scalar(2.0);
    let direct = grad_values(
        &model,
        &GradientsParams::from_grads(loss.backward(), &model),
    );
    for ((n, a), (_, b)) in accumulated.iter().zip(&direct) {
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() < 1e-6, "{n}: {x} vs {y}");
        }
    }
}

/// Parameters stored in bf16 are updated through an f32 master copy: 50 steps of lr 1e-4 each
/// move a weight by less than half a bf16 ulp, which a bare cast back would round away, yet the
/// weights end up at the rounding of the f32 trajectory; the master survives a save/restore.
#[test]
fn bf16_parameters_keep_an_f32_master_copy() {
    use crate::toy::ToBf16;
    use burn::tensor::{DType, Tensor};
    let device = Default::default();
    let mut model = Toy::<TB>::new(&device).map(&mut ToBf16);
    assert_eq!(model.norm.val().dtype(), DType::BF16);
    let start = flat_params::<TB, _>(&model);
    let (lr, steps) = (1e-4, 50);
    let mut opt = AdamW::<Inner>::new(AdamWConfig {
        weight_decay: 0.0,
        ..AdamWConfig::default()
    });
    for _ in 0..steps {
        // a constant gradient of ones: every Adam step is lr·1/(1 + eps)
        let mut grads = GradientsParams::new();
        let norm = &model.norm;
        grads.register::<Inner, 1>(
            norm.id,
            Tensor::ones(norm.val().shape(), (&device, DType::BF16)),
        );
        model = opt.step(lr, model, grads);
    }
    let master = opt.state()["norm"]
        .master
        .clone()
        .expect("bf16 parameter has a master copy");
    let master = master.into_data().to_vec::<f32>().unwrap();
    let weights = model
        .norm
        .val()
        .into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .unwrap();
    let norm0 = &start.iter().find(|(n, _)| n == "norm").unwrap().1;
    let mut moved = 0;
    for ((w0, m), w) in norm0.iter().zip(&master).zip(&weights) {
        let want = *w0 as f64 - steps as f64 * lr;
        assert!((*m as f64 - want).abs() < 1e-5, "master {m} vs {want}");
        assert_eq!(
            *w,
            burn::tensor::bf16::from_f32(*m).to_f32(),
            "weight is the rounding of its master"
        );
        moved += usize::from(w != w0);
    }
    assert!(
        moved >= norm0.len() / 2,
        "only {moved} of {} bf16 weights moved",
        norm0.len()
    );
    assert!(opt.state()["norm"].exp_avg.dtype() == DType::F32);

    let bytes = optimizer_to_bytes(&opt).unwrap();
    let restored = optimizer_from_bytes::<Inner>(&bytes, "mem".as_ref(), &device).unwrap();
    let back = restored["norm"]
        .master
        .clone()
        .unwrap()
        .into_data()
        .to_vec::<f32>()
        .unwrap();
    assert_eq!(
        back.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        master.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    );
}

/// `state_dtype = BF16` stores the moments in bf16 (half the memory) while the update is computed
/// in f32: the trajectory stays close to the f32-state one, and the state round-trips exactly.
#[test]
fn bf16_moments_are_stored_in_bf16_and_track_f32() {
    use burn::tensor::{DType, FloatDType};
    let device = Default::default();
    let mut a = Toy::<TB>::new(&device);
    let _ = flat_params::<TB, _>(&a); // materialise the lazy init before cloning
    let mut b = a.clone();
    let mut f32_opt = AdamW::<Inner>::new(AdamWConfig::default());
    let mut bf16_opt = AdamW::<Inner>::new(AdamWConfig {
        state_dtype: FloatDType::BF16,
        ..AdamWConfig::default()
    });
    for t in 0..5 {
        a = f32_opt.step(1e-2, a.clone(), grads_of(&a, 30 + t));
        b = bf16_opt.step(1e-2, b.clone(), grads_of(&b, 30 + t));
    }
    let st = &bf16_opt.state()["fc1.weight"];
    assert_eq!(
        (st.exp_avg.dtype(), st.exp_avg_sq.dtype()),
        (DType::BF16, DType::BF16)
    );
    assert_eq!(f32_opt.state()["fc1.weight"].exp_avg.dtype(), DType::F32);
    let (pa, pb) = (flat_params::<TB, _>(&a), flat_params::<TB, _>(&b));
    let mut differs = false;
    for ((n, x), (_, y)) in pa.iter().zip(&pb) {
        for (p, q) in x.iter().zip(y) {
            assert!((p - q).abs() < 2e-3, "{n}: {p} vs {q}");
            differs |= p != q;
        }
    }
    assert!(differs, "bf16 moments changed nothing");
    let bytes = optimizer_to_bytes(&bf16_opt).unwrap();
    let restored = optimizer_from_bytes::<Inner>(&bytes, "mem".as_ref(), &device).unwrap();
    let (m0, m1) = (
        st.exp_avg
            .clone()
            .into_data()
            .convert::<f32>()
            .to_vec::<f32>()
            .unwrap(),
        restored["fc1.weight"]
            .exp_avg
            .clone()
            .into_data()
            .to_vec::<f32>()
            .unwrap(),
    );
    assert_eq!(m0, m1);
}
