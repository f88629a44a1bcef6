#include "api/anthropic.h"

#include <cstdio>
#include <functional>
#include <set>

#include "api/ids.h"
#include "api/tool_schema.h"

namespace pensieve::api {
namespace {

bool IsBlank(const std::string& s) {
  for (char c : s) {
    if (c != ' ' && c != '\t' && c != '\n' && c != '\r') return false;
  }
  return true;
}

const char* TypeName(const Json& j) { return j.type_name(); }

std::string GetString(const Json& obj, const char* key, const std::string& where, bool required) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) {
    if (required) throw InvalidRequest(where + key + ": Field required");
    return "";
  }
  if (!it->is_string()) {
    throw InvalidRequest(where + key + ": Input should be a valid string (got " + TypeName(*it) + ")");
  }
  return it->get<std::string>();
}

// text without the billing/attribution line Claude Code puts first in `system` (and the blank lines after it):
// the line varies per conversation, so keeping it would defeat prefix reuse, and it tells the model nothing.
// Only that line goes: a client that sends it in one string or block with the real system prompt keeps the rest.
std::string WithoutBillingHeader(std::string text) {
  if (text.rfind("x-anthropic-billing-header:", 0) != 0) return text;
  const size_t end = text.find('\n');
  const size_t rest = end == std::string::npos ? end : text.find_first_not_of("\r\n", end);
  return rest == std::string::npos ? "" : text.substr(rest);
}

// system: string | [text blocks]; joined with "\n\n".
std::string ParseSystem(const Json& system) {
  if (system.is_null()) return "";
  if (system.is_string()) return WithoutBillingHeader(system.get<std::string>());
  if (!system.is_array()) throw InvalidRequest("system: Input should be a valid string or list of text blocks");
  std::string out;
  for (size_t i = 0; i < system.size(); ++i) {
    const Json& b = system[i];
    std::string where = "system." + std::to_string(i) + ".";
    if (!b.is_object()) throw InvalidRequest(where.substr(0, where.size() - 1) + ": Input should be an object");
    std::string type = GetString(b, "type", where, true);
    if (type != "text") throw InvalidRequest(where + "type: system blocks must be of type 'text' (got '" + type + "')");
    std::string text = GetString(b, "text", where, true);
    const bool billing = text.rfind("x-anthropic-billing-header:", 0) == 0;
    text = WithoutBillingHeader(std::move(text));
    if (billing && text.empty()) continue;
    if (!out.empty()) out += "\n\n";
    out += text;
  }
  return out;
}

// tool_result content / document content: string | [blocks]; text blocks concatenated with "\n".
std::string ParseNestedContent(const Json& content, const std::string& where, bool vision) {
  if (content.is_null()) return "";
  if (content.is_string()) return content.get<std::string>();
  if (!content.is_array()) throw InvalidRequest(where + "content: Input should be a valid string or list of blocks");
  std::string out;
  for (size_t i = 0; i < content.size(); ++i) {
    const Json& b = content[i];
    std::string w = where + "content." + std::to_string(i);
    if (!b.is_object()) throw InvalidRequest(w + ": Input should be an object");
    std::string type = GetString(b, "type", w + ".", true);
    if (type == "text") {
      if (!out.empty()) out += "\n";
      out += GetString(b, "text", w + ".", true);
    } else if (type == "image") {
      throw InvalidRequest(w + ": image content is not supported: the loaded model is text-only");
    } else if (type == "document") {
      throw InvalidRequest(w + ": document blocks are not supported inside tool_result");
    }
    // search_result, tool_reference, ...: accepted, nothing to render.
  }
  return out;
}

