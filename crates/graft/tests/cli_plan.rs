//! `graft plan` end to end: the Llama-3-8B figures (16 GB bf16 weights, 96 GB AdamW state, and
//! the gradients graft holds: f32 sums plus a micro-batch's bf16 gradients), JSON output, ZeRO
//! stages, the shipped 8B recipe on 4 × 80 GB with `--config`, the fit verdict and errors.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// config.json of meta-llama/Meta-Llama-3-8B.
const LLAMA3_8B: &str = r#"{
  "architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
  "bos_token_id": 128000, "eos_token_id": 128001, "hidden_act": "silu", "hidden_size": 4096,
  "initializer_range": 0.02, "intermediate_size": 14336, "max_position_embeddings": 8192,
  "model_type": "llama", "num_attention_heads": 32, "num_hidden_layers": 32,
  "num_key_value_heads": 8, "pretraining_tp": 1, "rms_norm_eps": 1e-05, "rope_scaling": null,
  "rope_theta": 500000.0, "tie_word_embeddings": false, "torch_dtype": "bfloat16",
  "transformers_version": "4.40.0.dev0", "use_cache": true, "vocab_size": 128256
}"#;

fn setup() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("Meta-Llama-3-8B")).unwrap();
    std::fs::write(dir.path().join("Meta-Llama-3-8B/config.json"), LLAMA3_8B).unwrap();
    std::fs::write(dir.path().join("web.jsonl"), "{}\n").unwrap();
    let recipe = "name = \"biomed-8b\"\n[model]\nbase = \"Meta-Llama-3-8B\"\ndtype = \"bf16\"\n[data]\nseq_len = 4096\n\
                  [[data.sources]]\nname = \"web\"\npath = \"web.jsonl\"\n[train]\nmicro_batch_size = 1\n\
                  grad_accum = 16\nsteps = 4000\nlr = 1e-5\n";
    let path = dir.path().join("recipe.toml");
    std::fs::write(&path, recipe).unwrap();
    (dir, path)
}

fn graft(args: &[&str], recipe: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_graft"))
        .arg("plan")
        .arg(recipe)
        .args(args)
        .output()
        .unwrap()
}

/// The value column(s) of the table row starting with `label`.
fn row<'a>(text: &'a str, label: &str) -> &'a str {
    text.lines()
        .find(|l| l.starts_with(label))
        .unwrap_or_else(|| panic!("no row {label:?} in\n{text}"))[label.len()..]
        .trim()
}

#[test]
fn llama3_8b_table() {
    let (_d, recipe) = setup();
    let out = graft(&["--gpu-mem", "80GB", "--devices", "4"], &recipe);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        row(&text, "parameters").starts_with("8030261248 (8.03 B), bf16 weights"),
        "{text}"
    );
    assert!(row(&text, "weights").starts_with("16.06 GB"), "{text}");
    assert!(row(&text, "gradients").starts_with("48.18 GB"), "{text}");
    assert!(
        row(&text, "optimizer state (AdamW)").starts_with("96.36 GB"),
        "{text}"
    );
    assert!(
        row(&text, "  of which logits/loss buffer").starts_with("5.96 GB"),
        "{text}"
    );
    // flash attention, the fused chunked loss and per-layer checkpointing: seq 4096, micro-batch 1
    let ckpt: f64 = row(&text, "activations, checkpointed")
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        ckpt <= 10.0,
        "checkpointed activations {ckpt} GB > 10 GB\n{text}"
    );
    assert!(text.contains("4 GPU(s) of 80.00 GB"), "{text}");
    assert_eq!(
        row(&text, "fits 80.00 GB?").split_whitespace().next(),
        Some("no"),
        "{text}"
    );
    assert!(
        text.contains("does NOT fit")
            && text.contains("train.zero_stage = 2 over >= ")
            && text.contains("use LoRA"),
        "{text}"
    );
}

#[test]
fn json_report() {
    let (_d, recipe) = setup();
    let out = graft(&["--json", "--gpu-mem", "141GB"], &recipe);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["params"], 8_030_261_248u64);
    assert_eq!(v["full"]["weights"], 16_060_522_496u64);
    assert_eq!(v["full"]["gradients"], 48_181_567_488u64);
    assert_eq!(v["full"]["optimizer"], 96_363_134_976u64);
    assert_eq!(v["gpu_mem"], 141_000_000_000u64);
    assert_eq!(v["devices"], 1);
    assert!(v["advice"].as_array().unwrap().len() == 3);
    assert_eq!(v["zero_stage"], 0);
    assert_eq!(v["fits"], false);
    let total = v["recipe_total_per_gpu"].as_u64().unwrap();
    assert!(total > 141_000_000_000, "{v}");
    assert_eq!(v["full"]["stages"][0]["total"], total);
}

