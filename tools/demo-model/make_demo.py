#!/usr/bin/env python3
"""Trains Pensieve's built-in demo model: a small Phi3ForCausalLM with its own byte-level BPE tokenizer.

What it does (all seeded; run on the accelerator machine, one call of under 10 minutes):
 1. Generates a synthetic chat corpus: integer arithmetic (+ and - on 1-3 digit numbers, x on 1-2 digit
    numbers), string tasks (reverse a word, upper-case a phrase, count a letter), fixed greetings, and tool use
    ("Create FILE containing TEXT" -> one Bash tool call `echo TEXT > FILE`; given the tool result ->
    "Done."). Conversations come in three shapes: short (no or small system prompt, 0-4 small tools), medium
    (system prompt and 2-10 tools), and Claude Code-shaped (three system blocks joined, 24 long tools in Claude
    Code's names, the request after a <system-reminder> in the first user turn, then a role-"system" message with
    an agent/skill list; 15k-30k tokens), so that long prompts and many tools do not derail the model.
 2. Trains a byte-level BPE tokenizer (tokenizers library): GPT-4-style split regex with single digits (the
    Qwen2 form of the cl100k pattern, so numbers are spelled digit by digit), ByteLevel bytes, 4096 tokens,
    ChatML-style special tokens with <|im_sep|> as in Phi-4, and <tool_call>/<tool_response> tags as tokens.
 3. Trains Phi3ForCausalLM (fused qkv_proj and gate_up_proj, GQA 4 query / 2 KV heads, tied embeddings,
    ~5.7M parameters) with loss on assistant tokens only.
 4. Writes a complete HF directory: config.json, model.safetensors (bf16), tokenizer.json, tokenizer_config.json
    (with a chat template that renders tools and Hermes/Qwen-style <tool_call> calls), generation_config.json.
 5. Evaluates with transformers from the saved directory: checks that tokenizer.apply_chat_template equals the
    script's own renderer (strings and ids), measures exact-answer accuracy on held-out prompts per task family
    (short and Claude Code-shaped), and writes fixtures for the engine tests (held-out prompts with answers,
    greedy transformers outputs for 50 prompts).

    python3 make_demo.py --out OUTDIR --steps N [--smoke]
"""
import argparse
import gzip
import json
import math
import multiprocessing as mp
import os
import random
import shutil
import string
import sys
import time

T0 = time.time()


def log(*a):
    print(f"[{time.time() - T0:6.1f}s]", *a, flush=True)


# ============================================================================ vocabulary for synthetic text
WORDS = ("apple river stone cloud green orange paper window garden silver yellow purple mountain ocean forest "
         "rabbit tiger eagle dolphin candle pencil bottle table chair mirror castle rocket planet comet galaxy "
         "summer winter spring autumn morning evening music guitar piano violin letter number answer question "
         "simple quick happy brave quiet bright dark light heavy small large little giant tiny hello world file "
         "data code test note list item value point line word text name sun moon star tree leaf root seed rain "
         "snow wind fire water earth metal wood glass sand salt sugar bread butter cheese honey lemon mango "
         "peach cherry grape melon berry coffee tea milk juice soup rice pasta pizza cake cookie banana carrot "
         "potato tomato onion garlic pepper basil mint sage thyme north south east west left right up down "
         "red blue black white pink brown gray gold iron copper zinc tin lead jade ruby pearl coral amber "
         "ivory onyx topaz opal quartz cat dog fox wolf bear deer horse mouse snake frog duck goose swan owl "
         "hawk crow robin sparrow bee ant moth fly worm crab fish shark whale seal otter lion zebra camel llama "
         "panda koala sloth lemur bison moose yak goat sheep cow pig hen alpha beta gamma delta sigma omega "
         "kilo mega giga nano pico micro macro meta proto hyper ultra super turbo nitro echo bravo charlie "
         "foxtrot hotel india juliet lima mike oscar papa quebec romeo sierra tango uniform victor whiskey "
         "xray yankee zulu ready steady go stop start finish begin end open close read write save load run jump "
         "walk talk sing dance play work rest sleep dream think know learn teach build break make take give "
         "keep find lose win draw paint cook bake wash clean").split()
WORDS = sorted(set(WORDS))

PROSE = ("the a an this that these those each every any some all no tool user assistant model request response "
         "command file directory path project repository branch commit change edit update create delete read "
         "write search find list run execute call return result output input error warning message context "
         "session task agent workflow schedule cron job worktree notebook cell report finding wakeup skill "
         "must should may can will never always only when if unless before after while until because so and or "
         "but not with without for from into onto over under about between across through within use prefer "
         "avoid ensure check verify confirm handle report explain describe keep make sure important note "
         "example instead parameter argument option value string number boolean object array field property "
         "required optional default timeout description absolute relative line offset limit pattern regex "
         "glob match content text code block test build lint format style security permission approval "
         "background foreground process shell terminal output stdout stderr exit status git diff log push "
         "pull request review comment issue label merge rebase status staged files changes concise clear "
         "direct helpful careful thorough minimal relevant specific detailed brief accurate").split()

TOOL_NAMES_CC = ["Agent", "Bash", "CronCreate", "CronDelete", "CronList", "Edit", "EnterWorktree", "ExitWorktree",
                 "NotebookEdit", "Read", "ReportFindings", "ScheduleWakeup", "SendMessage", "Skill", "TaskCreate",
                 "TaskGet", "TaskList", "TaskOutput", "TaskStop", "TaskUpdate", "WebFetch", "WebSearch", "Workflow",
                 "Write"]
TOOL_NAMES_OTHER = ["Glob", "Grep", "LS", "MultiEdit", "TodoWrite", "TodoRead", "AskUserQuestion", "EnterPlanMode",
                    "ExitPlanMode", "KillShell", "BashOutput", "WebView", "Calculator", "Weather", "Search",
                    "SqlQuery", "HttpRequest", "SendEmail", "Calendar", "Translate"]
EXTS = ["txt", "md", "py", "json", "csv", "log", "sh", "yaml", "html", "js", "cfg", "ini", "c", "rs", "toml"]

GREETINGS = [
    (["Hi", "Hi!", "hi", "Hello", "Hello!", "hello", "Hey", "Hey!", "hey there", "Hello there", "Hi there!"],
     "Hello! How can I help you today?"),
    (["Good morning", "Good morning!", "good morning"], "Good morning! How can I help you today?"),
    (["Good evening", "Good evening!", "good evening"], "Good evening! How can I help you today?"),
    (["Thanks", "Thanks!", "Thank you", "Thank you!", "thanks a lot"], "You're welcome!"),
    (["Bye", "Goodbye", "Bye!", "See you"], "Goodbye!"),
    (["Who are you?", "What are you?", "who are you"],
     "I am the Pensieve demo model: a small assistant for arithmetic, simple string tasks and creating files."),
    (["How are you?", "How are you doing?", "how are you"], "I'm fine, thank you! How can I help you today?"),
]

DEFAULT_SYSTEM = "You are a helpful assistant."
SP = {  # special tokens: (content, special flag for the tokenizer)
    "endoftext": "<|endoftext|>", "im_start": "<|im_start|>", "im_sep": "<|im_sep|>", "im_end": "<|im_end|>",
    "tool_call": "<tool_call>", "tool_call_end": "</tool_call>", "tool_response": "<tool_response>",
    "tool_response_end": "</tool_response>",
}
SPECIAL_LIST = ["<|endoftext|>", "<|im_start|>", "<|im_sep|>", "<|im_end|>"]
TAG_LIST = ["<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>"]
TOOLS_HEADER = ("\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
                "You are provided with function signatures within <tools></tools> XML tags:\n<tools>")
TOOLS_FOOTER = ("\n</tools>\n\nFor each function call, return a json object with function name and arguments within "
                "<tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": "
                "<args-json-object>}\n</tool_call>")

