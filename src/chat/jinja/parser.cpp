#include "chat/jinja/parser.h"

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <initializer_list>

#include "chat/jinja/error.h"

namespace pensieve::jinja {
namespace {

// Deeper nesting than this is hostile, not a chat template; it would otherwise exhaust the stack.
constexpr int kMaxNesting = 200;

class Parser {
 public:
  explicit Parser(const std::vector<Token>& tokens) : t_(tokens) {}

  Body ParseTemplate() {
    Body body = ParseBody({});
    if (Cur().type != Tok::kEof) Fail("unexpected tag '" + Cur().text + "'");
    return body;
  }

 private:
  // ---- token helpers ----
  const Token& Cur() const { return t_[pos_]; }
  const Token& Peek(size_t k = 1) const { return t_[std::min(pos_ + k, t_.size() - 1)]; }
  void Next() {
    if (pos_ + 1 < t_.size()) ++pos_;
  }
  bool IsOp(const char* op) const { return Cur().type == Tok::kOp && Cur().text == op; }
  bool IsName(const char* name) const { return Cur().type == Tok::kName && Cur().text == name; }
  bool SkipOp(const char* op) {
    if (!IsOp(op)) return false;
    Next();
    return true;
  }
  bool SkipName(const char* name) {
    if (!IsName(name)) return false;
    Next();
    return true;
  }
  static std::string Describe(const Token& t) {
    switch (t.type) {
      case Tok::kEof: return "end of template";
      case Tok::kBlockEnd: return "end of statement block";
      case Tok::kVarEnd: return "end of print statement";
      case Tok::kBlockBegin: return "begin of statement block";
      case Tok::kVarBegin: return "begin of print statement";
      case Tok::kString: return "string";
      case Tok::kText: return "template data";
      default: return "'" + t.text + "'";
    }
  }
  [[noreturn]] void Fail(const std::string& msg) const {
    throw JinjaError("TemplateSyntaxError", msg, Cur().line, Cur().column);
  }
  void ExpectOp(const char* op) {
    if (!SkipOp(op)) Fail(std::string("expected '") + op + "', got " + Describe(Cur()));
  }
  std::string ExpectName() {
    if (Cur().type != Tok::kName) Fail("expected name, got " + Describe(Cur()));
    std::string s = Cur().text;
    Next();
    return s;
  }
  void ExpectBlockEnd() {
    if (Cur().type != Tok::kBlockEnd) Fail("expected end of statement block, got " + Describe(Cur()));
    Next();
  }

  ExprPtr Make(ExprKind k, const Token& at) {
    auto e = std::make_unique<Expr>();
    e->kind = k;
    e->line = at.line;
    e->column = at.column;
    return e;
  }
  StmtPtr MakeStmt(StmtKind k, const Token& at) {
    auto s = std::make_unique<Stmt>();
    s->kind = k;
    s->line = at.line;
    s->column = at.column;
    return s;
  }

  struct DepthGuard {
    DepthGuard(Parser* p) : p(p) {
      if (++p->depth_ > kMaxNesting) p->Fail("template nested too deeply");
    }
    ~DepthGuard() { --p->depth_; }
    Parser* p;
  };

  // ---- statements ----
  // Parses until a block tag whose name is in `ends`; leaves the cursor on that name.
  Body ParseBody(std::initializer_list<const char*> ends) {
    DepthGuard guard(this);
    Body body;
    while (true) {
      const Token& tok = Cur();
      if (tok.type == Tok::kEof) {
        if (ends.size() == 0) return body;
        std::string want;
        for (const char* e : ends) want += (want.empty() ? "'" : " or '") + std::string(e) + "'";
        Fail("Unexpected end of template. Jinja was looking for the following tags: " + want + ".");
      }
      if (tok.type == Tok::kText) {
        auto s = MakeStmt(StmtKind::kText, tok);
        s->text = tok.text;
        body.push_back(std::move(s));
        Next();
      } else if (tok.type == Tok::kVarBegin) {
        auto s = MakeStmt(StmtKind::kPrint, tok);
        Next();
        s->expr = ParseTuple(true, false);
        if (Cur().type != Tok::kVarEnd) Fail("expected end of print statement, got " + Describe(Cur()));
        Next();
        body.push_back(std::move(s));
      } else if (tok.type == Tok::kBlockBegin) {
        Next();
        if (Cur().type != Tok::kName) Fail("tag name expected");
        for (const char* e : ends)
          if (Cur().text == e) return body;
        body.push_back(ParseStatement());
      } else {
        Fail("unexpected " + Describe(tok));
      }
    }
  }

