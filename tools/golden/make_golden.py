#!/usr/bin/env python3
"""Golden numerics fixtures for Pensieve's model code, computed with Hugging Face transformers.

For every supported architecture this builds a tiny random model (seeded), saves it with
`save_pretrained` (safetensors), and records reference logits for a 28-token prompt (all positions) and
for 8 greedy decode steps run through the KV cache (`past_key_values`), i.e. incremental decoding.
Derived variants: bf16 copies (weights rounded to bf16) and MLX affine 4/8-bit copies (group size 64)
quantized by this script with MLX's own algorithm (mirrored from mlx/ops.cpp `affine_quantize` and
`pack_and_quantize`). Reference logits for derived variants are computed from the rounded/dequantized
weights, in float64 on the CPU with eager attention, and stored as float32.

Run on a machine with torch + transformers + safetensors (the accelerator machine; only the CPU is used):
    python3 make_golden.py --out tests/fixtures/golden
Output layout (see tests/fixtures/golden/README.md):
    <out>/manifest.json
    <out>/<case>/{config.json, model.safetensors, expected.safetensors}
expected.safetensors: prompt_ids I32[P], prefill_logits F32[P,V], decode_ids I32[8], decode_logits F32[8,V].
Decode step i feeds decode_ids[i] at position P+i; decode_ids[0] = argmax(prefill_logits[P-1]);
decode_ids[i+1] = argmax(decode_logits[i]).

Every case is checked before it is written out: the cached decode equals a full forward of the whole
sequence; the saved directory reloads (from_pretrained, or this script's own safetensors reader and
MLX dequantizer for quantized files) to the same logits; the config.json with only the classic rope keys
(rope_theta / rope_scaling, as real checkpoints on disk have them) gives the same logits as the one
transformers wrote; and each feature under test (rope scaling, sliding window, partial rotary...) changes
the logits compared with the same weights without it, so a fixture cannot silently test nothing.
"""
import argparse
import copy
import hashlib
import json
import math
import os
import shutil
import struct
import sys
import zlib

import numpy as np
import torch
import transformers
from transformers import AutoConfig, AutoModelForCausalLM

P = 28          # prompt length
N_DECODE = 8    # greedy decode steps
VOCAB = 256
GROUP_SIZE = 64
PROMPT_SEED = 20251126
TOL_F32 = 1e-4
TOL_LOW = 1e-2

COMMON = dict(
    vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
    num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
    rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False,
    bos_token_id=1, eos_token_id=2, pad_token_id=0, hidden_act="silu",
    initializer_range=0.02, use_cache=True,
)

# longrope factors: head_dim 16 * partial 1.0 / 2 = 8 per list.
SHORT_FACTOR = [1.0, 1.02, 1.05, 1.1, 1.2, 1.35, 1.5, 1.7]
LONG_FACTOR = [1.0, 1.3, 1.9, 2.8, 4.0, 5.5, 7.0, 8.0]

