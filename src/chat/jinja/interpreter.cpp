#include "chat/jinja/interpreter.h"

#include <ctime>

#include "chat/jinja/builtins.h"
#include "chat/jinja/error.h"
#include "chat/jinja/ops.h"

namespace pensieve::jinja {
namespace {

enum class Flow { kNormal, kBreak, kContinue };

class Interpreter {
 public:
  explicit Interpreter(const RenderLimits& limits) : limits_(limits) {}

  ~Interpreter() {
    // Macros hold their defining frame and frames hold macros: break those cycles.
    for (auto& f : macro_frames_)
      if (auto p = f.lock()) p->vars.clear();
  }

  std::string Run(const Body& body, const FramePtr& globals) {
    ScopedSizeLimits size_limits({limits_.max_output, limits_.max_items});
    auto top = std::make_shared<Frame>();
    top->parent = globals;
    std::string out;
    ExecBody(body, top, out);
    if (auto p = top) p->vars.clear();
    return out;
  }

 private:
  // ---- statements ----
  void Step() {
    if (++steps_ > limits_.max_steps)
      throw JinjaError("RuntimeError", "template exceeded " + std::to_string(limits_.max_steps) + " steps");
  }

  void Append(std::string& out, const std::string& s) {
    if (out.size() + s.size() > limits_.max_output)
      throw JinjaError("RuntimeError", "template output exceeded " + std::to_string(limits_.max_output) + " bytes");
    out += s;
  }

  Flow ExecBody(const Body& body, const FramePtr& frame, std::string& out) {
    for (const StmtPtr& s : body) {
      Flow f = Exec(*s, frame, out);
      if (f != Flow::kNormal) return f;
    }
    return Flow::kNormal;
  }

  Flow Exec(const Stmt& s, const FramePtr& frame, std::string& out) {
    Step();
    try {
      return ExecImpl(s, frame, out);
    } catch (const JinjaError& e) {
      if (e.HasLocation()) throw;
      throw JinjaError(e.kind(), e.detail(), s.line, s.column);
    }
  }

  Flow ExecImpl(const Stmt& s, const FramePtr& frame, std::string& out) {
    switch (s.kind) {
      case StmtKind::kText:
        Append(out, s.text);
        return Flow::kNormal;
      case StmtKind::kPrint:
        Append(out, Eval(*s.expr, frame).ToStr());
        return Flow::kNormal;
      case StmtKind::kIf:
        for (size_t i = 0; i < s.conds.size(); ++i)
          if (Eval(*s.conds[i], frame).Truthy()) return ExecBody(s.bodies[i], frame, out);
        return ExecBody(s.else_body, frame, out);
      case StmtKind::kFor:
        ExecFor(s, frame, out);
        return Flow::kNormal;
      case StmtKind::kSet:
        Assign(*s.target, Eval(*s.expr, frame), frame);
        return Flow::kNormal;
      case StmtKind::kSetBlock: {
        auto inner = Child(frame);
        std::string buf;
        ExecBody(s.body, inner, buf);
        Value v = Value::String(std::move(buf));
        if (s.expr) v = EvalFilter(*s.expr, frame, &v);
        Assign(*s.target, v, frame);
        return Flow::kNormal;
      }
      case StmtKind::kMacro:
        frame->vars[s.name] = MakeMacro(s, frame, s.name);
        macro_frames_.push_back(frame);
        return Flow::kNormal;
      case StmtKind::kCallBlock: {
        Value caller = MakeMacro(s, frame, "caller");
        macro_frames_.push_back(frame);
        Append(out, EvalCall(*s.expr, frame, &caller).ToStr());
        return Flow::kNormal;
      }
      case StmtKind::kFilterBlock: {
        auto inner = Child(frame);
        std::string buf;
        ExecBody(s.body, inner, buf);
        Value v = Value::String(std::move(buf));
        Append(out, EvalFilter(*s.expr, frame, &v).ToStr());
        return Flow::kNormal;
      }
      case StmtKind::kBreak:
        return Flow::kBreak;
      case StmtKind::kContinue:
        return Flow::kContinue;
      case StmtKind::kScope:
        return ExecBody(s.body, frame, out);
    }
    return Flow::kNormal;
  }

