#!/usr/bin/env bash
# Fetches the test data (what the files are: ../shared/data/README.md) into a folder that tests then read
# through PENSIEVE_TEST_DATA. For a machine with internet access; NOT for CI (CI has the data beside the checkout
# and fails when it is missing). Every file is checked against the sha256 below (for *.gz files: of the
# decompressed content, since gzip's bytes depend on its version); a mismatch stops the script at once and the
# file is not installed. Files already present with the right checksum are kept.
#
# Usage: scripts/fetch_test_data.sh [DEST]          DEST: default $PENSIEVE_TEST_DATA, else ../shared/data
#        scripts/fetch_test_data.sh --check [DEST]  only verify what DEST holds (no network)
# Environment:
#   PENSIEVE_TEST_DATA_MIRROR  a URL or folder holding a copy laid out like DEST (tried first, for every file).
#                              The files marked "-" below have no public origin (the stories260K conversions and
#                              the reference outputs were made for this project): they come from a mirror only.
#                              tokenizers/llama-3.1 is there too: its upstream repository could not be pinned
#                              down (its tokenizer_config.json pairs <|eot_id|> with Llama 3's base template).
#   HF_TOKEN                   for Hugging Face repositories that need an accepted licence (mistralai).
#   LLAMA_CPP_REF              llama.cpp commit or branch for models/ and models/templates/ (default: master).
# Exit status: 0 when every file is present and verified; 1 when some could not be had (listed at the end);
# 2 on a checksum mismatch; 64 on a usage error or under CI=true.
set -euo pipefail
if [ "${CI:-}" = true ]; then
  echo "fetch_test_data: not run in CI (CI=true): CI must have the data beside the checkout, not download it" >&2
  exit 64
fi
check_only=false
if [ "${1:-}" = --check ]; then check_only=true; shift; fi
[ $# -le 1 ] || { echo "usage: $0 [--check] [DEST]" >&2; exit 64; }
# DEST and PENSIEVE_TEST_DATA are relative to where the script is called from; the default, to the checkout.
dest=${1:-${PENSIEVE_TEST_DATA:-}}
[ -z "$dest" ] || dest=$(realpath -m "$dest")
cd "$(dirname "$0")/.."
dest=${dest:-$(realpath -m ../shared/data)}
mirror=${PENSIEVE_TEST_DATA_MIRROR:-}
llama_cpp=https://raw.githubusercontent.com/ggml-org/llama.cpp/${LLAMA_CPP_REF:-master}
llama2c=https://raw.githubusercontent.com/karpathy/llama2.c/350e04fe35433e6d2941dce5a1f53308f87058eb
hf=https://huggingface.co

# sha256 of a file's content (decompressed for *.gz).
content_sha() {
  if [[ $1 == *.gz ]]; then gzip -dc "$1"; else cat "$1"; fi | sha256sum | cut -c1-64
}

# get SOURCE OUT: a URL (curl; the HF token only to huggingface.co) or a local path.
get() {
  case $1 in
    https://huggingface.co/*) curl -fsSL --connect-timeout 20 --retry 3 ${HF_TOKEN:+-H "Authorization: Bearer $HF_TOKEN"} -o "$2" "$1" ;;
    http://* | https://*) curl -fsSL --connect-timeout 20 --retry 3 -o "$2" "$1" ;;
    *) cp "$1" "$2" ;;
  esac
}