CHAT_TEMPLATE = (
    "{%- if tools -%}"
    "{{- '<|im_start|>system<|im_sep|>' -}}"
    "{%- if messages and messages[0].role == 'system' -%}{{- messages[0].content -}}"
    "{%- else -%}{{- '" + DEFAULT_SYSTEM + "' -}}{%- endif -%}"
    "{{- " + json.dumps(TOOLS_HEADER).replace("'", "\\'") + " -}}"
    "{%- for tool in tools -%}{{- '\\n' -}}{{- tool | tojson -}}{%- endfor -%}"
    "{{- " + json.dumps(TOOLS_FOOTER) + " -}}"
    "{{- '<|im_end|>' -}}"
    "{%- elif messages and messages[0].role == 'system' -%}"
    "{{- '<|im_start|>system<|im_sep|>' + messages[0].content + '<|im_end|>' -}}"
    "{%- endif -%}"
    "{%- for message in messages -%}"
    "{%- if message.role == 'system' and loop.first -%}"
    "{%- elif message.role == 'system' or message.role == 'user' -%}"
    "{{- '<|im_start|>' + message.role + '<|im_sep|>' + message.content + '<|im_end|>' -}}"
    "{%- elif message.role == 'assistant' -%}"
    "{{- '<|im_start|>assistant<|im_sep|>' -}}"
    "{%- if message.content -%}{{- message.content -}}{%- endif -%}"
    "{%- if message.tool_calls -%}"
    "{%- for tc in message.tool_calls -%}"
    "{%- if tc.function is defined -%}{%- set f = tc.function -%}{%- else -%}{%- set f = tc -%}{%- endif -%}"
    "{%- if not loop.first or message.content -%}{{- '\\n' -}}{%- endif -%}"
    "{{- '<tool_call>\\n{\"name\": \"' + f.name + '\", \"arguments\": ' -}}"
    "{%- if f.arguments is string -%}{{- f.arguments -}}{%- else -%}{{- f.arguments | tojson -}}{%- endif -%}"
    "{{- '}\\n</tool_call>' -}}"
    "{%- endfor -%}"
    "{%- endif -%}"
    "{{- '<|im_end|>' -}}"
    "{%- elif message.role == 'tool' -%}"
    "{%- if loop.first or messages[loop.index0 - 1].role != 'tool' -%}{{- '<|im_start|>user<|im_sep|>' -}}"
    "{%- else -%}{{- '\\n' -}}{%- endif -%}"
    "{{- '<tool_response>\\n' + message.content + '\\n</tool_response>' -}}"
    "{%- if loop.last or messages[loop.index0 + 1].role != 'tool' -%}{{- '<|im_end|>' -}}{%- endif -%}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant<|im_sep|>' -}}{%- endif -%}"
)


# ============================================================================ rendering (mirror of CHAT_TEMPLATE)
def render_pieces(messages, tools=None, add_generation_prompt=True):
    """Returns the rendered prompt as a list of pieces: ("S", special-or-tag string) or ("T", text), with
    ("A", None) markers where a supervised assistant span starts and ("E", None) where it ends (after
    <|im_end|>). Concatenating the strings gives exactly what CHAT_TEMPLATE renders."""
    out = []

    def text(s):
        if not s:
            return
        # Split out the tag tokens (they are added tokens, matched before BPE like the special ones).
        i = 0
        while i < len(s):
            j, tag = min(((s.find(t, i), t) for t in TAG_LIST if s.find(t, i) >= 0), default=(-1, None))
            if j < 0:
                out.append(("T", s[i:]))
                break
            if j > i:
                out.append(("T", s[i:j]))
            out.append(("S", tag))
            i = j + len(tag)

    def sp(s):
        out.append(("S", s))

    if tools:
        sp("<|im_start|>"); text("system"); sp("<|im_sep|>")
        sysc = messages[0]["content"] if messages and messages[0]["role"] == "system" else DEFAULT_SYSTEM
        text(sysc + TOOLS_HEADER + "".join("\n" + json.dumps(t, ensure_ascii=False) for t in tools) + TOOLS_FOOTER)
        sp("<|im_end|>")
    elif messages and messages[0]["role"] == "system":
        sp("<|im_start|>"); text("system"); sp("<|im_sep|>"); text(messages[0]["content"]); sp("<|im_end|>")
    n = len(messages)
    for k, m in enumerate(messages):
        r = m["role"]
        if r == "system" and k == 0:
            continue
        if r in ("system", "user"):
            sp("<|im_start|>"); text(r); sp("<|im_sep|>"); text(m["content"]); sp("<|im_end|>")
        elif r == "assistant":
            sp("<|im_start|>"); text("assistant"); sp("<|im_sep|>")
            out.append(("A", None))
            if m.get("content"):
                text(m["content"])
            for ti, tc in enumerate(m.get("tool_calls") or []):
                f = tc.get("function", tc)
                if ti > 0 or m.get("content"):
                    text("\n")
                args = f["arguments"] if isinstance(f["arguments"], str) else json.dumps(f["arguments"], ensure_ascii=False)
                sp("<tool_call>")
                text('\n{"name": "' + f["name"] + '", "arguments": ' + args + "}\n")
                sp("</tool_call>")
            sp("<|im_end|>")
            out.append(("E", None))
        elif r == "tool":
            if k == 0 or messages[k - 1]["role"] != "tool":
                sp("<|im_start|>"); text("user"); sp("<|im_sep|>")
            else:
                text("\n")
            sp("<tool_response>"); text("\n" + m["content"] + "\n"); sp("</tool_response>")
            if k == n - 1 or messages[k + 1]["role"] != "tool":
                sp("<|im_end|>")
    if add_generation_prompt:
        sp("<|im_start|>"); text("assistant"); sp("<|im_sep|>")
    return merge_text(out)


def merge_text(pieces):
    out = []
    for p in pieces:
        if p[0] == "T" and out and out[-1][0] == "T":
            out[-1] = ("T", out[-1][1] + p[1])
        else:
            out.append(p)
    return out


def pieces_to_str(pieces):
    return "".join(p[1] for p in pieces if p[0] in ("S", "T"))


# ============================================================================ task generators
def rand_num(r, max_digits):
    d = r.randint(1, max_digits)
    lo = 0 if d == 1 else 10 ** (d - 1)
    return r.randint(lo, 10 ** d - 1)


def task_add(r):
    a, b = rand_num(r, 3), rand_num(r, 3)
    q = r.choice(["What is {a} + {b}?", "What is {a} plus {b}?", "Compute {a} + {b}.", "{a} + {b} = ?",
                  "Calculate {a}+{b}", "What's {a} + {b}?", "{a} + {b}", "Add {a} and {b}."]).format(a=a, b=b)
    return q, str(a + b)


def task_sub(r):
    a, b = rand_num(r, 3), rand_num(r, 3)
    q = r.choice(["What is {a} - {b}?", "What is {a} minus {b}?", "Compute {a} - {b}.", "{a} - {b} = ?",
                  "Calculate {a}-{b}", "What's {a} - {b}?", "{a} - {b}", "Subtract {b} from {a}."]).format(a=a, b=b)
    return q, str(a - b)


def task_mul(r):
    a, b = rand_num(r, 2), rand_num(r, 2)
    q = r.choice(["What is {a} * {b}?", "What is {a} times {b}?", "Compute {a} × {b}.", "{a} * {b} = ?",
                  "Calculate {a}*{b}", "What's {a} × {b}?", "{a} × {b}", "Multiply {a} by {b}."]).format(a=a, b=b)
    return q, str(a * b)


def task_reverse(r):
    w = r.choice(WORDS)
    q = r.choice(["Reverse the word {w}.", "Reverse '{w}'.", "What is {w} spelled backwards?", "Write {w} backwards.",
                  "Reverse this word: {w}", "reverse {w}"]).format(w=w)
    return q, w[::-1]


