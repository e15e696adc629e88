"""Proves that no function deploys an AWS endpoint override.

Local runs point the functions' SDK at emulators with AWS_ENDPOINT_URL* variables, which
template.yaml declares only under the LocalRun condition (parameter LocalEndpoints,
default "false"). This resolves every function's environment (Globals merged with the
function's own) with the parameters' defaults and fails if any AWS_ENDPOINT_URL* variable
exists, or if one is declared in any other form than
`!If [LocalRun, <placeholder>, !Ref AWS::NoValue]`. It also checks itself on a template
with a plain override, which it must refuse.

    python3 scripts/check_template_env.py [template.yaml]
"""

import copy
import sys

from cfnlint.decode import decode

ENDPOINT_PREFIX = "AWS_ENDPOINT_URL"
FUNCTION_TYPES = ("AWS::Serverless::Function", "AWS::Lambda::Function")


def condition_values(template):
    """Each condition's value with every parameter at its default (Equals/Not/And/Or)."""
    params = {
        name: str(p.get("Default", ""))
        for name, p in template.get("Parameters", {}).items()
    }
    conditions = template.get("Conditions", {})

    def value(node):
        if isinstance(node, dict) and len(node) == 1:
            (fn, arg), = node.items()
            if fn == "Ref":
                return params.get(arg, arg)
            if fn == "Condition":
                return evaluate(arg)
            if fn == "Fn::Equals":
                return value(arg[0]) == value(arg[1])
            if fn == "Fn::Not":
                return not value(arg[0])
            if fn == "Fn::And":
                return all(value(a) for a in arg)
            if fn == "Fn::Or":
                return any(value(a) for a in arg)
            if fn == "Fn::Join":
                sep, parts = arg
                parts = value(parts) if isinstance(parts, dict) else parts
                return sep.join(str(value(p)) for p in parts)
        if isinstance(node, list):
            return [value(n) for n in node]
        return node

    def evaluate(name):
        return bool(value(conditions[name]))

    return {name: evaluate(name) for name in conditions}


def resolve(node, conditions):
    """The node with every Fn::If decided and AWS::NoValue removed."""
    if isinstance(node, dict):
        if set(node) == {"Fn::If"}:
            cond, yes, no = node["Fn::If"]
            return resolve(yes if conditions[cond] else no, conditions)
        if node == {"Ref": "AWS::NoValue"}:
            return None
        out = {}
        for k, v in node.items():
            r = resolve(v, conditions)
            if r is not None:
                out[k] = r
        return out
    if isinstance(node, list):
        return [r for r in (resolve(n, conditions) for n in node) if r is not None]
    return node


def problems(template):
    found = []
    conditions = condition_values(template)
    if conditions.get("LocalRun") is not False:
        found.append("condition LocalRun must exist and be false with default parameters")
    globals_env = (
        template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    )
    sources = [("Globals", globals_env)]
    functions = {
        name: r
        for name, r in template.get("Resources", {}).items()
        if r.get("Type") in FUNCTION_TYPES
    }
    if not functions:
        found.append("no function found in the template")
    for name, r in functions.items():
        own = r.get("Properties", {}).get("Environment", {}).get("Variables", {})
        sources.append((name, own))
    for where, variables in sources:
        for var, val in variables.items():
            if not var.startswith(ENDPOINT_PREFIX):
                continue
            guarded = (
                isinstance(val, dict)
                and set(val) == {"Fn::If"}
                and val["Fn::If"][0] == "LocalRun"
                and val["Fn::If"][2] == {"Ref": "AWS::NoValue"}
            )
            if not guarded:
                found.append(f"{where}: {var} is not declared as !If [LocalRun, ..., !Ref AWS::NoValue]")
    for name in functions:
        own = functions[name].get("Properties", {}).get("Environment", {}).get("Variables", {})
        merged = {**globals_env, **own}
        deployed = resolve(merged, conditions)
        leaked = sorted(v for v in deployed if v.startswith(ENDPOINT_PREFIX))
        if leaked:
            found.append(f"{name} deploys {', '.join(leaked)}")
    return found


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "template.yaml"
    template, matches = decode(path)
    if matches:
        print(f"{path} does not parse: {matches}")
        return 1
    found = problems(template)
    # The check must refuse a plain override: prove it on a copy.
    broken = copy.deepcopy(template)
    broken.setdefault("Globals", {}).setdefault("Function", {}).setdefault(
        "Environment", {}
    ).setdefault("Variables", {})["AWS_ENDPOINT_URL"] = "http://127.0.0.1:4566"
    if not problems(broken):
        found.append("self-check: a plain AWS_ENDPOINT_URL was not refused")
    if found:
        print("endpoint overrides that could deploy:")
        for p in found:
            print(f"  {p}")
        return 1
    print(f"template env: no function deploys an AWS_ENDPOINT_URL* variable ({path})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
