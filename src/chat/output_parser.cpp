#include "chat/output_parser.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>

#include "chat/json_call_scanner.h"

namespace pensieve::chat {
namespace {

constexpr std::string_view kThinkOpen = "<think>";
constexpr std::string_view kThinkClose = "</think>";
constexpr std::string_view kHermesOpen = "<tool_call>";
constexpr std::string_view kHermesClose = "</tool_call>";
constexpr std::string_view kPhiOpen = "<|tool_call|>";
constexpr std::string_view kPhiClose = "<|/tool_call|>";
constexpr std::string_view kMistralOpen = "[TOOL_CALLS]";
constexpr std::string_view kMistralArgs = "[ARGS]";
constexpr std::string_view kMistralCallId = "[CALL_ID]";
constexpr std::string_view kPythonTag = "<|python_tag|>";
constexpr std::string_view kEom = "<|eom_id|>";
constexpr std::string_view kEot = "<|eot_id|>";

bool IsSpace(char c) { return c == ' ' || c == '\n' || c == '\t' || c == '\r'; }

bool AllSpace(std::string_view s) { return std::all_of(s.begin(), s.end(), IsSpace); }

// Appends to out, merging with the previous event of the same kind for text-like kinds, so the event list
// does not depend on how the input was chunked.
void Emit(OutputEvent::Kind kind, std::string_view text, std::vector<OutputEvent>& out) {
  const bool mergeable = kind == OutputEvent::Kind::kText || kind == OutputEvent::Kind::kThinking ||
                         kind == OutputEvent::Kind::kToolArgs;
  if (mergeable && text.empty()) return;
  if (mergeable && !out.empty() && out.back().kind == kind) {
    out.back().text.append(text);
    return;
  }
  out.push_back({kind, std::string(text)});
}

// Length of the longest suffix of s that is a proper prefix of marker.
size_t PartialMarkerSuffix(std::string_view s, std::string_view marker) {
  size_t max = std::min(s.size(), marker.size() - 1);
  for (size_t len = max; len > 0; --len) {
    if (s.substr(s.size() - len) == marker.substr(0, len)) return len;
  }
  return 0;
}

class Parser final : public OutputParser {
 public:
  explicit Parser(const ParserConfig& config) : config_(config) {
    if (config.starts_in_reasoning) mode_ = Mode::kThinking;
    // starts_in_reasoning alone (JSON mode after a forced </think>) reads the reasoning, then plain text.
    if (config.reasoning) text_markers_.push_back(kThinkOpen);
    switch (config.tools) {
      case ToolFormat::kHermes: text_markers_.push_back(kHermesOpen); break;
      case ToolFormat::kPhi4Mini: text_markers_.push_back(kPhiOpen); break;
      case ToolFormat::kMistral: text_markers_.push_back(kMistralOpen); break;
      case ToolFormat::kLlama3Json:
        text_markers_.push_back(kPythonTag);
        bare_json_possible_ = true;
        break;
      case ToolFormat::kNone: break;
    }
  }

  void Feed(std::string_view text, std::vector<OutputEvent>& out) override {
    for (char c : text) Step(c, out);
  }

  void Finish(std::vector<OutputEvent>& out) override {
    switch (mode_) {
      case Mode::kText:
        if (!(trim_leading_space_ && AllSpace(pending_))) Emit(OutputEvent::Kind::kText, pending_, out);
        break;
      case Mode::kThinking: Emit(OutputEvent::Kind::kThinking, pending_, out); break;
      case Mode::kTool: FinishTool(out); break;
    }
    pending_.clear();
  }

 private:
  enum class Mode { kText, kThinking, kTool };
  // Where a tool call is inside its markup.
  enum class ToolPhase {
    kBeforeBody,    // after the opening marker, before '{' / '[' / a name
    kObject,        // inside a call object (scanner_ running)
    kAfterObject,   // an object ended: list separator, list end, or close marker
    kClose,         // matching the close marker (close_buf_)
    kMistralName,   // [TOOL_CALLS]name...
    kMistralCallId, // [CALL_ID]id...
    kMistralArgs,   // [ARGS]{...}: raw JSON value
    kPythonCode,    // <|python_tag|> followed by code
  };

  void Step(char c, std::vector<OutputEvent>& out) {
    switch (mode_) {
      case Mode::kText: StepText(c, out); break;
      case Mode::kThinking: StepThinking(c, out); break;
      case Mode::kTool: StepTool(c, out); break;
    }
  }