def task_upper(r):
    ph = " ".join(r.choice(WORDS) for _ in range(r.randint(1, 4)))
    q = r.choice(["Convert to upper case: {p}", "Upper-case this phrase: {p}", "Make this uppercase: {p}",
                  "Uppercase: {p}", "Write '{p}' in capital letters.", "upper-case {p}"]).format(p=ph)
    return q, ph.upper()


def task_count(r):
    w = r.choice(WORDS)
    c = r.choice(w) if r.random() < 0.7 else r.choice(string.ascii_lowercase)
    q = r.choice(["How many times does the letter {c} appear in {w}?", "Count the letter '{c}' in \"{w}\".",
                  "How many {c}'s are in {w}?", "How many times does '{c}' occur in the word {w}?"]).format(c=c, w=w)
    return q, str(w.count(c))


def task_greet(r):
    prompts, reply = r.choice(GREETINGS)
    return r.choice(prompts), reply


SHORT_WORDS = ("hi hey ok yes no foo bar baz qux abc xyz test done one two three four five six seven eight nine "
               "ten hello bye cat dog sun red blue go up on off fine good bad new old big top end tmp log out in "
               "ping pong zip zap lorem ipsum alpha omega todo fixme note draft").split()


def rand_token_word(r):
    """A made-up lower-case word of 1-9 letters, so that tool calls learn to copy any text, not a fixed list."""
    n = r.choices([1, 2, 3, 4, 5, 6, 7, 8, 9], [2, 6, 6, 5, 4, 3, 2, 1, 1])[0]
    return "".join(r.choice(string.ascii_lowercase) for _ in range(n))


def rand_text_word(r):
    x = r.random()
    if x < 0.40:
        return r.choice(WORDS)
    if x < 0.65:
        return rand_token_word(r)
    if x < 0.85:
        return r.choice(SHORT_WORDS)
    return str(r.randint(0, 9999))


def rand_file_text(r):
    """(FILE, TEXT) of a create request. Since phase 6 (echo calls) TEXT and file stems also come from made-up
    words and short common words, so the copy does not depend on the word list."""
    stem = r.choice(WORDS) if r.random() < 0.6 else (rand_token_word(r) if r.random() < 0.6 else r.choice(SHORT_WORDS))
    if r.random() < 0.3:
        stem += r.choice(["_", "-", ""]) + r.choice(WORDS)
    if r.random() < 0.15:
        stem += str(r.randint(0, 99))
    f = stem + "." + r.choice(EXTS)
    if r.random() < 0.1:
        f = r.choice(["out", "tmp", "docs", "src", "notes"]) + "/" + f
    k = r.choices([1, 2, 3, 4], [5, 3, 2, 1])[0]
    t = " ".join(rand_text_word(r) for _ in range(k))
    if r.random() < 0.1:
        t = t.capitalize()
    return f, t


def create_request(r, f, t):
    return r.choice(["Create {f} containing {t}", "Create {f} containing {t}", "Create {f} containing {t}",
                     "Create a file named {f} containing {t}", "Create the file {f} with the content {t}",
                     "Write {t} to {f}", "Make a file {f} that contains {t}", "Please create {f} containing {t}",
                     "create {f} containing {t}", "Create a file called {f} with the text {t}"]).format(f=f, t=t)


def create_call(f, t):
    # `echo TEXT > FILE`: TEXT and FILE keep the leading space they have in the request (" hi", " hello.txt"),
    # so the call copies the request's own tokens. (Phases 1-5 used `printf '%s' 'TEXT'`, where TEXT follows a
    # quote and tokenizes differently from the request: the model then learned the word list, not copying.)
    return {"type": "function", "function": {"name": "Bash", "arguments": {"command": "echo " + t + " > " + f}}}


TOOL_RESULTS = ["", "(Bash completed with no output)", "Command completed with no output.", "(no output)", "ok",
                "Tool ran without output or errors"]

FAMILIES = ["add", "sub", "mul", "reverse", "upper", "count", "greet", "create", "create_done"]
SIMPLE = {"add": task_add, "sub": task_sub, "mul": task_mul, "reverse": task_reverse, "upper": task_upper,
          "count": task_count, "greet": task_greet}


def make_task(r, family, tools_available):
    """Returns (messages-after-system, expected answer for the last assistant turn, as rendered text)."""
    if family in SIMPLE:
        q, a = SIMPLE[family](r)
        return [{"role": "user", "content": q}], [{"role": "assistant", "content": a}], a
    f, t = rand_file_text(r)
    req = create_request(r, f, t)
    call = {"role": "assistant", "content": "", "tool_calls": [create_call(f, t)]}
    rendered_call = '<tool_call>\n{"name": "Bash", "arguments": ' + json.dumps(
        call["tool_calls"][0]["function"]["arguments"], ensure_ascii=False) + "}\n</tool_call>"
    if family == "create":
        return [{"role": "user", "content": req}], [call], rendered_call
    return ([{"role": "user", "content": req}, call, {"role": "tool", "content": r.choice(TOOL_RESULTS)}],
            [{"role": "assistant", "content": "Done."}], "Done.")


# ============================================================================ synthetic system prompts and tools
# Knobs for the Claude Code-shaped environments (passed to the workers; defaults = the first three phases):
# "scale" multiplies the text lengths, "pseudo" is the share of prose words replaced by made-up words,
# identifiers, paths and flags, which tokenize like real text (about 2 characters a token here, where the
# fixed prose vocabulary gives about 4.6).
_OPTS = {"scale": (0.3, 0.9), "pseudo": 0.0}
_CONS = "bcdfghjklmnprstvwxz"
_VOWS = "aeiouy"


def set_opts(o):
    _OPTS.update(o)


def pseudo_word(r):
    def syl(k):
        return "".join(r.choice(_CONS) + r.choice(_VOWS) + (r.choice(_CONS) if r.random() < 0.3 else "")
                       for _ in range(k))
    k = r.random()
    if k < 0.4:
        return syl(r.randint(1, 4)) + r.choice(["", "", "s", "ed", "ing", "tion", "ly"])
    if k < 0.5:
        return syl(r.randint(1, 3)).capitalize()
    if k < 0.62:
        return syl(r.randint(1, 2)) + syl(r.randint(1, 2)).capitalize() + r.choice(["", "Id", "()", "Map"])
    if k < 0.72:
        return "_".join(syl(r.randint(1, 2)) for _ in range(r.randint(2, 3)))
    if k < 0.8:
        return "/".join(syl(r.randint(1, 2)) for _ in range(r.randint(2, 4))) + "." + r.choice(EXTS)
    if k < 0.86:
        return "--" + syl(r.randint(1, 2)) + "-" + syl(r.randint(1, 2))
    if k < 0.92:
        return r.choice(["0x%X" % r.getrandbits(16), "%d.%d.%d" % (r.randint(0, 9), r.randint(0, 20), r.randint(0, 99)),
                         str(r.randint(0, 100000)), "%d%%" % r.randint(0, 100)])
    return r.choice(["'", '"', "`", "(", "["]) + syl(r.randint(1, 3)) + r.choice(["'", '"', "`", ")", "]"])


def prose(r, n_words, vocab=PROSE):
    out = []
    n = 0
    pz = _OPTS["pseudo"]
    while n < n_words:
        k = r.randint(5, 18)
        s = " ".join(pseudo_word(r) if pz and r.random() < pz else r.choice(vocab) for _ in range(k))
        if r.random() < 0.15:
            s += " `" + r.choice(TOOL_NAMES_CC + TOOL_NAMES_OTHER) + "`"
        out.append(s[0].upper() + s[1:] + r.choice([".", ".", ".", ":", "!"]))
        n += k
    return " ".join(out)


