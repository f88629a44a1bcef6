#include "api/openai.h"

#include <chrono>
#include <cstdio>

#include "api/tool_schema.h"

namespace pensieve::api {
namespace {

using Role = ChatMessage::Role;

long NowUnix() {
  return static_cast<long>(
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count());
}

std::string Dump(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

double Number(const Json& body, const char* key, double lo, double hi, double def) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return def;
  if (!it->is_number()) throw InvalidRequest(std::string(key) + ": expected a number");
  double v = it->get<double>();
  if (v < lo || v > hi) {
    char buf[128];
    std::snprintf(buf, sizeof buf, "%s: must be between %g and %g (got %g)", key, lo, hi, v);
    throw InvalidRequest(buf);
  }
  return v;
}

std::optional<int64_t> Integer(const Json& body, const char* key, int64_t lo, int64_t hi) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return std::nullopt;
  if (!it->is_number_integer()) throw InvalidRequest(std::string(key) + ": expected an integer");
  int64_t v = it->get<int64_t>();
  if (v < lo || v > hi) {
    throw InvalidRequest(std::string(key) + ": must be between " + std::to_string(lo) + " and " + std::to_string(hi));
  }
  return v;
}

// Common sampling fields of both endpoints.
void ParseSampling(const Json& body, ChatRequest& req, OpenAIOptions* options) {
  const auto given = [&](const char* key) { auto it = body.find(key); return it != body.end() && !it->is_null(); };
  req.sampling_set = {given("temperature"), given("top_p"), given("top_k"), given("min_p")};
  req.sampling.temperature = static_cast<float>(Number(body, "temperature", 0.0, 2.0, 1.0));
  req.sampling.top_p = static_cast<float>(Number(body, "top_p", 0.0, 1.0, 1.0));
  req.sampling.min_p = static_cast<float>(Number(body, "min_p", 0.0, 1.0, 0.0));
  req.sampling.presence_penalty = static_cast<float>(Number(body, "presence_penalty", -2.0, 2.0, 0.0));
  req.sampling.frequency_penalty = static_cast<float>(Number(body, "frequency_penalty", -2.0, 2.0, 0.0));
  req.sampling.repetition_penalty = static_cast<float>(Number(body, "repetition_penalty", 0.01, 10.0, 1.0));
  if (auto k = Integer(body, "top_k", 0, 1 << 30)) req.sampling.top_k = static_cast<int>(*k);
  if (auto s = Integer(body, "seed", INT64_MIN, INT64_MAX)) req.sampling.seed = static_cast<uint64_t>(*s);
  if (auto n = Integer(body, "n", 1, 128); n && *n != 1) throw InvalidRequest("n: only n=1 is supported");
  if (auto it = body.find("logit_bias"); it != body.end() && !it->is_null()) {
    if (!it->is_object()) throw InvalidRequest("logit_bias: expected an object of token id -> bias");
    for (auto& [k, v] : it->items()) {
      if (!v.is_number()) throw InvalidRequest("logit_bias." + k + ": expected a number");
      if (k.empty() || k.find_first_not_of("0123456789") != std::string::npos || k.size() > 9) {
        throw InvalidRequest("logit_bias: key '" + k + "' is not a token id");
      }
      double b = v.get<double>();
      if (b < -100 || b > 100) throw InvalidRequest("logit_bias." + k + ": must be between -100 and 100");
      req.sampling.logit_bias.emplace_back(std::stoi(k), static_cast<float>(b));
    }
  }
  if (auto it = body.find("stop"); it != body.end() && !it->is_null()) {
    if (it->is_string()) {
      req.stop.push_back(it->get<std::string>());
    } else if (it->is_array()) {
      if (it->size() > 4) throw InvalidRequest("stop: at most 4 stop sequences");
      for (auto& s : *it) {
        if (!s.is_string()) throw InvalidRequest("stop: expected strings");
        req.stop.push_back(s.get<std::string>());
      }
    } else {
      throw InvalidRequest("stop: expected a string or an array of strings");
    }
  }
  if (auto it = body.find("stream"); it != body.end() && !it->is_null()) {
    if (!it->is_boolean()) throw InvalidRequest("stream: expected a boolean");
    req.stream = it->get<bool>();
  }
  if (auto it = body.find("stream_options"); it != body.end() && it->is_object()) {
    if (auto u = it->find("include_usage"); u != it->end() && u->is_boolean()) options->include_usage = u->get<bool>();
  }
}

std::string ContentText(const Json& content, const std::string& where) {
  if (content.is_null()) return "";
  if (content.is_string()) return content.get<std::string>();
  if (!content.is_array()) throw InvalidRequest(where + ": expected a string or an array of content parts");
  std::string out;
  for (size_t i = 0; i < content.size(); ++i) {
    const Json& p = content[i];
    std::string w = where + "[" + std::to_string(i) + "]";
    if (!p.is_object() || !p.contains("type") || !p["type"].is_string()) throw InvalidRequest(w + ": expected a content part object");
    std::string type = p["type"].get<std::string>();
    if (type == "text") {
      if (!p.contains("text") || !p["text"].is_string()) throw InvalidRequest(w + ".text: expected a string");
      out += p["text"].get<std::string>();
    } else if (type == "image_url" || type == "input_audio" || type == "file") {
      throw InvalidRequest(w + ": content part '" + type + "' is not supported: the loaded model is text-only");
    } else {
      throw InvalidRequest(w + ": unknown content part type '" + type + "'");
    }
  }
  return out;
}

}  // namespace