  static FramePtr Child(const FramePtr& parent) {
    auto f = std::make_shared<Frame>();
    f->parent = parent;
    return f;
  }

  void ExecFor(const Stmt& s, const FramePtr& frame, std::string& out) {
    Value iterable = Eval(*s.expr, frame);
    std::vector<Value> items = Iterate(iterable);
    if (s.cond) {
      std::vector<Value> kept;
      for (Value& it : items) {
        Step();
        auto probe = Child(frame);
        Assign(*s.target, it, probe);
        if (Eval(*s.cond, probe).Truthy()) kept.push_back(std::move(it));
      }
      items = std::move(kept);
    }
    if (items.empty()) {
      ExecBody(s.else_body, frame, out);
      return;
    }
    auto state = std::make_shared<LoopState>();
    state->items = std::move(items);
    Value loop = Value::MakeLoop(state);
    for (size_t i = 0; i < state->items.size(); ++i) {
      Step();
      state->index0 = i;
      auto body = Child(frame);
      Assign(*s.target, state->items[i], body);
      body->vars["loop"] = loop;
      if (ExecBody(s.body, body, out) == Flow::kBreak) break;
    }
  }

  void Assign(const Expr& target, const Value& v, const FramePtr& frame) {
    switch (target.kind) {
      case ExprKind::kName:
        frame->vars[target.name] = v;
        return;
      case ExprKind::kTuple: {
        std::vector<Value> items = Iterate(v);
        size_t n = target.items.size();
        if (items.size() < n)
          throw JinjaError("ValueError", "not enough values to unpack (expected " + std::to_string(n) + ", got " +
                                             std::to_string(items.size()) + ")");
        if (items.size() > n)
          throw JinjaError("ValueError", "too many values to unpack (expected " + std::to_string(n) + ")");
        for (size_t i = 0; i < n; ++i) Assign(*target.items[i], items[i], frame);
        return;
      }
      case ExprKind::kAttr: {
        Value obj = Eval(*target.items[0], frame);
        if (obj.kind() != Kind::kNamespace)
          throw JinjaError("TemplateRuntimeError", "cannot assign attribute on non-namespace object");
        if (HoldsDict(v, obj.dict().get()))
          throw JinjaError("TemplateRuntimeError", "cannot store a namespace inside itself");
        obj.dict()->Set(target.name, v);
        return;
      }
      default:
        throw JinjaError("TemplateSyntaxError", "can't assign to this expression", target.line, target.column);
    }
  }

  // ---- macros ----
  Value MakeMacro(const Stmt& s, const FramePtr& closure, const std::string& name) {
    auto c = std::make_shared<Callable>();
    c->name = name;
    const Stmt* stmt = &s;
    std::weak_ptr<Frame> weak = closure;
    c->fn = [this, stmt, weak](Args& args) { return CallMacro(*stmt, weak.lock(), args); };
    return Value::MakeCallable(std::move(c));
  }