  void StepText(char c, std::vector<OutputEvent>& out) {
    if (trim_leading_space_) {
      if (IsSpace(c)) return;
      trim_leading_space_ = false;
    }
    if (bare_json_possible_) {
      // Llama 3.x answers a tool call with a bare JSON object as its whole output.
      if (IsSpace(c)) {
        pending_.push_back(c);
        return;
      }
      bare_json_possible_ = false;
      if (c == '{') {
        std::string leading = std::move(pending_);
        pending_.clear();
        BeginTool(std::move(leading), out);  // the whitespace is dropped if a call follows, text otherwise
        bare_json_ = true;
        tool_phase_ = ToolPhase::kObject;
        scanner_.Reset(/*require_args=*/true);
        StepTool(c, out);
        return;
      }
    }
    pending_.push_back(c);
    for (std::string_view m : text_markers_) {
      if (pending_.size() >= m.size() && std::string_view(pending_).substr(pending_.size() - m.size()) == m) {
        Emit(OutputEvent::Kind::kText, std::string_view(pending_).substr(0, pending_.size() - m.size()), out);
        pending_.clear();
        if (m == kThinkOpen) {
          mode_ = Mode::kThinking;
        } else {
          BeginTool(std::string(m), out);
        }
        return;
      }
    }
    size_t hold = 0;
    for (std::string_view m : text_markers_) hold = std::max(hold, PartialMarkerSuffix(pending_, m));
    Emit(OutputEvent::Kind::kText, std::string_view(pending_).substr(0, pending_.size() - hold), out);
    pending_.erase(0, pending_.size() - hold);
  }

  void StepThinking(char c, std::vector<OutputEvent>& out) {
    pending_.push_back(c);
    if (pending_.size() >= kThinkClose.size() &&
        std::string_view(pending_).substr(pending_.size() - kThinkClose.size()) == kThinkClose) {
      Emit(OutputEvent::Kind::kThinking, std::string_view(pending_).substr(0, pending_.size() - kThinkClose.size()),
           out);
      pending_.clear();
      mode_ = Mode::kText;
      trim_leading_space_ = true;
      return;
    }
    size_t hold = PartialMarkerSuffix(pending_, kThinkClose);
    Emit(OutputEvent::Kind::kThinking, std::string_view(pending_).substr(0, pending_.size() - hold), out);
    pending_.erase(0, pending_.size() - hold);
  }

  // Enters tool mode after an opening marker (empty for Llama's bare JSON).
  void BeginTool(std::string marker, std::vector<OutputEvent>& out) {
    mode_ = Mode::kTool;
    raw_ = std::move(marker);
    tool_phase_ = ToolPhase::kBeforeBody;
    in_list_ = false;
    bare_json_ = false;
    any_started_ = false;
    close_buf_.clear();
    name_.clear();
  }

  std::string_view CloseMarker() const {
    switch (config_.tools) {
      case ToolFormat::kHermes: return kHermesClose;
      case ToolFormat::kPhi4Mini: return kPhiClose;
      default: return {};
    }
  }

  // Leaves tool mode normally (after a complete call or list).
  void EndTool() {
    mode_ = Mode::kText;
    raw_.clear();
    trim_leading_space_ = true;
  }

  // The markup turned out not to be a tool call: everything consumed since the marker is text.
  void AbandonTool(std::vector<OutputEvent>& out, std::string_view rest) {
    std::string text = std::move(raw_);
    text.append(rest);
    raw_.clear();
    mode_ = Mode::kText;
    trim_leading_space_ = false;
    Emit(OutputEvent::Kind::kText, text, out);
  }

  // Feeds text back through text mode (used when a close marker is implied by other text).
  void Refeed(const std::string& text, std::vector<OutputEvent>& out) {
    for (char ch : text) Step(ch, out);
  }

  void ScannerEvents(std::vector<OutputEvent>& out) {
    for (auto& e : scanner_.TakeEvents()) {
      if (e.kind == OutputEvent::Kind::kToolStart) {
        any_started_ = true;
        raw_.clear();
      }
      Emit(e.kind, e.text, out);
    }
  }