ChatRequest ParseOpenAIChatRequest(const Json& body, int default_max_tokens, OpenAIOptions* options) {
  ChatRequest req;
  auto model = body.find("model");
  if (model == body.end() || !model->is_string()) throw InvalidRequest("model: required string");
  req.model = model->get<std::string>();
  ParseSampling(body, req, options);
  req.max_tokens = default_max_tokens;
  if (auto m = Integer(body, "max_completion_tokens", 0, 1 << 30)) req.max_tokens = static_cast<int>(*m);
  else if (auto m2 = Integer(body, "max_tokens", 0, 1 << 30)) req.max_tokens = static_cast<int>(*m2);
  if (auto it = body.find("logprobs"); it != body.end() && !it->is_null()) {
    if (!it->is_boolean()) throw InvalidRequest("logprobs: expected a boolean");
    req.logprobs = it->get<bool>();
  }
  if (auto t = Integer(body, "top_logprobs", 0, 20)) {
    if (!req.logprobs && *t > 0) throw InvalidRequest("top_logprobs: requires logprobs to be true");
    req.sampling.top_logprobs = static_cast<int>(*t);
  }
  if (auto it = body.find("response_format"); it != body.end() && !it->is_null()) {
    if (!it->is_object() || !it->contains("type") || !(*it)["type"].is_string()) throw InvalidRequest("response_format: expected {type}");
    std::string type = (*it)["type"].get<std::string>();
    if (type == "json_object" || type == "json_schema") req.json_object = true;
    else if (type != "text") throw InvalidRequest("response_format.type: expected text, json_object or json_schema");
  }
  if (auto it = body.find("reasoning_effort"); it != body.end() && it->is_string()) {
    req.thinking = it->get<std::string>() != "none";
  }

  if (auto it = body.find("tools"); it != body.end() && !it->is_null()) {
    if (!it->is_array()) throw InvalidRequest("tools: expected an array");
    for (size_t i = 0; i < it->size(); ++i) {
      const Json& t = (*it)[i];
      std::string w = "tools[" + std::to_string(i) + "]";
      if (!t.is_object() || !t.contains("function") || !t["function"].is_object()) throw InvalidRequest(w + ".function: required object");
      const Json& f = t["function"];
      if (!f.contains("name") || !f["name"].is_string()) throw InvalidRequest(w + ".function.name: required string");
      ToolDef def;
      def.name = f["name"].get<std::string>();
      if (f.contains("description") && f["description"].is_string()) def.description = f["description"].get<std::string>();
      if (auto pit = f.find("parameters"); pit != f.end() && !pit->is_null()) {
        if (auto problem = ToolSchemaProblem(*pit))
          throw InvalidRequest(w + ".function.parameters: JSON schema of tool '" + def.name + "' is invalid: " + *problem);
        def.parameters = *pit;
      } else {
        def.parameters = Json{{"type", "object"}, {"properties", Json::object()}};
      }
      req.tools.push_back(std::move(def));
    }
  }
  if (auto it = body.find("tool_choice"); it != body.end() && !it->is_null()) {
    if (it->is_string()) {
      std::string c = it->get<std::string>();
      if (c == "none") req.tool_choice.mode = ToolChoice::Mode::kNone;
      else if (c == "auto") req.tool_choice.mode = ToolChoice::Mode::kAuto;
      else if (c == "required") req.tool_choice.mode = ToolChoice::Mode::kAny;
      else throw InvalidRequest("tool_choice: expected none, auto, required or {type:function,function:{name}}");
    } else if (it->is_object() && it->contains("function") && (*it)["function"].is_object() &&
               (*it)["function"].contains("name") && (*it)["function"]["name"].is_string()) {
      req.tool_choice.mode = ToolChoice::Mode::kNamed;
      req.tool_choice.name = (*it)["function"]["name"].get<std::string>();
      bool known = false;
      for (auto& t : req.tools) known |= t.name == req.tool_choice.name;
      if (!known) throw InvalidRequest("tool_choice: function '" + req.tool_choice.name + "' is not among the tools");
    } else {
      throw InvalidRequest("tool_choice: expected none, auto, required or {type:function,function:{name}}");
    }
  }
  if (auto it = body.find("parallel_tool_calls"); it != body.end() && it->is_boolean()) {
    req.tool_choice.disable_parallel = !it->get<bool>();
  }

  auto msgs = body.find("messages");
  if (msgs == body.end() || !msgs->is_array()) throw InvalidRequest("messages: required array");
  if (msgs->empty()) throw InvalidRequest("messages: at least one message is required");
  for (size_t i = 0; i < msgs->size(); ++i) {
    const Json& m = (*msgs)[i];
    std::string w = "messages[" + std::to_string(i) + "]";
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string()) throw InvalidRequest(w + ".role: required string");
    std::string role = m["role"].get<std::string>();
    ChatMessage msg;
    Json content = m.contains("content") ? m["content"] : Json();
    if (role == "system" || role == "developer") {
      msg.role = Role::kSystem;
    } else if (role == "user") {
      msg.role = Role::kUser;
    } else if (role == "assistant") {
      msg.role = Role::kAssistant;
      if (m.contains("reasoning_content") && m["reasoning_content"].is_string()) msg.reasoning = m["reasoning_content"].get<std::string>();
      if (auto tc = m.find("tool_calls"); tc != m.end() && !tc->is_null()) {
        if (!tc->is_array()) throw InvalidRequest(w + ".tool_calls: expected an array");
        for (size_t k = 0; k < tc->size(); ++k) {
          const Json& c = (*tc)[k];
          std::string cw = w + ".tool_calls[" + std::to_string(k) + "]";
          if (!c.is_object() || !c.contains("function") || !c["function"].is_object()) throw InvalidRequest(cw + ".function: required object");
          ToolCall call;
          call.id = c.contains("id") && c["id"].is_string() ? c["id"].get<std::string>() : "";
          const Json& f = c["function"];
          if (!f.contains("name") || !f["name"].is_string()) throw InvalidRequest(cw + ".function.name: required string");
          call.name = f["name"].get<std::string>();
          if (f.contains("arguments") && f["arguments"].is_string()) {
            try {
              call.arguments = Json::parse(f["arguments"].get<std::string>());
            } catch (const Json::exception&) {
              throw InvalidRequest(cw + ".function.arguments: not valid JSON");
            }
            if (!call.arguments.is_object()) throw InvalidRequest(cw + ".function.arguments: expected a JSON object");
          } else if (f.contains("arguments") && f["arguments"].is_object()) {
            call.arguments = f["arguments"];
          }
          msg.tool_calls.push_back(std::move(call));
        }
      }
    } else if (role == "tool") {
      msg.role = Role::kTool;
      if (!m.contains("tool_call_id") || !m["tool_call_id"].is_string()) throw InvalidRequest(w + ".tool_call_id: required string");
      msg.tool_call_id = m["tool_call_id"].get<std::string>();
    } else {
      throw InvalidRequest(w + ".role: unknown role '" + role + "' (expected system, developer, user, assistant or tool)");
    }
    if (content.is_null() && msg.role != Role::kAssistant) throw InvalidRequest(w + ".content: required");
    msg.content = ContentText(content, w + ".content");
    req.messages.push_back(std::move(msg));
  }
  return req;
}