def doc_text(r, n_words):
    parts = []
    left = n_words
    while left > 0:
        kind = r.random()
        if kind < 0.15:
            parts.append("# " + prose(r, 3).rstrip(".:!"))
        elif kind < 0.45:
            parts.append("\n".join("- " + prose(r, r.randint(5, 15)) for _ in range(r.randint(2, 6))))
            left -= 30
        elif kind < 0.55:
            parts.append("<example>\nuser: " + prose(r, 8) + "\nassistant: " + prose(r, 10) + "\n</example>")
            left -= 18
        else:
            k = r.randint(20, 80)
            parts.append(prose(r, k))
            left -= k
    return "\n\n".join(parts)


def schema_for(r, name, n_props):
    if name == "Bash":
        props = {"command": {"type": "string", "description": "The command to execute"},
                 "timeout": {"type": "number", "description": "Optional timeout in milliseconds (max 600000)"},
                 "description": {"type": "string", "description": prose(r, r.randint(8, 40))},
                 "run_in_background": {"type": "boolean", "description": prose(r, r.randint(5, 20))}}
        keys = ["command"] + r.sample(["timeout", "description", "run_in_background"], r.randint(0, 3))
        props = {k: props[k] for k in keys}
        req = ["command"]
    else:
        props = {}
        for _ in range(n_props):
            pn = r.choice(["file_path", "path", "pattern", "content", "old_string", "new_string", "prompt", "query",
                           "url", "task_id", "status", "limit", "offset", "name", "schedule", "message", "cell_id",
                           "subject", "activeForm", "replace_all", "description", "skill", "args", "to"])
            t = r.choice(["string", "string", "number", "boolean", "integer"])
            props[pn] = {"type": t, "description": prose(r, r.randint(4, 30))}
            if r.random() < 0.1:
                props[pn] = {"type": "array", "items": {"type": "string"}, "description": prose(r, 8)}
            if r.random() < 0.1:
                props[pn]["enum"] = r.sample(["pending", "in_progress", "completed", "deleted", "low", "high"], 3)
        req = r.sample(sorted(props), min(len(props), r.randint(0, 2)))
    s = {"type": "object", "properties": props, "required": req, "additionalProperties": False}
    if r.random() < 0.8:
        s["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return s


def make_tool(r, name, desc_words, n_props):
    return {"type": "function", "function": {"name": name, "description": doc_text(r, desc_words),
                                             "parameters": schema_for(r, name, n_props)}}


def claude_code_env(r):
    """A Claude Code-shaped environment: system text (3 blocks joined), 24 tools, reminder, agent/skill list."""
    billing = "x-anthropic-billing-header: cc_version=2.1.%d.%03x; cc_entrypoint=%s;" % (
        r.randint(100, 299), r.randint(0, 4095), r.choice(["sdk-cli", "cli"]))
    identity = r.choice(["You are Claude Code, a command line agent for software engineering tasks.",
                         "You are an interactive CLI agent that helps users with software engineering tasks.",
                         "You are an agent for a coding assistant, running in the user's terminal."])
    scale = r.uniform(*_OPTS["scale"])  # the real -p request is about 76 KB; interactive/sonnet ones 115 KB
    main = doc_text(r, int(r.randint(600, 1300) * scale))
    system = r.choice(["\n\n", "\n"]).join([billing, identity, main])
    names = list(TOOL_NAMES_CC) if r.random() < 0.7 else sorted(
        set(["Bash"] + r.sample(TOOL_NAMES_CC + TOOL_NAMES_OTHER, r.randint(18, 27))))
    big = r.choice([n for n in names if n != "Bash"])
    tools = []
    for n in sorted(names):
        w = int((r.randint(1800, 3000) if n == big else r.randint(30, 450)) * scale)
        tools.append(make_tool(r, n, w, r.randint(1, 6)))
    agents = "\n".join("- %s: %s (Tools: %s)" % (r.choice(WORDS) + "-" + r.choice(WORDS), prose(r, r.randint(10, 40)),
                                                  ", ".join(r.sample(names, 3))) for _ in range(r.randint(3, 8)))
    skills = "\n".join("- %s: %s" % (r.choice(WORDS), prose(r, r.randint(10, 50))) for _ in range(r.randint(5, 20)))
    sysmsg = ("Available agent types for the Agent tool:\n" + agents + "\n\nThe following skills are available "
              "for use with the Skill tool:\n\n" + skills)
    return {"system": system, "tools": tools, "sysmsg": sysmsg}


def reminder(r):
    return ("<system-reminder>\nAs you answer the user's questions, you can use the following context:\n"
            "# currentDate\nToday's date is %04d-%02d-%02d.\n\n      IMPORTANT: this context may or may not be "
            "relevant to your tasks. You should not respond to this context unless it is highly relevant to your "
            "task.\n</system-reminder>\n" % (r.randint(2024, 2030), r.randint(1, 12), r.randint(1, 28)))


def medium_env(r):
    system = doc_text(r, r.randint(20, 400)) if r.random() < 0.8 else None
    names = sorted(set(["Bash"] + r.sample(TOOL_NAMES_CC + TOOL_NAMES_OTHER, r.randint(1, 9))))
    tools = [make_tool(r, n, r.randint(10, 150), r.randint(1, 4)) for n in names]
    return {"system": system, "tools": tools}


def small_tools(r):
    names = sorted(set(["Bash"] + r.sample(TOOL_NAMES_CC + TOOL_NAMES_OTHER, r.randint(0, 3))))
    return [make_tool(r, n, r.randint(4, 16), r.randint(1, 2)) for n in names]


_TOOL_POOL = []


def tool_pool():
    """2,000 small tool sets shared by the short examples (fixed seeds, so every worker builds the same)."""
    if not _TOOL_POOL:
        _TOOL_POOL.extend(small_tools(random.Random(777 + i)) for i in range(2000))
    return _TOOL_POOL


def pick_family(r, with_tools):
    fams = FAMILIES if with_tools else FAMILIES[:7]
    w = {"add": 4, "sub": 4, "mul": 6, "reverse": 2, "upper": 2, "count": 2, "greet": 1, "create": 4,
         "create_done": 1}
    return r.choices(fams, [w[f] for f in fams])[0]


def short_example(r):
    """A short conversation: (system or None, tools or None, messages incl. targets)."""
    with_tools = r.random() < 0.15
    fam = pick_family(r, with_tools)
    tools = r.choice(tool_pool()) if with_tools else None
    system = None
    if r.random() < 0.25:
        system = r.choice([DEFAULT_SYSTEM, "You are a concise assistant. Answer with the result only.",
                           prose(r, r.randint(5, 40))])
    ctx, target, _ = make_task(r, fam, with_tools)
    msgs = ([{"role": "system", "content": system}] if system else []) + ctx + target
    if r.random() < 0.15 and fam in SIMPLE:
        # A finished earlier exchange first: the model must answer the last question only.
        q2, a2 = SIMPLE[r.choice(list(SIMPLE))](r)
        pre = [{"role": "user", "content": q2}, {"role": "assistant", "content": a2}]
        msgs = ([msgs[0]] if system else []) + pre + ctx + target
    return fam, tools, msgs


def env_messages(r, env, cc_shape, fam):
    ctx, target, answer = make_task(r, fam, True)
    msgs = []
    if env["system"]:
        msgs.append({"role": "system", "content": env["system"]})
    if cc_shape:
        first = ctx[0]["content"]
        ctx[0] = {"role": "user", "content": reminder(r) + r.choice(["", "\n"]) + first}
        ctx.insert(1, {"role": "system", "content": env["sysmsg"]})
    return msgs + ctx + target, answer


# ============================================================================ workers (multiprocessing)
# Every example is generated from (seed, index) alone, so the tokenizer-training pass and the encoding pass can
# regenerate the same data in separate processes; workers return compact numpy arrays, not Python objects.
_ENC = None


def _encoder(tokpath):
    global _ENC
    if _ENC is None:
        os.environ["TOKENIZERS_PARALLELISM"] = "false"
        from tokenizers import Tokenizer
        _ENC = PieceEncoder(Tokenizer.from_file(tokpath))
    return _ENC


def _encode_all(pieces_list, tokpath):
    import numpy as np
    enc = _encoder(tokpath)
    enc.prime([t for ps in pieces_list for k, t in ps if k == "T"])
    out = [enc.encode(ps) for ps in pieces_list]
    enc.cache.clear()
    lens = np.array([len(i) for i, _ in out], np.int64)
    ids = np.fromiter((t for i, _ in out for t in i), np.int16, int(lens.sum()))
    mask = np.fromiter((t for _, m in out for t in m), np.uint8, int(lens.sum()))
    return ids, mask, lens


def work_short(args):
    """(seed, n, tokpath): n short examples; rendered strings if tokpath is None, else encoded arrays + the
    user prompts (for the held-out overlap count)."""
    seed, n, tokpath = args
    set_opts({"pseudo": 0.0})
    r = random.Random(seed)
    ex = [short_example(r) for _ in range(n)]
    pieces = [render_pieces(m, t, add_generation_prompt=False) for _, t, m in ex]
    if tokpath is None:
        return [pieces_to_str(p) for p in pieces]
    users = [mm["content"] for _, _, m in ex for mm in m if mm["role"] == "user"]
    return _encode_all(pieces, tokpath) + (users,)


def env_examples(seed, kind, ccw):
    r = random.Random(seed)
    out = []
    if kind == "cc":
        env = claude_code_env(r)
        for _ in range(3):
            fam = r.choices(FAMILIES, ccw)[0]
            msgs, _ = env_messages(r, env, True, fam)
            out.append(render_pieces(msgs, env["tools"], add_generation_prompt=False))
    else:
        env = medium_env(r)
        for _ in range(6):
            fam = pick_family(r, True)
            if r.random() < 0.2:  # the Claude Code message order, with a short agent list
                msgs, _ = env_messages(r, dict(env, sysmsg=doc_text(r, r.randint(50, 300))), True, fam)
            else:
                msgs, _ = env_messages(r, env, False, fam)
            out.append(render_pieces(msgs, env["tools"], add_generation_prompt=False))
    return out


def work_env(args):
    """(seeds, kind, tokpath, family weights for Claude Code-shaped ones): the examples of these environments,
    as strings or encoded arrays."""
    seeds, kind, tokpath, ccw, opts = args
    set_opts(opts)
    pieces = [p for sd in seeds for p in env_examples(sd, kind, ccw)]
    if tokpath is None:
        return [pieces_to_str(p) for p in pieces]
    return _encode_all(pieces, tokpath)


# ============================================================================ tokenizer
GPT4_STYLE_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
                    r"\s*[\r\n]+|\s+(?!\S)|\s+")