  StmtPtr ParseStatement() {
    const Token& tok = Cur();
    const std::string& name = tok.text;
    if (name == "if") return ParseIf();
    if (name == "for") return ParseFor();
    if (name == "set") return ParseSet();
    if (name == "macro") return ParseMacro();
    if (name == "call") return ParseCallBlock();
    if (name == "filter") return ParseFilterBlock();
    if (name == "generation") {
      auto s = MakeStmt(StmtKind::kScope, tok);
      Next();
      ExpectBlockEnd();
      s->body = ParseBody({"endgeneration"});
      Next();
      ExpectBlockEnd();
      return s;
    }
    if (name == "break" || name == "continue") {
      if (loop_depth_ == 0) Fail("'" + name + "' outside of a loop");
      auto s = MakeStmt(name == "break" ? StmtKind::kBreak : StmtKind::kContinue, tok);
      Next();
      ExpectBlockEnd();
      return s;
    }
    Fail("Encountered unknown tag '" + name + "'.");
  }

  StmtPtr ParseIf() {
    auto s = MakeStmt(StmtKind::kIf, Cur());
    Next();
    while (true) {
      s->conds.push_back(ParseTuple(true, false));
      ExpectBlockEnd();
      s->bodies.push_back(ParseBody({"elif", "else", "endif"}));
      if (SkipName("elif")) continue;
      if (SkipName("else")) {
        ExpectBlockEnd();
        s->else_body = ParseBody({"endif"});
      }
      Next();  // endif
      ExpectBlockEnd();
      return s;
    }
  }

  StmtPtr ParseFor() {
    auto s = MakeStmt(StmtKind::kFor, Cur());
    Next();
    s->target = ParseAssignTarget(false);
    if (!SkipName("in")) Fail("expected 'in', got " + Describe(Cur()));
    s->expr = ParseTuple(false, false, {"recursive"});
    if (SkipName("if")) s->cond = ParseExpression(true);
    if (SkipName("recursive")) s->recursive = true;
    ExpectBlockEnd();
    ++loop_depth_;
    s->body = ParseBody({"else", "endfor"});
    --loop_depth_;
    if (SkipName("else")) {
      ExpectBlockEnd();
      s->else_body = ParseBody({"endfor"});
    }
    Next();
    ExpectBlockEnd();
    return s;
  }

  StmtPtr ParseSet() {
    const Token& at = Cur();
    Next();
    ExprPtr target = ParseAssignTarget(true);
    if (SkipOp("=")) {
      auto s = MakeStmt(StmtKind::kSet, at);
      s->target = std::move(target);
      s->expr = ParseTuple(true, false);
      ExpectBlockEnd();
      return s;
    }
    auto s = MakeStmt(StmtKind::kSetBlock, at);
    s->target = std::move(target);
    if (IsOp("|")) s->expr = ParseFilterChain(nullptr);
    ExpectBlockEnd();
    s->body = ParseBody({"endset"});
    Next();
    ExpectBlockEnd();
    return s;
  }

  void ParseParams(std::vector<std::pair<std::string, ExprPtr>>& params) {
    ExpectOp("(");
    while (!IsOp(")")) {
      if (!params.empty()) ExpectOp(",");
      if (IsOp(")")) break;
      std::string name = ExpectName();
      ExprPtr def;
      if (SkipOp("=")) def = ParseExpression(true);
      params.emplace_back(std::move(name), std::move(def));
    }
    Next();
  }

  StmtPtr ParseMacro() {
    auto s = MakeStmt(StmtKind::kMacro, Cur());
    Next();
    s->name = ExpectName();
    ParseParams(s->params);
    ExpectBlockEnd();
    int saved = loop_depth_;
    loop_depth_ = 0;
    s->body = ParseBody({"endmacro"});
    loop_depth_ = saved;
    Next();
    ExpectBlockEnd();
    return s;
  }

