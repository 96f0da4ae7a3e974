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
    let need = chosen.total(r.activation_checkpointing);
    let ckpt = if r.activation_checkpointing {
        "on"
    } else {
        "off"
    };
    let verdict = if need <= gpu { "fits" } else { "does NOT fit" };
    let mut out = vec![format!(
        "recipe ({}, activation checkpointing {ckpt}): {} per GPU of {} — {verdict} on each of {} data-parallel GPU(s) with replicated state",
        chosen.label,
        format_bytes(need),
        format_bytes(gpu),
        r.devices
    )];
    out.push(full_advice(&r.full, gpu, r.activation_checkpointing));
    out.push(lora_advice(&r.lora, gpu, r.activation_checkpointing));
    out
}

/// What full training needs on a GPU of `gpu` bytes.
fn full_advice(p: &MethodPlan, gpu: u64, ckpt_on: bool) -> String {
    if p.total(false) <= gpu {
        return format!(
            "full training fits ({} per GPU) with replicated state",
            format_bytes(p.total(false))
        );
    }
    if p.total(true) <= gpu {
        let how = if ckpt_on {
            "(on in the recipe)"
        } else {
            "— set train.activation_checkpointing = true"
        };
        return format!(
            "full training fits only with activation checkpointing ({} per GPU) {how}",
            format_bytes(p.total(true))
        );
    }
    let act = p.activations_checkpointed;
    let need = format_bytes(p.total(true));
    // ZeRO-1: only the optimizer state is split; ZeRO-2: gradients too; ZeRO-3/FSDP: everything.
    let stages: [(u64, u64, &str); 3] = [
        (
            p.weights + p.adapters + p.gradients + act,
            p.optimizer,
            "optimizer-state sharding (ZeRO-1)",
        ),
        (
            p.weights + p.adapters + act,
            p.gradients + p.optimizer,
            "gradient + optimizer-state sharding (ZeRO-2)",
        ),
        (
            act,
            p.state(),
            "sharding of weights, gradients and optimizer state (FSDP / ZeRO-3)",
        ),
    ];
    let options: Vec<String> = stages
        .into_iter()
        .filter_map(|(fixed, shardable, what)| {
            shards_needed(fixed, shardable, gpu).map(|n| format!("{what} over >= {n} GPUs"))
        })
        .collect();
    if !options.is_empty() {
        return format!(
            "full training needs {need} per GPU even with activation checkpointing: it needs {} \
             (graft's data parallelism replicates state, so use LoRA or a larger GPU)",
            options.join(", or ")
        );
    }
    format!(
        "full training does not fit: the activations alone ({}) exceed the GPU — lower train.micro_batch_size or data.seq_len",
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
        "per GPU        micro-batch {} x {} tokens, grad_accum {}, {} GPU(s) of {} (data-parallel, replicated state)\n",
        r.micro_batch_size,
        r.seq_len,
        r.grad_accum,
        r.devices,
        format_bytes(r.gpu_mem)
    );
    let (f, l) = (&r.full, &r.lora);
    let _ = writeln!(s, "{:<34}{:>14}   {}", "", "full", l.label);
    let rows: [(&str, u64, u64); 9] = [
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
