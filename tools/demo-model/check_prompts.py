#!/usr/bin/env python3
"""Greedy continuation of given prompt token ids with transformers, to tell a model error from an engine error.

Input: JSON lines with "tokens" (prompt ids, e.g. from `pensieve serve --log-prompts FILE`). For each line it
runs the model (bf16 file, float32 compute, as the fixtures of make_demo.py) greedily for --max-new tokens,
prints the ids and the decoded text, and for each generated position the top-5 candidates with their logits, so
a near-tie (where engine rounding may legitimately pick the other token) is visible.

    python3 check_prompts.py --model models/demo --prompts prompts.jsonl [--max-new 40] [--bf16]
"""
import argparse
import json

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--prompts", required=True)
    ap.add_argument("--max-new", type=int, default=40)
    ap.add_argument("--bf16", action="store_true", help="compute in bf16 instead of float32")
    args = ap.parse_args()
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if args.bf16 else torch.float32
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=dtype).to(dev).eval()
    tok = AutoTokenizer.from_pretrained(args.model)
    eos = set(model.generation_config.eos_token_id if isinstance(model.generation_config.eos_token_id, list)
              else [model.generation_config.eos_token_id])
    with open(args.prompts) as f:
        rows = [json.loads(l) for l in f if l.strip()]
    for n, r in enumerate(rows):
        ids = torch.tensor([r["tokens"]], device=dev)
        out = []
        with torch.no_grad():
            o = model(ids, use_cache=True)
            past, logits = o.past_key_values, o.logits[0, -1].float()
            for _ in range(args.max_new):
                top = torch.topk(logits, 5)
                nxt = int(top.indices[0])
                out.append(nxt)
                cands = ", ".join(f"{tok.decode([int(i)])!r}:{float(v):.3f}" for v, i in zip(top.values, top.indices))
                print(f"  step {len(out) - 1}: {cands}")
                if nxt in eos:
                    break
                o = model(torch.tensor([[nxt]], device=dev), past_key_values=past, use_cache=True)
                past, logits = o.past_key_values, o.logits[0, -1].float()
        print(f"prompt {n}: {len(r['tokens'])} tokens -> ids {' '.join(map(str, out))}")
        print(f"prompt {n}: text {tok.decode(out)!r}", flush=True)


if __name__ == "__main__":
    main()
