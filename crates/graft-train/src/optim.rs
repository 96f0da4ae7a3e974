//! AdamW exactly as `torch.optim.AdamW`, with per-parameter state keyed by parameter name (the
//! name the model's checkpoint gives it, [`crate::optim_state::param_name`]).
//!
//! Burn's own `AdamW` keys its state by `ParamId` (not stable across runs), folds the bias
//! correction into epsilon, and decays every tensor. This one:
//! - applies decoupled weight decay `p ← p·(1 − lr·wd)` before the Adam update, only to tensors
//!   with at least 2 dimensions (RMSNorm weights are not decayed);
//! - updates `m ← lerp(m, g, 1−β₁)`, `v ← β₂·v + (1−β₂)·g²`, then
//!   `p ← p − lr/(1−β₁ᵗ) · m / (sqrt(v)/sqrt(1−β₂ᵗ) + eps)`;
//! - keeps the moments in f32 (or bf16, `train.optimizer_state_dtype = "bf16"`, half the memory;
//!   the arithmetic stays f32) and creates state only for parameters that receive a gradient, so
//!   frozen parameters (LoRA base weights) get neither update nor state;
//! - keeps an f32 master copy of every parameter stored in a lower precision (bf16/f16 weights on
//!   CUDA): the update is applied to the master and the weight is its rounding, so updates smaller
//!   than a bf16 ulp (lr 1e-5 on weights ~1e-2) accumulate instead of rounding away (the mixed
//!   precision of torchtitan/FSDP and Megatron); the gradient it consumes is the f32 sum of the
//!   micro-batches ([`crate::grad_accum`]), never rounded to the parameter's dtype.
//!
//! State is saved to and restored from safetensors bit-exactly (see [`crate::optim_state`]).

use std::collections::BTreeMap;

use burn::module::{AutodiffModule, ModuleMapper, Param};
use burn::optim::GradientsParams;
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{DType, FloatDType, Tensor};

/// AdamW hyperparameters (the learning rate comes from the schedule at each step).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWConfig {
    /// β₁, the first-moment decay.
    pub beta1: f64,
    /// β₂, the second-moment decay.
    pub beta2: f64,
    /// Added to the bias-corrected sqrt(v).
    pub eps: f64,
    /// Decoupled weight decay, applied to tensors with ≥ 2 dimensions only.
    pub weight_decay: f64,
    /// Storage precision of the moments `m` and `v` between steps (F32 or BF16).
    pub state_dtype: FloatDType,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
            weight_decay: 0.1,
            state_dtype: FloatDType::F32,
        }
    }
}

/// The Adam moments of one parameter, flattened, in [`AdamWConfig::state_dtype`].
#[derive(Debug, Clone)]
pub struct ParamState<B: Backend> {
    /// Number of updates applied to this parameter.
    pub step: u64,
    /// The parameter's shape.
    pub shape: Vec<usize>,
    /// First moment `m`, flattened.
    pub exp_avg: Tensor<B, 1>,
    /// Second moment `v`, flattened.
    pub exp_avg_sq: Tensor<B, 1>,
    /// The f32 master copy of a parameter stored in bf16/f16, flattened; `None` for f32 parameters.
    pub master: Option<Tensor<B, 1>>,
}

/// AdamW over a Burn module, with state keyed by parameter name
/// ([`crate::optim_state::param_name`]: `model.layers.0.self_attn.q_proj.weight` for a Llama).
#[derive(Debug, Clone)]
pub struct AdamW<B: Backend> {
    config: AdamWConfig,
    state: BTreeMap<String, ParamState<B>>,
}

impl<B: Backend> AdamW<B> {
    /// A fresh optimizer with no state.
    pub fn new(config: AdamWConfig) -> Self {
        Self {
            config,
            state: BTreeMap::new(),
        }
    }

    /// The hyperparameters.
    pub fn config(&self) -> &AdamWConfig {
        &self.config
    }

    /// Per-parameter state, by parameter name.
    pub fn state(&self) -> &BTreeMap<String, ParamState<B>> {
        &self.state
    }

    /// Bytes of state held (moments and master copies), by the optimizer's own accounting; with
    /// sharded training ([`crate::zero`]) each rank holds about `1/N` of the total.
    pub fn state_bytes(&self) -> usize {
        let bytes = |t: &Tensor<B, 1>| t.shape().num_elements() * t.dtype().size();
        self.state
            .values()
            .map(|s| bytes(&s.exp_avg) + bytes(&s.exp_avg_sq) + s.master.as_ref().map_or(0, bytes))
            .sum()
    }

