#!/usr/bin/env python3
"""Seed corpora for the tokenizer fuzz targets, cut from the real files in the test data folder.

fuzz/tokenizer/corpus/tokenizer_json/ (fuzz_tokenizer_json): the tokenizer.json of stories260K, Llama 3.1, Qwen3
and Mistral 7B with their vocabularies cut to the first N entries (added tokens renumbered after them, merges
kept where both halves and the result survive), normalizer / pre-tokenizer / decoder / post-processor as they
are. Some seeds carry "\\0" + a string from the llama.cpp vocab test inputs, the target's text to encode.

fuzz/tokenizer/corpus/gguf_vocab/ (fuzz_gguf_vocab): vocab-only GGUF files (no tensors; general.architecture,
general.name and every tokenizer.* key) from llama.cpp's ggml-vocab-*.gguf and stories260K's GGUF, with the
token arrays cut the same way (control and user-defined tokens past the cut kept and renumbered; the special
token ids follow them).

Why cut: libFuzzer mutates small inputs far better than 2-10 MB ones; the seeds keep each real file's structure
(which keys, which pre-tokenizer, byte fallback or byte-level) and a working vocabulary, so mutations start
from inputs that load and encode. Standard library only, deterministic.

Usage: python3 tools/fuzz-seeds/make_seeds.py [DATA]   (DATA: $PENSIEVE_TEST_DATA, else ../shared/data)
"""
import gzip
import json
import os
import struct
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("PENSIEVE_TEST_DATA") or os.path.join(ROOT, "..", "shared", "data")
OUT = os.path.join(ROOT, "fuzz", "tokenizer", "corpus")
KEEP = 320        # vocabulary entries kept from the start of each vocabulary (byte-level BPE: the 256 bytes first)
KEEP_SPM = 384    # SentencePiece-style vocabularies spend 259 entries on specials and <0xNN>: keep more pieces
KEEP_EXTRA = 12   # control / added tokens past the cut kept (renumbered after it)
SEP = "\n__ggml_vocab_test__\n"


def vocab_test_strings():
    with open(os.path.join(DATA, "vocab", "ggml-vocab-llama-bpe.gguf.inp"), encoding="utf-8") as f:
        return [s for s in f.read().split(SEP) if s]