# name, model_type, config overrides (classic on-disk form), weight key (cases with the same key get
# identical weights), feature-check ("plain" config overrides that must change the logits), notes.
CASES = [
    dict(name="llama", model_type="llama", cfg={}, wkey="llama",
         notes="Llama, untied embeddings, plain rope theta 10000, GQA 4q/2kv heads."),
    dict(name="llama_tied", model_type="llama", cfg=dict(tie_word_embeddings=True), wkey="llama_tied",
         notes="Llama with tie_word_embeddings: no lm_head.weight in the file; lm_head = embed_tokens."),
    dict(name="llama3_rope", model_type="llama",
         cfg=dict(rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                "high_freq_factor": 4.0, "original_max_position_embeddings": 32}),
         wkey="llama", plain=dict(rope_scaling=None),
         notes="Same weights as llama. rope_scaling llama3 (factor 8, low 1, high 4, original 32): with head_dim 16 "
               "and theta 10000 frequency 0 (wavelength 6.3 < 8) is kept, frequency 1 (19.9) is smoothed, 2..7 "
               "(> 32) are divided by 8, so all three branches are exercised."),
    dict(name="mistral_swa", model_type="mistral", cfg=dict(sliding_window=8), wkey="llama",
         plain=dict(sliding_window=None),
         notes="Same weights as llama. MistralForCausalLM with sliding_window 8 < prompt length 28."),
    dict(name="qwen2", model_type="qwen2",
         cfg=dict(num_hidden_layers=3, rms_norm_eps=1e-6, rope_theta=1000000.0, use_sliding_window=False,
                  sliding_window=None, max_window_layers=3),
         wkey="qwen2",
         notes="Qwen2, 3 layers, q/k/v projections with bias (o_proj none), theta 1e6, untied."),
    dict(name="qwen2_swa", model_type="qwen2",
         cfg=dict(num_hidden_layers=3, rms_norm_eps=1e-6, rope_theta=1000000.0, use_sliding_window=True,
                  sliding_window=8, max_window_layers=1),
         wkey="qwen2", plain=dict(use_sliding_window=False), contrast=dict(max_window_layers=0),
         drop=["layer_types"],
         notes="Same weights as qwen2. use_sliding_window with window 8 and max_window_layers 1: layer 0 attends "
               "to everything, layers 1-2 to the last 8 keys. config.json has no layer_types (removed), so the "
               "loader must derive the layers from max_window_layers; contrast: every layer windowed differs."),
    dict(name="qwen2_layer_types", model_type="qwen2",
         cfg=dict(num_hidden_layers=3, rms_norm_eps=1e-6, rope_theta=1000000.0, use_sliding_window=True,
                  sliding_window=8, max_window_layers=0,
                  layer_types=["sliding_attention", "full_attention", "sliding_attention"]),
         wkey="qwen2", plain=dict(use_sliding_window=False, layer_types=None),
         contrast=dict(layer_types=["sliding_attention"] * 3),
         notes="Same weights as qwen2. Window 8 on layers 0 and 2 only, from an explicit layer_types (a pattern "
               "max_window_layers cannot express); contrast: every layer windowed differs."),
    dict(name="qwen3", model_type="qwen3",
         cfg=dict(head_dim=32, tie_word_embeddings=True, rms_norm_eps=1e-6, rope_theta=1000000.0,
                  attention_bias=False, use_sliding_window=False, sliding_window=None, max_window_layers=2),
         wkey="qwen3",
         notes="Qwen3, explicit head_dim 32 != hidden/heads (16): q_proj [128,64], k/v [64,64], o_proj [64,128]; "
               "per-head RMSNorm q_norm/k_norm (weight [32]) before rope; tied embeddings like Qwen3-0.6B."),
    dict(name="phi3", model_type="phi3", cfg=dict(rope_theta=250000.0), wkey="phi3",
         notes="Phi3ForCausalLM, fused qkv_proj [128,64] (q|k|v rows) and gate_up_proj [256,64] (gate|up rows), "
               "plain rope theta 250000 (as Phi-4), untied."),
    dict(name="phi3_longrope", model_type="phi3",
         cfg=dict(rope_theta=10000.0, max_position_embeddings=64, original_max_position_embeddings=16,
                  rope_scaling={"type": "longrope", "short_factor": SHORT_FACTOR, "long_factor": LONG_FACTOR}),
         wkey="phi3", plain=dict(rope_scaling=None),
         notes="Same weights as phi3. longrope: original_max_position_embeddings 16, max_position_embeddings 64; "
               "the prompt (28) is past the original context, so transformers uses long_factor for every "
               "position (it picks long when max(position)+1 > original), with attention factor "
               "sqrt(1 + ln(64/16)/ln(16)) on cos/sin."),
    dict(name="phi3_partial", model_type="phi3",
         cfg=dict(partial_rotary_factor=0.5, tie_word_embeddings=True, rope_theta=10000.0),
         wkey="phi3_partial", plain=dict(partial_rotary_factor=1.0),
         notes="Phi3 with partial_rotary_factor 0.5 (rope on the first 8 of 16 dims per head) and tied embeddings, "
               "like Phi-4-mini (which has 0.75)."),
]

BF16_CASES = ["llama", "phi3"]
MLX_CASES = [("llama", 4), ("llama", 8), ("qwen3", 4), ("qwen3", 8), ("phi3", 4), ("phi3", 8)]
MLX_BF16_CASES = [("llama_bf16", 4)]


def log(*a):
    print(*a, flush=True)


# ----------------------------------------------------------------------------- safetensors I/O (own code)
_DT = {"F32": (np.float32, 4), "I32": (np.int32, 4), "U32": (np.uint32, 4), "BF16": (np.uint16, 2),
       "F64": (np.float64, 8)}


def to_np_bytes(t):
    """Returns (dtype string, shape, bytes) for a torch tensor or numpy array."""
    if isinstance(t, torch.Tensor):
        t = t.detach().cpu().contiguous()
        if t.dtype == torch.bfloat16:
            return "BF16", list(t.shape), t.view(torch.int16).numpy().tobytes()
        t = t.numpy()
    a = np.ascontiguousarray(t)
    name = {np.dtype(np.float32): "F32", np.dtype(np.int32): "I32", np.dtype(np.uint32): "U32"}[a.dtype]
    return name, list(a.shape), a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()


