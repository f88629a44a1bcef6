#!/usr/bin/env python3
"""How far PyTorch in bf16 on the GPU is from each golden fixture: the bar the CUDA backend is held to for
bf16 and quantized weights (issue: "no worse than PyTorch computing the same fixture in bf16 on the same GPU").

For every case of tests/fixtures/golden/manifest.json this loads the case's own files (quantized ones through
make_golden.py's independent reader and MLX dequantizer, i.e. exactly scale*q+bias), builds the model with
transformers in bfloat16 on the GPU (sdpa attention, as a user would run it), feeds the fixture's prompt and
its decode ids through the KV cache, and compares every logits row with the fixture's float64 reference:
relative L2 per row (max over the prefill rows, max over the decode rows) and top-1 agreement.

Run on the accelerator machine:
    python3 tools/golden/torch_bf16.py --fixtures tests/fixtures/golden --out tests/fixtures/golden/torch_bf16.json
"""
import argparse
import json
import os
import sys

import numpy as np
import torch
import transformers
from transformers import AutoConfig, AutoModelForCausalLM

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_golden import read_safetensors, unpack_dequantize  # noqa: E402


def weights_of(case_dir, cfg):
    raw = read_safetensors(os.path.join(case_dir, "model.safetensors"))
    q = cfg.get("quantization")
    out = {}
    for k, v in raw.items():
        if k.endswith(".scales") or k.endswith(".biases"):
            continue
        if q and v.dtype == np.uint32:
            mod = k[: -len(".weight")]
            v = unpack_dequantize(v, raw[mod + ".scales"], raw[mod + ".biases"], q["group_size"], q["bits"])
        out[k] = torch.from_numpy(np.asarray(v, dtype=np.float32))
    return out


def rel_l2(a, b):
    a = a.double()
    b = b.double()
    return ((a - b).norm(dim=-1) / b.norm(dim=-1))


@torch.no_grad()
def run(case_dir):
    with open(os.path.join(case_dir, "config.json")) as f:
        cfg = json.load(f)
    config = AutoConfig.from_pretrained(case_dir)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    sd = weights_of(case_dir, cfg)
    missing, unexpected = model.load_state_dict({k: v.to(torch.bfloat16) for k, v in sd.items()}, strict=False)
    missing = [m for m in missing if not (m == "lm_head.weight" and config.tie_word_embeddings)]
    assert not missing and not unexpected, (missing, unexpected)
    if config.tie_word_embeddings:
        model.tie_weights()
    model = model.cuda().eval()
    exp = read_safetensors(os.path.join(case_dir, "expected.safetensors"))
    prompt = torch.from_numpy(exp["prompt_ids"].astype(np.int64)).cuda()
    out = model(input_ids=prompt[None], use_cache=True)
    pre = out.logits[0].float().cpu()
    past = out.past_key_values
    dec = []
    for tok in exp["decode_ids"].astype(np.int64):
        out = model(input_ids=torch.tensor([[int(tok)]], device="cuda"), past_key_values=past, use_cache=True)
        past = out.past_key_values
        dec.append(out.logits[0, -1].float().cpu())
    dec = torch.stack(dec)
    want_pre = torch.from_numpy(exp["prefill_logits"])
    want_dec = torch.from_numpy(exp["decode_logits"])
    top1 = float(torch.cat([(pre.argmax(-1) == want_pre.argmax(-1)), (dec.argmax(-1) == want_dec.argmax(-1))])
                 .float().mean())
    return {
        "prefill_max_rel_l2": float(rel_l2(pre, want_pre).max()),
        "decode_max_rel_l2": float(rel_l2(dec, want_dec).max()),
        "top1_agreement": top1,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fixtures", default="tests/fixtures/golden")
    ap.add_argument("--out", default="tests/fixtures/golden/torch_bf16.json")
    a = ap.parse_args()
    with open(os.path.join(a.fixtures, "manifest.json")) as f:
        manifest = json.load(f)
    result = {
        "generator": "tools/golden/torch_bf16.py",
        "torch_version": torch.__version__,
        "transformers_version": transformers.__version__,
        "device": torch.cuda.get_device_name(0),
        "what": "PyTorch bf16 weights and activations on the GPU vs the fixture's float64 reference; "
                "max relative L2 per logits row (prefill rows, decode rows), top-1 agreement over all rows",
        "cases": {},
    }
    for c in manifest["cases"]:
        r = run(os.path.join(a.fixtures, c["name"]))
        result["cases"][c["name"]] = r
        print(f"{c['name']:20s} prefill {r['prefill_max_rel_l2']:.4f} decode {r['decode_max_rel_l2']:.4f} "
              f"top1 {r['top1_agreement']:.3f}", flush=True)
    with open(a.out, "w") as f:
        json.dump(result, f, indent=2, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