  Value CallMacro(const Stmt& s, const FramePtr& closure, Args& args) {
    if (!closure) throw JinjaError("RuntimeError", "macro called after its scope ended");
    Step();
    if (++depth_ > limits_.max_call_depth) {
      --depth_;
      throw JinjaError("RecursionError", "maximum macro call depth exceeded");
    }
    struct Leave {
      int& d;
      ~Leave() { --d; }
    } leave{depth_};
    auto frame = Child(closure);
    std::vector<bool> used_kw(args.kw.size(), false);
    for (size_t i = 0; i < s.params.size(); ++i) {
      const auto& [pname, def] = s.params[i];
      Value v;
      bool found = false;
      if (i < args.pos.size()) {
        v = args.pos[i];
        found = true;
      } else {
        for (size_t k = 0; k < args.kw.size(); ++k) {
          if (args.kw[k].first == pname) {
            v = args.kw[k].second;
            used_kw[k] = true;
            found = true;
          }
        }
      }
      if (!found) v = def ? Eval(*def, frame) : Value::Undefined("parameter " + ReprString(pname) + " was not provided");
      frame->vars[pname] = v;
    }
    std::vector<Value> varargs;
    for (size_t i = s.params.size(); i < args.pos.size(); ++i) varargs.push_back(args.pos[i]);
    auto kwargs = std::make_shared<Dict>();
    for (size_t k = 0; k < args.kw.size(); ++k) {
      if (used_kw[k]) continue;
      if (args.kw[k].first == "caller") {
        frame->vars["caller"] = args.kw[k].second;
      } else {
        kwargs->Set(args.kw[k].first, args.kw[k].second);
      }
    }
    frame->vars["varargs"] = Value::MakeList(std::move(varargs), true);
    frame->vars["kwargs"] = Value::MakeDict(kwargs);
    std::string out;
    ExecBody(s.body, frame, out);
    return Value::String(std::move(out));
  }

  // ---- expressions ----
  Value Lookup(const std::string& name, const FramePtr& frame) const {
    for (const Frame* f = frame.get(); f; f = f->parent.get()) {
      auto it = f->vars.find(name);
      if (it != f->vars.end()) return it->second;
    }
    return Value::Undefined(ReprString(name) + " is undefined");
  }

  Value Eval(const Expr& e, const FramePtr& frame) {
    try {
      return EvalImpl(e, frame);
    } catch (const JinjaError& err) {
      if (err.HasLocation()) throw;
      throw JinjaError(err.kind(), err.detail(), e.line, e.column);
    }
  }

  Args EvalArgs(const Expr& e, const FramePtr& frame, size_t first) {
    Args a;
    for (size_t i = first; i < e.items.size(); ++i) a.pos.push_back(Eval(*e.items[i], frame));
    for (const auto& [k, v] : e.kwargs) a.kw.emplace_back(k, Eval(*v, frame));
    if (e.star)
      for (Value& v : Iterate(Eval(*e.star, frame))) a.pos.push_back(std::move(v));
    if (e.dstar) {
      Value d = Eval(*e.dstar, frame);
      if (!d.IsDict()) ThrowTypeError("argument after ** must be a mapping, not " + d.TypeName());
      for (const auto& [k, v] : d.dict()->items) a.kw.emplace_back(k.ToStr(), v);
    }
    return a;
  }

  Value EvalCall(const Expr& e, const FramePtr& frame, const Value* caller) {
    Value callee = Eval(*e.items[0], frame);
    Args args = EvalArgs(e, frame, 1);
    if (caller) args.kw.emplace_back("caller", *caller);
    if (callee.IsUndefined()) RaiseUndefined(callee);
    if (!callee.IsCallable()) ThrowTypeError("'" + callee.TypeName() + "' object is not callable");
    return callee.callable()->fn(args);
  }

  // A filter node; `input` replaces the innermost missing operand ({% filter %} and block set).
  Value EvalFilter(const Expr& e, const FramePtr& frame, const Value* input) {
    Value operand;
    if (e.items[0]) {
      operand = e.items[0]->kind == ExprKind::kFilter ? EvalFilter(*e.items[0], frame, input) : Eval(*e.items[0], frame);
    } else if (input) {
      operand = *input;
    }
    Args args = EvalArgs(e, frame, 1);
    try {
      return ApplyFilter(e.name, operand, args);
    } catch (const JinjaError& err) {
      if (err.HasLocation()) throw;
      throw JinjaError(err.kind(), err.detail(), e.line, e.column);
    }
  }