# sha256 (of the content), path under DEST, public origin ("-": none; the origin of a *.gz file serves it
# uncompressed). Checksums are those of the copy in ../shared/data.
manifest=$(cat <<MANIFEST
2eb98be2b9eb4dd78f479482120792fad624370fa0c02b15333c1a1c067a3835  chat-templates/hf-jinja-unit-tests.json  -
32389f08c72c430ccb8cb2aacd871a046f6eab2f1c3a259a5d4a9af3b5d7a53e  chat-templates/real-templates.rendered.json  -
bf9e9ee8c0f2297c6ff60af5fab357d7b34bc4375884ed16ab6aa90597d7eb7d  chat-templates/templates/CohereForAI-c4ai-command-r-plus-tool_use.jinja  $llama_cpp/models/templates/CohereForAI-c4ai-command-r-plus-tool_use.jinja
0c3f266d86f93a1f50f1573648ba005cb9691ff176c2cfd7ca1a0a33fd7023ec  chat-templates/templates/CohereForAI-c4ai-command-r7b-12-2024-tool_use.jinja  $llama_cpp/models/templates/CohereForAI-c4ai-command-r7b-12-2024-tool_use.jinja
7ce09d55d3690e06c70b5c07228cc7e8c99c43a23cdc027762be4011efcdea6c  chat-templates/templates/NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use.jinja  $llama_cpp/models/templates/NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use.jinja
7ce09d55d3690e06c70b5c07228cc7e8c99c43a23cdc027762be4011efcdea6c  chat-templates/templates/NousResearch-Hermes-3-Llama-3.1-8B-tool_use.jinja  $llama_cpp/models/templates/NousResearch-Hermes-3-Llama-3.1-8B-tool_use.jinja
cd8e9439f0570856fd70470bf8889ebd8b5d1107207f67a5efb46e342330527f  chat-templates/templates/Qwen-Qwen2.5-7B-Instruct.jinja  $llama_cpp/models/templates/Qwen-Qwen2.5-7B-Instruct.jinja
56a1447ad31926fdc21fb07e56e5642bd9c850c4f52d8c8af7bbe5f079a84f5f  chat-templates/templates/deepseek-ai-DeepSeek-R1-Distill-Llama-8B.jinja  $llama_cpp/models/templates/deepseek-ai-DeepSeek-R1-Distill-Llama-8B.jinja
56a1447ad31926fdc21fb07e56e5642bd9c850c4f52d8c8af7bbe5f079a84f5f  chat-templates/templates/deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja  $llama_cpp/models/templates/deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja
25b097cb602823e9216258cf4b20a23ebd4004848e6c8d8da1f360fe2373410c  chat-templates/templates/fireworks-ai-llama-3-firefunction-v2.jinja  $llama_cpp/models/templates/fireworks-ai-llama-3-firefunction-v2.jinja
ecd6ae513fe103f0eb62e8ab5bfa8d0fe45c1074fa398b089c93a7e70c15cfd6  chat-templates/templates/google-gemma-2-2b-it.jinja  $llama_cpp/models/templates/google-gemma-2-2b-it.jinja
05549dad28b85aa1be36d9c625be27377b4101c115686830f79a994adb687822  chat-templates/templates/llama-cpp-deepseek-r1.jinja  $llama_cpp/models/templates/llama-cpp-deepseek-r1.jinja
b2b7d1a2ff8344254daa5bc2f59a9182994806e94fdc191fe92b4a0693d8cb68  chat-templates/templates/meetkai-functionary-medium-v3.1.jinja  $llama_cpp/models/templates/meetkai-functionary-medium-v3.1.jinja
5c7c96c27cfecf3418411d1ebd0d11d691ab6bd2155bb38dacc62250fe47c3c8  chat-templates/templates/meetkai-functionary-medium-v3.2.jinja  $llama_cpp/models/templates/meetkai-functionary-medium-v3.2.jinja
e10ca381b1ccc5cf9db52e371f3b6651576caee0a630b452e2816b2d404d4b65  chat-templates/templates/meta-llama-Llama-3.1-8B-Instruct.jinja  $llama_cpp/models/templates/meta-llama-Llama-3.1-8B-Instruct.jinja
5816fce10444e03c2e9ee1ef8a4a1ea61ae7e69e438613f3b17b69d0426223a4  chat-templates/templates/meta-llama-Llama-3.2-3B-Instruct.jinja  $llama_cpp/models/templates/meta-llama-Llama-3.2-3B-Instruct.jinja
e10ca381b1ccc5cf9db52e371f3b6651576caee0a630b452e2816b2d404d4b65  chat-templates/templates/meta-llama-Llama-3.3-70B-Instruct.jinja  $llama_cpp/models/templates/meta-llama-Llama-3.3-70B-Instruct.jinja
78d976a442bcde2f0be15aafbb8e3050e1104f86732266f68403251b89982a90  chat-templates/templates/microsoft-Phi-3.5-mini-instruct.jinja  $llama_cpp/models/templates/microsoft-Phi-3.5-mini-instruct.jinja
e4676cb56dffea7782fd3e2b577cfaf1e123537e6ef49b3ec7caa6c095c62272  chat-templates/templates/mistralai-Mistral-Nemo-Instruct-2407.jinja  $llama_cpp/models/templates/mistralai-Mistral-Nemo-Instruct-2407.jinja
61520bafcda7df4d9b50c8d40a8b2eb461ef1fabac2f014a8118551ecf8d49d5  models/stories260K/stories260K-Q4_0.gguf  -
d4728bb532a66a170d761afdf9c677d3ec9c6d795b7d63051495912de61f409e  models/stories260K/stories260K-Q8_0.gguf  -
3d845a3c23472f69cd9e3b324d1aab98f64e0390c8bf6439b81ea8d829afa565  models/stories260K/stories260K-f32.gguf  -
c2204e0bac4846fcc35fc0ee38edb2e2cd6451810cf6b90d6396d6bada9fab2e  models/stories260K/stories260K-gguf.expected.json  -
548fd31c990598b0d7edb0df3a82558236479ee3c6388dec4e36953e7f73121f  models/stories260K/stories260K-hf-bf16/config.json  -
9a2d8848e5bbab9b88cf61a96ffabbb8565f40fd8c3339d8b36a243a9102fd78  models/stories260K/stories260K-hf-bf16/expected.json  -
da4497c03e29053443f22f86837bc7fb2d0b4d15e54a25e48bf7d6b534350824  models/stories260K/stories260K-hf-bf16/generation_config.json  -
523e80129fa5d49563fbbca01905ca920497e967e338e21f5be02dcf7e862c19  models/stories260K/stories260K-hf-bf16/model.safetensors  -
e2beb172c475ec440d4012933e300d538af0221b8ff6b1b72bc611c8cf242f33  models/stories260K/stories260K-hf-bf16/tokenizer.json  -
8a251236ff1d241973165b479737725d0f3cb250485e1453e3a54d44090352b0  models/stories260K/stories260K-hf-bf16/tokenizer_config.json  -
e3bef7bafd48e9df0b486ad29d931dbd18f9dd46c2952c4e012fdf26f8ad39f3  models/stories260K/stories260K-hf/config.json  -
da4497c03e29053443f22f86837bc7fb2d0b4d15e54a25e48bf7d6b534350824  models/stories260K/stories260K-hf/generation_config.json  -
407a7c581bdd66972383ce9ad24857713fb98786d06ea564a2fe9b34ebe77dfd  models/stories260K/stories260K-hf/model.safetensors  -
e2beb172c475ec440d4012933e300d538af0221b8ff6b1b72bc611c8cf242f33  models/stories260K/stories260K-hf/tokenizer.json  -
8a251236ff1d241973165b479737725d0f3cb250485e1453e3a54d44090352b0  models/stories260K/stories260K-hf/tokenizer_config.json  -
45b842c48d5d5a126aeff0672a0c4c735d84194fc8f49837661b50a32d0469be  models/stories260K/stories260K.expected.json  -
50a52ef822ee9e83de5ce9d0be0a025a773d019437f58b5ff9dcafb063ece361  tokenizers/llama-2/tokenizer.llama2c.bin  $llama2c/tokenizer.bin
9e556afd44213b6bd1be2b850ebbbd98f5481437a8021afaf58ee7fb1818d347  tokenizers/llama-2/tokenizer.model  $llama2c/tokenizer.model
e134af98b985517b4f068e3755ae90d4e9cd2d45d328325dc503f1c6b2d06cc7  tokenizers/llama-3.1/tokenizer.json.gz  -
da0e3a7cce6e4d787e85eb1c24d548420e0d7fe2c7a214e192795c46e40d75bb  tokenizers/llama-3.1/tokenizer_config.json  -
588c961e2eba0ccf5c95a1337ffafb7ea8394717525f623ded08545c614ea0d5  tokenizers/mistral-7b-v0.1/ggml-vocab-tests.generated.out  -
fc4f0bd70b3709312d9d1d9e5ba674794b6bc5abc17429897a540f93882f25fc  tokenizers/mistral-7b-v0.1/tokenizer.json.gz  $hf/mistralai/Mistral-7B-v0.1/resolve/main/tokenizer.json
747ec99bae3fd9d7bf9c3b9172e5ca0d82ca0d23d64a58ef1752b612f196817b  tokenizers/mistral-7b-v0.1/tokenizer_config.json  $hf/mistralai/Mistral-7B-v0.1/resolve/main/tokenizer_config.json
aeb13307a71acd8fe81861d94ad54ab689df773318809eed3cbe794b4492dae4  tokenizers/qwen3/tokenizer.json.gz  $hf/Qwen/Qwen3-8B/resolve/main/tokenizer.json
5a7303fcb1a27ede63134a2cbd61d5282c247ca6d769ce4746d4ffa124aedd63  tokenizers/qwen3/tokenizer_config.json  $hf/Qwen/Qwen3-8B/resolve/main/tokenizer_config.json
91cb1379f2e33af1c4866b194622b7a0e12e8f0c9dba7ba2f10d55978730bec1  vocab/ggml-vocab-deepseek-coder.gguf  $llama_cpp/models/ggml-vocab-deepseek-coder.gguf
ef7a25a263fba141f64a8a842ceb1c572cdb8e1313f592d974f7a06bbd3a4934  vocab/ggml-vocab-deepseek-coder.gguf.inp  $llama_cpp/models/ggml-vocab-deepseek-coder.gguf.inp
aacf4fe0f1a8c4cf935963ffa625a8f3b44139fb948846d3768822aaa0c01b30  vocab/ggml-vocab-deepseek-coder.gguf.out  $llama_cpp/models/ggml-vocab-deepseek-coder.gguf.out
ef7a25a263fba141f64a8a842ceb1c572cdb8e1313f592d974f7a06bbd3a4934  vocab/ggml-vocab-deepseek-r1-qwen.gguf.inp  $llama_cpp/models/ggml-vocab-deepseek-r1-qwen.gguf.inp
4fdf5ff70fcfbb819642b522a47b8f61522fa20d938fa7470a8497bc52773cd4  vocab/ggml-vocab-deepseek-r1-qwen.gguf.out  $llama_cpp/models/ggml-vocab-deepseek-r1-qwen.gguf.out
cedc56ca6e2e89f63e781696d1fd76b4b1d49e6720dee86463e915f6e90016ac  vocab/ggml-vocab-gpt-2.gguf  $llama_cpp/models/ggml-vocab-gpt-2.gguf
ef7a25a263fba141f64a8a842ceb1c572cdb8e1313f592d974f7a06bbd3a4934  vocab/ggml-vocab-gpt-2.gguf.inp  $llama_cpp/models/ggml-vocab-gpt-2.gguf.inp
a2630e9cf29c0ddbd9fd79fe358dc83e80af779f886eeaa7627dbfdeec54bae6  vocab/ggml-vocab-gpt-2.gguf.out  $llama_cpp/models/ggml-vocab-gpt-2.gguf.out
ef7a25a263fba141f64a8a842ceb1c572cdb8e1313f592d974f7a06bbd3a4934  vocab/ggml-vocab-llama-bpe.gguf.inp  $llama_cpp/models/ggml-vocab-llama-bpe.gguf.inp
5c92e3c68163aa74c73a6128c0598c1dfad31dde068a0a48be496d3046816ec1  vocab/ggml-vocab-llama-bpe.gguf.out  $llama_cpp/models/ggml-vocab-llama-bpe.gguf.out
16c3724582d59aa8bf84711894e833f916ee46a31d80e21312759c48bf8d0e69  vocab/ggml-vocab-llama-spm.gguf  $llama_cpp/models/ggml-vocab-llama-spm.gguf
ef7a25a263fba141f64a8a842ceb1c572cdb8e1313f592d974f7a06bbd3a4934  vocab/ggml-vocab-llama-spm.gguf.inp  $llama_cpp/models/ggml-vocab-llama-spm.gguf.inp
ea602819af9f9af53a7af285a284ee810e70a4a14a5972e4c891ccd683488af5  vocab/ggml-vocab-llama-spm.gguf.out  $llama_cpp/models/ggml-vocab-llama-spm.gguf.out
59dc382612866d1fc6c11ea531318d327598f3412d9c8f8600607cdf3030898f  vocab/ggml-vocab-mpt.gguf  $llama_cpp/models/ggml-vocab-mpt.gguf
ef7a25a263fba141f64a8a842ceb1c572cdb8e1313f592d974f7a06bbd3a4934  vocab/ggml-vocab-mpt.gguf.inp  $llama_cpp/models/ggml-vocab-mpt.gguf.inp
34dd177f7725b1ca3f9b42d8ddd91375c3f6dbb2865835ea8ac4934931675f56  vocab/ggml-vocab-mpt.gguf.out  $llama_cpp/models/ggml-vocab-mpt.gguf.out
967d7190d11c4842eab697079d98d56c2116e10eb617be355a2733bfc132e326  vocab/ggml-vocab-phi-3.gguf  $llama_cpp/models/ggml-vocab-phi-3.gguf
ef7a25a263fba141f64a8a842ceb1c572cdb8e1313f592d974f7a06bbd3a4934  vocab/ggml-vocab-phi-3.gguf.inp  $llama_cpp/models/ggml-vocab-phi-3.gguf.inp
ea602819af9f9af53a7af285a284ee810e70a4a14a5972e4c891ccd683488af5  vocab/ggml-vocab-phi-3.gguf.out  $llama_cpp/models/ggml-vocab-phi-3.gguf.out
ef7a25a263fba141f64a8a842ceb1c572cdb8e1313f592d974f7a06bbd3a4934  vocab/ggml-vocab-qwen2.gguf.inp  $llama_cpp/models/ggml-vocab-qwen2.gguf.inp
4fdf5ff70fcfbb819642b522a47b8f61522fa20d938fa7470a8497bc52773cd4  vocab/ggml-vocab-qwen2.gguf.out  $llama_cpp/models/ggml-vocab-qwen2.gguf.out
MANIFEST
)

