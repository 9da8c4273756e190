#!/usr/bin/env python3
"""Builds cases.jsonl from a checkout of huggingface/Math-Verify's tests (MIT).

Only data is taken: the (gold, prediction, expected) parameters of every
@pytest.mark.parametrize'd test that compares two answers, plus the options that
test passes (match types, float precision, strict, allow_set_relation_comp).

  python3 bench/mathverify/extract_cases.py MATH_VERIFY_CHECKOUT/tests > bench/mathverify/cases.jsonl
"""
import ast
import json
import math
import os
import sys


def literal(node):
    """Evaluates a parameter expression: literals, and f-strings over math.* (one case)."""
    try:
        return ast.literal_eval(node)
    except ValueError:
        code = compile(ast.Expression(node), "<case>", "eval")
        return eval(code, {"math": math, "__builtins__": {}})


def call_options(func):
    """The keyword options of the compare_strings(...) / verify(...) call in a test body."""
    opts = {}
    for node in ast.walk(func):
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") in ("compare_strings", "verify"):
            for kw in node.keywords:
                if isinstance(kw.value, ast.Constant):
                    opts[kw.arg] = kw.value.value
                elif isinstance(kw.value, ast.List):
                    opts[kw.arg] = [e.value for e in kw.value.elts]
                elif isinstance(kw.value, ast.Name):
                    opts[kw.arg] = "$" + kw.value.id  # taken from the parameter of that name
    return opts


def main(test_dir):
    for name in sorted(os.listdir(test_dir)):
        if not (name.startswith("test_") and name.endswith(".py")):
            continue
        tree = ast.parse(open(os.path.join(test_dir, name), encoding="utf-8").read())
        for func in tree.body:
            if not isinstance(func, ast.FunctionDef):
                continue
            opts = call_options(func)
            for dec in func.decorator_list:
                if not (isinstance(dec, ast.Call) and getattr(dec.func, "attr", "") == "parametrize"):
                    continue
                argnames = [a.strip() for a in ast.literal_eval(dec.args[0]).split(",")]
                if "gold" not in argnames or "pred" not in argnames:
                    continue
                for i, row in enumerate(dec.args[1].elts):
                    values = dict(zip(argnames, [literal(e) for e in row.elts]))
                    expected = values.get("expected", values.get("result"))
                    case = {
                        "source": f"{name}::{func.name}[{i}]",
                        "gold": values["gold"],
                        "prediction": values["pred"],
                        "expected": bool(expected),
                        "match_types": opts.get("match_types", ["latex", "expr"]),
                        "precision": opts.get("precision", 6),
                        "strict": True,
                        "allow_set_relation_comp": False,
                    }
                    for key in ("precision", "strict", "allow_set_relation_comp"):
                        v = opts.get(key)
                        if isinstance(v, str) and v.startswith("$"):
                            case[key] = values[v[1:]]
                    if isinstance(opts.get("float_rounding"), str):
                        case["precision"] = values[opts["float_rounding"][1:]]
                    print(json.dumps(case, ensure_ascii=False))


if __name__ == "__main__":
    main(sys.argv[1])
