#pragma once
// A GGUF model file as the loader sees a checkpoint: the Hugging Face config.json its metadata implies and a
// tensor store under Hugging Face names, so that one weight binding (model/weights.h) and one decoder serve
// safetensors and GGUF alike.
//
// Contract:
//  - Architectures: `llama` (also Mistral models converted as llama), `qwen2`, `qwen3` and `phi3` (Phi-3, Phi-3.5,
//    Phi-4), one name table with the architectures' differences (phi3's fused attn_qkv and gate+up ffn_up,
//    qwen3's q/k norms) as flags. Rope scaling: linear and YaRN from the metadata, Phi-3's long/short factor
//    tensors (longrope) and Llama 3.1's rope_freqs divisors (as longrope with one table). Anything else, or a
//    tensor the table does not name for the architecture, throws pensieve::Error naming the file, the key or
//    tensor.
//  - Tensor types: F32, F16 and BF16 stay float; Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K and Q5_K are rewritten
//    once, at load, as MLX affine quantization with groups of 32 (w = s q + b per group), which holds each of
//    them exactly (Q4_0: s = d, b = -8 d; Q8_0: codes + 128, b = -128 d; the _1 types: s = d, b = m; the
//    K-quants' sub-blocks: s = d sc, b = -dmin m), with f16 scales and biases where all are exact in f16, else
//    f32. Q2_K, Q3_K, Q6_K, IQ4_NL and IQ4_XS (groups of 16 or a code book: no MLX form) become f16 values (f32
//    if one leaves f16's range): 2^-11 relative rounding on top of the file's. Other types get an error naming
//    the tensor and its type.
//  - llama.cpp stores the q and k rows of `llama` models in the interleaved rope order (its converter permutes
//    Hugging Face's); they are put back into Hugging Face's order here. The other architectures are stored in
//    Hugging Face's order (NeoX rope).
//  - The rewritten tensors live in memory the returned store owns; the GGUF file is not kept mapped.
#include <memory>
#include <string>
#include <vector>

#include "formats/checkpoint.h"

namespace pensieve {

class GgufFile;

// Whether `path` names a GGUF file (by its magic bytes), not a safetensors file or directory.
bool IsGgufFile(const std::string& path);
// A model in one GGUF file, or split by llama.cpp's gguf-split: `path` names the first part
// (PREFIX-00001-of-0000N.gguf, split.no 0) and the others are opened by the same naming; a missing part, or a
// part whose split.no / split.count disagree, is an error naming it.
Checkpoint LoadGgufCheckpoint(const std::string& path);
// The files of the model at `path` in order (one unless split), metadata and vocabulary in the first.
std::vector<std::unique_ptr<GgufFile>> OpenGgufParts(const std::string& path);
// From one file that is the whole model (a part of a split file is refused: open it by path).
Checkpoint LoadGgufCheckpoint(const GgufFile& file);
// The config alone (no tensor is read or converted), its quantization left out.
ModelConfig GgufModelConfig(const GgufFile& file);
ModelConfig GgufModelConfig(const std::string& path);

}  // namespace pensieve
