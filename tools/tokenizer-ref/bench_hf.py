#!/usr/bin/env python3
"""Single-threaded tokenization throughput of Hugging Face `tokenizers`, on the inputs of bench/tokenizer_bench.sh.

Run it on the same machine as `bench/tokenizer_bench.sh` so the two numbers compare. For each tokenizer.json and
input it does what `pensieve tokenize --bench` does: one warm-up encode of the whole input (the BPE cache is
warm afterwards, as in a server), then encodes the whole input again and again for SECONDS and prints
MB/s = bytes encoded / wall time, and tokens. add_special_tokens=False, like `--no-add-special`.
RAYON_NUM_THREADS=1 and TOKENIZERS_PARALLELISM=false keep the library on one thread (a single `encode` call does
not parallelise anyway); run it under `taskset -c 0` as the shell script does.

    python3 bench_hf.py --seconds 3 --input prose=prose.txt --input code=code.txt DIR_OR_TOKENIZER_JSON...
"""
import argparse
import gzip
import os
import sys
import time

os.environ.setdefault("RAYON_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
import tokenizers  # noqa: E402


def load(path):
    if os.path.isdir(path):
        for name in ("tokenizer.json", "tokenizer.json.gz"):
            if os.path.exists(os.path.join(path, name)):
                path = os.path.join(path, name)
                break
    if path.endswith(".gz"):
        with gzip.open(path, "rb") as f:
            return tokenizers.Tokenizer.from_str(f.read().decode("utf-8"))
    return tokenizers.Tokenizer.from_file(path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--input", action="append", required=True, help="NAME=FILE")
    ap.add_argument("tokenizers", nargs="+")
    args = ap.parse_args()
    inputs = []
    for spec in args.input:
        name, path = spec.split("=", 1)
        with open(path, "rb") as f:
            data = f.read()
        inputs.append((name, data.decode("utf-8"), len(data)))
    print(f"tokenizers {tokenizers.__version__}, python {sys.version.split()[0]}")
    for tpath in args.tokenizers:
        tok = load(tpath)
        label = os.path.basename(os.path.normpath(tpath))
        for name, text, nbytes in inputs:
            n_tokens = len(tok.encode(text, add_special_tokens=False).ids)  # warm-up
            reps = 0
            t0 = time.perf_counter()
            while True:
                tok.encode(text, add_special_tokens=False)
                reps += 1
                secs = time.perf_counter() - t0
                if secs >= args.seconds:
                    break
            mbs = nbytes * reps / secs / 1e6
            print(f"{label:28s} {name:5s} tokens {n_tokens:7d}  {mbs:7.2f} MB/s  {n_tokens * reps / secs:11.0f} tokens/s",
                  flush=True)


if __name__ == "__main__":
    main()
