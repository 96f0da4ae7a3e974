//! [`FusedOps`] on the CPU backend: the fused ops on f32 slices ([`cpu_flash`], [`cpu_ce`],
//! [`cpu_rows`]),
//! and the tensor-op versions for other dtypes.

use burn::backend::Flex;
use burn::tensor::ops::{FloatTensor, IntTensor};

use super::{cpu_ce, cpu_flash, cpu_rows, flash, linear_ce, rows, FlashOptions, FusedOps};

impl FusedOps for Flex {
    fn flash_attention_with_lse(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        options: FlashOptions,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        if cpu_flash::supports(&[&q, &k, &v]) {
            cpu_flash::forward(&q, &k, &v, &options)
        } else {
            flash::forward_primitive::<Self>([q, k, v], &options)
        }
    }

    fn flash_attention_backward(
        qkv: [FloatTensor<Self>; 3],
        out: FloatTensor<Self>,
        lse: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        options: FlashOptions,
    ) -> [FloatTensor<Self>; 3] {
        let [q, k, v] = &qkv;
        if cpu_flash::supports(&[q, k, v, &out, &grad]) {
            cpu_flash::backward([q, k, v], &out, &lse, &grad, &options)
        } else {
            flash::backward_primitive::<Self>(qkv, out, lse, grad, &options)
        }
    }

    fn rms_norm_forward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        eps: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        if cpu_rows::supports(&[&x, &weight]) {
            return cpu_rows::rms_norm_forward(&x, &weight, eps);
        }
        rows::rms_norm_forward_primitive::<Self>(x, weight, eps)
    }

    fn rms_norm_backward(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        rstd: FloatTensor<Self>,
        dy: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        if cpu_rows::supports(&[&x, &weight, &rstd, &dy]) {
            return cpu_rows::rms_norm_backward(&x, &weight, &rstd, &dy);
        }
        rows::rms_norm_backward_primitive::<Self>(x, weight, rstd, dy)
    }

    fn swiglu(gate: FloatTensor<Self>, up: FloatTensor<Self>) -> FloatTensor<Self> {
        if cpu_rows::supports(&[&gate, &up]) {
            return cpu_rows::swiglu_forward(&gate, &up);
        }
        rows::swiglu_forward_primitive::<Self>(gate, up)
    }

    fn swiglu_backward(
        gate: FloatTensor<Self>,
        up: FloatTensor<Self>,
        dh: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        if cpu_rows::supports(&[&gate, &up, &dh]) {
            return cpu_rows::swiglu_backward(&gate, &up, &dh);
        }
        rows::swiglu_backward_primitive::<Self>(gate, up, dh)
    }

    fn cross_entropy_rows(
        logits: FloatTensor<Self>,
        targets: IntTensor<Self>,
        ignore_index: i64,
        grad: bool,
    ) -> (FloatTensor<Self>, Option<FloatTensor<Self>>) {
        if cpu_ce::supports(&logits) {
            cpu_ce::cross_entropy_rows(logits, targets, ignore_index, grad)
        } else {
            linear_ce::cross_entropy_rows_primitive::<Self>(logits, targets, ignore_index, grad)
        }
    }
}
