// `pensieve template`: render a chat template exactly as transformers' apply_chat_template would.
//
//   pensieve template (--model PATH | --template FILE [--bos S] [--eos S]) --messages FILE.json
//                     [--tools FILE.json] [--no-generation-prompt] [--vars JSON]
//
// Prints the rendered prompt byte for byte, with nothing added. --messages holds a JSON array of messages
// (or an object with "messages" and optionally "tools"). --model takes an HF directory (or a file in it) or a
// .gguf file; bos/eos then come from the model (tokenizer_config.json or GGUF metadata), --bos/--eos override.
// A model without a template is rendered with the ChatML fallback (warning on stderr).
#include <cstdio>
#include <memory>

#include "chat/chat_template.h"
#include "cli/commands.h"
#include "util/error.h"
#include "util/file.h"

namespace pensieve::cli {
namespace {

using chat::Json;

struct TemplateOptions {
  std::string model;
  std::string template_file;
  std::string bos;
  std::string eos;
  std::string messages_file;
  std::string tools_file;
  std::string vars;
  bool no_generation_prompt = false;
};

std::string ReadAll(const std::string& path, const char* what) {
  try {
    return ReadRegularFile(path);
  } catch (const Error& e) {
    throw Error(std::string(what) + " file: " + e.what());
  }
}

Json ParseJson(const std::string& text, const std::string& where) {
  try {
    return Json::parse(text);
  } catch (const Json::exception& e) {
    throw Error(where + ": invalid JSON: " + e.what());
  }
}

void Run(const TemplateOptions& o, const CLI::App& cmd) {
  if (o.model.empty() == o.template_file.empty()) throw Error("give exactly one of --model or --template");
  chat::RenderInput in;
  Json messages = ParseJson(ReadAll(o.messages_file, "messages"), o.messages_file);
  if (messages.is_object()) {
    if (messages.contains("tools")) in.tools = messages["tools"];
    if (!messages.contains("messages")) throw Error(o.messages_file + ": object without \"messages\"");
    messages = messages["messages"];
  }
  if (!messages.is_array()) throw Error(o.messages_file + ": expected a JSON array of messages");
  in.messages = messages;
  if (!o.tools_file.empty()) {
    in.tools = ParseJson(ReadAll(o.tools_file, "tools"), o.tools_file);
    if (!in.tools.is_array() && !in.tools.is_null()) throw Error(o.tools_file + ": expected a JSON array of tools");
  }
  in.add_generation_prompt = !o.no_generation_prompt;
  if (!o.vars.empty()) {
    in.extra = ParseJson(o.vars, "--vars");
    if (!in.extra.is_object()) throw Error("--vars: expected a JSON object, e.g. '{\"enable_thinking\": false}'");
  }

  std::string source;
  if (!o.template_file.empty()) {
    source = ReadAll(o.template_file, "template");
  } else {
    auto found = chat::FindChatTemplateFor(o.model, !in.tools.is_null());
    if (found) {
      source = *found;
    } else {
      std::fprintf(stderr, "warning: %s has no chat template; using the ChatML fallback\n", o.model.c_str());
      source = chat::kChatMLFallbackTemplate;
    }
    chat::SpecialTokens special = chat::FindSpecialTokens(o.model);
    in.bos_token = special.bos;
    in.eos_token = special.eos;
  }
  if (cmd.count("--bos")) in.bos_token = o.bos;
  if (cmd.count("--eos")) in.eos_token = o.eos;

  std::string out = chat::ChatTemplate(source).Render(in);
  if (std::fwrite(out.data(), 1, out.size(), stdout) != out.size()) throw Error("cannot write to stdout");
  std::fflush(stdout);
}

}  // namespace

void RegisterTemplate(CLI::App& app) {
  auto opts = std::make_shared<TemplateOptions>();
  auto* cmd = app.add_subcommand("template", "Render a chat template over messages (like apply_chat_template)");
  cmd->add_option("--model", opts->model, "Model directory (its template, bos/eos from tokenizer_config.json)");
  cmd->add_option("--template", opts->template_file, "Jinja template file");
  cmd->add_option("--bos", opts->bos, "bos_token value");
  cmd->add_option("--eos", opts->eos, "eos_token value");
  cmd->add_option("--messages", opts->messages_file, "JSON file: array of messages")->required();
  cmd->add_option("--tools", opts->tools_file, "JSON file: array of tools (JSON schema, transformers' shape)");
  cmd->add_flag("--no-generation-prompt", opts->no_generation_prompt, "add_generation_prompt=false");
  cmd->add_option("--vars", opts->vars, "Extra template variables as a JSON object");
  cmd->callback([opts, cmd] { Run(*opts, *cmd); });
}

}  // namespace pensieve::cli
