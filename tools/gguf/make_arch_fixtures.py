#!/usr/bin/env python3
"""GGUF files of golden fixture models (tests/fixtures/golden), written by llama.cpp's own converter
(convert_hf_to_gguf.py of the peer's source snapshot, c392e50, 2025-02-20), so that tests/model/golden_test.cpp
checks our reading of each architecture's GGUF (tensor names, metadata keys, q/k row order, rope tables) against
the logits transformers computed for the same weights.

Run where torch and numpy are importable (the GPU machine), with the snapshot unpacked (.peer/llama-src.tar.xz):
    python3 tools/gguf/make_arch_fixtures.py /tmp/llama.cpp tests/fixtures/golden/gguf
Each case is converted in its own process (`--case NAME`), F32 (`--outtype f32`), with the converter's vocabulary
step skipped: the fixtures have no tokenizer files, and the test feeds token ids.

Cases: llama3_rope (Llama 3.1 rope scaling: the converter's rope_freqs table; and llama's q/k permutation; see
convert() for the one config key copied so that this converter reads the fixture's rope as transformers does),
qwen2 (q/k/v biases, tied embeddings as the fixture has them), phi3 (fused qkv and gate_up), phi3_longrope
(rope_factors_long/short, the attention factor). qwen3: the snapshot predates Qwen3, so its file is written by
the snapshot's Qwen2 converter with the architecture named `qwen3` and the q/k norms added to its tensor list;
that is the layout later llama.cpp writes for Qwen3 (attn_q_norm / attn_k_norm, qwen3.* keys), but the names
are then ours to get right, not the converter's. phi3_partial is left out: this converter writes rope dims as
hidden / heads, ignoring partial_rotary_factor.
"""
import json
import os
import subprocess
import sys
import tempfile

CASES = ["llama3_rope", "qwen2", "qwen3", "phi3", "phi3_longrope"]


def convert(src, case, golden, out):
    sys.path.insert(0, os.path.join(src, "gguf-py"))
    sys.path.insert(0, src)
    import gguf
    import convert_hf_to_gguf as conv

    for cls in list(vars(conv).values()):  # no tokenizer files: keep the converter from looking for them
        if isinstance(cls, type) and issubclass(cls, conv.Model) and "set_vocab" in vars(cls):
            cls.set_vocab = lambda self: None
    conv.Model.set_vocab = lambda self: None
    if case == "qwen3":
        gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.QWEN2] = "qwen3"
        gguf.MODEL_TENSORS[gguf.MODEL_ARCH.QWEN2] += [gguf.MODEL_TENSOR.ATTN_Q_NORM, gguf.MODEL_TENSOR.ATTN_K_NORM]
        conv.Model._model_classes["Qwen3ForCausalLM"] = conv.Qwen2Model
    model_dir = os.path.join(golden, case)
    config = json.load(open(os.path.join(model_dir, "config.json")))
    scaling = config.get("rope_scaling") or {}
    if scaling.get("rope_type") == "llama3" and "original_max_position_embeddings" not in config:
        # This converter reads the llama3 rule's original context from the top level of config.json only, and
        # takes 8192 (Llama 3.1's value) when it is not there; transformers reads it from rope_scaling. Real
        # Llama 3.1 configs give 8192 there, so the quirk is silent for them; the fixture's 32 is copied up.
        tmp = tempfile.mkdtemp()
        config["original_max_position_embeddings"] = scaling["original_max_position_embeddings"]
        json.dump(config, open(os.path.join(tmp, "config.json"), "w"))
        os.symlink(os.path.realpath(os.path.join(model_dir, "model.safetensors")), os.path.join(tmp, "model.safetensors"))
        model_dir = tmp
    sys.argv = ["convert_hf_to_gguf.py", model_dir, "--outtype", "f32", "--outfile", os.path.join(out, case + ".gguf")]
    conv.main()


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "--case":
        _, _, case, src, out = sys.argv
        golden = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../tests/fixtures/golden")
        convert(src, case, os.path.normpath(golden), out)
        return
    src, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    for case in CASES:
        subprocess.run([sys.executable, os.path.abspath(__file__), "--case", case, src, out], check=True)
    json.dump({"generator": "tools/gguf/make_arch_fixtures.py (llama.cpp c392e50 convert_hf_to_gguf.py, f32)",
               "cases": CASES}, open(os.path.join(out, "manifest.json"), "w"), indent=1)
    print("wrote", out, CASES)


if __name__ == "__main__":
    main()
