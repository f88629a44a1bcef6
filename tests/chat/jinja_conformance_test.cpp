// Conformance against Python Jinja2: real chat templates rendered by transformers-style Jinja2, and the
// huggingface.js Jinja unit tests with Python Jinja2's output as the truth (../shared/data/chat-templates).
#include <fstream>
#include <iostream>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "chat/chat_template.h"
#include "chat/jinja/error.h"
#include "chat/jinja/template.h"
#include "test_paths.h"

namespace pensieve::chat {
namespace {

using Json = nlohmann::ordered_json;

Json LoadJson(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << "cannot open " << path;
  return Json::parse(in);
}

std::string Escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '\n') out += "\\n";
    else if (c == '\t') out += "\\t";
    else out.push_back(c);
  }
  return out;
}

// Where two renders first differ, with some context on both sides.
std::string Diff(const std::string& want, const std::string& got) {
  size_t i = 0;
  while (i < want.size() && i < got.size() && want[i] == got[i]) ++i;
  size_t from = i > 40 ? i - 40 : 0;
  std::ostringstream os;
  os << "first difference at byte " << i << " (expected " << want.size() << " bytes, got " << got.size() << ")\n"
     << "  expected: ..." << Escape(want.substr(from, 100)) << "\n"
     << "  got:      ..." << Escape(got.substr(from, 100));
  return os.str();
}

std::tm FixedClock() {
  std::tm tm{};
  tm.tm_year = 2024 - 1900;
  tm.tm_mon = 6;
  tm.tm_mday = 26;
  tm.tm_hour = 12;
  tm.tm_wday = 5;  // a Friday
  tm.tm_yday = 207;
  return tm;
}

TEST(JinjaConformance, RealChatTemplatesRenderLikeTransformers) {
  PENSIEVE_REQUIRE_TEST_DATA("chat-templates/real-templates.rendered.json");
  Json data = LoadJson(test::TestData("chat-templates/real-templates.rendered.json"));
  const Json& cases = data["cases"];
  ASSERT_EQ(cases.size(), 148u);
  int passed = 0, failed = 0;
  for (const Json& c : cases) {
    const std::string id = c["template_id"].get<std::string>() + " / " + c["scenario"].get<std::string>();
    const std::string source = data["templates"][c["template_id"].get<std::string>()]["template"];
    RenderInput in;
    in.messages = c["messages"];
    in.tools = c["tools"];
    in.add_generation_prompt = c["add_generation_prompt"];
    in.bos_token = c["bos_token"];
    in.eos_token = c["eos_token"];
    in.extra = c["extra_context"];
    in.now = FixedClock();
    std::string got, error;
    try {
      got = ChatTemplate(source).Render(in);
    } catch (const TemplateError& e) {
      error = e.kind() + ": " + e.detail();
    }
    bool ok;
    std::string why;
    if (!c["expected_error"].is_null()) {
      std::string want = c["expected_error"];
      ok = error == want;
      why = "expected error '" + want + "', got " + (error.empty() ? "output '" + Escape(got.substr(0, 200)) + "'" : "error '" + error + "'");
    } else {
      std::string want = c["expected"];
      ok = error.empty() && got == want;
      why = error.empty() ? Diff(want, got) : "unexpected error: " + error;
    }
    if (ok) {
      ++passed;
    } else {
      ++failed;
      ADD_FAILURE() << id << ": " << why;
    }
  }
  std::cout << "[ real templates ] " << passed << "/" << cases.size() << " cases match Python Jinja2\n";
  EXPECT_EQ(failed, 0);
}

TEST(JinjaConformance, HuggingfaceJsUnitTestsMatchPythonJinja2) {
  PENSIEVE_REQUIRE_TEST_DATA("chat-templates/hf-jinja-unit-tests.json");
  Json data = LoadJson(test::TestData("chat-templates/hf-jinja-unit-tests.json"));
  const Json& cases = data["cases"];
  ASSERT_EQ(cases.size(), 161u);
  int passed = 0, failed = 0, skipped = 0, errors_matched = 0;
  for (const Json& c : cases) {
    const std::string name = c["name"];
    if (c["context_has_js_functions"].get<bool>() || c["context"].is_null()) {
      ++skipped;  // the context held JavaScript functions: no Python truth exists
      continue;
    }
    std::string got, error;
    try {
      jinja::Template t(c["template"].get<std::string>(), jinja::LexOptions{});  // no trim/lstrip
      got = t.Render(c["context"]);
    } catch (const jinja::JinjaError& e) {
      error = e.kind() + ": " + e.detail();
    }
    if (c["jinja2_python"].is_null()) {
      // Python raised: we must raise the same kind of error.
      std::string want = c.value("jinja2_python_error", Json()).is_string() ? c["jinja2_python_error"].get<std::string>() : "";
      std::string want_kind = want.substr(0, want.find(':'));
      if (!error.empty() && error.substr(0, error.find(':')) == want_kind) {
        ++errors_matched;
        ++passed;
      } else {
        ++failed;
        ADD_FAILURE() << name << ": Python raised '" << want << "', we gave "
                      << (error.empty() ? "output '" + Escape(got) + "'" : "'" + error + "'");
      }
      continue;
    }
    const std::string want = c["jinja2_python"];
    if (error.empty() && got == want) {
      ++passed;
    } else {
      ++failed;
      ADD_FAILURE() << name << ": " << (error.empty() ? Diff(want, got) : "unexpected error: " + error)
                    << "\n  template: " << Escape(c["template"].get<std::string>());
    }
  }
  std::cout << "[ hf unit tests ] " << passed << " passed (" << errors_matched << " of them expected errors), "
            << failed << " failed, " << skipped << " skipped (JS-function contexts)\n";
  EXPECT_EQ(failed, 0);
}

}  // namespace
}  // namespace pensieve::chat