def train_tokenizer(texts, vocab_size):
    from tokenizers import Tokenizer, Regex, decoders, models, pre_tokenizers, trainers, AddedToken
    tok = Tokenizer(models.BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    tok.normalizer = None
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(GPT4_STYLE_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    from tokenizers import processors
    tok.post_processor = processors.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size - len(SPECIAL_LIST) - len(TAG_LIST), min_frequency=2,
                                  show_progress=False, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=[])
    tok.train_from_iterator(texts, trainer=trainer)
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in SPECIAL_LIST])
    tok.add_tokens([AddedToken(s, special=False, normalized=False) for s in TAG_LIST])
    return tok


class PieceEncoder:
    def __init__(self, tok):
        self.tok = tok
        self.cache = {}
        self.sp = {s: tok.token_to_id(s) for s in SPECIAL_LIST + TAG_LIST}

    def prime(self, texts):
        todo = list({t for t in texts if t not in self.cache})
        for i in range(0, len(todo), 200000):
            batch = todo[i:i + 200000]
            for t, e in zip(batch, self.tok.encode_batch(batch, add_special_tokens=False)):
                self.cache[t] = e.ids

    def encode(self, pieces):
        """ids, and a 0/1 loss mask (1 on assistant tokens: content and the closing <|im_end|>)."""
        ids, mask = [], []
        on = 0
        for kind, s in pieces:
            if kind == "A":
                on = 1
            elif kind == "E":
                on = 0
            elif kind == "S":
                ids.append(self.sp[s]); mask.append(on)
            else:
                e = self.cache.get(s)
                if e is None:
                    e = self.tok.encode(s, add_special_tokens=False).ids
                    self.cache[s] = e
                ids.extend(e); mask.extend([on] * len(e))
        return ids, mask