  Value EvalImpl(const Expr& e, const FramePtr& frame) {
    switch (e.kind) {
      case ExprKind::kLiteral:
        return e.value;
      case ExprKind::kName:
        return Lookup(e.name, frame);
      case ExprKind::kList:
      case ExprKind::kTuple: {
        std::vector<Value> items;
        items.reserve(e.items.size());
        for (const auto& it : e.items) items.push_back(Eval(*it, frame));
        return Value::MakeList(std::move(items), e.kind == ExprKind::kTuple);
      }
      case ExprKind::kDict: {
        auto d = std::make_shared<Dict>();
        for (size_t i = 0; i + 1 < e.items.size(); i += 2) d->Set(Eval(*e.items[i], frame), Eval(*e.items[i + 1], frame));
        return Value::MakeDict(std::move(d));
      }
      case ExprKind::kAttr:
        return GetAttr(Eval(*e.items[0], frame), e.name);
      case ExprKind::kItem:
        return GetItem(Eval(*e.items[0], frame), Eval(*e.items[1], frame));
      case ExprKind::kSlice: {
        Value obj = Eval(*e.items[0], frame);
        Value start = e.start ? Eval(*e.start, frame) : Value::None();
        Value stop = e.stop ? Eval(*e.stop, frame) : Value::None();
        Value step = e.step ? Eval(*e.step, frame) : Value::None();
        return Slice(obj, start, stop, step);
      }
      case ExprKind::kCall:
        return EvalCall(e, frame, nullptr);
      case ExprKind::kFilter:
        return EvalFilter(e, frame, nullptr);
      case ExprKind::kTest: {
        Value operand = Eval(*e.items[0], frame);
        Args args = EvalArgs(e, frame, 1);
        bool r = ApplyTest(e.name, operand, args);
        return Value::Bool(e.negated ? !r : r);
      }
      case ExprKind::kNeg:
        return Negate(Eval(*e.items[0], frame), true);
      case ExprKind::kPos:
        return Negate(Eval(*e.items[0], frame), false);
      case ExprKind::kNot:
        return Value::Bool(!Eval(*e.items[0], frame).Truthy());
      case ExprKind::kBinary:
        return BinaryOp(e.name, Eval(*e.items[0], frame), Eval(*e.items[1], frame));
      case ExprKind::kAnd: {
        Value l = Eval(*e.items[0], frame);
        return l.Truthy() ? Eval(*e.items[1], frame) : l;
      }
      case ExprKind::kOr: {
        Value l = Eval(*e.items[0], frame);
        return l.Truthy() ? l : Eval(*e.items[1], frame);
      }
      case ExprKind::kCompare: {
        Value left = Eval(*e.items[0], frame);
        for (size_t i = 0; i < e.ops.size(); ++i) {
          Value right = Eval(*e.items[i + 1], frame);
          if (!Compare(e.ops[i], left, right)) return Value::Bool(false);
          left = std::move(right);
        }
        return Value::Bool(true);
      }
      case ExprKind::kCond: {
        if (Eval(*e.items[1], frame).Truthy()) return Eval(*e.items[0], frame);
        if (e.items[2]) return Eval(*e.items[2], frame);
        return Value::Undefined("the inline if-expression on line " + std::to_string(e.line) +
                                " evaluated to false and no else section was defined.");
      }
    }
    return Value();
  }

