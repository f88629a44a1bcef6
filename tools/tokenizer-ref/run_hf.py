#!/usr/bin/env python3
"""Runs Hugging Face tokenizers over the corpus and writes the expected outputs.

For each tokenizer directory (tokenizer.json or tokenizer.json.gz + tokenizer_config.json) this loads
`transformers.AutoTokenizer.from_pretrained(dir)` (the fast tokenizer, honouring tokenizer_config.json) and writes
<out>/<name>.expected.jsonl.gz: one JSON line per corpus line, same order:
    {"ids": tok.encode(text), "ids_nospecial": tok.encode(text, add_special_tokens=False),
     "decoded": tok.decode(ids_nospecial)}
and <out>/<name>.info.json: the class and settings used, versions, and a comparison with the bare
`tokenizers.Tokenizer.from_file(tokenizer.json)`; where the two disagree on anything, the bare library's
outputs are written too, as <name>.raw.expected.jsonl.gz (same line format), and the differences are counted.

    python3 run_hf.py --data /work/shared/data --corpus tests/fixtures/tokenizer/corpus.jsonl \
        --out tests/fixtures/tokenizer [--extra NAME=DIR ...]
"""
import argparse
import gzip
import io
import json
import os
import shutil
import tempfile

import tokenizers
import transformers
from tokenizers import Tokenizer
from transformers import AutoTokenizer

SOURCES = {
    "llama-3.1": "tokenizers/llama-3.1",
    "qwen3": "tokenizers/qwen3",
    "mistral-7b-v0.1": "tokenizers/mistral-7b-v0.1",
    "stories260K": "models/stories260K/stories260K-hf",
}
TOKENIZER_FILES = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                   "chat_template.jinja"]


def stage(src, dst):
    """Copies only the tokenizer files (decompressing tokenizer.json.gz) so nothing else steers AutoTokenizer."""
    os.makedirs(dst, exist_ok=True)
    for f in TOKENIZER_FILES:
        p = os.path.join(src, f)
        if os.path.exists(p):
            shutil.copy(p, os.path.join(dst, f))
        elif os.path.exists(p + ".gz"):
            with gzip.open(p + ".gz", "rb") as i, open(os.path.join(dst, f), "wb") as o:
                shutil.copyfileobj(i, o)
    assert os.path.exists(os.path.join(dst, "tokenizer.json")), f"no tokenizer.json in {src}"


def write_jsonl_gz(path, rows):
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as g:
        for r in rows:
            g.write((json.dumps(r, ensure_ascii=False) + "\n").encode("utf-8"))
    with open(path, "wb") as f:
        f.write(buf.getvalue())


def settings(tok):
    keys = ["add_bos_token", "add_eos_token", "add_prefix_space", "legacy", "clean_up_tokenization_spaces",
            "split_special_tokens", "model_max_length", "padding_side"]
    out = {"class": type(tok).__name__, "is_fast": getattr(tok, "is_fast", None)}
    for k in keys:
        v = getattr(tok, k, None)
        if v is None:
            v = tok.init_kwargs.get(k)
        try:
            json.dumps(v)
        except TypeError:
            v = repr(v)
        out[k] = v
    # What encode() adds, measured (attribute values can be misleading across transformers versions).
    with_sp = tok.encode("a")
    without = tok.encode("a", add_special_tokens=False)
    k = with_sp.index(without[0]) if without and without[0] in with_sp else 0
    out["encode_adds_prefix_ids"] = with_sp[:k]
    out["encode_adds_suffix_ids"] = with_sp[k + len(without):]
    out["bos_token"] = tok.bos_token
    out["eos_token"] = tok.eos_token
    out["unk_token"] = tok.unk_token
    out["vocab_size_with_added"] = len(tok)
    out["tokenizer_class_in_config"] = tok.init_kwargs.get("tokenizer_class")
    return out


def run_one(name, src, texts, outdir):
    tmp = tempfile.mkdtemp(prefix="tok_" + name)
    stage(src, tmp)
    tok = AutoTokenizer.from_pretrained(tmp)
    raw = Tokenizer.from_file(os.path.join(tmp, "tokenizer.json"))
    rows, raw_rows = [], []
    diff = {"ids": 0, "ids_nospecial": 0, "decoded": 0}
    examples = []
    roundtrip = 0
    for i, text in enumerate(texts):
        ids = tok.encode(text)
        ids_ns = tok.encode(text, add_special_tokens=False)
        dec = tok.decode(ids_ns)
        rows.append({"ids": ids, "ids_nospecial": ids_ns, "decoded": dec})
        r_ids = raw.encode(text).ids
        r_ns = raw.encode(text, add_special_tokens=False).ids
        r_dec = raw.decode(r_ns, skip_special_tokens=False)
        raw_rows.append({"ids": r_ids, "ids_nospecial": r_ns, "decoded": r_dec})
        for k, a, b in (("ids", ids, r_ids), ("ids_nospecial", ids_ns, r_ns), ("decoded", dec, r_dec)):
            if a != b:
                diff[k] += 1
                if len(examples) < 8:
                    examples.append({"line": i, "field": k, "text": text[:120], "auto": a if k == "decoded" else a[:40],
                                     "raw": b if k == "decoded" else b[:40]})
        roundtrip += dec == text
    write_jsonl_gz(os.path.join(outdir, f"{name}.expected.jsonl.gz"), rows)
    wrote_raw = any(diff.values())
    if wrote_raw:
        write_jsonl_gz(os.path.join(outdir, f"{name}.raw.expected.jsonl.gz"), raw_rows)
    info = {
        "name": name,
        "source": os.path.relpath(src) if os.path.isabs(src) else src,  # never a path of the machine it ran on
        "loader": "transformers.AutoTokenizer.from_pretrained(dir) with only the tokenizer files in dir",
        "settings": settings(tok),
        "transformers_version": transformers.__version__,
        "tokenizers_version": tokenizers.__version__,
        "n_strings": len(texts),
        "decode_equals_input": roundtrip,
        "bare_tokenizers_library_differs": diff,
        "bare_differences_examples": examples,
        "raw_expected_file": f"{name}.raw.expected.jsonl.gz" if wrote_raw else None,
    }
    with open(os.path.join(outdir, f"{name}.info.json"), "w") as f:
        json.dump(info, f, indent=2, ensure_ascii=False)
        f.write("\n")
    shutil.rmtree(tmp)
    print(f"{name}: {type(tok).__name__} {len(texts)} strings, decode==input {roundtrip}, auto-vs-bare diffs {diff}",
          flush=True)
    for e in examples:
        print("   ", json.dumps(e, ensure_ascii=False)[:400], flush=True)
    return info


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True, help="the shared data root (holds tokenizers/ and models/)")
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--only", nargs="*", default=None)
    ap.add_argument("--extra", nargs="*", default=[], help="NAME=DIR tokenizers to run as well (e.g. the demo model)")
    args = ap.parse_args()
    with open(args.corpus, encoding="utf-8") as f:
        texts = [json.loads(l)["text"] for l in f]
    os.makedirs(args.out, exist_ok=True)
    todo = {k: os.path.join(args.data, v) for k, v in SOURCES.items()}
    for e in args.extra:
        k, v = e.split("=", 1)
        todo[k] = v
    print(f"transformers {transformers.__version__} tokenizers {tokenizers.__version__}", flush=True)
    for name, src in todo.items():
        if args.only and name not in args.only:
            continue
        run_one(name, src, texts, args.out)


if __name__ == "__main__":
    main()
