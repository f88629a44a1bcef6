#pragma once
// Jinja syntax tree. One generic node type per family (expressions, statements) keeps the parser and the
// evaluator small; each kind documents which fields it uses.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "chat/jinja/value.h"

namespace pensieve::jinja {

struct Expr;
struct Stmt;
using ExprPtr = std::unique_ptr<Expr>;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

enum class ExprKind {
  kLiteral,   // value
  kName,      // name
  kList,      // items
  kTuple,     // items
  kDict,      // items: key0, value0, key1, value1, ...
  kAttr,      // a.name  (a = items[0])
  kItem,      // a[b]    (items[0], items[1])
  kSlice,     // a[b:c:d] (items[0]; start/stop/step may be null)
  kCall,      // callee items[0]; args items[1..]; kwargs; star/dstar
  kFilter,    // name; operand items[0] (null inside {% filter %}); args items[1..]; kwargs; star/dstar
  kTest,      // name; operand items[0]; args items[1..]; negated
  kNeg,       // -a
  kPos,       // +a
  kNot,       // not a
  kBinary,    // op: + - * / // % ** ~
  kAnd,
  kOr,
  kCompare,   // items[0] ops[0] items[1] ops[1] items[2] ... (Python chained comparison)
  kCond,      // items[0] if items[1] else items[2] (items[2] may be null)
};

struct Expr {
  ExprKind kind;
  int line = 0;
  int column = 0;
  Value value;
  std::string name;  // variable, attribute, filter or test name, or binary operator
  std::vector<ExprPtr> items;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  std::vector<std::string> ops;  // kCompare
  ExprPtr start, stop, step;     // kSlice
  ExprPtr star, dstar;           // *args, **kwargs in calls
  bool negated = false;          // kTest with `is not`
};

enum class StmtKind {
  kText,        // text
  kPrint,       // expr
  kIf,          // conds[i] -> bodies[i]; else_body
  kFor,         // target, expr (iterable), cond (loop filter, may be null), body, else_body, recursive
  kSet,         // target = expr
  kSetBlock,    // target = rendered body, through filter (may be null)
  kMacro,       // name, params (name, default or null), body
  kCallBlock,   // expr (the call), params (caller's), body
  kFilterBlock, // expr (filter chain with null innermost operand), body
  kBreak,
  kContinue,
  kScope,       // body rendered in place ({% generation %})
};

struct Stmt {
  StmtKind kind;
  int line = 0;
  int column = 0;
  std::string text;
  std::string name;
  ExprPtr expr;
  ExprPtr target;
  ExprPtr cond;
  std::vector<ExprPtr> conds;
  std::vector<Body> bodies;
  Body body;
  Body else_body;
  std::vector<std::pair<std::string, ExprPtr>> params;
  bool recursive = false;
};

}  // namespace pensieve::jinja
