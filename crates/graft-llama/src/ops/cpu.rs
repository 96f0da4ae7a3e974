//! [`FusedOps`] on the CPU backend: the fused ops on f32 slices ([`cpu_flash`], [`cpu_ce`]),
//! and the tensor-op versions for other dtypes.

use burn::backend::Flex;
use burn::tensor::ops::{FloatTensor, IntTensor};

use super::{cpu_ce, cpu_flash, flash, linear_ce, FlashOptions, FusedOps};

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

    fn cross_entropy_rows(
        logits: FloatTensor<Self>,
        targets: IntTensor<Self>,
        ignore_index: i64,
        grad: bool,
    ) -> (FloatTensor<Self>, Option<FloatTensor<Self>>) {
        cpu_ce::cross_entropy_rows(logits, targets, ignore_index, grad).unwrap_or_else(
            |(logits, targets)| {
                linear_ce::cross_entropy_rows_primitive::<Self>(logits, targets, ignore_index, grad)
            },
        )
    }
}
