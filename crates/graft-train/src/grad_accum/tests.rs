//! Tests of [`GradAccumulator`] on the toy module: bit-for-bit Burn's sum for f32 parameters,
//! f32 sums for bf16 ones, and the sums stay f32 through clipping into AdamW's master update.

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::tensor::{DType, Tensor};

use super::GradAccumulator;
use crate::clip::clip_global_norm;
use crate::optim::{AdamW, AdamWConfig};
use crate::toy::{batch, ToBf16, Toy, TB};

type Inner = burn::backend::Flex;

/// The gradients of the toy's loss on batch `seed`, computed in the parameters' dtype.
fn grads_of(model: &Toy<TB>, seed: u64) -> GradientsParams {
    let (x, y) = batch::<TB>(seed, 3, &Default::default());
    let dtype = model.norm.val().dtype();
    let (x, y) = (x.cast(dtype), y.cast(dtype));
    GradientsParams::from_grads(model.loss(x, y).backward(), model)
}

/// Every gradient of `model`'s parameters: (dtype, f32 bits), in visiting order.
fn grad_bits(model: &Toy<TB>, grads: &GradientsParams) -> Vec<(DType, Vec<u32>)> {
    struct V<'a>(&'a GradientsParams, Vec<(DType, Vec<u32>)>);
    impl ModuleVisitor<TB> for V<'_> {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<TB, D>>) {
            let g = self
                .0
                .get::<Inner, D>(p.id)
                .expect("a gradient per parameter");
            let dtype = g.dtype();
            let v = g.into_data().convert::<f32>().to_vec::<f32>().unwrap();
            self.1
                .push((dtype, v.iter().map(|x| x.to_bits()).collect()));
        }
    }
    let mut v = V(grads, Vec::new());
    model.visit(&mut v);
    v.1
}

/// The ids of the toy's parameters with their shapes, in visiting order.
fn ids(model: &Toy<TB>) -> Vec<(ParamId, Vec<usize>)> {
    struct V(Vec<(ParamId, Vec<usize>)>);
    impl ModuleVisitor<TB> for V {
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<TB, D>>) {
            self.0.push((p.id, p.val().dims().to_vec()));
        }
    }
    let mut v = V(Vec::new());
    model.visit(&mut v);
    v.0
}

/// Gradients of `value` everywhere, in bf16, for every parameter of `model`.
fn constant_bf16_grads(model: &Toy<TB>, value: f32) -> GradientsParams {
    let device = Default::default();
    let mut grads = GradientsParams::new();
    for (id, shape) in ids(model) {
        let numel = shape.iter().product::<usize>();
        let t = Tensor::<Inner, 1>::full([numel], value, (&device, DType::BF16));
        match shape.len() {
            1 => grads.register::<Inner, 1>(id, t),
            _ => grads.register::<Inner, 2>(id, t.reshape([shape[0], shape[1]])),
        }
    }
    grads
}

#[test]
fn f32_sums_are_burns_bit_for_bit() {
    let model = Toy::<TB>::new(&Default::default());
    let (mut ours, mut burns) = (GradAccumulator::new(), GradientsAccumulator::new());
    for seed in 0..3 {
        ours.accumulate(&model, grads_of(&model, seed));
        burns.accumulate(&model, grads_of(&model, seed));
    }
    assert_eq!(ours.micro_batches(), 3);
    let (a, b) = (ours.into_grads(), burns.grads());
    let (a, b) = (grad_bits(&model, &a), grad_bits(&model, &b));
    assert_eq!(a.len(), 5);
    assert!(a.iter().all(|(dtype, _)| *dtype == DType::F32));
    assert_eq!(a, b);
}

/// 1 + 3·2⁻⁹: each 2⁻⁹ is a quarter of a bf16 ulp at 1, so a bf16 sum stays at 1; the f32 sum
/// keeps all three.
#[test]
fn bf16_gradients_are_summed_in_f32() {
    let model = Toy::<TB>::new(&Default::default()).map(&mut ToBf16);
    let small = 2f32.powi(-9);
    let (mut ours, mut burns) = (GradAccumulator::new(), GradientsAccumulator::new());
    for value in [1.0, small, small, small] {
        ours.accumulate(&model, constant_bf16_grads(&model, value));
        burns.accumulate(&model, constant_bf16_grads(&model, value));
    }
    let want = (1.0f32 + 3.0 * small).to_bits();
    for (dtype, bits) in grad_bits(&model, &ours.into_grads()) {
        assert_eq!(dtype, DType::F32);
        assert!(
            bits.iter().all(|b| *b == want),
            "f32 sum lost a micro-batch"
        );
    }
    // what summing in the parameters' dtype gives
    for (dtype, bits) in grad_bits(&model, &burns.grads()) {
        assert_eq!(dtype, DType::BF16);
        assert!(bits.iter().all(|b| *b == 1f32.to_bits()));
    }
}

/// The f32 sums stay f32 through global-norm clipping and are what AdamW's f32 update of a bf16
/// parameter consumes: after one step the first moment is `(1 − β₁)·g` of the unrounded f32 `g`
/// (which differs from that of its bf16 rounding), and the weight is the rounding of the master.
#[test]
fn f32_sums_reach_the_master_update_unrounded() {
    let model = Toy::<TB>::new(&Default::default()).map(&mut ToBf16);
    let mut acc = GradAccumulator::new();
    for seed in 0..2 {
        acc.accumulate(&model, grads_of(&model, seed));
    }
    let mut grads = acc.into_grads();
    let norm = clip_global_norm::<TB, _>(&model, &mut grads, 1e-3);
    assert!(norm > 1e-3, "the clip must scale: norm {norm}");
    let clipped = grad_bits(&model, &grads);
    assert!(clipped.iter().all(|(dtype, _)| *dtype == DType::F32));

    let config = AdamWConfig {
        weight_decay: 0.0,
        ..AdamWConfig::default()
    };
    let mut opt = AdamW::<Inner>::new(config);
    let updated = opt.step(1e-3, model, grads);
    let weights = crate::toy::flat_params::<TB, _>(&updated);
    let one_minus_beta1 = (1.0 - config.beta1) as f32;
    let mut rounding_matters = false;
    // the optimizer's state is by name, in the same visiting order as the gradients
    let names = crate::optim_state::named_params::<TB, _>(&updated);
    for ((param, (_, g)), (_, w)) in names.iter().zip(&clipped).zip(&weights) {
        let st = &opt.state()[&param.name];
        let m = st.exp_avg.clone().into_data().to_vec::<f32>().unwrap();
        let master = st.master.clone().expect("bf16 parameters have a master");
        let master = master.into_data().to_vec::<f32>().unwrap();
        for (((g, m), master), w) in g.iter().zip(&m).zip(&master).zip(w) {
            let g = f32::from_bits(*g);
            assert_eq!(
                m.to_bits(),
                (g * one_minus_beta1).to_bits(),
                "{}",
                param.name
            );
            let rounded = burn::tensor::bf16::from_f32(g).to_f32();
            rounding_matters |= (rounded * one_minus_beta1).to_bits() != m.to_bits();
            assert_eq!(*w, burn::tensor::bf16::from_f32(*master).to_f32());
        }
    }
    assert!(
        rounding_matters,
        "the test needs gradients that bf16 rounds"
    );
}