# ---------------------------------------------------------------------------------------------- tokenizer.json
def remap_ids(node, old_to_new):
    """Rewrites the special-token ids of a post-processor (TemplateProcessing's special_tokens[*].ids)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "special_tokens" and isinstance(value, dict):
                for tok in value.values():
                    tok["ids"] = [old_to_new[i] for i in tok["ids"]]
            else:
                remap_ids(value, old_to_new)
    elif isinstance(node, list):
        for item in node:
            remap_ids(item, old_to_new)


def cut_tokenizer_json(path, keep):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        tj = json.load(f)
    model = tj["model"]
    assert model["type"] == "BPE", model["type"]
    vocab = {tok: i for tok, i in model["vocab"].items() if i < keep}
    merges = []
    for m in model.get("merges", []):
        a, b = m.split(" ", 1) if isinstance(m, str) else m
        if a in vocab and b in vocab and a + b in vocab:
            merges.append(m)
    model["vocab"] = vocab
    model["merges"] = merges
    old_to_new = {i: i for i in vocab.values()}
    added, next_id = [], keep
    for t in tj.get("added_tokens", []):
        if t["id"] < keep:
            added.append(t)
        elif len(added) < KEEP_EXTRA:
            old_to_new[t["id"]] = next_id
            t["id"] = next_id
            next_id += 1
            added.append(t)
    tj["added_tokens"] = added
    remap_ids(tj.get("post_processor"), old_to_new)
    return json.dumps(tj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


# --------------------------------------------------------------------------------------------------------- GGUF
SCALAR = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
STRING, ARRAY = 8, 9


class Reader:
    def __init__(self, data):
        self.data, self.pos = data, 0

    def take(self, fmt):
        (v,) = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return v

    def string(self):
        n = self.take("Q")
        s = self.data[self.pos:self.pos + n]
        self.pos += n
        return s

    def value(self, vtype):
        if vtype == STRING:
            return self.string()
        if vtype == ARRAY:
            etype, n = self.take("I"), self.take("Q")
            return (etype, [self.value(etype) for _ in range(n)])
        return self.take(SCALAR[vtype])


def write_value(out, vtype, v):
    if vtype == STRING:
        out += struct.pack("<Q", len(v)) + v
    elif vtype == ARRAY:
        etype, items = v
        out += struct.pack("<IQ", etype, len(items))
        for item in items:
            write_value(out, etype, item)
    else:
        out += struct.pack("<" + SCALAR[vtype], v)


def cut_gguf(path, keep):
    with open(path, "rb") as f:
        r = Reader(f.read())
    assert r.data[:4] == b"GGUF"
    r.pos = 4
    version, _n_tensors, n_kv = r.take("I"), r.take("Q"), r.take("Q")
    kvs = []
    for _ in range(n_kv):
        key = r.string().decode()
        vtype = r.take("I")
        kvs.append((key, vtype, r.value(vtype)))
    kv = {k: (t, v) for k, t, v in kvs}
    tokens = kv["tokenizer.ggml.tokens"][1][1]
    types = kv["tokenizer.ggml.token_type"][1][1] if "tokenizer.ggml.token_type" in kv else [1] * len(tokens)
    # Kept: the first KEEP, then control (3) and user-defined (4) tokens past them.
    kept = list(range(min(keep, len(tokens))))
    kept += [i for i in range(keep, len(tokens)) if types[i] in (3, 4)][:KEEP_EXTRA]
    old_to_new = {old: new for new, old in enumerate(kept)}
    kept_text = {tokens[i] for i in kept}
    out_kvs = []
    for key, vtype, v in kvs:
        if not (key.startswith("tokenizer.") or key in ("general.architecture", "general.name")):
            continue
        if key in ("tokenizer.ggml.tokens", "tokenizer.ggml.scores", "tokenizer.ggml.token_type"):
            v = (v[0], [v[1][i] for i in kept])
        elif key == "tokenizer.ggml.merges":
            v = (v[0], [m for m in v[1] if len(m.split(b" ", 1)) == 2 and
                        all(p in kept_text for p in m.split(b" ", 1)) and m.replace(b" ", b"", 1) in kept_text])
        elif key.endswith("_token_id"):
            if v not in old_to_new:
                continue  # its token was cut: the loader's default applies
            v = old_to_new[v]
        out_kvs.append((key, vtype, v))
    out = bytearray(b"GGUF" + struct.pack("<IQQ", version, 0, len(out_kvs)))
    for key, vtype, v in out_kvs:
        write_value(out, STRING, key.encode())
        out += struct.pack("<I", vtype)
        write_value(out, vtype, v)
    return bytes(out)


def write(subdir, name, data):
    os.makedirs(os.path.join(OUT, subdir), exist_ok=True)
    with open(os.path.join(OUT, subdir, name), "wb") as f:
        f.write(data)
    print(f"{subdir}/{name}: {len(data)} bytes")


def main():
    texts = vocab_test_strings()
    # name: (file, vocabulary kept, index of the vocab test string appended as the text to encode)
    tj = {
        "stories260K": ("models/stories260K/stories260K-hf/tokenizer.json", KEEP_SPM, 1),        # Führer
        "llama-3.1": ("tokenizers/llama-3.1/tokenizer.json.gz", KEEP, 31),                     # emoji, CJK, digits
        "qwen3": ("tokenizers/qwen3/tokenizer.json.gz", KEEP, 21),                             # ZWJ emoji sequences
        "mistral-7b-v0.1": ("tokenizers/mistral-7b-v0.1/tokenizer.json.gz", KEEP_SPM, 27),    # indented lines
    }
    for name, (rel, keep, text) in tj.items():
        data = cut_tokenizer_json(os.path.join(DATA, rel), keep)
        write("tokenizer_json", name + ".json", data)
        # The same with a text to encode (input layout of fuzz/tokenizer/tokenizer_json_fuzz.cpp).
        write("tokenizer_json", name + "-text", data + b"\0" + texts[text].encode("utf-8"))
    gg = {
        "stories260K": ("models/stories260K/stories260K-f32.gguf", KEEP_SPM),
        "llama-spm": ("vocab/ggml-vocab-llama-spm.gguf", KEEP_SPM),
        "phi-3": ("vocab/ggml-vocab-phi-3.gguf", KEEP_SPM),
        "gpt-2": ("vocab/ggml-vocab-gpt-2.gguf", KEEP),
        "mpt": ("vocab/ggml-vocab-mpt.gguf", KEEP),
        "deepseek-coder": ("vocab/ggml-vocab-deepseek-coder.gguf", KEEP),
    }
    for name, (rel, keep) in gg.items():
        write("gguf_vocab", name + ".gguf", cut_gguf(os.path.join(DATA, rel), keep))


if __name__ == "__main__":
    main()
