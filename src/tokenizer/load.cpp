// LoadTokenizer (path dispatch, gzip-aware file reading) and StreamDecoder.
#include <zlib.h>

#include <filesystem>
#include <unistd.h>

#include "tokenizer/pipeline_tokenizer.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"
#include "util/error.h"
#include "util/file.h"

namespace pensieve {
namespace {

namespace fs = std::filesystem;

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Reads a file (util/file.h: a regular file of bounded size); a name ending in .gz is gunzipped, to at most
// kMaxTextFileBytes.
std::string ReadFileMaybeGz(const std::string& path) {
  if (!EndsWith(path, ".gz")) return ReadRegularFile(path);
  RegularFile file(path);
  gzFile gz = gzdopen(file.fd(), "rb");
  if (!gz) throw Error(path + ": cannot open");
  file.Release();  // gzclose closes it
  std::string out;
  char buf[1 << 16];
  int n;
  while ((n = gzread(gz, buf, sizeof(buf))) > 0) {
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > kMaxTextFileBytes) {
      gzclose(gz);
      throw Error(path + ": decompresses to more than " + std::to_string(kMaxTextFileBytes) + " bytes");
    }
  }
  int err = 0;
  std::string msg = gzerror(gz, &err);
  gzclose(gz);
  if (n < 0 || (err != Z_OK && err != Z_STREAM_END)) throw Error(path + ": cannot decompress: " + msg);
  return out;
}

bool LooksLikeGguf(const std::string& path) {
  RegularFile file(path);
  char magic[4] = {};
  return ::pread(file.fd(), magic, 4, 0) == 4 && std::string(magic, 4) == "GGUF";
}

std::unique_ptr<Tokenizer> LoadJson(const std::string& json_path) {
  fs::path dir = fs::path(json_path).parent_path();
  std::string config;
  fs::path cfg = dir / "tokenizer_config.json";
  if (PathPresent(cfg.string())) config = ReadFileMaybeGz(cfg.string());
  return tok::MakePipelineTokenizer(tok::PartsFromTokenizerJson(ReadFileMaybeGz(json_path), config, json_path));
}

}  // namespace

std::unique_ptr<Tokenizer> LoadTokenizer(const std::string& path) {
  if (IsDirectory(path)) {
    for (const char* name : {"tokenizer.json", "tokenizer.json.gz"}) {
      fs::path p = fs::path(path) / name;
      if (PathPresent(p.string())) return LoadJson(p.string());
    }
    throw Error(path + ": no tokenizer.json in the directory");
  }
  if (!PathPresent(path)) throw Error(path + ": no such file or directory");
  if (EndsWith(path, ".gguf") || LooksLikeGguf(path)) return tok::LoadGgufTokenizer(path);
  return LoadJson(path);
}

// ---------------------------------------------------------------- StreamDecoder
//
// Decodes a window [prefix, n) and emits what it adds beyond [prefix, read): the tokens before `read` give the
// decoders their left context (SentencePiece's first-token space stripping, cleanup rules). Text is held back
// while it ends in an incomplete character (U+FFFD that more bytes may complete) or a space (a following
// token may remove it under clean_up_tokenization_spaces).

StreamDecoder::StreamDecoder(const Tokenizer& tokenizer, bool skip_special)
    : tokenizer_(tokenizer), skip_special_(skip_special) {}

namespace {
constexpr char kReplacement[] = "\xEF\xBF\xBD";

bool HoldBack(const std::string& s) {
  if (s.empty()) return false;
  if (s.back() == ' ') return true;
  return s.size() >= 3 && s.compare(s.size() - 3, 3, kReplacement) == 0;
}
}  // namespace

// State: ids_ holds the window; emitted_bytes_ counts bytes of Decode(window) already returned. The window
// starts at the first id whose text is not yet final plus one id of context.
std::string StreamDecoder::Push(int32_t id) {
  ids_.push_back(id);
  std::string text = tokenizer_.Decode(ids_, skip_special_);
  if (HoldBack(text)) return "";
  // What was returned must stay a prefix; if a decoder rewrote it, wait (Flush settles it).
  if (text.size() < emitted_bytes_ || text.compare(0, emitted_bytes_, window_text_, 0, emitted_bytes_) != 0)
    return "";
  std::string out = text.substr(emitted_bytes_);
  emitted_bytes_ = text.size();
  window_text_ = std::move(text);
  // Slide the window to the last id alone when its text is exactly the tail of the window's text.
  if (ids_.size() > 1) {
    std::vector<int32_t> ctx{ids_.back()};
    std::string ctx_text = tokenizer_.Decode(ctx, skip_special_);
    if (!ctx_text.empty() && !HoldBack(ctx_text) && window_text_.size() >= ctx_text.size() &&
        window_text_.compare(window_text_.size() - ctx_text.size(), ctx_text.size(), ctx_text) == 0) {
      ids_ = std::move(ctx);
      emitted_bytes_ = ctx_text.size();
      window_text_ = std::move(ctx_text);
    }
  }
  return out;
}

std::string StreamDecoder::Flush() {
  std::string text = tokenizer_.Decode(ids_, skip_special_);
  std::string out = text.size() > emitted_bytes_ ? text.substr(emitted_bytes_) : "";
  ids_.clear();
  emitted_bytes_ = 0;
  window_text_.clear();
  return out;
}

}  // namespace pensieve
