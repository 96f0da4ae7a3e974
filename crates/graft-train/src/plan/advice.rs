//! Judging a [`PlanReport`]: does it fit, and what would it take otherwise; and its text form.

use std::fmt::Write;

use super::{MethodPlan, PlanReport};
use crate::recipe::Method;

/// `bytes` as GB (10⁹ bytes) with two decimals, e.g. "16.06 GB".
pub fn format_bytes(bytes: u64) -> String {
    format!("{:.2} GB", bytes as f64 / 1e9)
}

/// One sentence per verdict: the recipe's own setting first, then full training, then LoRA.
pub fn advise(r: &PlanReport) -> Vec<String> {
    let gpu = r.gpu_mem;
    let chosen = match r.method {
        Method::Full => &r.full,
        Method::Lora => &r.lora,
    };
    let ckpt = if r.activation_checkpointing {
        "on"
    } else {
        "off"
    };
    let verdict = if r.fits {
        format!("fits, {} headroom", format_bytes(r.headroom as u64))
    } else {
        "does NOT fit".into()
    };
    let mut out = vec![format!(
        "recipe ({}, activation checkpointing {ckpt}, ZeRO stage {}): {} per GPU of {} — {verdict} on each of {} data-parallel GPU(s)",
        chosen.label,
        stage_label(r),
        format_bytes(r.recipe_total_per_gpu),
        format_bytes(gpu),
        r.devices
    )];
    out.push(full_advice(r));
    out.push(lora_advice(&r.lora, gpu, r.activation_checkpointing));
    out
}

/// The recipe's ZeRO stage, saying so when one GPU leaves nothing to shard (the run then holds
/// everything whole, as at stage 0, and logs it).
fn stage_label(r: &PlanReport) -> String {
    match (r.zero_stage, r.devices) {
        (0, _) => "0".into(),
        (n, 1) => format!("{n}, on one GPU the same as 0"),
        (n, _) => n.to_string(),
    }
}

/// What full training needs on a GPU of `r.gpu_mem` bytes: the cheapest ZeRO stage that fits on
/// the recipe's devices, else how many devices each stage would need.
fn full_advice(r: &PlanReport) -> String {
    let (p, gpu, ckpt_on) = (&r.full, r.gpu_mem, r.activation_checkpointing);
    let fitting = p
        .stages
        .iter()
        .find(|s| s.total <= gpu)
        .map(|s| s.zero_stage);
    if let Some(stage) = fitting {
        let how = match stage {
            0 => "with replicated state (train.zero_stage = 0)".to_string(),
            n => format!("with train.zero_stage = {n} over {} GPU(s)", r.devices),
        };
        return format!(
            "full training fits ({} per GPU) {how}",
            format_bytes(p.stage_total(stage))
        );
    }
    if !ckpt_on && p.total(true) < p.total(false) {
        let with = p.total(true);
        if with <= gpu {
            return format!(
                "full training fits only with activation checkpointing ({} per GPU) — set train.activation_checkpointing = true",
                format_bytes(with)
            );
        }
    }
    let act = if ckpt_on {
        p.activations_checkpointed
    } else {
        p.activations
    };
    let micro = p.trainable_params * if r.dtype == "f32" { 4 } else { 2 };
    let overhead = if ckpt_on {
        p.overhead_checkpointed
    } else {
        p.overhead
    };
    let replicated = p.weights + p.adapters + act + overhead;
    // stage 1 shards the optimizer state; stage 2 also the f32 gradient sums (a micro-batch's
    // gradients stay whole); ZeRO-3/FSDP also the weights.
    let stage0 = &p.stages[0];
    let stages: [(u64, u64, &str); 2] = [
        (
            replicated + stage0.gradients,
            stage0.optimizer,
            "train.zero_stage = 1",
        ),
        (
            replicated + micro.min(stage0.gradients),
            stage0.optimizer + stage0.gradients.saturating_sub(micro),
            "train.zero_stage = 2",
        ),
    ];
    let options: Vec<String> = stages
        .into_iter()
        .filter_map(|(fixed, shardable, what)| {
            shards_needed(fixed, shardable, gpu).map(|n| format!("{what} over >= {n} GPUs"))
        })
        .collect();
    let need = format_bytes(p.stage_total(r.zero_stage));
    if !options.is_empty() {
        return format!(
            "full training needs {need} per GPU on {} GPU(s): it needs {}, or use LoRA",
            r.devices,
            options.join(", or ")
        );
    }
    format!(
        "full training does not fit even with sharded gradients and optimizer state: weights, activations and one micro-batch's gradients need more than the GPU — use LoRA, sharded weights (not in graft), or lower train.micro_batch_size / data.seq_len ({} of activations)",
        format_bytes(act)
    )
}

