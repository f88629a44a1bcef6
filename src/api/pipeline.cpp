#include "api/pipeline.h"

#include <algorithm>
#include <utility>

#include "api/detokenizer.h"
#include "api/ids.h"
#include "api/stop_matcher.h"
#include "chat/tool_call_syntax.h"
#include "engine/json_constraint.h"

namespace pensieve::api {
namespace {

using Role = ChatMessage::Role;

// Consecutive user turns are merged (the Messages API allows them; strict templates don't).
std::vector<ChatMessage> MergeConsecutive(const std::vector<ChatMessage>& in) {
  std::vector<ChatMessage> out;
  for (const auto& m : in) {
    if (!out.empty() && m.role == Role::kUser && out.back().role == Role::kUser) {
      out.back().content += "\n\n" + m.content;
      continue;
    }
    out.push_back(m);
  }
  return out;
}

// Fallback for templates that reject a system turn anywhere but first: fold every system text into the
// leading system message.
std::vector<ChatMessage> SystemFirst(const std::vector<ChatMessage>& in) {
  std::vector<ChatMessage> out;
  std::string system;
  for (const auto& m : in) {
    if (m.role == Role::kSystem) {
      system += (system.empty() ? "" : "\n\n") + m.content;
    } else {
      out.push_back(m);
    }
  }
  if (!system.empty()) out.insert(out.begin(), ChatMessage::Text(Role::kSystem, system));
  return out;
}

Json MessageJson(const ChatMessage& m) {
  Json j = {{"role", RoleName(m.role)}, {"content", m.content}};
  if (m.role == Role::kAssistant) {
    if (!m.reasoning.empty()) j["reasoning_content"] = m.reasoning;
    if (!m.tool_calls.empty()) {
      Json calls = Json::array();
      for (const auto& c : m.tool_calls) {
        calls.push_back({{"id", c.id}, {"type", "function"}, {"function", {{"name", c.name}, {"arguments", c.arguments}}}});
      }
      j["tool_calls"] = std::move(calls);
    }
  } else if (m.role == Role::kTool) {
    j["tool_call_id"] = m.tool_call_id;
    if (!m.tool_name.empty()) j["name"] = m.tool_name;
    if (m.is_error) j["content"] = "Error: " + m.content;
  }
  return j;
}

}  // namespace

const char* RoleName(ChatMessage::Role role) {
  switch (role) {
    case Role::kSystem: return "system";
    case Role::kUser: return "user";
    case Role::kAssistant: return "assistant";
    case Role::kTool: return "tool";
  }
  return "user";
}

ChatPipeline::ChatPipeline(engine::Engine& engine, const Tokenizer& tokenizer, TemplateRenderer renderer,
                           ParserFactory parsers, PipelineConfig config)
    : engine_(engine), tokenizer_(tokenizer), renderer_(std::move(renderer)), parsers_(std::move(parsers)),
      config_(std::move(config)) {}

chat::RenderInput ChatPipeline::BuildRenderInput(const ChatRequest& request, std::string* prefill) const {
  std::vector<ChatMessage> messages = MergeConsecutive(request.messages);
  // A trailing assistant turn without tool calls is a prefill: render up to the generation prompt, then
  // append its text so the model continues it.
  if (!messages.empty() && messages.back().role == Role::kAssistant && messages.back().tool_calls.empty()) {
    *prefill = messages.back().content;
    messages.pop_back();
  }
  // Forced tools and JSON mode are enforced by constrained decoding (see Start); the instruction still tells
  // the model what it is writing, so the constrained text is meaningful rather than merely valid.
  std::string extra_system;
  if (request.json_object) extra_system += "Respond with a single valid JSON object and nothing else.";
  bool render_tools = !request.tools.empty() && request.tool_choice.mode != ToolChoice::Mode::kNone;
  if (render_tools && request.tool_choice.mode == ToolChoice::Mode::kAny) {
    extra_system += (extra_system.empty() ? "" : "\n") + std::string("You must call one of the provided tools.");
  } else if (render_tools && request.tool_choice.mode == ToolChoice::Mode::kNamed) {
    extra_system += std::string(extra_system.empty() ? "" : "\n") + "You must call the tool `" + request.tool_choice.name + "`.";
  }
  if (!extra_system.empty()) {
    if (!messages.empty() && messages.front().role == Role::kSystem) {
      messages.front().content += "\n\n" + extra_system;
    } else {
      messages.insert(messages.begin(), ChatMessage::Text(Role::kSystem, extra_system));
    }
  }

  chat::RenderInput in;
  for (const auto& m : messages) in.messages.push_back(MessageJson(m));
  if (render_tools) {
    in.tools = Json::array();
    for (const auto& t : request.tools) {
      if (request.tool_choice.mode == ToolChoice::Mode::kNamed && t.name != request.tool_choice.name) continue;
      in.tools.push_back({{"type", "function"},
                          {"function", {{"name", t.name}, {"description", t.description}, {"parameters", t.parameters}}}});
    }
  }
  in.add_generation_prompt = true;
  in.bos_token = tokenizer_.bos_token();
  in.eos_token = tokenizer_.eos_token();
  if (request.thinking.has_value()) in.extra["enable_thinking"] = *request.thinking;
  return in;
}

PreparedPrompt ChatPipeline::Prepare(const ChatRequest& request) const {
  PreparedPrompt p;
  if (request.raw_prompt) {
    p.text = *request.raw_prompt;
    p.tokens = tokenizer_.Encode(p.text, /*add_special=*/true, /*parse_special=*/false);
  } else {
    std::string prefill;
    chat::RenderInput in = BuildRenderInput(request, &prefill);
    try {
      p.text = renderer_(in);
    } catch (const chat::TemplateError& first) {
      // Templates that insist on system-first: retry with all system text folded into the first turn.
      std::vector<ChatMessage> folded = SystemFirst(request.messages);
      if (folded.size() == request.messages.size() && folded.front().role == request.messages.front().role) {
        throw InvalidRequest(std::string("the model's chat template rejected the conversation: ") + first.what());
      }
      ChatRequest copy = request;
      copy.messages = std::move(folded);
      in = BuildRenderInput(copy, &prefill);
      try {
        p.text = renderer_(in);
      } catch (const chat::TemplateError& e) {
        throw InvalidRequest(std::string("the model's chat template rejected the conversation: ") + e.what());
      }
    }
    p.starts_in_reasoning = chat::PromptOpensReasoning(p.text + prefill);
    p.prefilled = !prefill.empty();
    p.text += prefill;
    // The template already wrote BOS where the model wants one (transformers' apply_chat_template does the same).
    p.tokens = tokenizer_.Encode(p.text, /*add_special=*/false, /*parse_special=*/true);
  }
  int ctx = engine_.context_length();
  int n = static_cast<int>(p.tokens.size());
  if (n == 0) throw InvalidRequest("prompt: is empty (the model adds no beginning-of-sequence token to start from)");
  const int limit = config_.max_prompt_tokens > 0 ? std::min(config_.max_prompt_tokens, ctx) : ctx;
  if (n > limit) {
    throw InvalidRequest("prompt is too long: " + std::to_string(n) + " tokens > " + std::to_string(limit) + " maximum");
  }
  p.max_tokens = std::min(request.max_tokens, ctx - n);
  return p;
}

std::shared_ptr<const engine::TokenBytes> ChatPipeline::TokenTable() const {
  std::lock_guard lock(table_mu_);
  if (!table_) table_ = engine::TokenBytes::Build(tokenizer_, engine_.vocab_size());
  return table_;
}

std::shared_ptr<engine::TokenConstraint> ChatPipeline::Constrain(const ChatRequest& request,
                                                                 const PreparedPrompt& prompt,
                                                                 chat::ParserConfig* parser) const {
  *parser = config_.parser;
  parser->starts_in_reasoning = parser->reasoning && prompt.starts_in_reasoning;
  if (request.raw_prompt || prompt.prefilled) return nullptr;
  const bool forced_tool = !request.tools.empty() && (request.tool_choice.mode == ToolChoice::Mode::kAny ||
                                                      request.tool_choice.mode == ToolChoice::Mode::kNamed);
  if (!forced_tool && !request.json_object) return nullptr;
  engine::JsonShape shape;
  const std::string think_close = parser->starts_in_reasoning ? "</think>\n\n" : "";
  if (forced_tool) {
    // A template without a tool syntax of its own gets Hermes': the call is still parsed and reported.
    if (parser->tools == chat::ToolFormat::kNone) parser->tools = chat::ToolFormat::kHermes;
    std::vector<std::string> names;
    for (const auto& t : request.tools) {
      if (request.tool_choice.mode == ToolChoice::Mode::kAny || t.name == request.tool_choice.name) names.push_back(t.name);
    }
    chat::ToolCallSyntax syntax = chat::ForcedToolCallSyntax(parser->tools, names);
    shape.openers.clear();
    for (auto& o : syntax.openers) shape.openers.push_back(think_close + o);
    shape.closer = syntax.closer;
    shape.json.leading_space = true;  // the model writes its own ' {' after "arguments":
  } else {
    // Plain text: neither tool markup nor <think> inside the JSON may be taken for structure.
    parser->tools = chat::ToolFormat::kNone;
    parser->reasoning = false;
    shape.openers = {think_close};
  }
  return engine::MakeJsonConstraint(std::move(shape), TokenTable(), config_.stop_token_ids);
}

std::unique_ptr<Generation> ChatPipeline::Start(const ChatRequest& request, PreparedPrompt prompt) {
  chat::ParserConfig parser;
  std::shared_ptr<engine::TokenConstraint> constraint = Constrain(request, prompt, &parser);
  std::unique_ptr<Generation> gen(new Generation(*this, request, prompt, parser));
  engine::GenerateRequest greq;
  greq.constraint = std::move(constraint);
  greq.prompt = std::move(prompt.tokens);
  greq.max_tokens = prompt.max_tokens;
  greq.sampling = request.sampling;
  const SamplingDefaults& d = config_.sampling_defaults;
  if (!request.sampling_set.temperature && d.temperature) greq.sampling.temperature = *d.temperature;
  if (!request.sampling_set.top_p && d.top_p) greq.sampling.top_p = *d.top_p;
  if (!request.sampling_set.top_k && d.top_k) greq.sampling.top_k = *d.top_k;
  if (!request.sampling_set.min_p && d.min_p) greq.sampling.min_p = *d.min_p;
  greq.stop_tokens = config_.stop_token_ids;
  std::weak_ptr<Generation::Shared> weak = gen->shared_;
  engine::Sink sink;
  sink.on_prefill_progress = [weak](int done, int total) {
    if (auto s = weak.lock()) {
      std::lock_guard lock(s->mu);
      s->prefill_done = done;
      s->prefill_total = total;
      s->cv.notify_one();
    }
  };
  sink.on_token = [weak](const engine::TokenOut& t) {
    auto s = weak.lock();
    if (!s) return false;  // the consumer is gone: stop
    std::lock_guard lock(s->mu);
    s->tokens.push_back(t);
    s->cv.notify_one();
    return true;
  };
  sink.on_finish = [weak](const engine::Finish& f) {
    if (auto s = weak.lock()) {
      std::lock_guard lock(s->mu);
      s->finished = true;
      s->finish = f;
      s->cv.notify_one();
    }
  };
  if (greq.max_tokens <= 0) {
    // Nothing to generate (max_tokens 0, or the prompt fills the context): finish without the engine.
    engine::Finish f;
    f.reason = engine::FinishReason::kLength;
    f.prompt_tokens = static_cast<int>(greq.prompt.size());
    gen->shared_->finished = true;
    gen->shared_->finish = f;
    return gen;
  }
  gen->id_ = engine_.Submit(std::move(greq), std::move(sink));  // may throw QueueFull or BadRequest
  gen->submitted_ = true;
  return gen;
}

Generation::Generation(ChatPipeline& pipeline, const ChatRequest& request, const PreparedPrompt& prompt,
                       const chat::ParserConfig& parser)
    : pipeline_(pipeline), engine_(pipeline.engine()) {
  prompt_tokens_ = static_cast<int>(prompt.tokens.size());
  raw_ = request.raw_prompt.has_value();
  keep_thinking_ = request.thinking.value_or(true);
  logprobs_ = request.logprobs;
  if (request.tool_choice.disable_parallel) max_tool_calls_ = 1;
  if (request.tool_choice.mode == ToolChoice::Mode::kNone || request.tools.empty()) max_tool_calls_ = 0;
  if (max_tool_calls_ > 0) {
    for (const auto& t : request.tools) tool_names_.push_back(t.name);
  }
  tool_format_ = parser.tools;
  detok_ = std::make_unique<Detokenizer>(pipeline.tokenizer());
  stops_ = std::make_unique<StopMatcher>(request.stop);
  if (!raw_ && pipeline.parsers_) parser_ = pipeline.parsers_(parser);
}

Generation::~Generation() {
  if (submitted_ && !done_) engine_.Cancel(id_);
}

void Generation::Cancel() {
  if (submitted_) engine_.Cancel(id_);
}

void Generation::StopEarly() {
  stopped_ = true;
  if (submitted_) engine_.Cancel(id_);
}

void Generation::HandleText(const std::string& text, bool final) {
  auto push_text = [&](ChatEvent::Kind kind, const std::string& t) {
    if (t.empty()) return;
    if (kind == ChatEvent::Kind::kThinking && !keep_thinking_) return;
    if (!ready_.empty() && ready_.back().kind == kind && pending_logprobs_.empty()) {
      ready_.back().text += t;  // coalesce within one Next() batch
      return;
    }
    ChatEvent e;
    e.kind = kind;
    e.text = t;
    if (kind == ChatEvent::Kind::kText) e.logprobs = std::exchange(pending_logprobs_, {});
    ready_.push_back(std::move(e));
  };
  if (!parser_) {
    push_text(ChatEvent::Kind::kText, text);
    return;
  }
  std::vector<chat::OutputEvent> events;
  if (!text.empty()) parser_->Feed(text, events);
  if (final) parser_->Finish(events);
  for (auto& oe : events) {
    using K = chat::OutputEvent::Kind;
    switch (oe.kind) {
      case K::kText: if (!in_tool_) push_text(ChatEvent::Kind::kText, oe.text); break;
      case K::kThinking: if (!in_tool_) push_text(ChatEvent::Kind::kThinking, oe.text); break;
      case K::kToolStart:
        if (in_tool_) FinishToolCall();
        in_tool_ = true;
        tool_name_ = oe.text;
        tool_args_.clear();
        break;
      case K::kToolArgs:
        if (in_tool_) tool_args_ += oe.text;
        break;
      case K::kToolEnd:
        if (in_tool_) FinishToolCall();
        break;
    }
  }
  if (final && in_tool_) FinishToolCall();
}

void Generation::FinishToolCall() {
  in_tool_ = false;
  const bool declared = std::find(tool_names_.begin(), tool_names_.end(), tool_name_) != tool_names_.end();
  const Json args = Json::parse(tool_args_, nullptr, false);
  if (!declared || !args.is_object()) {
    // Not a call we can report: the model's text, in its own call syntax.
    std::string text = tool_name_ + " " + tool_args_;
    if (tool_format_ != chat::ToolFormat::kNone) {
      chat::ToolCallSyntax syntax = chat::ForcedToolCallSyntax(tool_format_, {tool_name_});
      text = syntax.openers[0] + " " + tool_args_ + syntax.closer;
    }
    ChatEvent e;
    e.kind = ChatEvent::Kind::kText;
    e.text = std::move(text);
    ready_.push_back(std::move(e));
    return;
  }
  if (tool_calls_ >= max_tool_calls_) return;  // beyond the parallel limit (the turn is already ending)
  const std::string id = NewId("toolu_");
  for (ChatEvent::Kind kind : {ChatEvent::Kind::kToolStart, ChatEvent::Kind::kToolArgs, ChatEvent::Kind::kToolEnd}) {
    ChatEvent e;
    e.kind = kind;
    if (kind == ChatEvent::Kind::kToolStart) e.text = tool_name_;
    if (kind == ChatEvent::Kind::kToolArgs) e.text = tool_args_;
    e.tool_id = id;
    e.tool_index = tool_calls_;
    ready_.push_back(std::move(e));
  }
  ++tool_calls_;
  // A single call was asked for: end the turn here rather than generate calls we would drop.
  if (tool_calls_ >= max_tool_calls_ && !stopped_) {
    stopped_reason_ = StopReason::kToolUse;
    StopEarly();
  }
}

void Generation::HandleToken(const engine::TokenOut& token) {
  if (stopped_) return;
  ++output_tokens_;
  if (logprobs_) {
    TokenLogprob lp;
    lp.token = pipeline_.tokenizer().Decode(std::span<const int32_t>(&token.id, 1), false);
    lp.logprob = token.logprob;
    for (auto& [id, l] : token.top) {
      lp.top.emplace_back(pipeline_.tokenizer().Decode(std::span<const int32_t>(&id, 1), false), l);
    }
    pending_logprobs_.push_back(std::move(lp));
  }
  std::string piece = detok_->Push(token.id);
  if (piece.empty()) return;
  std::string safe = stops_->Push(piece);
  if (stops_->matched()) {
    stopped_reason_ = StopReason::kStopSequence;
    HandleText(safe, false);
    StopEarly();
    return;
  }
  HandleText(safe, false);
}

void Generation::HandleFinish(const engine::Finish& f) {
  if (!stopped_) {
    std::string rest = detok_->Flush();
    std::string safe = stops_->Push(rest);
    if (stops_->matched()) {
      stopped_ = true;
      stopped_reason_ = StopReason::kStopSequence;
    } else {
      safe += stops_->Flush();
    }
    HandleText(safe, true);
  } else {
    HandleText("", true);
  }
  if (f.reason == engine::FinishReason::kError) {
    ChatEvent e;
    e.kind = ChatEvent::Kind::kError;
    e.text = f.error.empty() ? "generation failed" : f.error;
    ready_.push_back(std::move(e));
    done_ = true;
    return;
  }
  ChatEvent e;
  e.kind = ChatEvent::Kind::kFinish;
  if (stopped_) {
    e.stop_reason = stopped_reason_;
    if (stopped_reason_ == StopReason::kStopSequence) e.stop_sequence = stops_->matched_sequence();
  } else if (tool_calls_ > 0) {
    e.stop_reason = StopReason::kToolUse;
  } else if (f.reason == engine::FinishReason::kStopToken) {
    e.stop_reason = StopReason::kEndTurn;
  } else if (f.reason == engine::FinishReason::kCancelled) {
    e.stop_reason = StopReason::kCancelled;
  } else {
    e.stop_reason = StopReason::kMaxTokens;
  }
  if (tool_calls_ > 0 && e.stop_reason != StopReason::kStopSequence) e.stop_reason = StopReason::kToolUse;
  int prompt = f.prompt_tokens > 0 ? f.prompt_tokens : prompt_tokens_;
  e.usage.cached_tokens = std::min(f.cached_prompt_tokens, prompt);
  e.usage.input_tokens = prompt - e.usage.cached_tokens;
  // The end-of-turn token the model generated is output too (the Anthropic API counts it: a turn is >= 1).
  e.usage.output_tokens = output_tokens_ + (f.stop_token && !stopped_ ? 1 : 0);
  if (!pending_logprobs_.empty()) {
    ChatEvent t;
    t.kind = ChatEvent::Kind::kText;
    t.logprobs = std::exchange(pending_logprobs_, {});
    ready_.push_back(std::move(t));
  }
  ready_.push_back(std::move(e));
  done_ = true;
}

bool Generation::Next(ChatEvent* event, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (ready_.empty()) {
    if (done_) return false;
    std::deque<engine::TokenOut> tokens;
    bool finished = false;
    engine::Finish finish;
    int prefill_done = -1, prefill_total = 0;
    {
      std::unique_lock lock(shared_->mu);
      if (!shared_->cv.wait_until(lock, deadline, [&] {
            return !shared_->tokens.empty() || shared_->finished || shared_->prefill_done >= 0;
          })) {
        return false;
      }
      tokens.swap(shared_->tokens);
      finished = shared_->finished;
      finish = shared_->finish;
      std::swap(prefill_done, shared_->prefill_done);
      prefill_total = shared_->prefill_total;
    }
    if (prefill_done >= 0 && tokens.empty() && !finished) {
      ChatEvent e;
      e.kind = ChatEvent::Kind::kPrefill;
      e.usage.input_tokens = prefill_done;
      e.usage.output_tokens = prefill_total;
      ready_.push_back(std::move(e));
    }
    for (const auto& t : tokens) HandleToken(t);
    if (finished) HandleFinish(finish);
  }
  *event = std::move(ready_.front());
  ready_.pop_front();
  return true;
}

}  // namespace pensieve::api
