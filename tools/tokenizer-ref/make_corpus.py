#!/usr/bin/env python3
"""Writes the tokenizer conformance corpus: tests/fixtures/tokenizer/corpus.jsonl.

Deterministic (seeded random.Random, standard library only, nothing downloaded). Each line is
{"id": N, "kind": CATEGORY, "text": STRING}; ids are 0..N-1 in file order. The expected outputs
(<name>.expected.jsonl.gz, written by run_hf.py) have one line per corpus line, in the same order.

    python3 tools/tokenizer-ref/make_corpus.py [--out tests/fixtures/tokenizer/corpus.jsonl]
"""
import argparse
import json
import os
import random

SEED = 31337

WORDS = {
    "en": "the quick brown fox jumps over a lazy dog while people wonder why tokenizers split words "
          "in strange places because merges learned from data favour frequent pieces and rare ones break "
          "apart into bytes never mind the weather today it was raining cats and dogs".split(),
    "fr": "le café déjà été où garçon naïve façon élève très œuvre à côté noël hôtel forêt "
          "crème brûlée résumé coïncidence l'école qu'il aujourd'hui".split(),
    "de": "Straße Größe Übung fünf Mädchen schön groß Äpfel Öl Fußgängerübergang Donaudampfschifffahrt "
          "Käse müssen Brötchen".split(),
    "es": "niño año mañana corazón canción pingüino ¿qué ¡hola! señor jalapeño café está".split(),
    "pt": "ação coração não pão irmã informação você também avô".split(),
    "vi": "Tiếng Việt người chúng tôi được những thành phố Hà Nội đường phở".split(),
    "pl": "zażółć gęślą jaźń źdźbło łódź Wrocław".split(),
    "tr": "İstanbul ığdır şeker çiçek öğrenci Gülümse".split(),
    "ru": "Привет мир как дела сегодня хорошая погода съешь же ещё этих мягких французских булок "
          "да выпей чаю Ёлка".split(),
    "uk": "Привіт їжак ґанок Європа щастя".split(),
    "el": "Γειά σου κόσμε καλημέρα ευχαριστώ πολύ Ελλάδα ψυχή ωραία ΆΈΉ".split(),
    "ar": "مرحبا بالعالم كيف حالك اليوم شكرا جزيلا اللغة العربية جميلة".split(),
    "he": "שלום עולם מה שלומך תודה רבה עברית ירושלים".split(),
    "hi": "नमस्ते दुनिया आप कैसे हैं धन्यवाद हिन्दी भाषा क्षत्रिय".split(),
    "th": "สวัสดีครับ ภาษาไทย ขอบคุณมาก กรุงเทพมหานคร".split(),
    "zh": "你好 世界 今天 天气 很好 我们 学习 人工智能 模型 分词器 測試 繁體字".split(),
    "ja": "こんにちは 世界 ありがとう カタカナ ひらがな 東京 日本語 テスト ｶﾀｶﾅ".split(),
    "ko": "안녕하세요 세계 감사합니다 한국어 서울 토크나이저 테스트".split(),
}
NOSPACE = {"zh", "ja", "th"}

EMOJI = ["😀", "😂", "🥲", "❤️", "👍", "🎉", "🔥", "🚀", "✅", "❌", "⭐", "🤖", "💡", "🐍", "🦀", "☕", "✨",
         "🙏", "😅", "🧠", "📦", "🌍", "🇺🇸", "🇯🇵", "🇫🇷", "🇺🇦", "🏳️‍🌈", "🏴‍☠️", "👨‍👩‍👧‍👦", "👩‍💻", "👨🏽‍🚀",
         "🧑🏿‍🤝‍🧑🏻", "👋🏻", "👋🏼", "👋🏽", "👋🏾", "👋🏿", "💪🏽", "1️⃣", "#️⃣", "©️", "™", "♥", "☺️", "🫠",
         "🧔‍♀️", "❤️‍🔥", "🐻‍❄️", "👁️‍🗨️", "🏌🏾‍♀️"]

SPECIAL = ["<|im_start|>", "<|im_end|>", "<|im_sep|>", "<s>", "</s>", "<unk>", "<pad>", "<|begin_of_text|>",
           "<|end_of_text|>", "<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>", "<|endoftext|>",
           "<|python_tag|>", "[INST]", "[/INST]", "<<SYS>>", "<</SYS>>", "<think>", "</think>", "<tool_call>",
           "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|reserved_special_token_5|>",
           "<|im_start", "im_end|>", "< s>", "<s >", "<|", "|>", "<<", ">>", "<|user|>", "<|assistant|>",
           "<|system|>", "<|end|>", "[TOOL_CALLS]", "<|tool_call|>"]

