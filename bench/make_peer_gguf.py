#!/usr/bin/env python3
"""Random-weight GGUF files of real model shapes for the peer (llama.cpp's llama-bench), all matrices Q4_0
(4.5 bits per weight, as our MLX 4-bit with group 64 and bf16 scales and biases), so both engines read the same
bytes per token; or all Q8_0 (--type q8_0: 8.5 bits per weight, as MLX 8-bit with group 64). Written with
llama.cpp's gguf-py (not part of this repository: put its gguf-py folder on PYTHONPATH). Shapes match
`pensieve random-model --shape` (Phi-4 as a llama-architecture model).

    PYTHONPATH=/path/to/llama.cpp/gguf-py python3 bench/make_peer_gguf.py --shape llama-3-8b --out m.gguf
"""
import argparse

import numpy as np
import gguf

SHAPES = {  # hidden, layers, heads, kv heads, intermediate, vocab, context, rope theta
    "llama-3-8b": (4096, 32, 32, 8, 14336, 128256, 8192, 500000.0),
    "phi-4": (5120, 40, 40, 10, 17920, 100352, 16384, 250000.0),
    "llama-3.2-1b": (2048, 16, 32, 8, 8192, 128256, 8192, 500000.0),
}


def blocks_of_32(rows, cols, rng, block_bytes, d_std):
    """Random blocks of 32 weights: an f16 scale d ~ N(0, d_std) and block_bytes - 2 bytes of random codes."""
    blocks = rows * cols // 32
    raw = rng.integers(0, 256, size=(blocks, block_bytes), dtype=np.uint8)
    d = (rng.standard_normal(blocks).astype(np.float32) * d_std).astype(np.float16)
    raw[:, :2] = d.view(np.uint8).reshape(blocks, 2)
    return raw.reshape(rows, cols // 32 * block_bytes)


def q4_0(rows, cols, rng):
    """Q4_0: d = N(0, 0.02) / 8, so values (q - 8) * d are about 0.02; 16 bytes of 4-bit codes."""
    return blocks_of_32(rows, cols, rng, 18, 0.0025)


def q8_0(rows, cols, rng):
    """Q8_0: values q * d of about 0.02 for q uniform in [-128, 127]; 32 bytes of 8-bit codes."""
    return blocks_of_32(rows, cols, rng, 34, 0.00027)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", required=True, choices=sorted(SHAPES))
    ap.add_argument("--out", required=True)
    ap.add_argument("--type", default="q4_0", choices=["q4_0", "q8_0"])
    a = ap.parse_args()
    quant, qtype, file_type = (q4_0, gguf.GGMLQuantizationType.Q4_0, 2) if a.type == "q4_0" else \
        (q8_0, gguf.GGMLQuantizationType.Q8_0, 7)
    H, L, nh, nkv, I, V, ctx, theta = SHAPES[a.shape]
    rng = np.random.default_rng(0)
    w = gguf.GGUFWriter(a.out, "llama")
    w.add_context_length(ctx)
    w.add_embedding_length(H)
    w.add_block_count(L)
    w.add_feed_forward_length(I)
    w.add_head_count(nh)
    w.add_head_count_kv(nkv)
    w.add_rope_dimension_count(H // nh)
    w.add_rope_freq_base(theta)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type(file_type)  # MOSTLY_Q4_0 or MOSTLY_Q8_0
    w.add_vocab_size(V)
    w.add_tokenizer_model("llama")
    w.add_token_list([f"<t{i}>".encode() for i in range(V)])
    w.add_token_scores([0.0] * V)
    w.add_token_types([1] * V)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    hd = H // nh
    w.add_tensor("token_embd.weight", quant(V, H, rng), raw_dtype=qtype)
    for i in range(L):
        p = f"blk.{i}."
        w.add_tensor(p + "attn_norm.weight", np.ones(H, dtype=np.float32))
        w.add_tensor(p + "attn_q.weight", quant(nh * hd, H, rng), raw_dtype=qtype)
        w.add_tensor(p + "attn_k.weight", quant(nkv * hd, H, rng), raw_dtype=qtype)
        w.add_tensor(p + "attn_v.weight", quant(nkv * hd, H, rng), raw_dtype=qtype)
        w.add_tensor(p + "attn_output.weight", quant(H, nh * hd, rng), raw_dtype=qtype)
        w.add_tensor(p + "ffn_norm.weight", np.ones(H, dtype=np.float32))
        w.add_tensor(p + "ffn_gate.weight", quant(I, H, rng), raw_dtype=qtype)
        w.add_tensor(p + "ffn_up.weight", quant(I, H, rng), raw_dtype=qtype)
        w.add_tensor(p + "ffn_down.weight", quant(H, I, rng), raw_dtype=qtype)
    w.add_tensor("output_norm.weight", np.ones(H, dtype=np.float32))
    w.add_tensor("output.weight", quant(V, H, rng), raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    main()