  StmtPtr ParseCallBlock() {
    auto s = MakeStmt(StmtKind::kCallBlock, Cur());
    Next();
    if (IsOp("(")) ParseParams(s->params);
    s->expr = ParseExpression(true);
    if (s->expr->kind != ExprKind::kCall) Fail("expected call");
    ExpectBlockEnd();
    int saved = loop_depth_;
    loop_depth_ = 0;
    s->body = ParseBody({"endcall"});
    loop_depth_ = saved;
    Next();
    ExpectBlockEnd();
    return s;
  }

  StmtPtr ParseFilterBlock() {
    auto s = MakeStmt(StmtKind::kFilterBlock, Cur());
    Next();
    s->expr = ParseFilterChain(nullptr, /*first_has_pipe=*/false);
    ExpectBlockEnd();
    s->body = ParseBody({"endfilter"});
    Next();
    ExpectBlockEnd();
    return s;
  }

  ExprPtr ParseAssignTarget(bool allow_attr) {
    const Token& at = Cur();
    ExprPtr first = ParseTargetPrimary(allow_attr);
    if (!IsOp(",")) return first;
    auto tuple = Make(ExprKind::kTuple, at);
    tuple->items.push_back(std::move(first));
    while (SkipOp(",")) {
      if (Cur().type != Tok::kName && !IsOp("(")) break;
      tuple->items.push_back(ParseTargetPrimary(allow_attr));
    }
    return tuple;
  }

  ExprPtr ParseTargetPrimary(bool allow_attr) {
    DepthGuard guard(this);
    const Token& at = Cur();
    if (SkipOp("(")) {
      auto tuple = Make(ExprKind::kTuple, at);
      while (!IsOp(")")) {
        if (!tuple->items.empty()) ExpectOp(",");
        if (IsOp(")")) break;
        tuple->items.push_back(ParseTargetPrimary(allow_attr));
      }
      Next();
      return tuple;
    }
    auto name = Make(ExprKind::kName, at);
    name->name = ExpectName();
    if (allow_attr && IsOp(".") && Peek().type == Tok::kName) {
      Next();
      auto attr = Make(ExprKind::kAttr, at);
      attr->name = ExpectName();
      attr->items.push_back(std::move(name));
      return attr;
    }
    return name;
  }

  // ---- expressions ----
  bool IsTupleEnd(std::initializer_list<const char*> extra_ends) const {
    const Token& c = Cur();
    if (c.type == Tok::kVarEnd || c.type == Tok::kBlockEnd || c.type == Tok::kEof) return true;
    if (c.type == Tok::kOp && (c.text == ")" )) return true;
    if (c.type == Tok::kName)
      for (const char* e : extra_ends)
        if (c.text == e) return true;
    return false;
  }

  ExprPtr ParseTuple(bool with_condexpr, bool explicit_parens, std::initializer_list<const char*> extra_ends = {}) {
    const Token& at = Cur();
    std::vector<ExprPtr> args;
    bool is_tuple = false;
    while (true) {
      if (!args.empty()) ExpectOp(",");
      if (IsTupleEnd(extra_ends)) break;
      args.push_back(with_condexpr ? ParseExpression(true) : ParseOr());
      if (IsOp(",")) {
        is_tuple = true;
      } else {
        break;
      }
    }
    if (!is_tuple) {
      if (!args.empty()) return std::move(args[0]);
      if (!explicit_parens) Fail("Expected an expression, got " + Describe(Cur()));
    }
    auto t = Make(ExprKind::kTuple, at);
    t->items = std::move(args);
    return t;
  }

  ExprPtr ParseExpression(bool with_condexpr) {
    DepthGuard guard(this);
    ExprPtr e = ParseOr();
    if (!with_condexpr) return e;
    while (IsName("if")) {
      const Token& at = Cur();
      Next();
      auto c = Make(ExprKind::kCond, at);
      ExprPtr cond = ParseOr();
      ExprPtr other;
      if (SkipName("else")) other = ParseExpression(true);
      c->items.push_back(std::move(e));
      c->items.push_back(std::move(cond));
      c->items.push_back(std::move(other));
      e = std::move(c);
    }
    return e;
  }

