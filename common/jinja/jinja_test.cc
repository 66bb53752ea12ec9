#include <gtest/gtest.h>

#include "common/jinja/template.h"

namespace treepo::jinja {
namespace {

using nlohmann::json;

// Renders `source` with `vars` (JSON) and chat-template whitespace options unless `plain`.
std::string R(const std::string& source, const json& vars = json::object(), bool plain = false) {
  TemplateOptions o;
  o.trim_blocks = !plain;
  o.lstrip_blocks = !plain;
  auto t = Template::Parse(source, o);
  if (!t.ok()) return "PARSE ERROR: " + t.status().message();
  auto r = t->Render(Value::FromJson(vars));
  if (!r.ok()) return "ERROR: " + r.status().message();
  return *r;
}

// Expected strings below are what jinja2 3.1 prints for the same template and variables.
TEST(Jinja, OutputsValuesLikePython) {
  EXPECT_EQ(R("{{ 1 }} {{ 1.5 }} {{ 2.0 }} {{ none }} {{ true }} {{ 'a' ~ 1 }}"),
            "1 1.5 2.0 None True a1");
  EXPECT_EQ(R("{{ [1, 'a', none] }} {{ {'k': 'v'} }}"), "[1, 'a', None] {'k': 'v'}");
  EXPECT_EQ(R("{{ x }}|{{ x.y is defined }}", {{"x", {{"z", 1}}}}), "{'z': 1}|False");
  EXPECT_EQ(R("{{ missing }}"), "");
  EXPECT_EQ(R("{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 7 / 2 }} {{ 2 ** 10 }}"),
            "3 -4 1 2 3.5 1024");
  EXPECT_EQ(R("{{ 'ab' * 3 }} {{ [1] + [2] }} {{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }}"),
            "ababab [1, 2] 7 9");
}

TEST(Jinja, FloatsPrintLikePythonRepr) {
  EXPECT_EQ(FloatRepr(1e20), "1e+20");
  EXPECT_EQ(FloatRepr(0.0001), "0.0001");
  EXPECT_EQ(FloatRepr(0.00001), "1e-05");
  EXPECT_EQ(FloatRepr(123456789012345678.0), "1.2345678901234568e+17");
  EXPECT_EQ(FloatRepr(1.5), "1.5");
  EXPECT_EQ(FloatRepr(-2.0), "-2.0");
  EXPECT_EQ(FloatRepr(1e16), "1e+16");
  EXPECT_EQ(FloatRepr(1234567890123456.0), "1234567890123456.0");
  EXPECT_EQ(FloatRepr(0.1), "0.1");
  EXPECT_EQ(FloatRepr(-0.0), "-0.0");
  EXPECT_EQ(FloatRepr(2.5e-7), "2.5e-07");
  EXPECT_EQ(FloatRepr(1.0 / 3), "0.3333333333333333");
}

TEST(Jinja, WhitespaceControlAsHuggingFaceSetsIt) {
  // trim_blocks drops the newline after a block tag; lstrip_blocks the indentation before it.
  EXPECT_EQ(R("{% if true %}\n  yes\n  {% endif %}\nend"), "  yes\nend");
  EXPECT_EQ(R("a  {%- if true -%}  b  {%- endif %}"), "ab");
  EXPECT_EQ(R("x\n    {{- 'y' }}\n"), "xy");  // the template's last newline is dropped
  EXPECT_EQ(R("{% if true %}\n  yes\n  {% endif %}\nend", json::object(), /*plain=*/true),
            "\n  yes\n  \nend");
  EXPECT_EQ(R("{# comment #}\nx"), "x");
  EXPECT_EQ(R("  {%+ if true %}x{% endif %}"), "  x");
}

TEST(Jinja, LoopsScopesAndNamespaces) {
  const json v = {{"xs", {"a", "b", "c"}}};
  EXPECT_EQ(
      R("{% for x in xs %}{{ loop.index }}{{ x }}{% if not loop.last %},{% endif %}{% endfor %}",
        v),
      "1a,2b,3c");
  EXPECT_EQ(R("{% for x in xs[::-1] %}{{ loop.index0 }}{{ x }}{{ loop.revindex }}{% endfor %}", v),
            "0c31b22a1");
  EXPECT_EQ(R("{% set n = 0 %}{% for x in xs %}{% set n = n + 1 %}{% endfor %}{{ n }}", v), "0");
  EXPECT_EQ(R("{% set ns = namespace(n=0) %}{% for x in xs %}{% set ns.n = ns.n + 1 %}{% endfor "
              "%}{{ ns.n }}",
              v),
            "3");
  EXPECT_EQ(R("{% for x in xs if x != 'b' %}{{ x }}{{ loop.length }}{% endfor %}", v), "a2c2");
  EXPECT_EQ(R("{% for x in [] %}x{% else %}empty{% endfor %}"), "empty");
  EXPECT_EQ(R("{% for x in xs %}{% if x == 'b' %}{% break %}{% endif %}{{ x }}{% endfor %}", v),
            "a");
  EXPECT_EQ(R("{% for x in xs %}{% if x == 'b' %}{% continue %}{% endif %}{{ x }}{% endfor %}", v),
            "ac");
  EXPECT_EQ(R("{% for k, v in {'a': 1, 'b': 2}.items() %}{{ k }}={{ v }};{% endfor %}"),
            "a=1;b=2;");
  EXPECT_EQ(R("{% if false %}1{% elif xs %}2{% else %}3{% endif %}", v), "2");
  EXPECT_EQ(R("{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}"
              "{{ greet('Bo') }} {{ greet('Al', punct='?') }}"),
            "Hi Bo! Hi Al?");
  EXPECT_EQ(R("{% set x %}inner {{ 1 }}{% endset %}[{{ x }}]"), "[inner 1]");
}

TEST(Jinja, FiltersTestsAndMethods) {
  EXPECT_EQ(R("{{ '  hi  ' | trim }}|{{ 'xxhixx'.strip('x') }}|{{ '\\n\\nhi\\n'.lstrip('\\n') }}"),
            "hi|hi|hi\n");
  EXPECT_EQ(R("{{ 'a,b,,c'.split(',') }} {{ ' a  b '.split() }} {{ 'a</t>b'.split('</t>')[-1] }}"),
            "['a', 'b', '', 'c'] ['a', 'b'] b");
  EXPECT_EQ(R("{{ xs | length }} {{ xs | first }} {{ xs | last }} {{ xs | join(', ') }}",
              {{"xs", {1, 2, 3}}}),
            "3 1 3 1, 2, 3");
  EXPECT_EQ(R("{{ 'Hello' | upper }} {{ 'Hello' | lower }} {{ 'a-b' | replace('-', '+') }}"),
            "HELLO hello a+b");
  EXPECT_EQ(R("{{ {'b': [1, 2.5, none, true], 'a': 'é\"'} | tojson }}"),
            "{\"b\": [1, 2.5, null, true], \"a\": \"é\\\"\"}");
  EXPECT_EQ(R("{{ {'a': [1]} | tojson(indent=2) }}"), "{\n  \"a\": [\n    1\n  ]\n}");
  EXPECT_EQ(R("{{ ms | selectattr('role', 'equalto', 'user') | map(attribute='c') | list }}",
              {{"ms", {{{"role", "user"}, {"c", 1}}, {{"role", "x"}, {"c", 2}}}}}),
            "[1]");
  EXPECT_EQ(R("{{ ['a', 'b'] | reject('equalto', 'a') | join }}"), "b");
  EXPECT_EQ(
      R("{{ x is string }}{{ x is mapping }}{{ none is none }}{{ 3 is odd }}{{ x is not defined }}",
        {{"x", "s"}}),
      "TrueFalseTrueTrueFalse");
  EXPECT_EQ(R("{{ 'ab'.startswith('a') }}{{ 'ab'.endswith(('x', 'b')) }}{{ 'é中x'[1] }}{{ 'é中x' | "
              "length }}"),
            "TrueTrue中3");
  EXPECT_EQ(R("{{ d.get('a') }} {{ d.get('z', 5) }} {{ 'a' in d }} {{ d.keys() | list }}",
              {{"d", {{"a", 1}}}}),
            "1 5 True ['a']");
  EXPECT_EQ(R("{{ x | default('d') }} {{ '' | default('d', true) }} {{ range(3) | list }}"),
            "d d [0, 1, 2]");
  EXPECT_EQ(R("{{ 'y' if 1 > 2 else 'n' }} {{ 'ab' in 'xaby' }} {{ not 0 and 'x' or 'y' }}"),
            "n True x");
}

TEST(Jinja, ErrorsAreStatusesWithTheLine) {
  EXPECT_NE(R("{% if x %}").find("PARSE ERROR"), std::string::npos);
  EXPECT_NE(R("a\n{% frobnicate %}").find("line 2: unknown tag 'frobnicate'"), std::string::npos);
  EXPECT_NE(R("{{ 'a' + 1 }}").find("unsupported operand types for +"), std::string::npos);
  EXPECT_NE(R("{{ x.y.z }}", {{"x", json::object()}}).find("'x.y' is undefined"),
            std::string::npos);
  EXPECT_NE(R("{{ f() }}").find("'f' is undefined"), std::string::npos);
  EXPECT_NE(R("{{ 1 | nofilter }}").find("no filter named 'nofilter'"), std::string::npos);
  EXPECT_NE(R("{{ 'unterminated }}").find("unterminated string"), std::string::npos);
  EXPECT_NE(R("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}").find("nested too deeply"),
            std::string::npos);
  EXPECT_NE(R("{{ 1 / 0 }}").find("division by zero"), std::string::npos);
}

// Any prefix of a real template, and deeply nested input, gives a Status, never a crash.
TEST(Jinja, MalformedTemplatesAreErrorsNotCrashes) {
  const std::string src =
      "{%- set ns = namespace(n=0) %}{%- for m in messages[::-1] if m.role != 'x' %}"
      "{{- '<|im_start|>' + m['role'] + '\\n' + m.content | trim }}{% set ns.n = ns.n + 1 %}"
      "{%- if loop.last and (m.content.startswith('a') or not m.x is defined) %}{{ ns.n }}"
      "{% elif m.content is string %}{{ m.content.split('b')[-1].lstrip('\\n') }}"
      "{% else %}{{ raise('x') }}{% endif %}{# c #}{%- endfor %}{{ {'a': [1, 2.5]} | tojson }}";
  const json vars = {{"messages", {{{"role", "user"}, {"content", "ab"}}}}};
  EXPECT_EQ(R(src, vars), "<|im_start|>user\nab1{\"a\": [1, 2.5]}");
  for (size_t n = 0; n < src.size(); ++n) R(src.substr(0, n), vars);  // must not crash
  const std::string parens = "{{ " + std::string(5000, '(') + "1" + std::string(5000, ')') + " }}";
  EXPECT_NE(R(parens).find("nested too deeply"), std::string::npos);
  EXPECT_NE(R("{% set ns = namespace() %}{% set ns.me = ns %}{{ ns | tojson }}")
                .find("nested too deeply"),
            std::string::npos);
  std::string blocks;
  for (int i = 0; i < 1000; ++i) blocks += "{% if true %}";
  EXPECT_NE(R(blocks).find("nested too deeply"), std::string::npos);
}

}  // namespace
}  // namespace treepo::jinja