ChatRequest ParseOpenAICompletionRequest(const Json& body, OpenAIOptions* options) {
  ChatRequest req;
  auto model = body.find("model");
  if (model == body.end() || !model->is_string()) throw InvalidRequest("model: required string");
  req.model = model->get<std::string>();
  ParseSampling(body, req, options);
  req.max_tokens = 16;  // the API's default
  if (auto m = Integer(body, "max_tokens", 0, 1 << 30)) req.max_tokens = static_cast<int>(*m);
  if (auto l = Integer(body, "logprobs", 0, 20)) {
    req.logprobs = true;
    req.sampling.top_logprobs = static_cast<int>(*l);
  }
  auto prompt = body.find("prompt");
  if (prompt == body.end() || prompt->is_null()) throw InvalidRequest("prompt: required");
  if (prompt->is_string()) {
    req.raw_prompt = prompt->get<std::string>();
  } else if (prompt->is_array() && prompt->size() == 1 && (*prompt)[0].is_string()) {
    req.raw_prompt = (*prompt)[0].get<std::string>();
  } else {
    throw InvalidRequest("prompt: expected a string (batches of prompts are not supported)");
  }
  return req;
}

const char* OpenAIFinishReason(StopReason reason) {
  switch (reason) {
    case StopReason::kMaxTokens: return "length";
    case StopReason::kToolUse: return "tool_calls";
    default: return "stop";
  }
}