  ExprPtr ParseOr() {
    ExprPtr left = ParseAnd();
    while (IsName("or")) {
      auto n = Make(ExprKind::kOr, Cur());
      Next();
      n->items.push_back(std::move(left));
      n->items.push_back(ParseAnd());
      left = std::move(n);
    }
    return left;
  }

  ExprPtr ParseAnd() {
    ExprPtr left = ParseNot();
    while (IsName("and")) {
      auto n = Make(ExprKind::kAnd, Cur());
      Next();
      n->items.push_back(std::move(left));
      n->items.push_back(ParseNot());
      left = std::move(n);
    }
    return left;
  }

  ExprPtr ParseNot() {
    if (IsName("not")) {
      DepthGuard guard(this);
      auto n = Make(ExprKind::kNot, Cur());
      Next();
      n->items.push_back(ParseNot());
      return n;
    }
    return ParseCompare();
  }

  ExprPtr ParseCompare() {
    const Token& at = Cur();
    ExprPtr first = ParseMath1();
    ExprPtr cmp;
    while (true) {
      std::string op;
      if (Cur().type == Tok::kOp &&
          (Cur().text == "==" || Cur().text == "!=" || Cur().text == "<" || Cur().text == "<=" ||
           Cur().text == ">" || Cur().text == ">=")) {
        op = Cur().text;
        Next();
      } else if (IsName("in")) {
        op = "in";
        Next();
      } else if (IsName("not") && Peek().type == Tok::kName && Peek().text == "in") {
        op = "notin";
        Next();
        Next();
      } else {
        break;
      }
      if (!cmp) {
        cmp = Make(ExprKind::kCompare, at);
        cmp->items.push_back(std::move(first));
      }
      cmp->ops.push_back(op);
      cmp->items.push_back(ParseMath1());
    }
    return cmp ? std::move(cmp) : std::move(first);
  }

  ExprPtr Binary(const std::string& op, ExprPtr l, ExprPtr r, const Token& at) {
    auto n = Make(ExprKind::kBinary, at);
    n->name = op;
    n->items.push_back(std::move(l));
    n->items.push_back(std::move(r));
    return n;
  }

  ExprPtr ParseMath1() {
    ExprPtr left = ParseConcat();
    while (IsOp("+") || IsOp("-")) {
      const Token& at = Cur();
      std::string op = at.text;
      Next();
      left = Binary(op, std::move(left), ParseConcat(), at);
    }
    return left;
  }

  ExprPtr ParseConcat() {
    ExprPtr left = ParseMath2();
    while (IsOp("~")) {
      const Token& at = Cur();
      Next();
      left = Binary("~", std::move(left), ParseMath2(), at);
    }
    return left;
  }

  ExprPtr ParseMath2() {
    ExprPtr left = ParsePow();
    while (IsOp("*") || IsOp("/") || IsOp("//") || IsOp("%")) {
      const Token& at = Cur();
      std::string op = at.text;
      Next();
      left = Binary(op, std::move(left), ParsePow(), at);
    }
    return left;
  }

  ExprPtr ParsePow() {
    ExprPtr left = ParseUnary(true);
    while (IsOp("**")) {
      const Token& at = Cur();
      Next();
      left = Binary("**", std::move(left), ParseUnary(true), at);
    }
    return left;
  }

  ExprPtr ParseUnary(bool with_filter) {
    DepthGuard guard(this);
    const Token& at = Cur();
    ExprPtr node;
    if (IsOp("-") || IsOp("+")) {
      node = Make(IsOp("-") ? ExprKind::kNeg : ExprKind::kPos, at);
      Next();
      node->items.push_back(ParseUnary(false));
    } else {
      node = ParsePrimary();
    }
    node = ParsePostfix(std::move(node));
    if (with_filter) node = ParseFilterExpr(std::move(node));
    return node;
  }

