#!/usr/bin/env python3
"""Dequantization fixtures for the GGUF weight loader, from llama.cpp's own NumPy reference (gguf-py's
gguf/quants.py), so that tests/formats/gguf_model_test.cpp checks our reading of each block layout against an
implementation we did not write.

Run where numpy and gguf-py are importable (the GPU machine: PYTHONPATH=.peer/gguf-py, see
tools/gpu/build_peer.sh; or Debian's python3-numpy, with a stand-in `sentencepiece` module on the path, which
gguf-py imports for vocabularies only):  python3 tools/gguf/make_dequant_fixtures.py tests/fixtures/gguf/dequant.json
The committed fixture was written on the development VM (numpy 1.24.2); its legacy types are byte-identical to
a run on the GPU machine.

For each type: a [3, 64] tensor (two blocks per row; types of 256-value super-blocks (K-quants, IQ4_XS)
[3, 256], one per row) of random block bytes, made valid and varied: scales are random f16 numbers of either sign
and, for the legacy types, of several magnitudes (one subnormal, one large enough that -8 d or -128 d leaves
f16), codes and packed sub-scales uniformly random. The fixture holds the bytes (hex) and gguf-py's float32 values.
"""
import json
import sys

import numpy as np
from gguf import GGMLQuantizationType as T, quants
from gguf.constants import GGML_QUANT_SIZES

rng = np.random.default_rng(20261202)
ROWS, COLS = 3, 64


def half_bytes(values):
    return np.asarray(values, dtype=np.float16).view(np.uint8).reshape(-1, 2)


# Byte offsets of the f16 super-block scales (d, and dmin where the type has one) and their spread.
SCALE_FIELDS = {
    T.Q4_K: ((0, 0.01), (2, 0.01)), T.Q5_K: ((0, 0.01), (2, 0.01)), T.Q6_K: ((208, 0.01),),
    T.Q2_K: ((80, 0.01), (82, 0.01)), T.Q3_K: ((108, 0.01),), T.IQ4_NL: ((0, 0.001),), T.IQ4_XS: ((0, 0.001),),
}


def make(qtype, cols):
    block, size = GGML_QUANT_SIZES[qtype]
    n_blocks = ROWS * cols // block
    raw = rng.integers(0, 256, size=(n_blocks, size), dtype=np.uint8)
    if qtype in (T.F16, T.BF16, T.F32):
        vals = rng.normal(0, 1, size=ROWS * cols).astype(np.float32)
        if qtype == T.F32:
            raw = vals.view(np.uint8).reshape(-1, 4)
        elif qtype == T.F16:
            raw = vals.astype(np.float16).view(np.uint8).reshape(-1, 2)
        else:
            raw = (vals.view(np.uint32) >> 16).astype(np.uint16).view(np.uint8).reshape(-1, 2)
        return raw
    if qtype in SCALE_FIELDS:  # d (and dmin): small f16 numbers of either sign; sub-scales and codes random
        for at, spread in SCALE_FIELDS[qtype]:
            raw[:, at:at + 2] = half_bytes(rng.normal(0, spread, size=n_blocks))
        return raw
    # d (and m for the _1 types): mixed magnitudes and signs; block 3 subnormal, block 4 large (8 d > 65504
    # for some types: the loader must then keep f32 scales)
    d = rng.normal(0, 0.02, size=n_blocks)
    d[3] = 3e-6
    d[4] = 9000.0
    raw[:, 0:2] = half_bytes(d)
    if qtype in (T.Q4_1, T.Q5_1):
        raw[:, 2:4] = half_bytes(rng.normal(0, 0.05, size=n_blocks))
    return raw


out = {}
# (New types go last: the random stream, and so the bytes of the types before them, stay as they were.)
for qtype in (T.F32, T.F16, T.BF16, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0, T.Q4_K, T.Q5_K, T.Q6_K,
              T.Q2_K, T.Q3_K, T.IQ4_NL, T.IQ4_XS):
    cols = GGML_QUANT_SIZES[qtype][0] if GGML_QUANT_SIZES[qtype][0] == 256 else COLS  # K-quants: super-blocks
    raw = make(qtype, cols)
    data = np.ascontiguousarray(raw).reshape(ROWS, -1)
    values = quants.dequantize(data, qtype).astype(np.float32).reshape(ROWS, cols)
    out[qtype.name] = {
        "ggml_type": int(qtype),
        "shape": [ROWS, cols],
        "bytes": data.tobytes().hex(),
        "values": [float(v) for v in values.ravel()],
    }
json.dump({"generator": "tools/gguf/make_dequant_fixtures.py (gguf-py quants.dequantize)", "types": out},
          open(sys.argv[1], "w"), indent=None)
print("wrote", sys.argv[1], list(out))