  void StepTool(char c, std::vector<OutputEvent>& out) {
    if (!any_started_) raw_.push_back(c);
    switch (tool_phase_) {
      case ToolPhase::kBeforeBody:
        if (IsSpace(c)) return;
        if (c == '[' && (config_.tools == ToolFormat::kPhi4Mini || config_.tools == ToolFormat::kMistral)) {
          in_list_ = true;
          tool_phase_ = ToolPhase::kObject;
          scanner_.Reset(false);
          return;
        }
        if (c == '{') {
          tool_phase_ = ToolPhase::kObject;
          scanner_.Reset(false);
          break;  // the scanner takes the '{'
        }
        if (config_.tools == ToolFormat::kMistral) {
          if (!(c == '_' || std::isalpha(static_cast<unsigned char>(c)))) {
            AbandonTool(out, {});
            return;
          }
          tool_phase_ = ToolPhase::kMistralName;
          name_.assign(1, c);
          return;
        }
        if (config_.tools == ToolFormat::kLlama3Json) {
          // <|python_tag|> followed by code: the built-in code interpreter call.
          tool_phase_ = ToolPhase::kPythonCode;
          any_started_ = true;
          raw_.clear();
          Emit(OutputEvent::Kind::kToolStart, "python", out);
          Emit(OutputEvent::Kind::kToolArgs, "{\"code\": \"", out);
          close_buf_.clear();
          StepPythonCode(c, out);
          return;
        }
        AbandonTool(out, {});
        return;
      case ToolPhase::kObject: break;
      case ToolPhase::kAfterObject: StepAfterObject(c, out); return;
      case ToolPhase::kClose: StepClose(c, out); return;
      case ToolPhase::kMistralName: StepMistralName(c, out); return;
      case ToolPhase::kMistralCallId: StepMistralCallId(c, out); return;
      case ToolPhase::kMistralArgs: StepMistralArgs(c, out); return;
      case ToolPhase::kPythonCode: StepPythonCode(c, out); return;
    }
    // kObject
    JsonCallScanner::Status st = scanner_.Push(c);
    ScannerEvents(out);
    if (st == JsonCallScanner::Status::kError) {
      if (!any_started_) {
        AbandonTool(out, {});
        return;
      }
      // A broken object after a call was reported: close the open call, if any, and skip to the close
      // marker (what is not the marker becomes text again).
      if (scanner_.started()) Emit(OutputEvent::Kind::kToolEnd, "", out);
      in_list_ = false;
      tool_phase_ = CloseMarker().empty() ? ToolPhase::kAfterObject : ToolPhase::kClose;
      close_buf_.clear();
      return;
    }
    if (st == JsonCallScanner::Status::kDone) tool_phase_ = ToolPhase::kAfterObject;
  }

  void StepAfterObject(char c, std::vector<OutputEvent>& out) {
    if (IsSpace(c)) return;
    if (in_list_) {
      if (c == ',') {
        tool_phase_ = ToolPhase::kObject;
        scanner_.Reset(false);
        return;
      }
      if (c == ']') {
        in_list_ = false;
        if (CloseMarker().empty()) {
          EndTool();
        } else {
          tool_phase_ = ToolPhase::kClose;
          close_buf_.clear();
        }
        return;
      }
    }
    if (config_.tools == ToolFormat::kLlama3Json && c == ';') {  // Llama 3.2: several calls, ';'-separated
      tool_phase_ = ToolPhase::kObject;
      scanner_.Reset(bare_json_);
      return;
    }
    // Llama ends a call turn with <|eom_id|> or <|eot_id|>; when those reach the parser as text, swallow them.
    if ((!CloseMarker().empty() || (config_.tools == ToolFormat::kLlama3Json && c == '<')) && !in_list_) {
      tool_phase_ = ToolPhase::kClose;
      close_buf_.clear();
      StepClose(c, out);
      return;
    }
    // Anything else ends the call(s); it is text again.
    EndTool();
    trim_leading_space_ = false;
    Step(c, out);
  }

  void StepClose(char c, std::vector<OutputEvent>& out) {
    close_buf_.push_back(c);
    std::string_view body = close_buf_;
    while (!body.empty() && IsSpace(body.front())) body.remove_prefix(1);
    std::array<std::string_view, 2> markers = {CloseMarker(), {}};
    if (config_.tools == ToolFormat::kLlama3Json) markers = {kEom, kEot};
    bool partial = false;
    for (std::string_view marker : markers) {
      if (marker.empty()) continue;
      if (body == marker) {
        EndTool();
        return;
      }
      partial = partial || marker.substr(0, body.size()) == body;
    }
    if (partial) return;
    // Not the close marker: the call is over anyway; what followed is text.
    std::string rest = std::move(close_buf_);
    close_buf_.clear();
    EndTool();
    Refeed(rest, out);
  }