SPACES = [" ", "  ", "   ", "\t", "\n", "\r\n", "\n\n", "\u00a0", "\u2002", "\u2003", "\u2009", "\u3000",
          "\u200b", "\u202f", "\u205f", "\r", "\v", "\f", "\u2028", "\u0085"]

CODE = {
    "python": [
        "def {f}({a}, {b}=None):\n    \"\"\"Return the {w} of {a}.\"\"\"\n    if {b} is None:\n        return {a} * {n}\n    return [{a}[i] + {b} for i in range({n})]\n",
        "class {F}(object):\n    def __init__(self, {a}: int = {n}) -> None:\n        self._{a} = {a}  # {w}\n\n    def __repr__(self):\n        return f\"{F}({{self._{a}!r}})\"\n",
        "import os, sys\nfor {a} in sorted(os.listdir('.')):\n\tprint({a}, len({a}), sep='\\t')\n",
        "x = {{'{a}': {n}, \"{b}\": [1, 2, 3], 'nested': {{'k': None}}}}\nprint(x['{a}'] ** 2 // 3 % 7)\n",
        "async def {f}():\n    await asyncio.sleep({n}.5)\n    raise ValueError(\"{w}: %s\" % {a!r})\n",
    ],
    "cpp": [
        "#include <vector>\n#include <string>\n\nint {f}(const std::vector<int>& {a}) {{\n  int {b} = 0;\n  for (auto v : {a}) {b} += v * {n};\n  return {b};\n}}\n",
        "template <typename T>\nclass {F} final : public Base<T> {{\n public:\n  explicit {F}(T* {a}) : {a}_({a}) {{}}\n  ~{F}() override = default;\n private:\n  T* {a}_ = nullptr;  // {w}\n}};\n",
        "std::cout << \"{w}\" << {a}->{b}[{n}] << std::endl; // TODO(me): fix\n",
        "auto {f} = [&](int {a}) -> bool {{ return {a} >= 0x{h} && {a} != -{n}; }};\n",
    ],
    "js": [
        "const {f} = async ({a}, {b} = {{}}) => {{\n  const res = await fetch(`/api/{w}/${{{a}}}`);\n  return res.json()?.{b} ?? null;\n}};\n",
        "export default function {F}({{ {a}, {b} }}) {{\n  return <div className=\"{w}\">{{{a} === {n} ? '{w}' : {b}}}</div>;\n}}\n",
        "let {a} = [1, 2, 3].map(x => x ** {n}).filter(Boolean); // {w}\n",
    ],
    "rust": [
        "fn {f}<'a>({a}: &'a str, {b}: usize) -> Option<&'a str> {{\n    {a}.get(..{b}).map(|s| s.trim())\n}}\n",
        "#[derive(Debug, Clone)]\npub struct {F} {{\n    pub {a}: Vec<u8>,\n    {b}: HashMap<String, i64>,\n}}\n\nimpl {F} {{\n    pub fn new() -> Self {{ Self {{ {a}: vec![0; {n}], {b}: HashMap::new() }} }}\n}}\n",
        "match {a} {{\n    Some(x) if x > {n} => println!(\"{{x:?}} {w}\"),\n    _ => unreachable!(),\n}}\n",
    ],
    "go": [
        "package main\n\nimport \"fmt\"\n\nfunc {f}({a} []int, {b} map[string]int) (int, error) {{\n\tfor _, v := range {a} {{\n\t\t{b}[\"{w}\"] += v\n\t}}\n\treturn len({a}), nil\n}}\n",
        "if err := {f}(ctx); err != nil {{\n\treturn fmt.Errorf(\"{w}: %w\", err)\n}}\n",
    ],
    "sql": [
        "SELECT u.{a}, COUNT(*) AS n\nFROM users u\nJOIN orders o ON o.user_id = u.id\nWHERE o.total > {n} AND u.{b} LIKE '%{w}%'\nGROUP BY u.{a}\nORDER BY n DESC;\n",
    ],
    "shell": [
        "#!/bin/bash\nset -euo pipefail\nfor f in *.{w}; do\n  grep -rn \"{a}\" \"$f\" | awk -F: '{{print $1}}' >> /tmp/{b}.log 2>&1\ndone\n",
        "printf '%s' '{w}' > {a}.txt && cat {a}.txt | wc -c\n",
    ],
    "html": [
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\"><title>{w}</title></head>\n<body>\n  <p class=\"{a}\">&lt;{b}&gt; &amp; &#x{h};</p>\n</body>\n</html>\n",
    ],
    "json": [
        "{{\"{a}\": {n}, \"{b}\": [true, false, null], \"s\": \"{w}\\n\\t\\u00e9\", \"f\": -{n}.{n}e-{n}}}",
        "{{\n  \"name\": \"{w}\",\n  \"version\": \"{n}.0.{n}\",\n  \"dependencies\": {{\n    \"{a}\": \"^{n}.2.3\"\n  }}\n}}\n",
    ],
    "markdown": [
        "# {W}\n\n- [ ] {w} `{a}()`\n- [x] **{b}** _done_\n\n```python\nprint({n})\n```\n\n> quote: {w}\n",
    ],
}