/// Issue 11: the shipped 8B recipe (full training, ZeRO-2, 4 devices, checkpointing) planned from
/// a bare config.json before any weights are downloaded fits 4 × 80 GB with >= 8 GB headroom.
#[test]
fn shipped_8b_recipes_fit_four_80gb_gpus_at_zero_stage_2() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.json");
    std::fs::write(&config, LLAMA3_8B).unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    for name in ["biomedicine-llama3-8b", "finance-llama3-8b"] {
        let recipe = root.join(format!("recipes/{name}.toml"));
        let args = ["--json", "--gpu-mem", "80GB", "--config"];
        let out = graft(&[&args[..], &[config.to_str().unwrap()]].concat(), &recipe);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            (v["method"].as_str(), v["zero_stage"].as_u64()),
            (Some("full"), Some(2))
        );
        assert_eq!(v["devices"], 4, "{name}");
        assert_eq!(v["fits"], true, "{name}: {v}");
        let headroom = 80_000_000_000 - v["recipe_total_per_gpu"].as_i64().unwrap();
        assert!(
            headroom >= 8_000_000_000,
            "{name}: {headroom} bytes of headroom"
        );
        assert_eq!(v["headroom"], headroom);
    }
    let out = graft(
        &["--config", "/no/such/config.json"],
        &root.join("recipes/biomedicine-llama3-8b.toml"),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--config") && err.contains("/no/such/config.json"),
        "{err}"
    );
}

#[test]
fn bad_input_is_named() {
    let (dir, recipe) = setup();
    let out = graft(&["--gpu-mem", "lots"], &recipe);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--gpu-mem") && err.contains("lots"), "{err}");

    std::fs::remove_file(dir.path().join("Meta-Llama-3-8B/config.json")).unwrap();
    let out = graft(&[], &recipe);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("config.json"), "{err}");
}

/// A Hub endpoint on loopback that serves `files` of one repo at commit `abc123` (as the Hub
/// answers hf-hub: `etag`, `x-repo-commit`, ranges) and records every path asked for.
fn fake_hub(
    files: Vec<(String, Vec<u8>)>,
) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let asked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = asked.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let (mut request, mut range) = (String::new(), None);
            reader.read_line(&mut request).unwrap();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap() == 0 || line.trim().is_empty() {
                    break;
                }
                let lower = line.to_ascii_lowercase();
                if let Some(r) = lower.strip_prefix("range: bytes=") {
                    let (a, b) = r.trim().split_once('-').unwrap();
                    range = Some((a.parse::<usize>().unwrap(), b.parse::<usize>().ok()));
                }
            }
            let path = request.split_whitespace().nth(1).unwrap_or("").to_string();
            log.lock().unwrap().push(path.clone());
            let file = files.iter().find(|(p, _)| *p == path);
            let head = match (file, range) {
                (None, _) => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n".to_string(),
                (Some((_, body)), r) => {
                    let (a, b) = r.unwrap_or((0, None));
                    let b = b.unwrap_or(body.len() - 1).min(body.len() - 1);
                    let part = &body[a..=b];
                    let head = format!(
                        "HTTP/1.1 206 Partial Content\r\netag: \"e1\"\r\nx-repo-commit: abc123\r\n\
                         content-range: bytes {a}-{b}/{}\r\nContent-Length: {}\r\n",
                        body.len(),
                        part.len()
                    );
                    let _ = stream.write_all(format!("{head}Connection: close\r\n\r\n").as_bytes());
                    let _ = stream.write_all(part);
                    continue;
                }
            };
            let _ = stream.write_all(format!("{head}Connection: close\r\n\r\n").as_bytes());
        }
    });
    (url, asked)
}

/// `graft plan` of a recipe whose base is a Hub id: from the HF cache when it holds
/// `config.json` (no weights), else fetching `config.json` alone; offline and absent, a clear
/// error. No network: the cache is a temporary directory and the Hub a loopback endpoint.
#[test]
fn a_hub_base_plans_from_its_config_alone() {
    let (dir, _) = setup();
    let recipe = dir.path().join("hub.toml");
    let text = std::fs::read_to_string(dir.path().join("recipe.toml")).unwrap();
    std::fs::write(
        &recipe,
        text.replace("\"Meta-Llama-3-8B\"", "\"meta-llama/Meta-Llama-3-8B\""),
    )
    .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let plan = |env: &[(&str, &str)]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_graft"));
        cmd.arg("plan")
            .arg(&recipe)
            .env("HF_HUB_CACHE", cache.path())
            .env_remove("HF_HUB_OFFLINE");
        cmd.envs(env.iter().copied()).output().unwrap()
    };

    // not cached and offline: the error names the cache
    let out = plan(&[("HF_HUB_OFFLINE", "1")]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success() && err.contains("HF cache"), "{err}");

    // not cached: config.json alone is fetched
    let config = "/meta-llama/Meta-Llama-3-8B/resolve/main/config.json".to_string();
    let (url, asked) = fake_hub(vec![(config.clone(), LLAMA3_8B.as_bytes().to_vec())]);
    let out = plan(&[("HF_ENDPOINT", url.as_str())]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(row(&text, "parameters").starts_with("8030261248"), "{text}");
    assert!(
        asked.lock().unwrap().iter().all(|p| *p == config),
        "{:?}",
        asked.lock().unwrap()
    );
    let snapshot = cache
        .path()
        .join("models--meta-llama--Meta-Llama-3-8B/snapshots/abc123");
    let cached: Vec<_> = std::fs::read_dir(&snapshot)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(cached, ["config.json"]);

    // cached (config only, no weights): planned offline from the cache
    let out = plan(&[("HF_HUB_OFFLINE", "1")]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("meta-llama/Meta-Llama-3-8B") && text.contains("abc123/config.json"),
        "{text}"
    );
}