std::string ParseDocument(const Json& b, const std::string& w, bool vision) {
  auto src = b.find("source");
  if (src == b.end() || !src->is_object()) throw InvalidRequest(w + ".source: Field required");
  std::string stype = GetString(*src, "type", w + ".source.", true);
  std::string text;
  if (stype == "text") {
    text = GetString(*src, "data", w + ".source.", true);
  } else if (stype == "content") {
    auto c = src->find("content");
    text = ParseNestedContent(c == src->end() ? Json() : *c, w + ".source.", vision);
  } else {
    std::string media = src->value("media_type", std::string());
    throw InvalidRequest(w + ": document source '" + stype + (media.empty() ? "" : "' (" + media + ")") +
                         " is not supported: only text/plain and content documents can be read by this server");
  }
  std::string title = b.contains("title") && b["title"].is_string() ? b["title"].get<std::string>() : "";
  return title.empty() ? text : title + "\n\n" + text;
}

double GetNumber(const Json& body, const char* key, double lo, double hi, double def) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return def;
  if (!it->is_number()) throw InvalidRequest(std::string(key) + ": Input should be a valid number");
  double v = it->get<double>();
  if (v < lo || v > hi) {
    char buf[128];
    std::snprintf(buf, sizeof buf, "%s: must be between %g and %g (got %g)", key, lo, hi, v);
    throw InvalidRequest(buf);
  }
  return v;
}

}  // namespace