IDENTS = ["foo", "bar", "baz", "value", "items", "result", "tokenizer", "config", "i", "j", "x_1", "camelCase",
          "snake_case_name", "HTTPServer", "kMaxSize", "__init__", "_private", "data2", "userId", "buf"]


def words(rng, lang, n):
    ws = [rng.choice(WORDS[lang]) for _ in range(n)]
    sep = "" if lang in NOSPACE else " "
    if lang == "th":
        sep = rng.choice(["", " "])
    return sep.join(ws)


def sentence(rng, lang):
    s = words(rng, lang, rng.randint(3, 14))
    if lang not in NOSPACE and rng.random() < 0.7:
        s = s[:1].upper() + s[1:]
    end = {"zh": "。", "ja": "。", "ar": "؟", "hi": "।"}.get(lang, rng.choice([".", "!", "?", "...", ":", ";", ""]))
    return s + end


def code_snippet(rng):
    lang = rng.choice(sorted(CODE))
    tpl = rng.choice(CODE[lang])
    w = rng.choice(WORDS["en"])
    a, b = rng.sample(IDENTS, 2)
    f = rng.choice(["compute", "parse_line", "getValue", "run", "handle_request", "do_it", "frobnicate"])
    F = rng.choice(["Widget", "Parser", "HttpClient", "LRUCache", "Tokenizer", "Node"])
    s = tpl.format(f=f, F=F, a=a, b=b, w=w, W=w.title(), n=rng.randint(0, 99999), h="%x" % rng.randint(0, 65535))
    if rng.random() < 0.3:
        s = s.replace("    ", "\t")
    if rng.random() < 0.2:
        s = s.replace("\n", "\r\n")
    return "code_" + lang, s


def number_text(rng):
    forms = [
        lambda: str(rng.randint(0, 9)),
        lambda: str(rng.randint(10, 999)),
        lambda: str(rng.randint(1000, 10 ** 9)),
        lambda: str(rng.randint(10 ** 15, 10 ** 40)),
        lambda: "{:,}".format(rng.randint(1000, 10 ** 12)),
        lambda: "%.*f" % (rng.randint(1, 8), rng.uniform(-1e6, 1e6)),
        lambda: "%e" % rng.uniform(-1e30, 1e30),
        lambda: "0x%X" % rng.getrandbits(64),
        lambda: "%04d-%02d-%02dT%02d:%02d:%02dZ" % (rng.randint(1900, 2100), rng.randint(1, 12), rng.randint(1, 28),
                                                    rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59)),
        lambda: "+1 (%03d) %03d-%04d" % (rng.randint(100, 999), rng.randint(100, 999), rng.randint(0, 9999)),
        lambda: "%d.%d.%d.%d" % tuple(rng.randint(0, 255) for _ in range(4)),
        lambda: "v%d.%d.%d-rc%d" % tuple(rng.randint(0, 30) for _ in range(4)),
        lambda: "%d%%" % rng.randint(0, 100),
        lambda: "$%d.%02d" % (rng.randint(0, 99999), rng.randint(0, 99)),
        lambda: "".join(rng.choice("0123456789") for _ in range(rng.randint(20, 120))),
        lambda: "١٢٣٤٥ ०१२३४ 一二三 ①②③ ½ ¾ ²³ Ⅻ",
        lambda: "%d + %d = %d" % (lambda x, y: (x, y, x + y))(rng.randint(0, 999), rng.randint(0, 999)),
        lambda: "%d×%d=%d" % (lambda x, y: (x, y, x * y))(rng.randint(0, 99), rng.randint(0, 99)),
    ]
    k = rng.randint(1, 4)
    return " ".join(rng.choice(forms)() for _ in range(k)) if rng.random() < 0.6 else \
        rng.choice(WORDS["en"]) + " " + rng.choice(forms)() + rng.choice(["", ".", " items", "th", "px", "kg"])