    /// Replace the whole state (used when resuming).
    pub fn set_state(&mut self, state: BTreeMap<String, ParamState<B>>) {
        self.state = state;
    }

    /// Apply one AdamW update with learning rate `lr` to every parameter of `module` that has a
    /// gradient in `grads`. Parameters without a gradient are left untouched and get no state.
    pub fn step<AB, M>(&mut self, lr: f64, module: M, mut grads: GradientsParams) -> M
    where
        AB: AutodiffBackend<InnerBackend = B>,
        M: AutodiffModule<AB>,
    {
        let mut mapper = AdamWMapper::<AB> {
            config: self.config,
            lr,
            state: &mut self.state,
            grads: &mut grads,
            path: Vec::new(),
        };
        module.map(&mut mapper)
    }
}

struct AdamWMapper<'a, AB: AutodiffBackend> {
    config: AdamWConfig,
    lr: f64,
    state: &'a mut BTreeMap<String, ParamState<AB::InnerBackend>>,
    grads: &'a mut GradientsParams,
    path: Vec<String>,
}

impl<AB: AutodiffBackend> ModuleMapper<AB> for AdamWMapper<'_, AB> {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }

    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<AB, D>>) -> Param<Tensor<AB, D>> {
        let (id, tensor, mapper) = param.consume();
        let Some(grad) = self.grads.remove::<AB::InnerBackend, D>(id) else {
            return Param::from_mapped_value(id, tensor, mapper);
        };
        let name = crate::optim_state::param_name(&self.path.join("."));
        let require_grad = tensor.is_require_grad();
        let updated = self.update(name, tensor.inner(), grad);
        let mut tensor = Tensor::from_inner(updated);
        if require_grad {
            tensor = tensor.require_grad();
        }
        Param::from_mapped_value(id, tensor, mapper)
    }
}

impl<AB: AutodiffBackend> AdamWMapper<'_, AB> {
    /// The AdamW update of one tensor, computed in f32 and cast back to the parameter's dtype.
    fn update<const D: usize>(
        &mut self,
        name: String,
        param: Tensor<AB::InnerBackend, D>,
        grad: Tensor<AB::InnerBackend, D>,
    ) -> Tensor<AB::InnerBackend, D> {
        let c = self.config;
        let dtype = param.dtype();
        let shape = param.shape();
        let numel = shape.num_elements();
        let device = param.device();
        let entry = self.state.entry(name).or_insert_with(|| ParamState {
            step: 0,
            shape: shape.to_vec(),
            exp_avg: Tensor::zeros([numel], (&device, DType::from(c.state_dtype))),
            exp_avg_sq: Tensor::zeros([numel], (&device, DType::from(c.state_dtype))),
            master: None,
        });
        entry.step += 1;

        let mut p = match entry.master.take() {
            Some(master) => master.reshape(shape.clone()),
            None => param.cast(FloatDType::F32),
        };
        let g = grad.cast(FloatDType::F32);
        if D >= 2 && c.weight_decay != 0.0 {
            p = p.mul_scalar(1.0 - self.lr * c.weight_decay);
        }
        let m: Tensor<_, D> = entry
            .exp_avg
            .clone()
            .cast(FloatDType::F32)
            .reshape(shape.clone());
        let v: Tensor<_, D> = entry
            .exp_avg_sq
            .clone()
            .cast(FloatDType::F32)
            .reshape(shape);
        // torch: exp_avg.lerp_(grad, 1 - beta1); exp_avg_sq.mul_(beta2).addcmul_(grad, grad, 1 - beta2)
        let m = m.clone() + (g.clone() - m).mul_scalar(1.0 - c.beta1);
        let v = v.mul_scalar(c.beta2) + g.clone().mul_scalar(1.0 - c.beta2).mul(g);

        let t = entry.step as i32;
        let bias_correction1 = 1.0 - c.beta1.powi(t);
        let bias_correction2_sqrt = (1.0 - c.beta2.powi(t)).sqrt();
        let step_size = self.lr / bias_correction1;
        let denom = v
            .clone()
            .sqrt()
            .div_scalar(bias_correction2_sqrt)
            .add_scalar(c.eps);
        let p = p + m.clone().div(denom).mul_scalar(-step_size);

        entry.exp_avg = m.reshape([numel]).cast(c.state_dtype);
        entry.exp_avg_sq = v.reshape([numel]).cast(c.state_dtype);
        if dtype == DType::F32 {
            return p.cast(dtype);
        }
        entry.master = Some(p.clone().reshape([numel]));
        p.cast(dtype)
    }
}
