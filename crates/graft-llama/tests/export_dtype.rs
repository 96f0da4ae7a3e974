//! f32 → bf16/f16 rounding is round-to-nearest-even with PyTorch's semantics, checked against an
//! independent bit-level reference (PyTorch's `c10::detail::round_to_nearest_even` for bf16).

use graft_llama::export::{f32_to_bf16_bits, f32_to_f16_bits};

/// PyTorch's scalar bf16 rounding (c10/util/BFloat16.h) for non-NaN inputs.
fn torch_bf16(value: f32) -> u16 {
    let bits = value.to_bits();
    let bias = ((bits >> 16) & 1) + 0x7FFF;
    (bits.wrapping_add(bias) >> 16) as u16
}

#[test]
fn bf16_is_round_to_nearest_even() {
    // Exact ties: 1 + 2^-8 lies halfway between 1 and 1 + 2^-7 → rounds to even (1.0);
    // 1 + 3·2^-8 lies halfway between 1 + 2^-7 and 1 + 2^-6 → rounds to even (1 + 2^-6).
    assert_eq!(f32_to_bf16_bits(1.0 + 2f32.powi(-8)), 0x3F80);
    assert_eq!(f32_to_bf16_bits(1.0 + 3.0 * 2f32.powi(-8)), 0x3F82);
    // Just above a tie rounds up.
    assert_eq!(f32_to_bf16_bits(f32::from_bits(0x3F80_8001)), 0x3F81);
    // Overflow to infinity, infinities kept, signed zero kept, subnormals rounded.
    assert_eq!(f32_to_bf16_bits(f32::MAX), 0x7F80);
    assert_eq!(f32_to_bf16_bits(f32::NEG_INFINITY), 0xFF80);
    assert_eq!(f32_to_bf16_bits(-0.0), 0x8000);
    assert_eq!(f32_to_bf16_bits(f32::from_bits(0x0000_8000)), 0x0000);
    assert_eq!(f32_to_bf16_bits(f32::from_bits(0x0001_8000)), 0x0002);
}

#[test]
fn bf16_agrees_with_pytorch_on_a_sweep_of_bit_patterns() {
    // Every 2^16-th pattern plus the ±1 neighbourhoods of the rounding boundaries, all exponents.
    let mut checked = 0u32;
    for high in 0..=0xFFFFu32 {
        for low in [
            0x0000u32, 0x0001, 0x7FFF, 0x8000, 0x8001, 0xFFFF, 0x1234, 0xC000,
        ] {
            let value = f32::from_bits((high << 16) | low);
            if value.is_nan() {
                continue;
            }
            assert_eq!(
                f32_to_bf16_bits(value),
                torch_bf16(value),
                "bits {:#010x}",
                value.to_bits()
            );
            checked += 1;
        }
    }
    assert!(checked > 500_000);
}

#[test]
fn nan_stays_nan() {
    for bits in [
        0x7FC0_0000u32,
        0x7F80_0001,
        0xFFC0_0000,
        0x7FFF_FFFF,
        0xFF80_0001,
    ] {
        let nan = f32::from_bits(bits);
        let b = half::bf16::from_bits(f32_to_bf16_bits(nan));
        let h = half::f16::from_bits(f32_to_f16_bits(nan));
        assert!(b.is_nan() && h.is_nan(), "{bits:#x} lost its NaN");
        assert_eq!(b.is_sign_negative(), nan.is_sign_negative());
    }
}

#[test]
fn f16_is_round_to_nearest_even() {
    // Ties between neighbouring f16 values (spacing 2^-10 at 1.0).
    assert_eq!(f32_to_f16_bits(1.0 + 2f32.powi(-11)), 0x3C00);
    assert_eq!(f32_to_f16_bits(1.0 + 3.0 * 2f32.powi(-11)), 0x3C02);
    assert_eq!(
        f32_to_f16_bits(1.0 + 2f32.powi(-11) + 2f32.powi(-20)),
        0x3C01
    );
    // 65504 is the largest f16; 65520 is the tie with 65536 (= inf) and rounds to even → inf.
    assert_eq!(f32_to_f16_bits(65504.0), 0x7BFF);
    assert_eq!(f32_to_f16_bits(65519.0), 0x7BFF);
    assert_eq!(f32_to_f16_bits(65520.0), 0x7C00);
    // Subnormals: 2^-24 is the smallest; 2^-25 is a tie with 0 → 0; 3·2^-25 is a tie → 2·2^-24.
    assert_eq!(f32_to_f16_bits(2f32.powi(-24)), 0x0001);
    assert_eq!(f32_to_f16_bits(2f32.powi(-25)), 0x0000);
    assert_eq!(f32_to_f16_bits(3.0 * 2f32.powi(-25)), 0x0002);
    assert_eq!(f32_to_f16_bits(-2.0), 0xC000);
}

#[test]
fn f16_round_trips_every_f16_value_and_rounds_midpoints_to_even() {
    for bits in 0..=0xFFFFu16 {
        let h = half::f16::from_bits(bits);
        if h.is_nan() {
            continue;
        }
        assert_eq!(f32_to_f16_bits(h.to_f32()), bits);
        // The midpoint to the next larger magnitude (finite, same sign) rounds to the even one.
        let next = half::f16::from_bits(bits.wrapping_add(1));
        if bits & 0x7FFF < 0x7BFF && !next.is_nan() {
            let mid = (h.to_f64() + next.to_f64()) / 2.0;
            let even = if bits & 1 == 0 { bits } else { bits + 1 };
            assert_eq!(
                f32_to_f16_bits(mid as f32),
                even,
                "midpoint above {bits:#06x}"
            );
        }
    }
}