def contraction_text(rng):
    base = ["don't", "I'm", "we'll", "they've", "it's", "she'd", "you're", "can't", "won't", "y'all",
            "rock 'n' roll", "'quoted'", "O'Brien", "DON'T", "I'M", "WE'LL", "It'S", "'s", "'t", "''", "'''",
            "don’t", "it’s", "‘single’", "“double”", "l'homme", "c'est", "ma'am", "'tis", "can''t",
            "x's y'z", "'re'll've", "S'T'R'"]
    n = rng.randint(1, 6)
    parts = [rng.choice(base) if rng.random() < 0.6 else rng.choice(WORDS["en"]) for _ in range(n)]
    return " ".join(parts) + rng.choice(["", ".", "!", "?"])


def whitespace_text(rng):
    parts = []
    for _ in range(rng.randint(1, 8)):
        r = rng.random()
        if r < 0.4:
            parts.append(rng.choice(SPACES) * rng.randint(1, 12))
        elif r < 0.8:
            parts.append(rng.choice(WORDS["en"] + WORDS["fr"] + WORDS["zh"]))
        else:
            parts.append(rng.choice(["\t\t", " \n ", "\n \n", "\r\n\r\n", "   \t  \n", "\u00a0\u00a0 ", " \u3000 "]))
    return "".join(parts)


def emoji_text(rng):
    parts = []
    for _ in range(rng.randint(1, 8)):
        r = rng.random()
        if r < 0.5:
            parts.append(rng.choice(EMOJI))
        elif r < 0.8:
            parts.append(" " + rng.choice(WORDS["en"]) + rng.choice(["", " "]))
        else:
            parts.append(rng.choice(EMOJI) * rng.randint(2, 5))
    return "".join(parts)


def special_text(rng):
    forms = [
        lambda: "<|im_start|>user\n%s<|im_end|>\n<|im_start|>assistant\n" % sentence(rng, "en"),
        lambda: "<|im_start|>system<|im_sep|>%s<|im_end|>" % sentence(rng, "en"),
        lambda: "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n%s<|eot_id|>" % sentence(rng, "en"),
        lambda: "<s>[INST] %s [/INST] %s</s>" % (sentence(rng, "en"), sentence(rng, "fr")),
        lambda: "<think>\n%s\n</think>\n\n%s" % (sentence(rng, "en"), sentence(rng, "en")),
        lambda: "<tool_call>\n{\"name\": \"Bash\", \"arguments\": {\"command\": \"ls -la\"}}\n</tool_call>",
        lambda: "text %s text" % rng.choice(SPECIAL),
        lambda: "".join(rng.choice(SPECIAL) for _ in range(rng.randint(1, 4))),
        lambda: rng.choice(SPECIAL) + rng.choice([" ", "", "\n", "  "]) + rng.choice(WORDS["en"]),
        lambda: rng.choice(WORDS["en"]) + rng.choice(SPECIAL) + rng.choice(WORDS["en"]),
        lambda: " " + rng.choice(SPECIAL) + " ",
    ]
    return rng.choice(forms)()


def long_word_text(rng):
    forms = [
        lambda: "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(30, 400))),
        lambda: rng.choice(["a", "ab", "xyz", "é", "中", "😀", "-", "=", "_", ".", "0"]) * rng.randint(20, 300),
        lambda: "https://example.com/" + "/".join(rng.choice(IDENTS) for _ in range(rng.randint(3, 12)))
                + "?q=%d&lang=en#frag" % rng.randint(0, 10 ** 6),
        lambda: "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
                        for _ in range(rng.randint(40, 300))) + "==",
        lambda: "pneumonoultramicroscopicsilicovolcanoconiosis Rindfleischetikettierungsüberwachungsaufgabenübertragungsgesetz",
        lambda: "".join(rng.choice(WORDS[rng.choice(sorted(WORDS))]) for _ in range(rng.randint(5, 30))),
        lambda: "".join(rng.choice(IDENTS).title() for _ in range(rng.randint(5, 20))),
        lambda: "_".join(rng.choice(IDENTS) for _ in range(rng.randint(5, 20))).upper(),
    ]
    return rng.choice(forms)()


