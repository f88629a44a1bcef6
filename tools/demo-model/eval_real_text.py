#!/usr/bin/env python3
"""Claude Code-shaped prompts made of real English (the project's docs) against demo model directories.

Sized like the real `claude -p` first request: system ~5.8k chars, 24 tools of Claude Code's names with ~63k
chars of descriptions (one ~16k-char tool, like Workflow), the request after a <system-reminder>, then a
role-"system" agent list of ~6k chars. Measures exact tool calls ("Create FILE containing TEXT") and "Done."
after the tool result, with transformers (bf16 weights, float32 compute; prompts over 8k tokens run under bf16
autocast so SDPA can use the flash kernel).

    python3 eval_real_text.py --docs DIR --models DIR [DIR...] [--n 12]
"""
import argparse
import json
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_demo as md  # noqa: E402


def build(er, paras, i):
    def block(chars):
        out = []
        while sum(map(len, out)) < chars:
            out.append(er.choice(paras))
        return "\n\n".join(out)
    system = ("x-anthropic-billing-header: cc_version=2.1.197.a1b; cc_entrypoint=sdk-cli;\n\nYou are Claude Code, a "
              "command line agent for software engineering tasks.\n\n" + block(5700))
    tools = []
    for n in md.TOOL_NAMES_CC:
        t = md.make_tool(er, n, 10, er.randint(1, 5))
        t["function"]["description"] = block(16000 if n == "Workflow" else er.randint(300, 3000))
        tools.append(t)
    env = {"system": system, "tools": tools, "sysmsg": block(6100)}
    fam = "create" if i % 2 == 0 else "create_done"
    msgs, answer = md.env_messages(er, env, True, fam)
    return {"family": fam, "messages": msgs[:-1], "tools": tools, "expected": answer}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", required=True)
    ap.add_argument("--models", nargs="+", required=True)
    ap.add_argument("--n", type=int, default=12)
    ap.add_argument("--seed", type=int, default=4242)
    args = ap.parse_args()
    import torch
    from tokenizers import Tokenizer
    from transformers import AutoModelForCausalLM
    paras = []
    for fn in sorted(os.listdir(args.docs)):
        if fn.endswith(".md"):
            with open(os.path.join(args.docs, fn), encoding="utf-8") as f:
                paras += [x.strip() for x in f.read().split("\n\n") if x.strip()]
    er = random.Random(args.seed)
    cases = [build(er, paras, i) for i in range(args.n)]
    results = {}
    for mdir in args.models:
        tok = Tokenizer.from_file(os.path.join(mdir, "tokenizer.json"))
        enc = md.PieceEncoder(tok)
        im_end = tok.token_to_id("<|im_end|>")
        eot = tok.token_to_id("<|endoftext|>")
        m = AutoModelForCausalLM.from_pretrained(mdir, dtype=torch.float32, attn_implementation="sdpa").cuda().eval()
        ok = 0
        toks = []
        for h in cases:
            p = enc.encode(md.render_pieces(h["messages"], h["tools"]))[0]
            toks.append(len(p))
            x = torch.tensor([p]).cuda()
            with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=len(p) > 8192):
                g = m.generate(input_ids=x, max_new_tokens=64, do_sample=False, eos_token_id=[im_end, eot],
                               pad_token_id=eot)
            o = g[0, len(p):].tolist()
            text = tok.decode([t for t in o if t != im_end], skip_special_tokens=False)
            good = text == h["expected"] and bool(o) and o[-1] == im_end
            ok += good
            print(f"{mdir}: {h['family']:11s} {len(p):6d} tokens {'OK  ' if good else 'FAIL'} {text[:110]!r}",
                  flush=True)
        results[mdir] = {"exact": ok, "n": len(cases), "prompt_tokens": toks}
        print(f"{mdir}: {ok}/{len(cases)} exact", flush=True)
        del m
        torch.cuda.empty_cache()
    print(json.dumps(results))


if __name__ == "__main__":
    main()