  void StepMistralName(char c, std::vector<OutputEvent>& out) {
    name_.push_back(c);
    for (std::string_view m : {kMistralArgs, kMistralCallId}) {
      if (name_.size() >= m.size() && std::string_view(name_).substr(name_.size() - m.size()) == m) {
        name_.resize(name_.size() - m.size());
        while (!name_.empty() && IsSpace(name_.back())) name_.pop_back();
        if (name_.empty()) {
          AbandonTool(out, {});
          return;
        }
        if (m == kMistralCallId) {
          tool_phase_ = ToolPhase::kMistralCallId;
          close_buf_.clear();
          return;
        }
        StartMistralArgs(out);
        return;
      }
    }
    // A function name is an identifier-like token, then '[' starts one of the two markers; anything else
    // (or a runaway name) means this was not a call.
    size_t bracket = name_.find('[');
    bool ok;
    if (bracket == std::string::npos) {
      ok = c == '_' || c == '-' || c == '.' || std::isalnum(static_cast<unsigned char>(c));
    } else {
      std::string_view tail = std::string_view(name_).substr(bracket);
      ok = kMistralArgs.substr(0, tail.size()) == tail || kMistralCallId.substr(0, tail.size()) == tail;
    }
    if (!ok || name_.size() > 256) AbandonTool(out, {});
  }

  void StepMistralCallId(char c, std::vector<OutputEvent>& out) {
    close_buf_.push_back(c);
    if (close_buf_.size() >= kMistralArgs.size() &&
        std::string_view(close_buf_).substr(close_buf_.size() - kMistralArgs.size()) == kMistralArgs) {
      close_buf_.clear();
      StartMistralArgs(out);
      return;
    }
    if (close_buf_.size() > 256) AbandonTool(out, {});
  }

  void StartMistralArgs(std::vector<OutputEvent>& out) {
    any_started_ = true;
    raw_.clear();
    Emit(OutputEvent::Kind::kToolStart, name_, out);
    tool_phase_ = ToolPhase::kMistralArgs;
    value_.Reset();
  }

  void StepMistralArgs(char c, std::vector<OutputEvent>& out) {
    if (!value_.started() && IsSpace(c)) return;
    JsonValueSkipper::Status st = value_.Push(c);
    if (st == JsonValueSkipper::Status::kError) {
      Emit(OutputEvent::Kind::kToolEnd, "", out);
      EndTool();
      trim_leading_space_ = false;
      Step(c, out);
      return;
    }
    if (st == JsonValueSkipper::Status::kEndedBefore) {  // a literal value ended at c
      Emit(OutputEvent::Kind::kToolEnd, "", out);
      EndTool();
      Step(c, out);
      return;
    }
    Emit(OutputEvent::Kind::kToolArgs, std::string_view(&c, 1), out);
    if (st == JsonValueSkipper::Status::kDone) {
      Emit(OutputEvent::Kind::kToolEnd, "", out);
      EndTool();
    }
  }

  void StepPythonCode(char c, std::vector<OutputEvent>& out) {
    close_buf_.push_back(c);
    for (std::string_view m : {kEom, kEot}) {
      if (close_buf_.size() >= m.size() && std::string_view(close_buf_).substr(close_buf_.size() - m.size()) == m) {
        close_buf_.resize(close_buf_.size() - m.size());
        FinishPythonCode(out);
        return;
      }
    }
    size_t hold = std::max(PartialMarkerSuffix(close_buf_, kEom), PartialMarkerSuffix(close_buf_, kEot));
    EmitEscaped(std::string_view(close_buf_).substr(0, close_buf_.size() - hold), out);
    close_buf_.erase(0, close_buf_.size() - hold);
  }

  void EmitEscaped(std::string_view s, std::vector<OutputEvent>& out) {
    if (s.empty()) return;
    std::string quoted = nlohmann::json(std::string(s)).dump(-1, ' ', false,
                                                             nlohmann::json::error_handler_t::replace);
    Emit(OutputEvent::Kind::kToolArgs, std::string_view(quoted).substr(1, quoted.size() - 2), out);
  }