ok=0 fetched=0
unavailable=()
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
while read -r sum rel origin; do
  out="$dest/$rel"
  if [ -f "$out" ] && [ "$(content_sha "$out")" = "$sum" ]; then
    ok=$((ok + 1))
    continue
  fi
  if $check_only; then
    [ -f "$out" ] && echo "fetch_test_data: CHECKSUM MISMATCH: $out" >&2 || echo "fetch_test_data: missing: $out" >&2
    unavailable+=("$rel")
    continue
  fi
  sources=()
  [ -n "$mirror" ] && sources+=("$mirror/$rel")
  [ "$origin" != - ] && sources+=("$origin")
  if [ ${#sources[@]} -eq 0 ]; then
    unavailable+=("$rel (no public origin: set PENSIEVE_TEST_DATA_MIRROR to a copy)")
    continue
  fi
  got_it=false
  for src in "${sources[@]}"; do
    file="$tmp/$(basename "$rel")"
    rm -f "$file" "$file.raw"
    if ! get "$src" "$file.raw" 2>"$tmp/err"; then
      echo "fetch_test_data: could not get $src: $(head -c 300 "$tmp/err")" >&2
      continue
    fi
    if [[ $rel == *.gz && $src != *.gz ]]; then gzip -n -9 < "$file.raw" > "$file"; else mv "$file.raw" "$file"; fi
    actual=$(content_sha "$file")
    if [ "$actual" != "$sum" ]; then
      {
        echo "################################################################################"
        echo "fetch_test_data: CHECKSUM MISMATCH for $rel"
        echo "  from     $src"
        echo "  expected $sum"
        echo "  got      $actual"
        echo "Not installed. The origin now serves other bytes (or the transfer was altered): do not use it."
        echo "################################################################################"
      } >&2
      exit 2
    fi
    mkdir -p "$(dirname "$out")"
    mv "$file" "$out"
    echo "fetch_test_data: $rel (from $src)"
    fetched=$((fetched + 1))
    got_it=true
    break
  done
  $got_it || unavailable+=("$rel (download failed)")
done <<< "$manifest"

echo "fetch_test_data: $dest: $ok already present and verified, $fetched fetched and verified"
if [ ${#unavailable[@]} -gt 0 ]; then
  echo "fetch_test_data: ${#unavailable[@]} files NOT available; the tests that need them will skip (fail under CI=true):" >&2
  printf '  %s\n' "${unavailable[@]}" >&2
  exit 1
fi
