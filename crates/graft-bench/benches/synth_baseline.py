"""transformers' batched greedy `generate` on the prompts `graft bench synthesize` timed graft on.

Reads a JSON file {"model": dir, "prompts": [[ids]], "batch_size": B, "max_new_tokens": N,
"eos": [ids], "threads": T}; prints one JSON line {"tokens": generated, "seconds": s, "tok_s": r}.
Batches are formed like graft's (prompts sorted by length, longest first), left-padded as
transformers needs for batched generation, with an attention mask. Generated tokens are counted
per sequence up to (not including) its EOS, as graft counts them.
"""
import json
import sys
import time

import torch
from transformers import AutoModelForCausalLM


def main():
    spec = json.load(open(sys.argv[1]))
    torch.set_num_threads(spec["threads"])
    model = AutoModelForCausalLM.from_pretrained(spec["model"], torch_dtype=torch.float32)
    model.eval()
    eos = spec["eos"]
    prompts = sorted(spec["prompts"], key=len, reverse=True)
    b = spec["batch_size"]
    batches = [prompts[i : i + b] for i in range(0, len(prompts), b)]
    generated = 0
    start = time.perf_counter()
    with torch.inference_mode():
        for batch in batches:
            width = max(len(p) for p in batch)
            ids = torch.zeros((len(batch), width), dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for r, p in enumerate(batch):
                ids[r, width - len(p) :] = torch.tensor(p)
                mask[r, width - len(p) :] = 1
            out = model.generate(
                input_ids=ids,
                attention_mask=mask,
                do_sample=False,
                max_new_tokens=spec["max_new_tokens"],
                eos_token_id=eos,
                pad_token_id=eos[0],
            )
            for row in out[:, width:].tolist():
                n = next((k for k, t in enumerate(row) if t in eos), len(row))
                generated += n
    seconds = time.perf_counter() - start
    print(json.dumps({"tokens": generated, "seconds": seconds, "tok_s": generated / seconds}))


if __name__ == "__main__":
    main()