def write_safetensors(path, tensors, metadata=None):
    header = {}
    blobs = []
    off = 0
    for name in sorted(tensors):
        dt, shape, b = to_np_bytes(tensors[name])
        header[name] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def read_safetensors(path):
    """Independent reader: returns {name: np.ndarray float32/int32/uint32} (BF16 widened to float32)."""
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        npdt, size = _DT[info["dtype"]]
        b, e = info["data_offsets"]
        a = np.frombuffer(data[base + b:base + e], dtype=np.dtype(npdt).newbyteorder("<")).reshape(info["shape"])
        if info["dtype"] == "BF16":
            a = (a.astype(np.uint32) << 16).view(np.float32)
        out[name] = a.copy()
    return out


# ----------------------------------------------------------------------------- MLX affine quantization
def mlx_affine_quantize(w, group_size, bits):
    """Mirror of mlx::core::affine_quantize (fallback path) + pack_and_quantize, op by op in w's dtype.

    Returns (packed uint32 numpy [out, in*bits/32], scales [out, in/gs] (w.dtype), biases (w.dtype),
    q int64 [out, in])."""
    dt = w.dtype
    out_dim, in_dim = w.shape
    assert in_dim % group_size == 0 and 32 % bits == 0
    zero = torch.tensor(0, dtype=dt)
    n_bins = torch.tensor((1 << bits) - 1, dtype=dt)
    eps = torch.tensor(1e-7, dtype=dt)
    g = w.reshape(out_dim, in_dim // group_size, group_size)
    w_max = g.amax(dim=-1, keepdim=True)
    w_min = g.amin(dim=-1, keepdim=True)
    mask = w_min.abs() > w_max.abs()
    scales = torch.maximum((w_max - w_min) / n_bins, eps)
    scales = torch.where(mask, scales, -scales)
    edge = torch.where(mask, w_min, w_max)
    q0 = torch.round(edge / scales)
    scales = torch.where(q0 != zero, edge / q0, scales)
    biases = torch.where(q0 == zero, zero, edge)
    q = torch.clamp(torch.round((g - biases) / scales), zero, n_bins)
    q = q.to(torch.int64).reshape(out_dim, in_dim)
    per = 32 // bits
    qq = q.reshape(out_dim, in_dim // per, per)
    shifts = torch.arange(0, 32, bits, dtype=torch.int64)
    words = (qq << shifts).sum(dim=-1)
    packed = words.numpy().astype(np.uint32)
    return packed, scales.reshape(out_dim, -1), biases.reshape(out_dim, -1), q


def unpack_dequantize(packed, scales, biases, group_size, bits):
    """Independent numpy dequantizer of the stored form: value = scale * q + bias (float32)."""
    per = 32 // bits
    mask = (1 << bits) - 1
    out_dim = packed.shape[0]
    words = packed.astype(np.uint64)
    q = np.stack([(words >> (bits * e)) & mask for e in range(per)], axis=-1).reshape(out_dim, -1)
    q = q.astype(np.float32)
    in_dim = q.shape[1]
    s = np.repeat(scales.astype(np.float32), group_size, axis=1)
    b = np.repeat(biases.astype(np.float32), group_size, axis=1)
    assert s.shape[1] == in_dim
    return s * q + b


# ----------------------------------------------------------------------------- model construction
def make_config(case, overrides=None):
    # Deep copies: transformers 5 rewrites a rope_scaling dict it is given in place (standardizing it).
    kw = copy.deepcopy(COMMON)
    kw.update(copy.deepcopy(case["cfg"]))
    if overrides:
        kw.update(copy.deepcopy(overrides))
    return AutoConfig.for_model(case["model_type"], **kw)


def build_model(config, dtype=torch.float32):
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, attn_implementation="eager", dtype=dtype)
    return model.eval()


def init_weights(model, wkey):
    """Deterministic, not-flat weights: N(0, 0.15) matrices, embeddings N(0, 0.5) (0.15 when tied, since they
    are also the output projection), biases N(0, 0.1), norm weights 1 + N(0, 0.1)."""
    tied = model.config.tie_word_embeddings
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            seed = zlib.crc32(f"{wkey}/{name}".encode())
            g = torch.Generator().manual_seed(seed)
            r = torch.randn(p.shape, generator=g, dtype=torch.float32)
            if "norm" in name:
                v = 1.0 + 0.1 * r
            elif name.endswith(".bias"):
                v = 0.1 * r
            elif "embed_tokens" in name:
                v = (0.15 if tied else 0.5) * r
            else:
                v = 0.15 * r
            p.copy_(v.to(p.dtype))


def prompt_ids():
    g = torch.Generator().manual_seed(PROMPT_SEED)
    return torch.randint(3, VOCAB, (P,), generator=g, dtype=torch.int64)


@torch.no_grad()
def run_model(model, prompt, decode_ids=None):
    """Prefill the prompt, then N_DECODE cached decode steps. Greedy unless decode_ids is given."""
    out = model(input_ids=prompt[None], use_cache=True)
    prefill = out.logits[0].double().clone()
    past = out.past_key_values
    ids, logits = [], []
    nxt = int(prefill[-1].argmax())
    for i in range(N_DECODE):
        tok = nxt if decode_ids is None else int(decode_ids[i])
        ids.append(tok)
        out = model(input_ids=torch.tensor([[tok]]), past_key_values=past, use_cache=True)
        past = out.past_key_values
        l = out.logits[0, -1].double().clone()
        logits.append(l)
        nxt = int(l.argmax())
    return prefill, torch.tensor(ids, dtype=torch.int64), torch.stack(logits)


@torch.no_grad()
def full_forward(model, prompt, decode_ids):
    seq = torch.cat([prompt, decode_ids])
    return model(input_ids=seq[None], use_cache=False).logits[0].double()


def rel_l2_rows(a, b):
    """max over rows of ||a-b|| / ||b||."""
    a = torch.as_tensor(a, dtype=torch.float64)
    b = torch.as_tensor(b, dtype=torch.float64)
    return float(((a - b).norm(dim=-1) / b.norm(dim=-1)).max())


def margins(logits):
    top = torch.topk(torch.as_tensor(logits, dtype=torch.float64), 2, dim=-1).values
    return top[:, 0] - top[:, 1]


def reference(model_f32_or_lowp):
    """Float64 reference (eager attention, CPU) from the model's weights as they are."""
    m64 = copy.deepcopy(model_f32_or_lowp).to(torch.float64)
    pre, ids, dec = run_model(m64, PROMPT)
    full = full_forward(m64, PROMPT, ids)
    err_cache = max(rel_l2_rows(full[:P], pre), rel_l2_rows(full[P:], dec))
    # Float64 agrees to ~1e-15 except where transformers itself keeps float32 pieces (softmax runs in float32).
    assert err_cache < 1e-6, f"cached decode differs from full forward: {err_cache}"
    log(f"   cached decode vs full forward: max row rel diff {err_cache:.2e}")
    return m64, pre, ids, dec


# ----------------------------------------------------------------------------- config.json post-processing
def classic_rope(case):
    kw = copy.deepcopy(COMMON)
    kw.update(copy.deepcopy(case["cfg"]))
    return kw["rope_theta"], kw.get("rope_scaling")


def fix_config_json(dirpath, case, extra=None):
    """Keeps what save_pretrained wrote, and makes sure the classic keys real checkpoints carry are present
    with the same meaning: rope_theta, rope_scaling, torch_dtype, partial_rotary_factor,
    original_max_position_embeddings, head_dim, sliding_window. Returns (config dict, rope form note)."""
    path = os.path.join(dirpath, "config.json")
    with open(path) as f:
        cfg = json.load(f)
    written_keys = sorted(cfg.keys())
    form = "rope_parameters+classic" if "rope_parameters" in cfg else "classic"
    theta, scaling = classic_rope(case)
    added = []
    if cfg.get("rope_theta") is None:
        cfg["rope_theta"] = theta
        added.append("rope_theta")
    if scaling is not None and not cfg.get("rope_scaling"):
        cfg["rope_scaling"] = scaling
        added.append("rope_scaling")
    elif "rope_scaling" not in cfg:
        cfg["rope_scaling"] = None
        added.append("rope_scaling")
    for k in ("partial_rotary_factor", "original_max_position_embeddings", "head_dim", "sliding_window"):
        if k in case["cfg"] and cfg.get(k) != case["cfg"][k]:
            if k in cfg and cfg[k] is not None:
                raise RuntimeError(f"{case['name']}: config.json {k}={cfg[k]} but case wants {case['cfg'][k]}")
            cfg[k] = case["cfg"][k]
            added.append(k)
    for k in case.get("drop", []):  # keys a loader must do without (derived from others)
        if cfg.pop(k, None) is not None:
            added.append("-" + k)
    if "torch_dtype" not in cfg and "dtype" in cfg:
        cfg["torch_dtype"] = cfg["dtype"]
        added.append("torch_dtype")
    if extra:
        cfg.update(extra)
    with open(path, "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
        f.write("\n")
    return cfg, form, written_keys, added


def classic_only_copy(dirpath, tmpdir):
    """A copy of the dir whose config.json has rope_parameters removed (what an older/real checkpoint has)."""
    if os.path.exists(tmpdir):
        shutil.rmtree(tmpdir)
    shutil.copytree(dirpath, tmpdir)
    path = os.path.join(tmpdir, "config.json")
    with open(path) as f:
        cfg = json.load(f)
    cfg.pop("rope_parameters", None)
    cfg.pop("quantization", None)
    cfg.pop("quantization_config", None)
    with open(path, "w") as f:
        json.dump(cfg, f)
    return tmpdir


def write_expected(dirpath, pre, ids, dec):
    write_safetensors(os.path.join(dirpath, "expected.safetensors"), {
        "prompt_ids": PROMPT.numpy().astype(np.int32),
        "prefill_logits": pre.numpy().astype(np.float32),
        "decode_ids": ids.numpy().astype(np.int32),
        "decode_logits": dec.numpy().astype(np.float32),
    }, metadata={"format": "pensieve-golden", "P": str(P), "n_decode": str(N_DECODE)})


def stats(pre, dec):
    m = torch.cat([margins(pre), margins(dec)])
    return dict(min_top2_margin=float(m.min()), rows_with_margin_below_1e3=int((m <= 1e-3).sum()),
                logit_std=float(torch.cat([pre, dec]).std()))


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


# ----------------------------------------------------------------------------- cases
def do_f32_case(case, outdir, manifest, models):
    name = case["name"]
    log(f"== {name}")
    config = make_config(case)
    model = build_model(config)
    init_weights(model, case["wkey"])
    m64, pre, ids, dec = reference(model)
    # float32 run on the same weights, teacher-forced with the same ids: shows the reference's own f32 noise.
    pre32, _, dec32 = run_model(model, PROMPT, ids)
    f32_err = max(rel_l2_rows(pre32, pre), rel_l2_rows(dec32, dec))
    feature = None
    if "plain" in case:
        pmodel = build_model(make_config(case, case["plain"]))
        init_weights(pmodel, case["wkey"])
        ppre, _, pdec = run_model(copy.deepcopy(pmodel).to(torch.float64), PROMPT, ids)
        feature = rel_l2_rows(torch.cat([ppre, pdec]), torch.cat([pre, dec]))
        per_pos = ((ppre - pre).norm(dim=-1) / pre.norm(dim=-1))
        log(f"   feature effect (max row rel diff vs plain config {case['plain']}): {feature:.3g}")
        log("   per-position rel diff vs plain:", " ".join(f"{x:.1e}" for x in per_pos.tolist()))
        assert feature > 1e-3, f"{name}: the feature under test does not change the logits"
        if "contrast" in case:  # the per-layer choice matters: another assignment of layers changes the logits
            cmodel = build_model(make_config(case, case["contrast"]))
            init_weights(cmodel, case["wkey"])
            cpre, _, cdec = run_model(copy.deepcopy(cmodel).to(torch.float64), PROMPT, ids)
            contrast = rel_l2_rows(torch.cat([cpre, cdec]), torch.cat([pre, dec]))
            log(f"   contrast effect (vs {case['contrast']}): {contrast:.3g}")
            assert contrast > 1e-3, f"{name}: the contrast config gives the same logits"
        if name == "mistral_swa":
            # With window 8 every position < 8 sees its whole prefix either way.
            assert float(per_pos[:8].max()) < 1e-12, "sliding window changed positions inside the window"
    d = os.path.join(outdir, name)
    os.makedirs(d, exist_ok=True)
    model.save_pretrained(d, safe_serialization=True)
    for extra in os.listdir(d):
        if extra not in ("config.json", "model.safetensors"):
            os.remove(os.path.join(d, extra))
    cfg, form, written, added = fix_config_json(d, case)
    write_expected(d, pre, ids, dec)
    check_reload(d, pre, ids, dec, torch.float32, case)
    st = stats(pre, dec)
    log(f"   decode_ids={ids.tolist()} f32-vs-f64={f32_err:.2e} {st}")
    log(f"   config keys written by transformers: {written}; added: {added}")
    entry = dict(name=name, arch=cfg["architectures"][0], model_type=case["model_type"], dtype="f32", base=None,
                 tolerance=TOL_F32, num_hidden_layers=cfg["num_hidden_layers"], rope_config_form=form,
                 config_keys_added=added, weights_same_as=None,
                 reference_f32_vs_f64_max_row_rel_l2=f32_err, feature_effect_vs_plain=feature, notes=case["notes"],
                 **st)
    manifest.append(entry)
    models[name] = (case, model, torch.float32)
    return entry


def check_reload(d, pre, ids, dec, dtype, case):
    m = AutoModelForCausalLM.from_pretrained(d, attn_implementation="eager", dtype=dtype).eval()
    rpre, _, rdec = run_model(m.to(torch.float64), PROMPT, ids)
    e = max(rel_l2_rows(rpre, pre), rel_l2_rows(rdec, dec))
    assert e < 1e-12, f"{d}: reload differs {e}"
    tmp = classic_only_copy(d, d + ".classic_tmp")
    m2 = AutoModelForCausalLM.from_pretrained(tmp, attn_implementation="eager", dtype=dtype).eval()
    rpre2, _, rdec2 = run_model(m2.to(torch.float64), PROMPT, ids)
    shutil.rmtree(tmp)
    e2 = max(rel_l2_rows(rpre2, pre), rel_l2_rows(rdec2, dec))
    assert e2 < 1e-12, f"{d}: config with classic rope keys only differs {e2}"
    # The stored expected file round-trips through the official safetensors library.
    from safetensors.torch import load_file
    ex = load_file(os.path.join(d, "expected.safetensors"))
    assert torch.equal(ex["decode_ids"].long(), ids) and ex["prefill_logits"].shape == (P, VOCAB)


def do_bf16_case(base_name, outdir, manifest, models):
    case, base, _ = models[base_name]
    name = base_name + "_bf16"
    log(f"== {name}")
    # Round the parameters only: buffers (rope inv_freq) must stay float32, as from_pretrained(dtype=bf16)
    # keeps them; Module.to(bfloat16) would round the rope frequencies too.
    model = copy.deepcopy(base)
    with torch.no_grad():
        for prm in model.parameters():
            prm.copy_(prm.to(torch.bfloat16).float())
    m64, pre, ids, dec = reference(model)
    d = os.path.join(outdir, name)
    os.makedirs(d, exist_ok=True)
    copy.deepcopy(model).to(torch.bfloat16).save_pretrained(d, safe_serialization=True)
    for extra in os.listdir(d):
        if extra not in ("config.json", "model.safetensors"):
            os.remove(os.path.join(d, extra))
    cfg, form, written, added = fix_config_json(d, case)
    write_expected(d, pre, ids, dec)
    check_reload(d, pre, ids, dec, torch.bfloat16, case)
    bpre, bids, bdec = [x for x in manifest_ref[base_name]]
    drift = max(rel_l2_rows(pre, bpre), rel_l2_rows(dec, bdec)) if torch.equal(ids, bids) else None
    st = stats(pre, dec)
    log(f"   decode_ids={ids.tolist()} rel diff vs f32 base={drift} {st}")
    manifest.append(dict(name=name, arch=cfg["architectures"][0], model_type=case["model_type"], dtype="bf16",
                         base=base_name, tolerance=TOL_LOW, num_hidden_layers=cfg["num_hidden_layers"],
                         rope_config_form=form, config_keys_added=added, weights_same_as=None,
                         rel_l2_vs_base_reference=drift,
                         notes=f"{base_name} with every tensor rounded to bf16 (round-to-nearest-even) and saved as "
                               "BF16; reference computed in float64 from the rounded weights.", **st))
    models[name] = (case, model, torch.bfloat16)


def quantized_modules(model):
    names = []
    for n, mod in model.named_modules():
        if isinstance(mod, torch.nn.Linear) or isinstance(mod, torch.nn.Embedding):
            if n == "lm_head" and model.config.tie_word_embeddings:
                continue
            names.append(n)
    return names


def do_mlx_case(base_name, bits, outdir, manifest, models):
    case, base, store_dtype = models[base_name]
    name = f"{base_name}_mlx{bits}"
    log(f"== {name}")
    model = copy.deepcopy(base)
    # Parameters only (tied lm_head appears once, as embed_tokens), in the storage dtype.
    sd = {k: v.detach().clone().to(store_dtype) for k, v in model.named_parameters()}
    if model.config.tie_word_embeddings:
        sd.pop("lm_head.weight", None)
    qmods = quantized_modules(model)
    file_tensors = {}
    deq = {}
    for mod in qmods:
        w = sd.pop(mod + ".weight")
        packed, scales, biases, q = mlx_affine_quantize(w, GROUP_SIZE, bits)
        file_tensors[mod + ".weight"] = packed
        file_tensors[mod + ".scales"] = scales
        file_tensors[mod + ".biases"] = biases
        deq[mod + ".weight"] = (scales.float().repeat_interleave(GROUP_SIZE, dim=1) * q.float()
                                + biases.float().repeat_interleave(GROUP_SIZE, dim=1))
    for k, v in sd.items():
        file_tensors[k] = v
    # Reference model: the base module with the dequantized weights (exactly scale*q+bias in float32).
    m64 = copy.deepcopy(base).to(torch.float64)
    with torch.no_grad():
        for k, v in deq.items():
            m64.get_parameter(k).copy_(v.double())
    pre, ids, dec = run_model(m64, PROMPT)
    full = full_forward(m64, PROMPT, ids)
    assert max(rel_l2_rows(full[:P], pre), rel_l2_rows(full[P:], dec)) < 1e-6
    d = os.path.join(outdir, name)
    os.makedirs(d, exist_ok=True)
    src = os.path.join(outdir, base_name, "config.json")
    with open(src) as f:
        cfg = json.load(f)
    qcfg = {"group_size": GROUP_SIZE, "bits": bits}
    cfg["quantization"] = dict(qcfg)
    cfg["quantization_config"] = dict(qcfg)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
        f.write("\n")
    wpath = os.path.join(d, "model.safetensors")
    write_safetensors(wpath, file_tensors, metadata={"format": "mlx"})
    write_expected(d, pre, ids, dec)
    # Reload check through the independent reader + dequantizer.
    back = read_safetensors(wpath)
    m2 = copy.deepcopy(base).to(torch.float64)
    with torch.no_grad():
        for k, v in m2.named_parameters():
            if k == "lm_head.weight" and m2.config.tie_word_embeddings:
                continue
            if k in back and back[k].dtype == np.uint32:
                mod = k[: -len(".weight")]
                w = unpack_dequantize(back[k], back[mod + ".scales"], back[mod + ".biases"], GROUP_SIZE, bits)
            else:
                w = back[k]
            assert tuple(w.shape) == tuple(v.shape), (k, w.shape, v.shape)
            v.copy_(torch.from_numpy(np.asarray(w, dtype=np.float64)))
    rpre, _, rdec = run_model(m2, PROMPT, ids)
    e = max(rel_l2_rows(rpre, pre), rel_l2_rows(rdec, dec))
    assert e < 1e-12, f"{name}: reload via own dequantizer differs {e}"
    from safetensors import safe_open
    with safe_open(wpath, framework="pt") as f:
        keys = set(f.keys())
        assert keys == set(file_tensors), "official safetensors reader sees other tensors"
        t = f.get_tensor(qmods[0] + ".weight")
        assert t.dtype == torch.uint32 and tuple(t.shape) == file_tensors[qmods[0] + ".weight"].shape
    bpre, bids, bdec = manifest_ref[base_name]
    drift = max(rel_l2_rows(pre, bpre), rel_l2_rows(dec, bdec)) if torch.equal(ids, bids) else None
    qerr = max(float((deq[k] - base.get_parameter(k).detach().float()).abs().max()) for k in deq)
    st = stats(pre, dec)
    log(f"   quantized {len(qmods)} modules; decode_ids={ids.tolist()} rel diff vs base={drift} "
        f"max |w-deq|={qerr:.3g} {st}")
    sdt = "bf16" if store_dtype == torch.bfloat16 else "f32"
    root_base = base_name
    manifest.append(dict(
        name=name, arch=cfg["architectures"][0], model_type=case["model_type"], dtype=f"mlx{bits}", base=root_base,
        tolerance=TOL_LOW, num_hidden_layers=cfg["num_hidden_layers"], rope_config_form=None,
        scales_dtype=sdt, quantized_modules=qmods, group_size=GROUP_SIZE, bits=bits,
        rel_l2_vs_base_reference=drift, max_abs_weight_quant_error=qerr,
        notes=f"MLX affine {bits}-bit, group size {GROUP_SIZE}, quantized by this script with MLX's algorithm "
              f"(mlx/ops.cpp affine_quantize), {sdt} scales/biases; all Linear layers, embed_tokens"
              + ("" if model.config.tie_word_embeddings else " and lm_head")
              + " quantized, norms and other tensors kept as in the base. Packed uint32 little-endian, element j at "
                f"bit j*{bits}. Reference logits in float64 from the dequantized weights scale*q+bias (float32).",
        **st))


def window_probe():
    """Measures the sliding-window semantics of transformers' Mistral: a 1-layer model, token 0 perturbed;
    returns how many keys (self included) a query sees."""
    case = dict(CASES[3])
    cfg = make_config(case, dict(num_hidden_layers=1))
    m = build_model(cfg)
    init_weights(m, "probe")
    m = m.to(torch.float64)
    a = PROMPT.clone()
    b = PROMPT.clone()
    b[0] = (b[0] + 1) % VOCAB
    with torch.no_grad():
        la = m(input_ids=a[None]).logits[0]
        lb = m(input_ids=b[None]).logits[0]
    changed = [(la[i] - lb[i]).abs().max().item() > 0 for i in range(P)]
    k = max(i for i in range(P) if changed[i])
    assert all(changed[: k + 1]) and not any(changed[k + 1:])
    return k + 1


manifest_ref = {}


def main():
    global PROMPT
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.set_num_threads(4)
    log(f"torch {torch.__version__} transformers {transformers.__version__} numpy {np.__version__}")
    PROMPT = prompt_ids()
    outdir = args.out
    os.makedirs(outdir, exist_ok=True)
    manifest, models = [], {}
    for case in CASES:
        do_f32_case(case, outdir, manifest, models)
        e = manifest[-1]
        ex = read_safetensors(os.path.join(outdir, case["name"], "expected.safetensors"))
        manifest_ref[case["name"]] = (torch.from_numpy(ex["prefill_logits"]).double(),
                                      torch.from_numpy(ex["decode_ids"]).long(),
                                      torch.from_numpy(ex["decode_logits"]).double())
    w = window_probe()
    log(f"sliding window probe: a query sees {w} keys (itself included) with sliding_window=8")
    for e in manifest:
        if e["name"] == "mistral_swa":
            e["notes"] += (f" Measured in transformers {transformers.__version__}: query i attends key j iff "
                           f"0 <= i - j < {w}, i.e. {w} keys including itself.")
    for b in BF16_CASES:
        do_bf16_case(b, outdir, manifest, models)
        ex = read_safetensors(os.path.join(outdir, b + "_bf16", "expected.safetensors"))
        manifest_ref[b + "_bf16"] = (torch.from_numpy(ex["prefill_logits"]).double(),
                                     torch.from_numpy(ex["decode_ids"]).long(),
                                     torch.from_numpy(ex["decode_logits"]).double())
    for b, bits in MLX_CASES + MLX_BF16_CASES:
        do_mlx_case(b, bits, outdir, manifest, models)
    # Cases that share weights with another: identical bytes become a relative symlink.
    by_name = {c["name"]: c for c in CASES}
    for e in manifest:
        c = by_name.get(e["name"])
        if not c or c["wkey"] == c["name"]:
            continue
        src = os.path.join(outdir, c["wkey"], "model.safetensors")
        dst = os.path.join(outdir, e["name"], "model.safetensors")
        if sha(src) == sha(dst):
            os.remove(dst)
            os.symlink(os.path.join("..", c["wkey"], "model.safetensors"), dst)
            e["weights_same_as"] = c["wkey"]
        else:
            log(f"   note: {e['name']} weights not byte-identical to {c['wkey']}, kept a copy")
    total = 0
    for root, _, files in os.walk(outdir):
        for f in files:
            p = os.path.join(root, f)
            if not os.path.islink(p):
                total += os.path.getsize(p)
    doc = dict(
        generator="tools/golden/make_golden.py",
        transformers_version=transformers.__version__, torch_version=torch.__version__,
        prompt_length=P, n_decode=N_DECODE, vocab_size=VOCAB, prompt_seed=PROMPT_SEED,
        reference="float64 on CPU, attn_implementation=eager, stored as float32; decode through past_key_values",
        comparison="relative L2 error per logits row <= tolerance; greedy ids identical where the reference "
                   "top-2 margin > 1e-3",
        total_bytes=total,
        cases=manifest)
    with open(os.path.join(outdir, "manifest.json"), "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    log(f"done: {len(manifest)} cases, {total} bytes")


if __name__ == "__main__":
    main()
