//! The SwiGLU feed-forward block of Llama.

use burn::config::Config;
use burn::module::Module;
use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use crate::ops::{swiglu, FusedOps};
use crate::proj::{Proj, ProjConfig};

/// Configuration of an [`Mlp`].
#[derive(Config, Debug)]
pub struct MlpConfig {
    pub hidden_size: usize,
    pub intermediate_size: usize,
}

/// `down(silu(gate(x)) · up(x))`, the product as one op ([`swiglu`]).
#[derive(Module, Debug)]
pub struct Mlp<B: Backend> {
    pub gate_proj: Proj<B>,
    pub up_proj: Proj<B>,
    pub down_proj: Proj<B>,
}

impl MlpConfig {
    pub fn init<B: Backend>(&self, device: &B::Device) -> Mlp<B> {
        Mlp {
            gate_proj: ProjConfig::new(self.hidden_size, self.intermediate_size).init(device),
            up_proj: ProjConfig::new(self.hidden_size, self.intermediate_size).init(device),
            down_proj: ProjConfig::new(self.intermediate_size, self.hidden_size).init(device),
        }
    }
}

impl<B: FusedOps> Mlp<B> {
    /// # Shapes
    /// - input: `[batch, seq, hidden]`
    /// - output: `[batch, seq, hidden]`
    pub fn forward(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        // 2-D matmuls: their weight gradients need no reduction over a batch axis.
        let [batch, seq, hidden] = x.dims();
        let x = x.reshape([batch * seq, hidden]);
        let h = swiglu(self.gate_proj.forward(x.clone()), self.up_proj.forward(x));
        self.down_proj.forward(h).reshape([batch, seq, hidden])
    }
}