  const RenderLimits& limits_;
  uint64_t steps_ = 0;
  int depth_ = 0;
  std::vector<std::weak_ptr<Frame>> macro_frames_;
};

void ValidateExpr(const Expr* e) {
  if (!e) return;
  if (e->kind == ExprKind::kFilter && !HasFilter(e->name))
    throw JinjaError("TemplateAssertionError", "No filter named " + ReprString(e->name) + ".", e->line, e->column);
  if (e->kind == ExprKind::kTest && !HasTest(e->name))
    throw JinjaError("TemplateAssertionError", "No test named " + ReprString(e->name) + ".", e->line, e->column);
  for (const auto& c : e->items) ValidateExpr(c.get());
  for (const auto& kv : e->kwargs) ValidateExpr(kv.second.get());
  ValidateExpr(e->start.get());
  ValidateExpr(e->stop.get());
  ValidateExpr(e->step.get());
  ValidateExpr(e->star.get());
  ValidateExpr(e->dstar.get());
}

Value Fn(const std::string& name, std::function<Value(Args&)> fn) {
  auto c = std::make_shared<Callable>();
  c->name = name;
  c->fn = std::move(fn);
  return Value::MakeCallable(std::move(c));
}

// Sandbox limit of Jinja2's ImmutableSandboxedEnvironment.
constexpr int64_t kMaxRange = 100000;

Value Range(Args& a) {
  for (const Value& v : a.pos)
    if (!v.IsInt() && !v.IsBool()) ThrowTypeError("'" + v.TypeName() + "' object cannot be interpreted as an integer");
  int64_t start = 0, stop = 0, step = 1;
  if (a.pos.size() == 1) {
    stop = a.pos[0].AsInt();
  } else if (a.pos.size() == 2 || a.pos.size() == 3) {
    start = a.pos[0].AsInt();
    stop = a.pos[1].AsInt();
    if (a.pos.size() == 3) step = a.pos[2].AsInt();
  } else {
    ThrowTypeError("range expected at most 3 arguments, got " + std::to_string(a.pos.size()));
  }
  if (step == 0) throw JinjaError("ValueError", "range() arg 3 must not be zero");
  __int128 span = step > 0 ? (static_cast<__int128>(stop) - start + step - 1) / step
                           : (static_cast<__int128>(start) - stop - step - 1) / -step;
  if (span > kMaxRange)
    throw JinjaError("OverflowError", "Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
  std::vector<Value> out;
  for (int64_t i = 0; i < static_cast<int64_t>(span); ++i) out.push_back(Value::Int(start + i * step));
  return Value::MakeList(std::move(out));
}

Value KwDict(Args& a, bool ns) {
  auto d = std::make_shared<Dict>();
  for (const Value& p : a.pos) {
    if (!p.IsDict()) ThrowTypeError("cannot convert " + p.TypeName() + " to a dictionary");
    for (const auto& [k, v] : p.dict()->items) d->Set(k, v);
  }
  for (const auto& [k, v] : a.kw) d->Set(k, v);
  return ns ? Value::MakeNamespace(std::move(d)) : Value::MakeDict(std::move(d));
}

}  // namespace

void Validate(const Body& body) {
  for (const StmtPtr& s : body) {
    ValidateExpr(s->expr.get());
    ValidateExpr(s->target.get());
    ValidateExpr(s->cond.get());
    for (const auto& c : s->conds) ValidateExpr(c.get());
    for (const auto& p : s->params) ValidateExpr(p.second.get());
    for (const auto& b : s->bodies) Validate(b);
    Validate(s->body);
    Validate(s->else_body);
  }
}

void AddStandardGlobals(Frame& g, std::function<std::tm()> now) {
  g.vars["range"] = Fn("range", Range);
  g.vars["namespace"] = Fn("namespace", [](Args& a) { return KwDict(a, true); });
  g.vars["dict"] = Fn("dict", [](Args& a) { return KwDict(a, false); });
  g.vars["raise_exception"] = Fn("raise_exception", [](Args& a) -> Value {
    throw JinjaError("raise_exception", a.pos.empty() ? std::string() : a.pos[0].ToStr());
  });
  g.vars["strftime_now"] = Fn("strftime_now", [now](Args& a) {
    if (a.pos.empty() || !a.pos[0].IsString()) ThrowTypeError("strftime_now() expects a format string");
    std::tm tm = now();
    std::string fmt = a.pos[0].Str();
    if (fmt.size() > 4096) throw JinjaError("ValueError", "format string too long");
    std::string out(fmt.size() * 16 + 64, '\0');
    size_t n = std::strftime(out.data(), out.size(), fmt.c_str(), &tm);
    out.resize(n);
    return Value::String(out);
  });
}

std::string Render(const Body& body, const FramePtr& globals, const RenderLimits& limits) {
  return Interpreter(limits).Run(body, globals);
}

}  // namespace pensieve::jinja