# ============================================================================ main
def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--fixtures", default=None, help="where to write held-out/greedy fixtures (default OUT/fixtures)")
    ap.add_argument("--total-steps", type=int, default=13200, help="length of the whole lr schedule")
    ap.add_argument("--start-step", type=int, default=0, help="continue the schedule here (with --init)")
    ap.add_argument("--end-step", type=int, default=4400, help="stop after this global step")
    ap.add_argument("--init", default=None, help="directory with ckpt_*.safetensors + tokenizer.json to resume")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--n-short", type=int, default=2_000_000)
    ap.add_argument("--n-cc-env", type=int, default=320)
    ap.add_argument("--n-med-env", type=int, default=1500)
    ap.add_argument("--deadline", type=float, default=540.0, help="safety stop, seconds after start")
    ap.add_argument("--cc-weights", default="1,1,1,1,1,1,1,6,4",
                    help="task family weights (" + ",".join(FAMILIES) + ") of the Claude Code-shaped examples")
    ap.add_argument("--cc-scale", default="0.3,0.9", help="length scale range of Claude Code-shaped prompts")
    ap.add_argument("--pseudo", type=float, default=0.0, help="share of made-up words in their prose")
    ap.add_argument("--long-len", type=int, default=32768, help="tokens in a long row")
    ap.add_argument("--ctx", type=int, default=65536, help="max_position_embeddings written to config.json")
    ap.add_argument("--real-text", default=None, help="directory of .md files: extra eval with real prose")
    ap.add_argument("--phase-lr", type=float, default=0.0,
                    help="with --init: own schedule for this phase, 50-step warmup to this peak then cosine to 5%% "
                         "at --end-step (default: continue the --total-steps schedule)")
    ap.add_argument("--corpus", default=None, help="tokenizer corpus.jsonl: write demo.expected.jsonl.gz with HF")
    args = ap.parse_args()
    if args.smoke:
        args.n_short, args.n_cc_env, args.n_med_env = 20000, 6, 60
        args.end_step = min(args.end_step, args.start_step + 30)

    import numpy as np
    import torch
    import transformers
    from safetensors.torch import load_file, save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer, Phi3Config, PreTrainedTokenizerFast

    log(f"torch {torch.__version__} transformers {transformers.__version__} cuda {torch.cuda.is_available()}")
    os.makedirs(args.out, exist_ok=True)
    fixdir = args.fixtures or os.path.join(args.out, "fixtures")
    os.makedirs(fixdir, exist_ok=True)
    mdir = os.path.join(args.out, "demo")
    nproc = min(16, os.cpu_count() or 4)
    CH = 5000
    short_jobs = [(args.seed * 1000003 + i, min(CH, args.n_short - i * CH)) for i in range((args.n_short + CH - 1) // CH)]
    cc_seeds = [args.seed * 7919 + i for i in range(args.n_cc_env)]
    med_seeds = [args.seed * 104729 + i for i in range(args.n_med_env)]

    ccw = [float(x) for x in args.cc_weights.split(",")]
    opts = {"scale": tuple(float(x) for x in args.cc_scale.split(",")), "pseudo": args.pseudo}
    set_opts(opts)
    assert len(ccw) == len(FAMILIES)

    def groups(seeds, k):
        return [seeds[i:i + k] for i in range(0, len(seeds), k)]

    # ---------------------------------------------------------------- tokenizer
    tokpath = os.path.join(args.out, "tokenizer.train.json")
    from tokenizers import Tokenizer
    with mp.Pool(nproc) as pool:
        if args.init:
            tok = Tokenizer.from_file(os.path.join(args.init, "tokenizer.json"))
            log("tokenizer loaded from " + args.init)
        else:
            texts = [t for c in pool.map(work_short, [(sd, n, None) for sd, n in short_jobs[:40]]) for t in c]
            texts += [t for c in pool.map(work_env, [(g, "med", None, ccw, opts) for g in groups(med_seeds[:500], 25)])
                      for t in c]
            texts += [t for c in pool.map(work_env, [(g, "cc", None, ccw, opts) for g in groups(cc_seeds[:20], 1)])
                      for t in c]
            log(f"tokenizer training texts: {len(texts)}, {sum(map(len, texts)) / 1e6:.1f}M chars")
            tok = train_tokenizer(texts, 4096)
            del texts
        tok.save(tokpath)
        log(f"tokenizer: {tok.get_vocab_size()} tokens")
        # ------------------------------------------------------------ data, encoded in the workers
        res = pool.map(work_short, [(sd, n, tokpath) for sd, n in short_jobs])
        med = pool.map(work_env, [(g, "med", tokpath, ccw, opts) for g in groups(med_seeds, 25)])
        lng = pool.map(work_env, [(g, "cc", tokpath, ccw, opts) for g in groups(cc_seeds, 1)])
    enc = PieceEncoder(tok)
    eot = tok.token_to_id("<|endoftext|>")
    im_end = tok.token_to_id("<|im_end|>")
    train_user = set(u for r_ in res for u in r_[3])

    def flatten(chunks, sep):
        """Concatenates encoded chunks into one stream; with sep, an <|endoftext|> (no loss) follows each
        example. Returns ids int64, labels int64 (-100 where no loss), example start offsets."""
        ids_l, lab_l, lens_l = [], [], []
        for ids, mask, lens in chunks:
            ids = ids.astype(np.int64)
            lab = np.where(mask.astype(bool), ids, -100)
            if sep:
                ends = np.cumsum(lens)
                ids = np.insert(ids, ends, eot)
                lab = np.insert(lab, ends, -100)
                lens = lens + 1
            ids_l.append(ids); lab_l.append(lab); lens_l.append(lens)
        lens = np.concatenate(lens_l)
        off = np.concatenate([[0], np.cumsum(lens)])
        return np.concatenate(ids_l), np.concatenate(lab_l), off

    S_ids, S_lab, S_off = flatten([r_[:3] for r_ in res], True)
    M_ids, M_lab, M_off = flatten(med, True)
    L_ids, L_lab, L_off = flatten(lng, False)
    del res, med, lng
    llens = np.diff(L_off)
    lens = sorted(llens.tolist())
    log(f"data: {len(S_off) - 1} short examples ({len(S_ids) / 1e6:.1f}M tokens, mean {np.diff(S_off).mean():.1f}), "
        f"{len(M_off) - 1} medium (median {int(np.median(np.diff(M_off)))} tokens), {len(L_off) - 1} Claude Code-"
        f"shaped (tokens min {lens[0]} median {lens[len(lens) // 2]} max {lens[-1]})")

    # ---------------------------------------------------------------- model
    SHORT_LEN, SHORT_ROWS, LONG_LEN = 2048, 48, args.long_len
    ctx_len = args.ctx
    config = Phi3Config(
        vocab_size=tok.get_vocab_size(), hidden_size=256, intermediate_size=768, num_hidden_layers=6,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=ctx_len,
        original_max_position_embeddings=ctx_len, rope_theta=1000000.0, rope_scaling=None, rms_norm_eps=1e-5,
        tie_word_embeddings=True, bos_token_id=eot, eos_token_id=im_end, pad_token_id=eot, hidden_act="silu",
        initializer_range=0.02, attention_dropout=0.0, resid_pdrop=0.0, embd_pdrop=0.0, sliding_window=None,
        use_cache=True)
    torch.manual_seed(args.seed)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    model = AutoModelForCausalLM.from_config(config, attn_implementation="sdpa", dtype=torch.float32)
    if args.init:
        sd = {}
        for f in sorted(os.listdir(args.init)):
            if f.startswith("ckpt_") and f.endswith(".safetensors"):
                sd.update(load_file(os.path.join(args.init, f)))
        missing, unexpected = model.load_state_dict(sd, strict=False)
        assert not unexpected and set(missing) <= {"lm_head.weight"}, (missing, unexpected)
        model.tie_weights()
        log(f"resumed from {args.init} at step {args.start_step}")
    model.to(dev)
    nparams = sum(p.numel() for p in model.parameters())
    log(f"model: {nparams / 1e6:.2f}M parameters")

    def short_batches(rng):
        """[SHORT_ROWS, SHORT_LEN] rows packed from shuffled short examples (examples attend to earlier ones in
        the row; <|endoftext|> separates them)."""
        n = len(S_off) - 1
        need = SHORT_ROWS * SHORT_LEN
        while True:
            perm = rng.permutation(n)
            p = 0
            while p < n:
                sel, tot = [], 0
                while tot < need and p < n:
                    i = perm[p]; p += 1
                    sel.append(i); tot += S_off[i + 1] - S_off[i]
                if tot < need:
                    break
                idx = np.concatenate([np.arange(S_off[i], S_off[i + 1]) for i in sel])[:need]
                yield (torch.from_numpy(S_ids[idx]).view(SHORT_ROWS, SHORT_LEN),
                       torch.from_numpy(S_lab[idx]).view(SHORT_ROWS, SHORT_LEN))

    def long_batches(rng):
        """[1, <=LONG_LEN] rows: a Claude Code-shaped example (60%) followed by medium ones, or medium only."""
        while True:
            parts = []
            tot = 0
            if rng.random() < 0.6:
                i = rng.integers(len(L_off) - 1)
                while L_off[i + 1] - L_off[i] > LONG_LEN:  # too long for a row: its answer would be cut off
                    i = rng.integers(len(L_off) - 1)
                a, b = L_off[i], min(L_off[i + 1], L_off[i] + LONG_LEN)
                parts.append(np.arange(a, b)); tot = b - a
                src = [(L_ids, L_lab, parts[0])]
            else:
                src = []
            while True:
                i = rng.integers(len(M_off) - 1)
                ln = M_off[i + 1] - M_off[i]
                if tot + ln > LONG_LEN:
                    break
                src.append((M_ids, M_lab, np.arange(M_off[i], M_off[i + 1]))); tot += ln
            x = np.concatenate([a_[ix] for a_, _, ix in src])
            y = np.concatenate([b_[ix] for _, b_, ix in src])
            yield torch.from_numpy(x)[None], torch.from_numpy(y)[None]

    def loss_fn(x, y):
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=dev == "cuda"):
            logits = model(input_ids=x).logits
        logits = logits[:, :-1].float()  # position t predicts token t+1
        return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y[:, 1:].reshape(-1),
                                                 ignore_index=-100)

    PEAK, WARM = 2e-3, 300
    opt = torch.optim.AdamW(model.parameters(), lr=PEAK, betas=(0.9, 0.95), weight_decay=0.05, fused=dev == "cuda")

    def lr_at(s):
        """Warmup then cosine to 5% over --total-steps; a resumed run re-warms its fresh Adam state over 50 steps.
        With --phase-lr a resumed run has its own warmup + cosine over [start_step, end_step]."""
        if args.init and args.phase_lr > 0:
            p = (s - args.start_step) / max(1, args.end_step - args.start_step)
            return args.phase_lr * min(1.0, (s - args.start_step + 1) / 50) * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * p)))
        p = min(1.0, max(0.0, (s - WARM) / max(1, args.total_steps - WARM)))
        base = PEAK * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * p)))
        if s < WARM:
            base = PEAK * (s + 1) / WARM
        if args.init and s - args.start_step < 50:
            base *= (s - args.start_step + 1) / 50
        return base

    rng = np.random.default_rng(args.seed * 31 + args.start_step)
    gs, gl = short_batches(rng), long_batches(np.random.default_rng(args.seed * 37 + args.start_step))
    model.train()
    ema_s = ema_l = None
    t_train = time.time()
    t_long = [0.0, 0]
    step = args.start_step
    while step < args.end_step:
        long_step = step % 5 == 4
        t_step = time.time()
        x, y = next(gl) if long_step else next(gs)
        x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        loss = loss_fn(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if long_step and step % 100 == 4:
            torch.cuda.synchronize()
            t_long[0] += time.time() - t_step
            t_long[1] += 1
        if step % 25 == 0 or step % 25 == 4 or step == args.end_step - 1:
            lv = loss.item()
            if long_step:
                ema_l = lv if ema_l is None else 0.8 * ema_l + 0.2 * lv
            else:
                ema_s = lv if ema_s is None else 0.8 * ema_s + 0.2 * lv
            if step % 200 == 0 or step == args.end_step - 1:
                el = time.time() - t_train
                log(f"step {step}/{args.end_step} (of {args.total_steps}) loss {lv:.4f} ema short {ema_s:.4f} "
                    f"long {ema_l} lr {lr_at(step):.2e} {el / (step - args.start_step + 1):.3f}s/step "
                    f"(long step {t_long[0] / max(1, t_long[1]):.3f}s)")
        step += 1
        if time.time() - T0 > args.deadline:
            log(f"SAFETY STOP: deadline reached at step {step} (planned {args.end_step})")
            break
    final_step = step
    log(f"trained to step {final_step} in {time.time() - t_train:.0f}s")
    # Resumable checkpoint: float32 weights in two files (each under the 16 MiB transfer limit).
    sd = {k: v.detach().float().cpu().contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight"}
    keys = sorted(sd)
    half = len(keys) // 2
    save_file({k: sd[k] for k in keys[:half]}, os.path.join(args.out, "ckpt_a.safetensors"))
    save_file({k: sd[k] for k in keys[half:]}, os.path.join(args.out, "ckpt_b.safetensors"))
    shutil.copy(tokpath, os.path.join(args.out, "tokenizer.json"))

    # ---------------------------------------------------------------- save
    if os.path.exists(mdir):
        shutil.rmtree(mdir)
    model.eval()
    model.to(torch.bfloat16).cpu().save_pretrained(mdir, safe_serialization=True)
    for extra in os.listdir(mdir):
        if extra not in ("config.json", "model.safetensors"):
            os.remove(os.path.join(mdir, extra))
    with open(os.path.join(mdir, "config.json")) as f:
        cfg = json.load(f)
    cfg.setdefault("rope_theta", 1000000.0)
    cfg.setdefault("rope_scaling", None)
    if "torch_dtype" not in cfg:
        cfg["torch_dtype"] = cfg.get("dtype", "bfloat16")
    with open(os.path.join(mdir, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
        f.write("\n")
    hf_tok = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|im_end|>",
                                     pad_token="<|endoftext|>", model_max_length=ctx_len,
                                     clean_up_tokenization_spaces=False)
    hf_tok.chat_template = CHAT_TEMPLATE
    hf_tok.save_pretrained(mdir)
    tc_path = os.path.join(mdir, "tokenizer_config.json")
    with open(tc_path) as f:
        tc = json.load(f)
    tc["chat_template"] = CHAT_TEMPLATE
    tc["tokenizer_class"] = "PreTrainedTokenizerFast"
    tc["add_bos_token"] = False
    tc["add_eos_token"] = False
    with open(tc_path, "w") as f:
        json.dump(tc, f, indent=2, ensure_ascii=False)
        f.write("\n")
    for extra in os.listdir(mdir):
        if extra not in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"):
            os.remove(os.path.join(mdir, extra))
    with open(os.path.join(mdir, "generation_config.json"), "w") as f:
        json.dump({"bos_token_id": eot, "eos_token_id": [im_end, eot], "pad_token_id": eot, "do_sample": False,
                   "max_new_tokens": 256, "transformers_version": transformers.__version__}, f, indent=2)
        f.write("\n")
    log("saved " + ", ".join(f"{n} {os.path.getsize(os.path.join(mdir, n))}" for n in sorted(os.listdir(mdir))))

    # ---------------------------------------------------------------- evaluation with transformers
    del model, opt
    torch.cuda.empty_cache()
    htok = AutoTokenizer.from_pretrained(mdir)
    hm = AutoModelForCausalLM.from_pretrained(mdir, dtype=torch.float32, attn_implementation="sdpa").to(dev).eval()
    log(f"reloaded: {type(htok).__name__}, {type(hm).__name__}")
    er = random.Random(args.seed + 99)
    # 1. the chat template equals the renderer, as strings and as ids.
    n_checked = 0
    for i in range(60):
        if i < 50:
            _, tools, msgs = short_example(er)
        elif i < 57:
            env = medium_env(er)
            msgs, _ = env_messages(er, env, False, pick_family(er, True))
            tools = env["tools"]
        else:
            env = claude_code_env(er)
            msgs, _ = env_messages(er, env, True, "create_done")
            tools = env["tools"]
        for gen in (False, True):
            mm = msgs if not gen else msgs[:-1]
            a = htok.apply_chat_template(mm, tools=tools, tokenize=False, add_generation_prompt=gen)
            ps = render_pieces(mm, tools, add_generation_prompt=gen)
            b = pieces_to_str(ps)
            assert a == b, f"template mismatch:\n{a[-400:]!r}\n{b[-400:]!r}"
            ids_hf = htok(a, add_special_tokens=False)["input_ids"]
            ids_me, _ = enc.encode(ps)
            assert ids_hf == ids_me, "ids of the rendered prompt differ from the piece-wise encoding"
            n_checked += 1
    log(f"chat template == renderer and ids agree on {n_checked} renders")

    @torch.no_grad()
    def generate(prompts_ids, max_new=48):
        outs = []
        bs = 64
        for i in range(0, len(prompts_ids), bs):
            batch = prompts_ids[i:i + bs]
            L = max(len(p) for p in batch)
            x = torch.full((len(batch), L), eot, dtype=torch.long)
            att = torch.zeros((len(batch), L), dtype=torch.long)
            for j, p in enumerate(batch):
                x[j, L - len(p):] = torch.tensor(p)
                att[j, L - len(p):] = 1
            if len(batch) == 1 and L > 8192:
                # One long prompt: no padding mask, and bf16 autocast so SDPA can use the flash kernel (float32
                # attention would materialise an L x L score matrix per head).
                with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=dev == "cuda"):
                    g = hm.generate(input_ids=x.to(dev), max_new_tokens=max_new, do_sample=False,
                                    eos_token_id=[im_end, eot], pad_token_id=eot)
            else:
                g = hm.generate(input_ids=x.to(dev), attention_mask=att.to(dev), max_new_tokens=max_new,
                                do_sample=False, eos_token_id=[im_end, eot], pad_token_id=eot)
            for j in range(len(batch)):
                o = g[j, L:].tolist()
                if im_end in o:
                    o = o[:o.index(im_end) + 1]
                elif eot in o:
                    o = o[:o.index(eot)]
                outs.append(o)
        return outs

    # 2. held-out prompts: 500 short ones across families (fresh seed), exact answers.
    heldout = []
    per_fam = {f: 0 for f in FAMILIES}
    quota = {f: 500 // len(FAMILIES) + (1 if i < 500 % len(FAMILIES) else 0) for i, f in enumerate(FAMILIES)}
    while len(heldout) < 500:
        fam = FAMILIES[len(heldout) % len(FAMILIES)]
        if per_fam[fam] >= quota[fam]:
            fam = next(f for f in FAMILIES if per_fam[f] < quota[f])
        with_tools = fam.startswith("create") or er.random() < 0.3
        tools = small_tools(er) if with_tools else None
        ctx, target, answer = make_task(er, fam, with_tools)
        system = DEFAULT_SYSTEM if er.random() < 0.2 else None
        msgs = ([{"role": "system", "content": system}] if system else []) + ctx
        per_fam[fam] += 1
        heldout.append({"family": fam, "messages": msgs, "tools": tools, "expected": answer,
                        "seen_in_training": ctx[0]["content"] in train_user})
    prompts = [enc.encode(render_pieces(h["messages"], h["tools"]))[0] for h in heldout]
    outs = generate(prompts)
    acc = {f: [0, 0] for f in FAMILIES}
    fails = []
    for h, o in zip(heldout, outs):
        text = htok.decode([t for t in o if t != im_end], skip_special_tokens=False)
        ok = text == h["expected"] and o and o[-1] == im_end
        acc[h["family"]][0] += ok
        acc[h["family"]][1] += 1
        h["transformers_output"] = text
        if not ok and len(fails) < 25:
            fails.append((h["family"], h["messages"][-1]["content"][:80], h["expected"], text))
    total = sum(a for a, _ in acc.values())
    unseen = [h for h in heldout if not h["seen_in_training"]]
    unseen_ok = sum(h["transformers_output"] == h["expected"] for h in unseen)
    log(f"held-out prompts never seen in training: {unseen_ok}/{len(unseen)} exact")
    log(f"held-out exact accuracy: {total}/500 = {total / 5:.1f}%  " +
        " ".join(f"{f}:{a}/{n}" for f, (a, n) in acc.items()))
    log(f"held-out prompts whose user text also occurs in training: {sum(h['seen_in_training'] for h in heldout)}")
    for f in fails:
        log("   FAIL", json.dumps(f, ensure_ascii=False))

    # 3. Claude Code-shaped prompts from fresh environments.
    cc = []
    for i in range(16):
        env = claude_code_env(er)
        fam = ["create", "create_done", "add", "mul"][i % 4]
        msgs, answer = env_messages(er, env, True, fam)
        cc.append({"family": fam, "messages": msgs[:-1], "tools": env["tools"], "expected": answer})
    cc_prompts = [enc.encode(render_pieces(h["messages"], h["tools"]))[0] for h in cc]
    cc_out = []
    for p in cc_prompts:
        cc_out.extend(generate([p], max_new=64))
    cc_ok = 0
    for h, p, o in zip(cc, cc_prompts, cc_out):
        text = htok.decode([t for t in o if t != im_end], skip_special_tokens=False)
        ok = text == h["expected"] and o and o[-1] == im_end
        cc_ok += ok
        h["transformers_output"] = text
        h["prompt_tokens"] = len(p)
        log(f"   cc {h['family']:11s} {len(p):6d} tokens {'OK  ' if ok else 'FAIL'} {text[:120]!r}")
    log(f"Claude Code-shaped: {cc_ok}/{len(cc)} exact; prompt tokens {min(len(p) for p in cc_prompts)}.."
        f"{max(len(p) for p in cc_prompts)}")

    # 3b. Claude Code-shaped prompts whose texts are real English (the project's docs), sized like the real
    # `claude -p` request (system ~5.8k chars, tools ~63k chars with one ~16k-char tool, agent list ~6k chars).
    real = []
    if args.real_text:
        paras = []
        for fn in sorted(os.listdir(args.real_text)):
            if fn.endswith(".md"):
                with open(os.path.join(args.real_text, fn), encoding="utf-8") as f:
                    paras += [x.strip() for x in f.read().split("\n\n") if x.strip()]

        def real_block(rr, chars):
            out = []
            while sum(map(len, out)) < chars:
                out.append(rr.choice(paras))
            return "\n\n".join(out)
        for i in range(8):
            system = ("x-anthropic-billing-header: cc_version=2.1.197.a1b; cc_entrypoint=sdk-cli;\n\nYou are Claude "
                      "Code, a command line agent for software engineering tasks.\n\n" + real_block(er, 5700))
            tools = []
            for n in TOOL_NAMES_CC:
                t = make_tool(er, n, 10, er.randint(1, 5))
                t["function"]["description"] = real_block(er, 16000 if n == "Workflow" else er.randint(300, 3000))
                tools.append(t)
            env = {"system": system, "tools": tools, "sysmsg": real_block(er, 6100)}
            msgs, answer = env_messages(er, env, True, "create" if i % 2 == 0 else "create_done")
            real.append({"family": "create" if i % 2 == 0 else "create_done", "messages": msgs[:-1], "tools": tools,
                         "expected": answer})
        for h in real:
            p = enc.encode(render_pieces(h["messages"], h["tools"]))[0]
            o = generate([p], max_new=64)[0]
            text = htok.decode([t for t in o if t != im_end], skip_special_tokens=False)
            h["ok"] = bool(text == h["expected"] and o and o[-1] == im_end)
            h["prompt_tokens"] = len(p)
            h["chars"] = len(pieces_to_str(render_pieces(h["messages"], h["tools"])))
            log(f"   real-text {h['family']:11s} {h['chars']} chars {len(p):6d} tokens {'OK  ' if h['ok'] else 'FAIL'} "
                f"{text[:120]!r}")
        log(f"real-text Claude Code-shaped: {sum(h['ok'] for h in real)}/{len(real)} exact")

    # 4. fixtures: held-out prompts with answers; greedy transformers outputs (ids) for 50 prompts.
    with gzip.open(os.path.join(fixdir, "heldout.jsonl.gz"), "wt", encoding="utf-8") as f:
        for h in heldout:
            f.write(json.dumps(h, ensure_ascii=False) + "\n")
    with gzip.open(os.path.join(fixdir, "claude_code_shaped.jsonl.gz"), "wt", encoding="utf-8") as f:
        for h in cc:
            f.write(json.dumps(h, ensure_ascii=False) + "\n")
    with open(os.path.join(fixdir, "greedy.jsonl"), "w") as f:
        for i in range(50):
            h = heldout[i * 10]
            f.write(json.dumps({"messages": h["messages"], "tools": h["tools"], "prompt_ids": prompts[i * 10],
                                "output_ids": outs[i * 10]}, ensure_ascii=False) + "\n")
    summary = {
        "seed": args.seed, "steps": final_step, "planned_steps": args.end_step, "total_steps": args.total_steps, "params": nparams,
        "final_loss_ema_short": ema_s, "final_loss_ema_long": ema_l,
        "heldout_exact": total, "heldout_n": 500, "heldout_by_family": acc,
        "heldout_unseen_exact": unseen_ok, "heldout_unseen_n": len(unseen),
        "claude_code_shaped_exact": cc_ok, "claude_code_shaped_n": len(cc),
        "real_text_claude_code_exact": sum(h["ok"] for h in real), "real_text_claude_code_n": len(real),
        "real_text_claude_code_tokens": [h["prompt_tokens"] for h in real],
        "claude_code_prompt_tokens": [h["prompt_tokens"] for h in cc],
        "long_train_tokens_min_median_max": [lens[0], lens[len(lens) // 2], lens[-1]],
        "context_length": ctx_len, "torch": torch.__version__, "transformers": transformers.__version__,
        "reference": "transformers, weights from the saved bf16 file computed in float32, greedy",
    }
    with open(os.path.join(fixdir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
        f.write("\n")
    log("summary " + json.dumps(summary))

    if args.corpus:
        sys.path.insert(0, os.path.dirname(os.path.abspath(args.corpus)))
        import run_hf
        with open(args.corpus, encoding="utf-8") as f:
            texts = [json.loads(l)["text"] for l in f]
        run_hf.run_one("demo", mdir, texts, fixdir)


if __name__ == "__main__":
    main()
