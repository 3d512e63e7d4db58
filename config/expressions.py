"""Analysis conditions such as `result <= max(1.5 * baseline, 0.001)`.

Conditions are written in Git by release engineers and evaluated by the controller, so they are
parsed into a whitelisted arithmetic/comparison AST and never handed to `eval`.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

CONDITION_VARIABLES = frozenset({"result", "baseline"})
_FUNCTIONS: dict[str, Callable[..., float]] = {"max": max, "min": min, "abs": abs}
_BINARY: dict[type[ast.operator], Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}
_COMPARE: dict[type[ast.cmpop], Callable[[float, float], bool]] = {
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
}


_GRAMMAR = "use numbers, result, baseline, + - * /, comparisons, and/or/not, min(), max(), abs()"
_ARITY = {"max": (2, 16), "min": (2, 16), "abs": (1, 1)}  # max(x) of one number would try to iterate it
_EXAMPLES = {"max": "max(1.5 * baseline, 0.001)", "min": "min(result, 1)", "abs": "abs(result - baseline)"}
MAX_CONDITION_CHARS = 1000
MAX_CONDITION_DEPTH = 32


class ConditionError(ValueError):
    """A condition that cannot be parsed or evaluated."""


@dataclass(frozen=True)
class Condition:
    text: str
    tree: ast.Expression
    variables: frozenset[str]

    def evaluate(self, values: Mapping[str, float]) -> bool:
        """True or False; raises ConditionError when a variable is missing or not a number, and
        ArithmeticError (e.g. ZeroDivisionError) when the numbers cannot be combined."""
        missing = self.variables - values.keys()
        if missing:
            raise ConditionError(f"condition {self.text!r} needs {', '.join(sorted(missing))}")
        for name in self.variables:
            if not isinstance(values[name], int | float) or math.isnan(values[name]):
                raise ConditionError(f"{name} is not a number ({values[name]!r})")
        try:
            return bool(_eval(self.tree.body, values))
        except ConditionError:
            raise
        except (TypeError, ValueError, RecursionError) as exc:  # ArithmeticError (a zero baseline) propagates
            raise ConditionError(f"condition {self.text!r} cannot be evaluated: {type(exc).__name__}: {exc}") from None


def parse_condition(text: str) -> Condition:
    """Parse and check a condition; raises ConditionError (and nothing else) for any bad input."""
    text = str(text)
    if len(text) > MAX_CONDITION_CHARS:
        raise ConditionError(
            f"the condition is {len(text)} characters; at most {MAX_CONDITION_CHARS} are allowed "
            "(split it into several checks)"
        )
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise ConditionError(f"{text!r} is not a valid condition ({exc.msg}); {_GRAMMAR}") from None
    except (RecursionError, MemoryError, ValueError) as exc:
        raise ConditionError(
            f"the condition cannot be parsed ({type(exc).__name__}); nest at most {MAX_CONDITION_DEPTH} levels"
        ) from None
    names: set[str] = set()
    if _depth(tree.body) > MAX_CONDITION_DEPTH:
        raise ConditionError(
            f"the condition nests more than {MAX_CONDITION_DEPTH} levels (each operator is one); "
            "split it into several checks"
        )
    for node in ast.walk(tree):
        _check_node(node, names)
    if not isinstance(tree.body, ast.Compare | ast.BoolOp | ast.UnaryOp):
        raise ConditionError(f"{text!r} does not compare anything; write e.g. 'result <= 0.01'")
    return Condition(text=str(text), tree=tree, variables=frozenset(names))


def _check_node(node: ast.AST, names: set[str]) -> None:
    allowed = (
        ast.Expression,
        ast.Compare,
        ast.BoolOp,
        ast.And,
        ast.Or,
        ast.UnaryOp,
        ast.Not,
        ast.USub,
        ast.BinOp,
        ast.Constant,
        ast.Name,
        ast.Load,
        ast.Call,
        *_BINARY,
        *_COMPARE,
    )
    if not isinstance(node, allowed):
        raise ConditionError(f"{type(node).__name__} is not allowed in a condition; {_GRAMMAR}")
    if isinstance(node, ast.Constant) and not isinstance(node.value, int | float):
        raise ConditionError(f"{node.value!r} is not a number; {_GRAMMAR}")
    if isinstance(node, ast.Name) and node.id not in _FUNCTIONS:
        if node.id not in CONDITION_VARIABLES:
            raise ConditionError(f"unknown variable {node.id!r}; use {', '.join(sorted(CONDITION_VARIABLES))}")
        names.add(node.id)
    if isinstance(node, ast.Call):
        if not (isinstance(node.func, ast.Name) and node.func.id in _FUNCTIONS):
            raise ConditionError(f"only min(), max() and abs() may be called; {_GRAMMAR}")
        low, high = _ARITY[node.func.id]
        if not low <= len(node.args) <= high:
            wanted = (
                f"exactly {low}" if low == high else f"at least {low}" if len(node.args) < low else f"at most {high}"
            )
            raise ConditionError(
                f"{node.func.id}() takes {wanted} argument{'s' if low > 1 else ''}, "
                f"not {len(node.args)}; e.g. {_EXAMPLES[node.func.id]}"
            )


def _depth(root: ast.AST) -> int:
    """Nesting depth of an expression, without recursion (a long chain like `a + a + ...` is deep)."""
    deepest = 0
    stack = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > MAX_CONDITION_DEPTH:
            return deepest
        stack.extend(
            (child, depth + 1)
            for child in ast.iter_child_nodes(node)
            if not isinstance(child, ast.expr_context | ast.operator | ast.cmpop | ast.boolop | ast.unaryop)
        )
    return deepest


def _eval(node: ast.AST, values: Mapping[str, float]) -> Any:
    match node:
        case ast.Constant(value=value):
            return value
        case ast.Name(id=name):
            return values[name]
        case ast.UnaryOp(op=ast.USub(), operand=operand):
            return -_eval(operand, values)
        case ast.UnaryOp(op=ast.Not(), operand=operand):
            return not _eval(operand, values)
        case ast.BinOp(left=left, op=op, right=right):
            return _BINARY[type(op)](_eval(left, values), _eval(right, values))
        case ast.BoolOp(op=ast.And(), values=parts):
            return all(_eval(part, values) for part in parts)
        case ast.BoolOp(op=ast.Or(), values=parts):
            return any(_eval(part, values) for part in parts)
        case ast.Call(func=ast.Name(id=name), args=args):
            return _FUNCTIONS[name](*(_eval(arg, values) for arg in args))
        case ast.Compare(left=left, ops=ops, comparators=rights):
            current = _eval(left, values)
            for comparison, right in zip(ops, rights, strict=True):
                nxt = _eval(right, values)
                if not _COMPARE[type(comparison)](current, nxt):
                    return False
                current = nxt
            return True
    raise ConditionError(f"cannot evaluate {ast.dump(node)}")