std::string OpenAIErrorBody(const std::string& type, const std::string& message) {
  std::string t = type == "invalid_request_error" ? "invalid_request_error"
                  : type == "authentication_error" ? "authentication_error"
                  : type == "not_found_error"      ? "not_found_error"
                  : type == "overloaded_error"     ? "server_overloaded"
                  : type == "request_too_large"    ? "invalid_request_error"
                                                   : "server_error";
  return Dump({{"error", {{"message", message}, {"type", t}, {"param", nullptr}, {"code", nullptr}}}});
}

Json LogprobsJson(const std::vector<TokenLogprob>& lps) {
  Json content = Json::array();
  auto bytes = [](const std::string& s) {
    Json b = Json::array();
    for (unsigned char c : s) b.push_back(static_cast<int>(c));
    return b;
  };
  for (const auto& lp : lps) {
    Json top = Json::array();
    for (const auto& [tok, l] : lp.top) top.push_back({{"token", tok}, {"logprob", l}, {"bytes", bytes(tok)}});
    content.push_back({{"token", lp.token}, {"logprob", lp.logprob}, {"bytes", bytes(lp.token)}, {"top_logprobs", top}});
  }
  return content;
}

namespace {
Json UsageJson(const Usage& u) {
  return {{"prompt_tokens", u.prompt_tokens()},
          {"completion_tokens", u.output_tokens},
          {"total_tokens", u.prompt_tokens() + u.output_tokens},
          {"prompt_tokens_details", {{"cached_tokens", u.cached_tokens}}}};
}
}  // namespace

OpenAIResponseBuilder::OpenAIResponseBuilder(std::string id, std::string model, bool completion_api, bool logprobs)
    : id_(std::move(id)), model_(std::move(model)), completion_(completion_api), logprobs_(logprobs), created_(NowUnix()) {}

void OpenAIResponseBuilder::Add(const ChatEvent& e) {
  switch (e.kind) {
    case ChatEvent::Kind::kText:
      text_ += e.text;
      for (auto& j : LogprobsJson(e.logprobs)) logprob_content_.push_back(j);
      break;
    case ChatEvent::Kind::kThinking: reasoning_ += e.text; break;
    case ChatEvent::Kind::kToolStart:
      tool_calls_.push_back({{"id", "call_" + e.tool_id.substr(e.tool_id.find('_') + 1)},
                             {"type", "function"},
                             {"function", {{"name", e.text}, {"arguments", ""}}}});
      break;
    case ChatEvent::Kind::kToolArgs:
      if (!tool_calls_.empty()) {
        auto& a = tool_calls_.back()["function"]["arguments"];
        a = a.get<std::string>() + e.text;
      }
      break;
    case ChatEvent::Kind::kFinish:
    case ChatEvent::Kind::kError: finish_ = e; break;
    default: break;
  }
}

