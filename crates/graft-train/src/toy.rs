//! A toy module for the optimizer, clipping and checkpoint tests: a 2-layer MLP with a 1-D
//! norm-like weight, on `Autodiff<Flex>`.

use burn::module::{Module, Param};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::backend::Backend;
use burn::tensor::{Distribution, Tensor};

pub type TB = burn::backend::Autodiff<burn::backend::Flex>;

/// `x → fc1 → ·norm → tanh → fc2`.
#[derive(Module, Debug)]
pub struct Toy<B: Backend> {
    pub fc1: Linear<B>,
    pub norm: Param<Tensor<B, 1>>,
    pub fc2: Linear<B>,
}

impl<B: Backend> Toy<B> {
    pub fn new(device: &B::Device) -> Self {
        let norm = Tensor::random([8], Distribution::Uniform(0.5, 1.5), device);
        Self {
            fc1: LinearConfig::new(4, 8).init(device),
            norm: Param::from_tensor(norm),
            fc2: LinearConfig::new(8, 2).init(device),
        }
    }

    /// # Shapes
    /// - `x`: `[n, 4]` → `[n, 2]`
    pub fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        let h = self.fc1.forward(x) * self.norm.val().unsqueeze::<2>();
        self.fc2.forward(h.tanh())
    }

    /// Mean squared error against `y`.
    pub fn loss(&self, x: Tensor<B, 2>, y: Tensor<B, 2>) -> Tensor<B, 1> {
        (self.forward(x) - y).square().mean()
    }
}

/// A deterministic batch `(x [n,4], y [n,2])` derived from `seed`.
pub fn batch<B: Backend>(seed: u64, n: usize, device: &B::Device) -> (Tensor<B, 2>, Tensor<B, 2>) {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut next = || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((s >> 33) as f32 / (1u64 << 31) as f32) * 2.0 - 1.0
    };
    let x: Vec<f32> = (0..n * 4).map(|_| next()).collect();
    let y: Vec<f32> = (0..n * 2).map(|_| next()).collect();
    (
        Tensor::<B, 1>::from_floats(x.as_slice(), device).reshape([n, 4]),
        Tensor::<B, 1>::from_floats(y.as_slice(), device).reshape([n, 2]),
    )
}

/// All parameters as flat f32 vectors, by module path.
pub fn flat_params<B: Backend, M: Module<B>>(m: &M) -> Vec<(String, Vec<f32>)> {
    use burn::module::ModuleVisitor;
    struct V(Vec<String>, Vec<(String, Vec<f32>)>);
    impl<B: Backend> ModuleVisitor<B> for V {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.0.push(name.to_string());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.0.pop();
        }
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<B, D>>) {
            let v = p
                .val()
                .into_data()
                .convert::<f32>()
                .to_vec::<f32>()
                .unwrap();
            self.1.push((self.0.join("."), v));
        }
    }
    let mut v = V(Vec::new(), Vec::new());
    m.visit(&mut v);
    v.1
}

/// Casts every parameter of a module on [`TB`] to bf16 (a bf16 model for the mixed-precision
/// tests).
pub struct ToBf16;

impl burn::module::ModuleMapper<TB> for ToBf16 {
    fn map_float<const D: usize>(&mut self, p: Param<Tensor<TB, D>>) -> Param<Tensor<TB, D>> {
        let (id, t, mapper) = p.consume();
        let t = Tensor::from_inner(t.inner().cast(burn::tensor::FloatDType::BF16)).require_grad();
        Param::from_mapped_value(id, t, mapper)
    }
}