ChatRequest ParseAnthropicRequest(const Json& body, const AnthropicParseOptions& options,
                                  std::vector<std::string>* notes) {
  ChatRequest req;
  req.model = GetString(body, "model", "", true);

  if (!options.count_tokens) {
    auto it = body.find("max_tokens");
    if (it == body.end() || it->is_null()) throw InvalidRequest("max_tokens: Field required");
    if (!it->is_number_integer()) throw InvalidRequest("max_tokens: Input should be a valid integer");
    int64_t v = it->get<int64_t>();
    if (v < 0) throw InvalidRequest("max_tokens: must be greater than or equal to 0");
    req.max_tokens = static_cast<int>(std::min<int64_t>(v, 1 << 30));
  }

  if (auto it = body.find("stream"); it != body.end() && !it->is_null()) {
    if (!it->is_boolean()) throw InvalidRequest("stream: Input should be a valid boolean");
    req.stream = it->get<bool>();
  }

  // Sampling: the API's default temperature is 1.
  const auto given = [&](const char* key) { auto it = body.find(key); return it != body.end() && !it->is_null(); };
  req.sampling_set = {given("temperature"), given("top_p"), given("top_k"), false};
  req.sampling.temperature = static_cast<float>(GetNumber(body, "temperature", 0.0, 1.0, 1.0));
  req.sampling.top_p = static_cast<float>(GetNumber(body, "top_p", 0.0, 1.0, 1.0));
  if (auto it = body.find("top_k"); it != body.end() && !it->is_null()) {
    if (!it->is_number_integer() || it->get<int64_t>() < 0) throw InvalidRequest("top_k: Input should be a non-negative integer");
    req.sampling.top_k = static_cast<int>(std::min<int64_t>(it->get<int64_t>(), 1 << 30));
  }
  if (auto it = body.find("stop_sequences"); it != body.end() && !it->is_null()) {
    if (!it->is_array()) throw InvalidRequest("stop_sequences: Input should be a valid list");
    for (size_t i = 0; i < it->size(); ++i) {
      if (!(*it)[i].is_string()) throw InvalidRequest("stop_sequences." + std::to_string(i) + ": Input should be a valid string");
      std::string s = (*it)[i].get<std::string>();
      if (s.empty()) throw InvalidRequest("stop_sequences." + std::to_string(i) + ": stop sequences must be non-empty");
      req.stop.push_back(s);
    }
  }

  // Thinking: absent means off (the API's default); adaptive means on.
  req.thinking = false;
  if (auto it = body.find("thinking"); it != body.end() && !it->is_null()) {
    if (!it->is_object()) throw InvalidRequest("thinking: Input should be an object");
    std::string type = GetString(*it, "type", "thinking.", true);
    if (type == "enabled") {
      auto b = it->find("budget_tokens");
      if (b != it->end() && !b->is_number_integer()) throw InvalidRequest("thinking.budget_tokens: Input should be a valid integer");
      req.thinking = true;
    } else if (type == "adaptive") {
      req.thinking = true;
    } else if (type == "disabled") {
      req.thinking = false;
    } else {
      throw InvalidRequest("thinking.type: Input should be 'enabled', 'adaptive' or 'disabled' (got '" + type + "')");
    }
  }

  // Structured output: the reply text must be JSON. Constrained decoding guarantees one JSON object (the
  // schema's keys and types are not enforced).
  if (auto it = body.find("output_config"); it != body.end() && it->is_object()) {
    if (auto f = it->find("format"); f != it->end() && f->is_object() && f->value("type", "") == "json_schema") {
      req.json_object = true;
    }
  }

  // Tools: custom ones are rendered; typed server/client tools (web_search_*, bash_*, ...) are dropped.
  std::set<std::string> tool_names;
  if (auto it = body.find("tools"); it != body.end() && !it->is_null()) {
    if (!it->is_array()) throw InvalidRequest("tools: Input should be a valid list");
    for (size_t i = 0; i < it->size(); ++i) {
      const Json& t = (*it)[i];
      std::string w = "tools." + std::to_string(i) + ".";
      if (!t.is_object()) throw InvalidRequest(w.substr(0, w.size() - 1) + ": Input should be an object");
      std::string type = t.contains("type") && t["type"].is_string() ? t["type"].get<std::string>() : "custom";
      if (type != "custom") {
        if (notes) notes->push_back("dropped server tool " + type);
        continue;
      }
      ToolDef def;
      def.name = GetString(t, "name", w, true);
      if (def.name.empty()) throw InvalidRequest(w + "name: must be non-empty");
      def.description = GetString(t, "description", w, false);
      auto schema = t.find("input_schema");
      if (schema == t.end() || !schema->is_object()) throw InvalidRequest(w + "input_schema: Field required (a JSON Schema object)");
      if (auto problem = ToolSchemaProblem(*schema))
        throw InvalidRequest(w + "input_schema: JSON schema of tool '" + def.name + "' is invalid: " + *problem);
      def.parameters = *schema;
      if (!tool_names.insert(def.name).second) throw InvalidRequest(w + "name: tool names must be unique ('" + def.name + "')");
      req.tools.push_back(std::move(def));
    }
  }
  if (auto it = body.find("tool_choice"); it != body.end() && !it->is_null()) {
    if (!it->is_object()) throw InvalidRequest("tool_choice: Input should be an object");
    std::string type = GetString(*it, "type", "tool_choice.", true);
    if (type == "auto") req.tool_choice.mode = ToolChoice::Mode::kAuto;
    else if (type == "any") req.tool_choice.mode = ToolChoice::Mode::kAny;
    else if (type == "none") req.tool_choice.mode = ToolChoice::Mode::kNone;
    else if (type == "tool") {
      req.tool_choice.mode = ToolChoice::Mode::kNamed;
      req.tool_choice.name = GetString(*it, "name", "tool_choice.", true);
      if (!tool_names.count(req.tool_choice.name)) {
        throw InvalidRequest("tool_choice.name: tool '" + req.tool_choice.name + "' is not among the request's tools");
      }
    } else {
      throw InvalidRequest("tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none' (got '" + type + "')");
    }
    if (auto d = it->find("disable_parallel_tool_use"); d != it->end() && !d->is_null()) {
      if (!d->is_boolean()) throw InvalidRequest("tool_choice.disable_parallel_tool_use: Input should be a valid boolean");
      req.tool_choice.disable_parallel = d->get<bool>();
    }
  }
  if ((req.tool_choice.mode == ToolChoice::Mode::kAny || req.tool_choice.mode == ToolChoice::Mode::kNamed) &&
      req.tools.empty()) {
    throw InvalidRequest("tool_choice: requires tools to be given");
  }

  // System prompt (top level) goes first.
  std::string system = ParseSystem(body.contains("system") ? body["system"] : Json());
  if (!system.empty()) req.messages.push_back(ChatMessage::Text(ChatMessage::Role::kSystem, system));

  auto msgs = body.find("messages");
  if (msgs == body.end() || msgs->is_null()) throw InvalidRequest("messages: Field required");
  if (!msgs->is_array()) throw InvalidRequest("messages: Input should be a valid list");
  if (msgs->empty()) throw InvalidRequest("messages: at least one message is required");

  // tool_use ids of the latest assistant turn still waiting for their tool_result.
  std::vector<std::string> pending_ids;
  size_t pending_from = 0;  // message index of that assistant turn
  auto check_pending = [&](size_t at) {
    if (pending_ids.empty()) return;
    std::string ids;
    for (auto& id : pending_ids) ids += (ids.empty() ? "" : ", ") + id;
    throw InvalidRequest("messages." + std::to_string(pending_from) +
                         ": tool_use ids were found without tool_result blocks immediately after: " + ids +
                         ". Each tool_use block must have a corresponding tool_result block in the next message.");
  };

  for (size_t mi = 0; mi < msgs->size(); ++mi) {
    const Json& m = (*msgs)[mi];
    std::string mw = "messages." + std::to_string(mi);
    if (!m.is_object()) throw InvalidRequest(mw + ": Input should be an object");
    std::string role = GetString(m, "role", mw + ".", true);
    ChatMessage::Role r;
    if (role == "user") r = ChatMessage::Role::kUser;
    else if (role == "assistant") r = ChatMessage::Role::kAssistant;
    else if (role == "system") r = ChatMessage::Role::kSystem;
    else throw InvalidRequest(mw + ".role: Input should be 'user', 'assistant' or 'system' (got '" + role + "')");
    auto content = m.find("content");
    if (content == m.end() || content->is_null()) throw InvalidRequest(mw + ".content: Field required");

    if (r == ChatMessage::Role::kSystem) {  // mid-conversation system message: kept in place
      if (content->is_string()) {
        req.messages.push_back(ChatMessage::Text(r, content->get<std::string>()));
      } else {
        req.messages.push_back(ChatMessage::Text(r, ParseNestedContent(*content, mw + ".", options.vision)));
      }
      continue;
    }
    if (r == ChatMessage::Role::kAssistant) check_pending(mi);

    ChatMessage msg;
    msg.role = r;
    std::vector<ChatMessage> tool_results;
    std::set<std::string> answered;
    if (content->is_string()) {
      msg.content = content->get<std::string>();
    } else if (content->is_array()) {
      for (size_t bi = 0; bi < content->size(); ++bi) {
        const Json& b = (*content)[bi];
        std::string bw = mw + ".content." + std::to_string(bi);
        if (!b.is_object()) throw InvalidRequest(bw + ": Input should be an object");
        std::string type = GetString(b, "type", bw + ".", true);
        if (type == "text") {
          std::string text = GetString(b, "text", bw + ".", true);
          if (IsBlank(text)) {
            // Our own streams open an empty text block to keep a long prefill alive (Claude Code's watchdog
            // ignores pings), and clients send that block back in the next request's assistant turn: drop it there.
            // Elsewhere a blank block is the client's mistake, rejected as the real API does.
            if (r == ChatMessage::Role::kAssistant) continue;
            throw InvalidRequest(bw + ": text content blocks must contain non-whitespace text");
          }
          msg.content += text;
        } else if (type == "image") {
          if (!options.vision) throw InvalidRequest(bw + ": image content is not supported: the loaded model is text-only");
          throw InvalidRequest(bw + ": image content is not supported yet");
        } else if (type == "document") {
          msg.content += ParseDocument(b, bw, options.vision);
        } else if (type == "tool_use") {
          if (r != ChatMessage::Role::kAssistant) throw InvalidRequest(bw + ": tool_use blocks are only allowed in assistant messages");
          ToolCall call;
          call.id = GetString(b, "id", bw + ".", true);
          call.name = GetString(b, "name", bw + ".", true);
          auto input = b.find("input");
          if (input == b.end() || !input->is_object()) throw InvalidRequest(bw + ".input: Input should be an object");
          call.arguments = *input;
          msg.tool_calls.push_back(std::move(call));
        } else if (type == "tool_result") {
          if (r != ChatMessage::Role::kUser) throw InvalidRequest(bw + ": tool_result blocks are only allowed in user messages");
          std::string id = GetString(b, "tool_use_id", bw + ".", true);
          bool known = false;
          for (auto& p : pending_ids) known |= (p == id);
          if (!known) {
            throw InvalidRequest(bw + ": unexpected `tool_use_id` found in `tool_result` blocks: " + id +
                                 ". Each `tool_result` block must have a corresponding `tool_use` block in the previous message.");
          }
          answered.insert(id);
          ChatMessage tr;
          tr.role = ChatMessage::Role::kTool;
          tr.tool_call_id = id;
          auto c = b.find("content");
          tr.content = ParseNestedContent(c == b.end() ? Json() : *c, bw + ".", options.vision);
          if (auto e = b.find("is_error"); e != b.end() && !e->is_null()) {
            if (!e->is_boolean()) throw InvalidRequest(bw + ".is_error: Input should be a valid boolean");
            tr.is_error = e->get<bool>();
          }
          // Find the tool's name (some templates print it).
          for (auto it = req.messages.rbegin(); it != req.messages.rend(); ++it) {
            if (it->role != ChatMessage::Role::kAssistant) continue;
            for (auto& tc : it->tool_calls) {
              if (tc.id == id) tr.tool_name = tc.name;
            }
            break;
          }
          tool_results.push_back(std::move(tr));
        } else if (type == "thinking") {
          if (r == ChatMessage::Role::kAssistant) msg.reasoning += GetString(b, "thinking", bw + ".", false);
        } else {
          // redacted_thinking, server_tool_use, *_tool_result, search_result, container_upload, ...: accepted and
          // not rendered.
        }
      }
    } else {
      throw InvalidRequest(mw + ".content: Input should be a valid string or list of content blocks");
    }

    if (r == ChatMessage::Role::kUser) {
      if (!pending_ids.empty()) {
        std::vector<std::string> missing;
        for (auto& id : pending_ids) {
          if (!answered.count(id)) missing.push_back(id);
        }
        pending_ids = missing;
        check_pending(mi);
      }
      // Tool results first, then the user's own text (templates expect tool turns right after the call).
      for (auto& tr : tool_results) req.messages.push_back(std::move(tr));
      if (!msg.content.empty() || tool_results.empty()) req.messages.push_back(std::move(msg));
    } else {
      for (auto& tc : msg.tool_calls) pending_ids.push_back(tc.id);
      pending_from = mi;
      req.messages.push_back(std::move(msg));
    }
  }
  // A trailing assistant turn with tool calls is history waiting for results only if more messages followed;
  // as the last message it is a prefill and stays.
  return req;
}