/// Whether LoRA fits, and how.
fn lora_advice(p: &MethodPlan, gpu: u64, ckpt_on: bool) -> String {
    let use_it = "use LoRA: train.method = \"lora\"";
    if p.total(false) <= gpu {
        format!(
            "{} fits ({} per GPU) — {use_it}",
            p.label,
            format_bytes(p.total(false))
        )
    } else if p.total(true) <= gpu {
        let how = if ckpt_on {
            ""
        } else {
            " and train.activation_checkpointing = true"
        };
        format!(
            "{} fits with activation checkpointing ({} per GPU) — {use_it}{how}",
            p.label,
            format_bytes(p.total(true))
        )
    } else {
        format!(
            "{} does not fit either ({} per GPU with checkpointing) — lower train.micro_batch_size or data.seq_len",
            p.label,
            format_bytes(p.total(true))
        )
    }
}

/// The smallest `n` with `fixed + shardable / n <= gpu`, if any.
fn shards_needed(fixed: u64, shardable: u64, gpu: u64) -> Option<u64> {
    (fixed < gpu).then(|| shardable.div_ceil(gpu - fixed).max(2))
}

/// The report as an aligned text table followed by the advice.
pub fn render_text(r: &PlanReport) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "model          {}", r.model);
    let _ = writeln!(
        s,
        "parameters     {} ({:.2} B), {} weights, AdamW moments in {}",
        r.params,
        r.params as f64 / 1e9,
        r.dtype,
        r.optimizer_state_dtype
    );
    let _ = writeln!(
        s,
        "per GPU        micro-batch {} x {} tokens, grad_accum {}, {} GPU(s) of {} (data-parallel, ZeRO stage {})\n",
        r.micro_batch_size,
        r.seq_len,
        r.grad_accum,
        r.devices,
        format_bytes(r.gpu_mem),
        stage_label(r)
    );
    let (f, l) = (&r.full, &r.lora);
    let overhead = |p: &MethodPlan| {
        if r.activation_checkpointing {
            p.overhead_checkpointed
        } else {
            p.overhead
        }
    };
    let _ = writeln!(s, "{:<34}{:>14}   {}", "", "full", l.label);
    let rows: [(&str, u64, u64); 10] = [
        (
            "trainable parameters",
            f.trainable_params,
            l.trainable_params,
        ),
        ("weights", f.weights, l.weights),
        ("adapters", f.adapters, l.adapters),
        ("gradients", f.gradients, l.gradients),
        ("optimizer state (AdamW)", f.optimizer, l.optimizer),
        ("activations", f.activations, l.activations),
        (
            "activations, checkpointed",
            f.activations_checkpointed,
            l.activations_checkpointed,
        ),
        (
            "  of which logits/loss buffer",
            f.logits_buffer,
            l.logits_buffer,
        ),
        ("optimizer step + runtime", overhead(f), overhead(l)),
        ("total", f.total(false), l.total(false)),
    ];
    for (i, (name, a, b)) in rows.into_iter().enumerate() {
        let (a, b) = if i == 0 {
            (a.to_string(), b.to_string())
        } else {
            (format_bytes(a), format_bytes(b))
        };
        let _ = writeln!(s, "{name:<34}{a:>14}   {b}");
    }
    let total_ckpt = format!(
        "{:<34}{:>14}   {}",
        "total, checkpointed",
        format_bytes(f.total(true)),
        format_bytes(l.total(true))
    );
    let fits = |p: &MethodPlan, c: bool| if p.total(c) <= r.gpu_mem { "yes" } else { "no" };
    let _ = writeln!(s, "{total_ckpt}");
    let ckpt = if r.activation_checkpointing {
        "on"
    } else {
        "off"
    };
    for stage in 0..=2u8 {
        let _ = writeln!(
            s,
            "{:<34}{:>14}   {}",
            format!("total, ZeRO-{stage} (checkpointing {ckpt})"),
            format_bytes(f.stage_total(stage)),
            format_bytes(l.stage_total(stage))
        );
    }
    let _ = writeln!(
        s,
        "{:<34}{:>14}   {}",
        format!("fits {}?", format_bytes(r.gpu_mem)),
        fits(f, false),
        fits(l, false)
    );
    let _ = writeln!(
        s,
        "{:<34}{:>14}   {}\n",
        "fits, checkpointed?",
        fits(f, true),
        fits(l, true)
    );
    for line in &r.advice {
        let _ = writeln!(s, "- {line}");
    }
    s
}