  void FinishPythonCode(std::vector<OutputEvent>& out) {
    EmitEscaped(close_buf_, out);
    close_buf_.clear();
    Emit(OutputEvent::Kind::kToolArgs, "\"}", out);
    Emit(OutputEvent::Kind::kToolEnd, "", out);
    EndTool();
  }

  void FinishTool(std::vector<OutputEvent>& out) {
    if (tool_phase_ == ToolPhase::kPythonCode) {
      FinishPythonCode(out);
      return;
    }
    if (!any_started_) {  // nothing was reported yet: it was text after all
      AbandonTool(out, {});
      return;
    }
    switch (tool_phase_) {
      case ToolPhase::kObject:
        // Cut off inside a call that already started (e.g. max_tokens): close it; arguments may be partial.
        if (scanner_.started()) Emit(OutputEvent::Kind::kToolEnd, "", out);
        break;
      case ToolPhase::kMistralArgs: Emit(OutputEvent::Kind::kToolEnd, "", out); break;
      default: break;  // calls complete; a missing close marker (stop token came first) is fine
    }
    EndTool();
  }

  ParserConfig config_;
  Mode mode_ = Mode::kText;
  std::vector<std::string_view> text_markers_;
  std::string pending_;             // held-back text (text/thinking modes)
  bool trim_leading_space_ = false; // drop whitespace right after closing markup
  bool bare_json_possible_ = false; // Llama: output so far is only whitespace, a bare JSON call may start
  bool bare_json_ = false;

  ToolPhase tool_phase_ = ToolPhase::kBeforeBody;
  std::string raw_;        // everything since the opening marker while no call has started (for AbandonTool)
  bool any_started_ = false;
  bool in_list_ = false;
  std::string close_buf_;
  std::string name_;
  JsonCallScanner scanner_;
  JsonValueSkipper value_;
};

bool Contains(const std::string& s, std::string_view what) { return s.find(what) != std::string::npos; }

bool AnyEquals(const std::vector<std::string>& v, std::string_view what) {
  return std::find(v.begin(), v.end(), what) != v.end();
}

}  // namespace

std::unique_ptr<OutputParser> MakeOutputParser(const ParserConfig& config) {
  return std::make_unique<Parser>(config);
}

ParserConfig DetectParserConfig(const std::string& template_source, const std::vector<std::string>& special_tokens) {
  ParserConfig config;
  const std::string& t = template_source;
  if (Contains(t, kHermesOpen)) {
    config.tools = ToolFormat::kHermes;
  } else if (Contains(t, kMistralOpen)) {
    config.tools = ToolFormat::kMistral;
  } else if (Contains(t, kPhiOpen) || Contains(t, "<|tool|>")) {
    config.tools = ToolFormat::kPhi4Mini;
  } else if (Contains(t, kPythonTag) ||
             (Contains(t, "<|start_header_id|>") && Contains(t, "{\"name\": function name, \"parameters\""))) {
    config.tools = ToolFormat::kLlama3Json;
  } else if (AnyEquals(special_tokens, kMistralOpen)) {
    config.tools = ToolFormat::kMistral;
  } else if (AnyEquals(special_tokens, kPhiOpen)) {
    config.tools = ToolFormat::kPhi4Mini;
  }
  config.reasoning = Contains(t, kThinkOpen) || Contains(t, kThinkClose) || AnyEquals(special_tokens, kThinkOpen);
  // Templates that open <think> in the generation prompt (DeepSeek-R1 style) start generation inside it.
  // Qwen3 writes "<think>\n\n</think>" there only to switch thinking off, which is not an opening.
  size_t gen = t.rfind("add_generation_prompt");
  if (gen != std::string::npos) {
    for (size_t pos = t.find(kThinkOpen, gen); pos != std::string::npos; pos = t.find(kThinkOpen, pos + 1)) {
      std::string_view after = std::string_view(t).substr(pos + kThinkOpen.size(), 24);
      if (after.find(kThinkClose) == std::string_view::npos) {
        config.starts_in_reasoning = true;
        break;
      }
    }
  }
  return config;
}

bool PromptOpensReasoning(std::string_view prompt) {
  size_t open = prompt.rfind(kThinkOpen);
  if (open == std::string_view::npos) return false;
  size_t close = prompt.rfind(kThinkClose);
  return close == std::string_view::npos || close < open;
}

}  // namespace pensieve::chat