Json OpenAIResponseBuilder::Build() const {
  Json logprobs = logprobs_ ? Json{{"content", logprob_content_}} : Json();
  Json choice;
  if (completion_) {
    choice = {{"index", 0}, {"text", text_}, {"logprobs", logprobs}, {"finish_reason", OpenAIFinishReason(finish_.stop_reason)}};
  } else {
    Json message = {{"role", "assistant"},
                    {"content", text_.empty() && !tool_calls_.empty() ? Json() : Json(text_)},
                    {"refusal", nullptr}};
    if (!reasoning_.empty()) message["reasoning_content"] = reasoning_;
    if (!tool_calls_.empty()) message["tool_calls"] = tool_calls_;
    choice = {{"index", 0}, {"message", message}, {"logprobs", logprobs}, {"finish_reason", OpenAIFinishReason(finish_.stop_reason)}};
  }
  return {{"id", id_},
          {"object", completion_ ? "text_completion" : "chat.completion"},
          {"created", created_},
          {"model", model_},
          {"choices", Json::array({choice})},
          {"usage", UsageJson(finish_.usage)}};
}

OpenAIStreamEncoder::OpenAIStreamEncoder(std::string id, std::string model, bool completion_api, bool include_usage,
                                         bool logprobs)
    : id_(std::move(id)), model_(std::move(model)), completion_(completion_api), include_usage_(include_usage),
      logprobs_(logprobs), created_(NowUnix()) {}

std::string OpenAIStreamEncoder::Frame(const Json& j) const { return "data: " + Dump(j) + "\n\n"; }

Json OpenAIStreamEncoder::Chunk(Json delta_or_text, const Json& finish_reason, const Json& logprobs) const {
  Json choice = completion_ ? Json{{"index", 0}, {"text", delta_or_text}, {"logprobs", logprobs}, {"finish_reason", finish_reason}}
                            : Json{{"index", 0}, {"delta", delta_or_text}, {"logprobs", logprobs}, {"finish_reason", finish_reason}};
  Json j = {{"id", id_},
            {"object", completion_ ? "text_completion" : "chat.completion.chunk"},
            {"created", created_},
            {"model", model_},
            {"choices", Json::array({choice})}};
  if (include_usage_) j["usage"] = nullptr;
  return j;
}

std::string OpenAIStreamEncoder::Start() {
  if (completion_) return "";
  return Frame(Chunk({{"role", "assistant"}, {"content", ""}}, nullptr));
}

std::string OpenAIStreamEncoder::Event(const ChatEvent& e) {
  if (finished_) return "";
  switch (e.kind) {
    case ChatEvent::Kind::kText: {
      Json lp = logprobs_ && !e.logprobs.empty() ? Json{{"content", LogprobsJson(e.logprobs)}} : Json();
      if (e.text.empty() && lp.is_null()) return "";
      return Frame(completion_ ? Chunk(e.text, nullptr, lp) : Chunk({{"content", e.text}}, nullptr, lp));
    }
    case ChatEvent::Kind::kThinking:
      if (completion_ || e.text.empty()) return "";
      return Frame(Chunk({{"reasoning_content", e.text}}, nullptr));
    case ChatEvent::Kind::kToolStart:
      if (completion_) return "";
      return Frame(Chunk({{"tool_calls", Json::array({{{"index", e.tool_index},
                                                        {"id", "call_" + e.tool_id.substr(e.tool_id.find('_') + 1)},
                                                        {"type", "function"},
                                                        {"function", {{"name", e.text}, {"arguments", ""}}}}})}},
                         nullptr));
    case ChatEvent::Kind::kToolArgs:
      if (completion_ || e.text.empty()) return "";
      return Frame(Chunk({{"tool_calls", Json::array({{{"index", e.tool_index}, {"function", {{"arguments", e.text}}}}})}}, nullptr));
    case ChatEvent::Kind::kFinish: {
      finished_ = true;
      std::string out = Frame(completion_ ? Chunk("", OpenAIFinishReason(e.stop_reason)) : Chunk(Json::object(), OpenAIFinishReason(e.stop_reason)));
      if (include_usage_) {
        Json u = {{"id", id_},
                  {"object", completion_ ? "text_completion" : "chat.completion.chunk"},
                  {"created", created_},
                  {"model", model_},
                  {"choices", Json::array()},
                  {"usage", UsageJson(e.usage)}};
        out += Frame(u);
      }
      out += "data: [DONE]\n\n";
      return out;
    }
    case ChatEvent::Kind::kError:
      return Error("api_error", e.text);
    default:
      return "";
  }
}

std::string OpenAIStreamEncoder::Error(const std::string& type, const std::string& message) {
  if (finished_) return "";
  finished_ = true;
  return "data: " + OpenAIErrorBody(type, message) + "\n\n";
}

}  // namespace pensieve::api
