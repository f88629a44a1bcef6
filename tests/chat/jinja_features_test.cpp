// Jinja features beyond the shared conformance data, with expectations worked out from Python Jinja2's
// documented behaviour (transformers' environment: trim_blocks, lstrip_blocks), plus the bounds that keep
// a hostile template from hanging or crashing the server.
#include <chrono>
#include <string>

#include <gtest/gtest.h>

#include "chat/chat_template.h"
#include "chat/jinja/error.h"
#include "chat/jinja/template.h"

namespace pensieve::jinja {
namespace {

using Json = nlohmann::ordered_json;

std::tm FixedClock() {
  std::tm tm{};
  tm.tm_year = 2024 - 1900;
  tm.tm_mon = 6;
  tm.tm_mday = 26;
  tm.tm_hour = 12;
  tm.tm_wday = 5;
  return tm;
}

// Renders like transformers (trim_blocks + lstrip_blocks).
std::string R(const std::string& src, const Json& ctx = Json::object()) {
  LexOptions o;
  o.trim_blocks = true;
  o.lstrip_blocks = true;
  return Template(src, o).Render(ctx, FixedClock);
}

// Renders with Jinja2's default whitespace handling.
std::string Plain(const std::string& src, const Json& ctx = Json::object()) {
  return Template(src, LexOptions{}).Render(ctx, FixedClock);
}

JinjaError ErrorOf(const std::string& src, const Json& ctx = Json::object()) {
  try {
    R(src, ctx);
  } catch (const JinjaError& e) {
    return e;
  }
  ADD_FAILURE() << "no error for: " << src;
  return JinjaError("none", "");
}

TEST(JinjaWhitespace, TrimAndLstripBlocks) {
  EXPECT_EQ(R("{% if true %}\n  hello\n{% endif %}\n"), "  hello\n");
  EXPECT_EQ(R("  {% if true %}x{% endif %}"), "x");
  EXPECT_EQ(R("  {%+ if true %}x{% endif %}"), "  x");  // + keeps the indentation
  EXPECT_EQ(R("{% if true +%}\nx{% endif %}"), "\nx");  // +%} keeps the newline
  EXPECT_EQ(R("a {{ 'b' }} \nc"), "a b \nc");           // expressions are not block tags
  EXPECT_EQ(R("{# note #}\nx"), "x");                     // comments are trimmed like blocks
  EXPECT_EQ(R("x\n  {# note #}\ny"), "x\ny");
  EXPECT_EQ(R("a  {%- if true -%}  b  {%- endif %}"), "ab");
  EXPECT_EQ(R("x {% if true %}y{% endif %}"), "x y");  // text before the tag on the line: no lstrip
}

TEST(JinjaWhitespace, DefaultsAndNewlines) {
  EXPECT_EQ(Plain("{% if true %}\nx\n{% endif %}\n"), "\nx\n");  // one trailing newline dropped
  EXPECT_EQ(Plain("x\n\n"), "x\n");
  EXPECT_EQ(Plain("a\r\nb\rc"), "a\nb\nc");
  EXPECT_EQ(Plain("{% raw %}{{ x }}{% if %}{% endraw %}"), "{{ x }}{% if %}");
}

TEST(JinjaValues, PythonFormatting) {
  EXPECT_EQ(R("{{ 1.0 }}|{{ 1e20 }}|{{ 0.1 + 0.2 }}|{{ 10 / 4 }}|{{ 1e-5 }}|{{ 123456789.0 * 1000 }}"),
            "1.0|1e+20|0.30000000000000004|2.5|1e-05|123456789000.0");
  EXPECT_EQ(R("{{ 7 // 2 }}|{{ -7 % 3 }}|{{ 7 % -3 }}|{{ 2 ** 10 }}|{{ 2 ** -1 }}|{{ 'ab' * 3 }}"),
            "3|2|-2|1024|0.5|ababab");
  EXPECT_EQ(R("{{ ['a', \"b'c\", 1, none, true, 2.5] }}"), "['a', \"b'c\", 1, None, True, 2.5]");
  EXPECT_EQ(R("{{ {'k': [1, 'x\\ny']} }}|{{ ('a',) }}|{{ (1, 2) }}"), "{'k': [1, 'x\\ny']}|('a',)|(1, 2)");
  EXPECT_EQ(R("{{ none }}|{{ undefined_thing }}|{{ [] }}|{{ {} }}"), "None||[]|{}");
}

TEST(JinjaValues, TojsonLikeJsonDumps) {
  Json ctx = {{"d", {{"b", 1}, {"a", {{"x", nullptr}, {"y", {true, 1.5, "é\"<\n"}}}}}}};
  EXPECT_EQ(R("{{ d | tojson }}", ctx), "{\"b\": 1, \"a\": {\"x\": null, \"y\": [true, 1.5, \"é\\\"<\\n\"]}}");
  EXPECT_EQ(R("{{ d | tojson(indent=2) }}", ctx),
            "{\n  \"b\": 1,\n  \"a\": {\n    \"x\": null,\n    \"y\": [\n      true,\n      1.5,\n      \"é\\\"<\\n\"\n    ]\n  }\n}");
  EXPECT_EQ(R("{{ [] | tojson(indent=2) }}{{ {} | tojson }}"), "[]{}");
  EXPECT_EQ(R("{{ 'é' | tojson(ensure_ascii=true) }}"), "\"\\u00e9\"");
}

TEST(JinjaStatements, LoopVariablesAndControl) {
  EXPECT_EQ(R("{% for x in 'abc' %}{{ loop.index }}{{ loop.revindex }}{{ loop.first }}{{ loop.last }}"
              "{{ loop.previtem }}{{ loop.nextitem }}|{% endfor %}"),
            "13TrueFalseb|22FalseFalseac|31FalseTrueb|");
  EXPECT_EQ(R("{% for i in range(3) %}{{ loop.cycle('a', 'b') }}{{ loop.length }}{% endfor %}"), "a3b3a3");
  EXPECT_EQ(R("{% for i in range(10) if i is odd %}{% if i > 6 %}{% break %}{% endif %}{{ i }}{{ loop.index }}"
              "{% endfor %}"),
            "113253");
  EXPECT_EQ(R("{% for k, v in {'b': 1, 'a': 2}.items() %}{{ k }}={{ v }};{% else %}none{% endfor %}"), "b=1;a=2;");
  EXPECT_EQ(R("{% for x in [] %}x{% else %}empty{% endfor %}"), "empty");
  EXPECT_EQ(R("{% for a in [1, 2] %}{% for b in [3, 4] %}{{ loop.index }}{% endfor %}{{ loop.index }}{% endfor %}"),
            "121122");
}

TEST(JinjaStatements, Scoping) {
  EXPECT_EQ(R("{% set x = 1 %}{% for i in [1] %}{% set x = 2 %}{% endfor %}{{ x }}"), "1");
  EXPECT_EQ(R("{% set x = 1 %}{% if true %}{% set x = 2 %}{% endif %}{{ x }}"), "2");
  EXPECT_EQ(R("{% set ns = namespace(n=0) %}{% for i in range(4) %}{% set ns.n = ns.n + i %}{% endfor %}{{ ns.n }}"),
            "6");
  EXPECT_EQ(R("{% macro m(a, b=2) %}{{ a }}{{ b }}{{ varargs }}{{ kwargs }}{% endmacro %}{{ m(1) }}|{{ m(1, 3, 4, z=5) }}"),
            "12(){}|13(4,){'z': 5}");
  EXPECT_EQ(R("{% set x | upper %}ab{% endset %}{{ x }}"), "AB");
  EXPECT_EQ(R("{% filter trim %}  x  {% endfilter %}|"), "x|");
  EXPECT_EQ(R("{% generation %}reply{% endgeneration %}"), "reply");
}

TEST(JinjaExpressions, MethodsFiltersTests) {
  EXPECT_EQ(R("{{ 'a,b,,c'.split(',') }}|{{ '  x '.rstrip() }}|{{ 'xxhixx'.strip('x') }}"), "['a', 'b', '', 'c']|  x|hi");
  EXPECT_EQ(R("{{ 'abc'.startswith(('x', 'a')) }}{{ 'abc'.endswith('bc') }}{{ 'Hello'.find('l') }}"), "TrueTrue2");
  EXPECT_EQ(R("{{ 'a-b c'.title() }}|{{ 'a-b c' | title }}|{{ 'hELLO' | capitalize }}"), "A-B C|A-B C|Hello");
  EXPECT_EQ(R("{{ '{} and {name}'.format(1, name='x') }}|{{ '%s=%d' | format('a', 3) }}"), "1 and x|a=3");
  EXPECT_EQ(R("{{ {'a': 1}.get('z', 5) }}{{ {'a': 1}.get('a') }}{{ 'a' in {'a': 1} }}"), "51True");
  EXPECT_EQ(R("{{ [3, 1, 2] | sort | join(',') }}|{{ [1, 2, 3] | sum }}|{{ [4, 9] | max }}|{{ [1, 2] | first }}"),
            "1,2,3|6|9|1");
  EXPECT_EQ(R("{{ 'x' ~ 1 ~ none }}|{{ x | default('d') }}|{{ '' | default('d', true) }}"), "x1None|d|d");
  EXPECT_EQ(R("{{ [1, 'a', none] | map('string') | join('-') }}|{{ [1, 2, 3, 4] | select('even') | list }}"),
            "1-a-None|[2, 4]");
  EXPECT_EQ(R("{{ 10 is divisibleby 5 }}{{ none is none }}{{ 1 is sameas 1 }}{{ 'a' is in 'abc' }}{{ [] is sequence }}"),
            "TrueTrueTrueTrueTrue");
  EXPECT_EQ(R("{{ \"it's\" | safe + \"<b>\" }}"), "it's&lt;b&gt;");  // Markup + str escapes the str
  EXPECT_EQ(R("{{ strftime_now('%d %b %Y') }}"), "26 Jul 2024");
  EXPECT_EQ(R("{{ 'abcdef'[::2] }}{{ [1, 2, 3][-1] }}{{ 'abc'[-2:] }}"), "ace3bc");
}

TEST(JinjaErrors, SyntaxErrorsNameLineAndColumn) {
  JinjaError e = ErrorOf("line one\n{{ 1 + }}");
  EXPECT_EQ(e.kind(), "TemplateSyntaxError");
  EXPECT_EQ(e.line(), 2);
  EXPECT_EQ(e.column(), 8);
  EXPECT_NE(std::string(e.what()).find("line 2"), std::string::npos);

  e = ErrorOf("a\nb\n{% if x %}\nunclosed");
  EXPECT_EQ(e.kind(), "TemplateSyntaxError");
  EXPECT_NE(e.detail().find("endif"), std::string::npos);
  EXPECT_GT(e.line(), 0);

  EXPECT_EQ(ErrorOf("{% frobnicate %}").detail(), "Encountered unknown tag 'frobnicate'.");
  EXPECT_EQ(ErrorOf("{% break %}").kind(), "TemplateSyntaxError");
  EXPECT_EQ(ErrorOf("{{ 'unterminated }}").kind(), "TemplateSyntaxError");
  EXPECT_EQ(ErrorOf("{{ (1 }}").kind(), "TemplateSyntaxError");
  EXPECT_EQ(ErrorOf("{# never closed").kind(), "TemplateSyntaxError");
  EXPECT_EQ(ErrorOf("{{ x['a', 'b':] }}").kind(), "TemplateSyntaxError");  // found by the fuzzer
  // Unknown filters fail when the template is loaded, even in branches that never run (as in Jinja2).
  e = ErrorOf("{% if false %}\n{{ x | nosuch }}{% endif %}");
  EXPECT_EQ(e.kind(), "TemplateAssertionError");
  EXPECT_EQ(e.detail(), "No filter named 'nosuch'.");
  EXPECT_EQ(e.line(), 2);
}

TEST(JinjaErrors, RuntimeErrorsLikePython) {
  EXPECT_EQ(ErrorOf("{{ a.b }}").detail(), "'a' is undefined");
  EXPECT_EQ(ErrorOf("{{ {}.x.y }}").detail(), "'dict object' has no attribute 'x'");
  EXPECT_EQ(ErrorOf("{{ 'a' + 1 }}").detail(), "can only concatenate str (not \"int\") to str");
  EXPECT_EQ(ErrorOf("{{ 1 + 'a' }}").detail(), "unsupported operand type(s) for +: 'int' and 'str'");
  EXPECT_EQ(ErrorOf("{{ 1 // 0 }}").kind(), "ZeroDivisionError");
  JinjaError e = ErrorOf("{{ [1].append(2) }}");
  EXPECT_EQ(e.kind(), "SecurityError");
  EXPECT_EQ(e.detail(), "access to attribute 'append' of 'list' object is unsafe.");
  e = ErrorOf("x\n{{ raise_exception('Only user and assistant roles are supported!') }}");
  EXPECT_EQ(e.kind(), "raise_exception");
  EXPECT_STREQ(e.what(), "Only user and assistant roles are supported!");
}

TEST(JinjaErrors, ChatTemplateCarriesTheTemplatesMessage) {
  chat::ChatTemplate t("{{ raise_exception('System role not supported') }}");
  try {
    t.Render({});
    FAIL() << "expected TemplateError";
  } catch (const chat::TemplateError& e) {
    EXPECT_STREQ(e.what(), "System role not supported");
    EXPECT_EQ(e.kind(), "raise_exception");
  }
  EXPECT_THROW(chat::ChatTemplate("{% for %}"), chat::TemplateError);
}

// ---- hostile templates end with an error, quickly ----
void ExpectBoundedFailure(const std::string& src) {
  auto start = std::chrono::steady_clock::now();
  try {
    R(src);
    ADD_FAILURE() << "expected a bounded failure for " << src.substr(0, 80);
  } catch (const JinjaError&) {
  }
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_LT(secs, 20.0) << src.substr(0, 80);
}

TEST(JinjaLimits, DeepNestingIsRejected) {
  ExpectBoundedFailure("{{ " + std::string(100000, '(') + "1" + std::string(100000, ')') + " }}");
  ExpectBoundedFailure("{{ " + std::string(100000, '[') + std::string(100000, ']') + " }}");
  std::string ifs;
  for (int i = 0; i < 5000; ++i) ifs += "{% if true %}";
  ExpectBoundedFailure(ifs);
  ExpectBoundedFailure("{{ " + std::string(50000, '-') + "1 }}");
  ExpectBoundedFailure("{{ x" + std::string(50000, '|') + " }}");
  std::string nots;
  for (int i = 0; i < 50000; ++i) nots += "not ";
  ExpectBoundedFailure("{{ " + nots + "1 }}");
}

TEST(JinjaLimits, RunawayRenderingIsStopped) {
  ExpectBoundedFailure("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}");
  ExpectBoundedFailure("{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}");
  ExpectBoundedFailure("{{ range(1000000000) | length }}");
  ExpectBoundedFailure("{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}");
  ExpectBoundedFailure("{{ 'x' * 1000000000 }}");
  ExpectBoundedFailure("{{ [1] * 1000000000 }}");
  ExpectBoundedFailure("{{ 9223372036854775807 + 1 }}");
  ExpectBoundedFailure("{% set ns = namespace(h=none) %}{% for i in range(100000) %}{% set n = namespace(next=ns.h) %}"
                       "{% set ns.h = n %}{% endfor %}{{ ns.h }}");
  // A chain built front to back (each link grows after it was stored): printing it must not overflow.
  ExpectBoundedFailure("{% set ns = namespace(l=[]) %}{% for i in range(1000) %}{% set ns.l = ns.l + [namespace()] %}"
                       "{% endfor %}{% for i in range(999) %}{% set x = ns.l[i] %}{% set x.n = ns.l[i + 1] %}"
                       "{% endfor %}{{ ns.l[0] }}");
  ExpectBoundedFailure("{% set ns = namespace() %}{% set ns.self = ns %}{{ ns }}");
}

}  // namespace
}  // namespace pensieve::jinja