  ExprPtr ParsePrimary() {
    const Token& tok = Cur();
    switch (tok.type) {
      case Tok::kName: {
        auto n = Make(ExprKind::kLiteral, tok);
        const std::string& s = tok.text;
        if (s == "true" || s == "True") {
          n->value = Value::Bool(true);
        } else if (s == "false" || s == "False") {
          n->value = Value::Bool(false);
        } else if (s == "none" || s == "None") {
          n->value = Value::None();
        } else {
          n->kind = ExprKind::kName;
          n->name = s;
        }
        Next();
        return n;
      }
      case Tok::kString: {
        auto n = Make(ExprKind::kLiteral, tok);
        std::string s;
        while (Cur().type == Tok::kString) {  // adjacent literals concatenate, as in Python
          s += Cur().text;
          Next();
        }
        n->value = Value::String(std::move(s));
        return n;
      }
      case Tok::kInt: {
        auto n = Make(ExprKind::kLiteral, tok);
        int64_t v = 0;
        auto res = std::from_chars(tok.text.data(), tok.text.data() + tok.text.size(), v);
        if (res.ec != std::errc()) {
          n->value = Value::Float(std::strtod(tok.text.c_str(), nullptr));  // beyond int64: approximate
        } else {
          n->value = Value::Int(v);
        }
        Next();
        return n;
      }
      case Tok::kFloat: {
        auto n = Make(ExprKind::kLiteral, tok);
        n->value = Value::Float(std::strtod(tok.text.c_str(), nullptr));
        Next();
        return n;
      }
      case Tok::kOp: {
        if (tok.text == "(") {
          Next();
          ExprPtr e = ParseTuple(true, true);
          ExpectOp(")");
          return e;
        }
        if (tok.text == "[") {
          auto n = Make(ExprKind::kList, tok);
          Next();
          while (!IsOp("]")) {
            if (!n->items.empty()) ExpectOp(",");
            if (IsOp("]")) break;
            n->items.push_back(ParseExpression(true));
          }
          Next();
          return n;
        }
        if (tok.text == "{") {
          auto n = Make(ExprKind::kDict, tok);
          Next();
          while (!IsOp("}")) {
            if (!n->items.empty()) ExpectOp(",");
            if (IsOp("}")) break;
            n->items.push_back(ParseExpression(true));
            ExpectOp(":");
            n->items.push_back(ParseExpression(true));
          }
          Next();
          return n;
        }
        break;
      }
      default:
        break;
    }
    Fail("unexpected " + Describe(tok));
  }

  ExprPtr ParsePostfix(ExprPtr node) {
    while (true) {
      if (IsOp(".")) {
        const Token& at = Cur();
        Next();
        if (Cur().type == Tok::kName) {
          auto n = Make(ExprKind::kAttr, at);
          n->name = Cur().text;
          Next();
          n->items.push_back(std::move(node));
          node = std::move(n);
        } else if (Cur().type == Tok::kInt) {
          auto n = Make(ExprKind::kItem, at);
          n->items.push_back(std::move(node));
          n->items.push_back(ParsePrimary());
          node = std::move(n);
        } else {
          Fail("expected name or number");
        }
      } else if (IsOp("[")) {
        node = ParseSubscript(std::move(node));
      } else if (IsOp("(")) {
        node = ParseCall(std::move(node));
      } else {
        return node;
      }
    }
  }

  ExprPtr ParseSubscript(ExprPtr node) {
    const Token& at = Cur();
    Next();  // [
    std::vector<ExprPtr> args;
    while (!IsOp("]")) {
      if (!args.empty()) ExpectOp(",");
      if (IsOp("]")) break;
      args.push_back(ParseSubscribed());
    }
    Next();
    if (args.empty()) Fail("expected subscript expression");
    ExprPtr index;
    if (args.size() == 1) {
      index = std::move(args[0]);
    } else {
      for (const auto& a : args)
        if (a->kind == ExprKind::kSlice) Fail("slices inside a tuple subscript are not supported");
      index = Make(ExprKind::kTuple, at);
      index->items = std::move(args);
    }
    if (index->kind == ExprKind::kSlice) {
      index->items.insert(index->items.begin(), std::move(node));
      return index;
    }
    auto n = Make(ExprKind::kItem, at);
    n->items.push_back(std::move(node));
    n->items.push_back(std::move(index));
    return n;
  }