const char* AnthropicStopReason(StopReason reason) {
  switch (reason) {
    case StopReason::kEndTurn: return "end_turn";
    case StopReason::kMaxTokens: return "max_tokens";
    case StopReason::kStopSequence: return "stop_sequence";
    case StopReason::kToolUse: return "tool_use";
    default: return "end_turn";
  }
}

std::string AnthropicErrorBody(const std::string& type, const std::string& message, const std::string& request_id) {
  Json j = {{"type", "error"}, {"error", {{"type", type}, {"message", message}}}, {"request_id", request_id}};
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::string ThinkingSignature(const std::string& thinking) {
  // Opaque and deterministic; we never need to verify it (any signature is accepted back).
  uint64_t h = std::hash<std::string>{}(thinking) ^ 0x9e3779b97f4a7c15ull;
  char buf[40];
  std::snprintf(buf, sizeof buf, "pensieve.%016llx", static_cast<unsigned long long>(h));
  return buf;
}

namespace {
Json UsageJson(const Usage& u) {
  return {{"input_tokens", u.input_tokens},
          {"cache_creation_input_tokens", 0},
          {"cache_read_input_tokens", u.cached_tokens},
          {"output_tokens", u.output_tokens}};
}
}  // namespace

AnthropicMessageBuilder::AnthropicMessageBuilder(std::string message_id, std::string model)
    : id_(std::move(message_id)), model_(std::move(model)) {}

void AnthropicMessageBuilder::Add(const ChatEvent& e) {
  auto last_type = [&]() -> std::string {
    return content_.empty() ? "" : content_.back()["type"].get<std::string>();
  };
  switch (e.kind) {
    case ChatEvent::Kind::kText:
      if (last_type() != "text") content_.push_back({{"type", "text"}, {"text", ""}});
      content_.back()["text"] = content_.back()["text"].get<std::string>() + e.text;
      tool_args_.resize(content_.size());
      break;
    case ChatEvent::Kind::kThinking:
      if (last_type() != "thinking") content_.push_back({{"type", "thinking"}, {"thinking", ""}, {"signature", ""}});
      content_.back()["thinking"] = content_.back()["thinking"].get<std::string>() + e.text;
      content_.back()["signature"] = ThinkingSignature(content_.back()["thinking"].get<std::string>());
      tool_args_.resize(content_.size());
      break;
    case ChatEvent::Kind::kToolStart:
      content_.push_back({{"type", "tool_use"}, {"id", e.tool_id}, {"name", e.text}, {"input", Json::object()}});
      tool_args_.resize(content_.size());
      break;
    case ChatEvent::Kind::kToolArgs:
      if (!tool_args_.empty()) tool_args_.back() += e.text;
      break;
    case ChatEvent::Kind::kToolEnd: {
      if (content_.empty() || last_type() != "tool_use") break;
      Json input = Json::object();
      try {
        Json parsed = Json::parse(tool_args_.back());
        if (parsed.is_object()) input = std::move(parsed);
      } catch (const Json::exception&) {
      }
      content_.back()["input"] = std::move(input);
      break;
    }
    case ChatEvent::Kind::kFinish:
    case ChatEvent::Kind::kError:
      finish_ = e;
      break;
    default:
      break;
  }
}

Json AnthropicMessageBuilder::Build() const {
  Json stop_sequence = finish_.stop_reason == StopReason::kStopSequence ? Json(finish_.stop_sequence) : Json();
  return {{"id", id_},
          {"type", "message"},
          {"role", "assistant"},
          {"model", model_},
          {"content", content_},
          {"stop_reason", AnthropicStopReason(finish_.stop_reason)},
          {"stop_sequence", stop_sequence},
          {"usage", UsageJson(finish_.usage)}};
}

AnthropicStreamEncoder::AnthropicStreamEncoder(std::string message_id, std::string model, bool keepalive_thinking)
    : id_(std::move(message_id)), model_(std::move(model)), keepalive_thinking_(keepalive_thinking) {}

std::string AnthropicStreamEncoder::Frame(const Json& data) {
  return "event: " + data["type"].get<std::string>() + "\ndata: " +
         data.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n\n";
}

std::string AnthropicStreamEncoder::Start(int input_tokens) {
  started_ = true;
  Json usage = UsageJson(Usage{input_tokens, 0, 0});
  Json msg = {{"id", id_},         {"type", "message"},      {"role", "assistant"}, {"model", model_},
              {"content", Json::array()}, {"stop_reason", nullptr}, {"stop_sequence", nullptr}, {"usage", usage}};
  return Frame({{"type", "message_start"}, {"message", msg}});
}

std::string AnthropicStreamEncoder::OpenBlock(const Json& block) {
  std::string out = CloseBlock();
  std::string type = block["type"].get<std::string>();
  open_ = type == "text" ? Open::kText : type == "thinking" ? Open::kThinking : Open::kTool;
  thinking_text_.clear();
  out += Frame({{"type", "content_block_start"}, {"index", next_index_}, {"content_block", block}});
  return out;
}

std::string AnthropicStreamEncoder::CloseBlock() {
  if (open_ == Open::kNone) return "";
  std::string out;
  if (open_ == Open::kThinking) {
    out += Frame({{"type", "content_block_delta"},
                  {"index", next_index_},
                  {"delta", {{"type", "signature_delta"}, {"signature", ThinkingSignature(thinking_text_)}}}});
  }
  out += Frame({{"type", "content_block_stop"}, {"index", next_index_}});
  ++next_index_;
  open_ = Open::kNone;
  return out;
}

std::string AnthropicStreamEncoder::Event(const ChatEvent& e) {
  if (finished_) return "";
  std::string out;
  switch (e.kind) {
    case ChatEvent::Kind::kPrefill:
      return "";
    case ChatEvent::Kind::kText:
      if (open_ != Open::kText) out += OpenBlock({{"type", "text"}, {"text", ""}});
      out += Frame({{"type", "content_block_delta"}, {"index", next_index_}, {"delta", {{"type", "text_delta"}, {"text", e.text}}}});
      return out;
    case ChatEvent::Kind::kThinking:
      if (open_ != Open::kThinking) out += OpenBlock({{"type", "thinking"}, {"thinking", ""}, {"signature", ""}});
      thinking_text_ += e.text;
      out += Frame({{"type", "content_block_delta"}, {"index", next_index_},
                    {"delta", {{"type", "thinking_delta"}, {"thinking", e.text}}}});
      return out;
    case ChatEvent::Kind::kToolStart:
      return OpenBlock({{"type", "tool_use"}, {"id", e.tool_id}, {"name", e.text}, {"input", Json::object()}});
    case ChatEvent::Kind::kToolArgs:
      if (open_ != Open::kTool || e.text.empty()) return "";
      return Frame({{"type", "content_block_delta"}, {"index", next_index_},
                    {"delta", {{"type", "input_json_delta"}, {"partial_json", e.text}}}});
    case ChatEvent::Kind::kToolEnd:
      return open_ == Open::kTool ? CloseBlock() : "";
    case ChatEvent::Kind::kFinish: {
      out += CloseBlock();
      Json stop_sequence = e.stop_reason == StopReason::kStopSequence ? Json(e.stop_sequence) : Json();
      out += Frame({{"type", "message_delta"},
                    {"delta", {{"stop_reason", AnthropicStopReason(e.stop_reason)}, {"stop_sequence", stop_sequence}}},
                    {"usage", UsageJson(e.usage)}});
      out += Frame({{"type", "message_stop"}});
      finished_ = true;
      return out;
    }
    case ChatEvent::Kind::kError:
      return Error("api_error", e.text);
  }
  return out;
}

std::string AnthropicStreamEncoder::Error(const std::string& type, const std::string& message) {
  if (finished_) return "";
  finished_ = true;
  return Frame({{"type", "error"}, {"error", {{"type", type}, {"message", message}}}});
}

std::string AnthropicStreamEncoder::KeepAlive() {
  if (finished_) return "";
  std::string out = Frame({{"type", "ping"}});
  if (!started_) return out;
  if (open_ == Open::kNone) {
    out += keepalive_thinking_ ? OpenBlock({{"type", "thinking"}, {"thinking", ""}, {"signature", ""}})
                               : OpenBlock({{"type", "text"}, {"text", ""}});
  }
  if (open_ == Open::kText) {
    out += Frame({{"type", "content_block_delta"}, {"index", next_index_}, {"delta", {{"type", "text_delta"}, {"text", ""}}}});
  } else if (open_ == Open::kThinking) {
    out += Frame({{"type", "content_block_delta"}, {"index", next_index_}, {"delta", {{"type", "thinking_delta"}, {"thinking", ""}}}});
  }
  // An open tool_use block: an empty input_json_delta would be a no-op fragment; the ping has to do.
  return out;
}

}  // namespace pensieve::api