def edge_text(rng):
    forms = [
        "", " ", "  ", "\n", "\t", "\r\n", "a", "A", ".", "'", "\"", "\\", "\u00e9", "e\u0301", "\u0065\u0301\u0302",
        "\ufeffBOM at start", "zero\u200bwidth\u200cjoiner\u200dhere", "\u202eRTL override\u202c", "\u200fמימין\u200e",
        "ﬁ ﬂ ﬀ", "Ａｂｃ１２３", "ℌ𝔢𝔩𝔩𝔬 𝕎𝕠𝕣𝕝𝕕", "𝟘𝟙𝟚", "Ω Å K", "ǅ ǈ", "İi ıI", "ß ẞ", "ﷺ", "\u0000nul",
        "ctrl\u0001\u0002\u001f\u007f", "tab\tsep\tvalues", "a\u0308o\u0308u\u0308", "한글 자모: ᄒ ᅡ ᆫ",
        "𠀀𠀁 𪚥 🀄", "\U0010fffd", "\ue000 private use", "¯\\_(ツ)_/¯", "( ͡° ͜ʖ ͡°)", "<<>>!!??..,,;;",
        "...", "—–-‐", "«guillemets» „Anführung“ 「かぎ」", "1.2.3", "a.b.c", "e.g. i.e. etc.", "Mr. Smith's",
        " leading space", "trailing space ", "  both  ", "\n\nleading newlines", "trailing newlines\n\n",
    ]
    return rng.choice(forms) if rng.random() < 0.7 else rng.choice(forms) + rng.choice(forms)


def mixed_text(rng):
    gens = [lambda: sentence(rng, rng.choice(sorted(WORDS))), lambda: code_snippet(rng)[1], lambda: number_text(rng),
            contraction_text, whitespace_text, emoji_text, special_text, edge_text]
    parts = []
    for _ in range(rng.randint(2, 6)):
        g = rng.choice(gens)
        parts.append(g(rng) if g in (contraction_text, whitespace_text, emoji_text, special_text, edge_text) else g())
    return rng.choice(["", " ", "\n", "  ", "\t"]).join(parts)


def prose(rng, lang):
    n = rng.randint(1, 4)
    return " ".join(sentence(rng, lang) for _ in range(n)) if lang not in NOSPACE else \
        "".join(sentence(rng, lang) for _ in range(n))


def build():
    rng = random.Random(SEED)
    out = []
    seen = set()

    def add(kind, text):
        if text in seen:
            return
        seen.add(text)
        out.append((kind, text))

    for lang in sorted(WORDS):
        for _ in range(40):
            add("prose_" + lang, prose(rng, lang))
    for _ in range(320):
        add(*code_snippet(rng))
    counts = [("numbers", number_text, 180), ("contractions", contraction_text, 140),
              ("whitespace", whitespace_text, 180), ("emoji", emoji_text, 150), ("special", special_text, 170),
              ("long_words", long_word_text, 110), ("edge", edge_text, 90), ("mixed", mixed_text, 300)]
    for kind, g, n in counts:
        for _ in range(n):
            add(kind, g(rng))
    for s in SPECIAL:
        add("special_bare", s)
    for s in SPACES:
        add("whitespace_bare", s)
        add("whitespace_bare", s * 3 + "x" + s)
    for e in EMOJI:
        add("emoji_bare", e)
    # Fixed hard strings in the spirit of llama.cpp's tokenizer tests.
    for s in ["Hello world", " Hello world", "Hello World", " Hello World", " Hello World!", "Hello, world!",
              " this is 🦙.cpp", "w048 7tuijk dsdfhu", "нещо на Български", "កាន់តែពិសេសអាចខលចេញ",
              "🚀 (normal) 😶‍🌫️ (multiple emojis concatenated) ✅ (only emoji that has its own token)",
              "   Hello", "    Hello", "    Hello\n    Hello", " (", "\n =", "' era", "Hello, y'all! How are you 😁 ?我想在apple工作1314151天～",
              "!!!!!!", "3", "33", "333", "3333", "33333", "333333", "3333333", "33333333", "333333333",
              "Cửa Việt", " discards", "\n", "\n\n", "\n\n\n", "\t", "\t\t", "\t\n", "   \n\t\n  "]:
        add("classic", s)
    return out


def main():
    ap = argparse.ArgumentParser()
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "..", "tests", "fixtures", "tokenizer", "corpus.jsonl"))
    args = ap.parse_args()
    items = build()
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", encoding="utf-8", newline="\n") as f:
        for i, (kind, text) in enumerate(items):
            f.write(json.dumps({"id": i, "kind": kind, "text": text}, ensure_ascii=False) + "\n")
    print(f"wrote {len(items)} strings to {args.out}")


if __name__ == "__main__":
    main()