  // One subscript: an expression or a slice (start:stop:step, any part optional).
  ExprPtr ParseSubscribed() {
    const Token& at = Cur();
    ExprPtr start;
    if (!IsOp(":")) {
      start = ParseExpression(true);
      if (!IsOp(":")) return start;
    }
    Next();  // :
    auto s = Make(ExprKind::kSlice, at);
    s->start = std::move(start);
    if (!IsOp(":") && !IsOp("]") && !IsOp(",")) s->stop = ParseExpression(true);
    if (SkipOp(":")) {
      if (!IsOp("]") && !IsOp(",")) s->step = ParseExpression(true);
    }
    return s;
  }

  void ParseCallArgs(Expr& n) {
    ExpectOp("(");
    bool first = true;
    while (!IsOp(")")) {
      if (!first) ExpectOp(",");
      first = false;
      if (IsOp(")")) break;
      if (SkipOp("*")) {
        n.star = ParseExpression(true);
      } else if (SkipOp("**")) {
        n.dstar = ParseExpression(true);
      } else if (Cur().type == Tok::kName && Peek().type == Tok::kOp && Peek().text == "=") {
        std::string key = Cur().text;
        Next();
        Next();
        n.kwargs.emplace_back(std::move(key), ParseExpression(true));
      } else {
        n.items.push_back(ParseExpression(true));
      }
    }
    Next();
  }

  ExprPtr ParseCall(ExprPtr callee) {
    auto n = Make(ExprKind::kCall, Cur());
    n->items.push_back(std::move(callee));
    ParseCallArgs(*n);
    return n;
  }

  ExprPtr ParseFilterExpr(ExprPtr node) {
    while (true) {
      if (IsOp("|")) {
        node = ParseFilterChain(std::move(node), true, /*single=*/true);
      } else if (IsName("is")) {
        node = ParseTest(std::move(node));
      } else if (IsOp("(")) {
        node = ParseCall(std::move(node));
      } else {
        return node;
      }
    }
  }

  // `| f(args) | g ...`; in {% filter %} the first filter has no pipe and the operand is null.
  ExprPtr ParseFilterChain(ExprPtr operand, bool first_has_pipe = true, bool single = false) {
    bool first = true;
    do {
      if (!first || first_has_pipe) ExpectOp("|");
      first = false;
      const Token& at = Cur();
      auto n = Make(ExprKind::kFilter, at);
      n->name = ExpectName();
      while (IsOp(".") && Peek().type == Tok::kName) {
        Next();
        n->name += "." + ExpectName();
      }
      n->items.push_back(std::move(operand));
      if (IsOp("(")) ParseCallArgs(*n);
      operand = std::move(n);
    } while (!single && IsOp("|"));
    return operand;
  }

  ExprPtr ParseTest(ExprPtr node) {
    auto n = Make(ExprKind::kTest, Cur());
    Next();  // is
    if (SkipName("not")) n->negated = true;
    n->name = ExpectName();
    while (IsOp(".") && Peek().type == Tok::kName) {
      Next();
      n->name += "." + ExpectName();
    }
    n->items.push_back(std::move(node));
    const Token& c = Cur();
    if (IsOp("(")) {
      ParseCallArgs(*n);
    } else if ((c.type == Tok::kName || c.type == Tok::kString || c.type == Tok::kInt || c.type == Tok::kFloat ||
                IsOp("(") || IsOp("[") || IsOp("{")) &&
               !(c.type == Tok::kName && (c.text == "else" || c.text == "or" || c.text == "and"))) {
      if (IsName("is")) Fail("You cannot chain multiple tests with is");
      ExprPtr arg = ParsePrimary();
      n->items.push_back(ParsePostfix(std::move(arg)));
    }
    return n;
  }

  const std::vector<Token>& t_;
  size_t pos_ = 0;
  int depth_ = 0;
  int loop_depth_ = 0;
};

}  // namespace

Body Parse(const std::vector<Token>& tokens) { return Parser(tokens).ParseTemplate(); }

}  // namespace pensieve::jinja
