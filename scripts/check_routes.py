#!/usr/bin/env python3
"""Route drift check: the HTTP routes in template.yaml against the routes the local stack serves.

Collects every `Type: HttpApi` event of every function in template.yaml as
(METHOD, PATH, binary), the binary taken from the function's Metadata.BuildProperties.Binary,
and compares that set with the output of $LOCAL_ROUTES_CMD (default:
`cargo run -q -p local-harness --bin local-api -- --routes`), which prints one route a line:
`METHOD PATH binary`, followed by `public` for a route served without an authorizer (the
setup page and its assets). Differences are printed both ways; any drift exits 1.

It also checks the template against itself: every event route must have a matching
path/method in the HttpApi's DefinitionBody carrying a `security` requirement (SAM would
otherwise add the route with no authorizer), except exactly the routes the code marks
public, which must carry an explicit empty `security: []`; and the DefinitionBody may hold
no route that no function serves.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
TEMPLATE = REPO / "template.yaml"
DEFAULT_CMD = "cargo run -q -p local-harness --bin local-api -- --routes"
HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}

Route = tuple[str, str, str]


class CfnLoader(yaml.SafeLoader):
    """SafeLoader that turns CloudFormation short-form tags into plain long-form values."""


def _cfn_tag(loader: yaml.Loader, tag_suffix: str, node: yaml.Node):
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if tag_suffix == "Ref":
        return {"Ref": value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        return {"Fn::GetAtt": value.split(".", 1)}
    if tag_suffix == "Condition":
        return {"Condition": value}
    return {f"Fn::{tag_suffix}": value}


CfnLoader.add_multi_constructor("!", _cfn_tag)


def load_template(path: Path) -> dict:
    with path.open(encoding="utf-8") as f:
        return yaml.load(f, Loader=CfnLoader)  # noqa: S506 - SafeLoader subclass


def template_routes(tpl: dict) -> tuple[set[Route], list[str]]:
    """(METHOD, PATH, binary) of every HttpApi event, and problems found on the way."""
    routes: set[Route] = set()
    problems: list[str] = []
    for logical_id, res in (tpl.get("Resources") or {}).items():
        if not isinstance(res, dict) or res.get("Type") != "AWS::Serverless::Function":
            continue
        binary = ((res.get("Metadata") or {}).get("BuildProperties") or {}).get("Binary")
        events = (res.get("Properties") or {}).get("Events") or {}
        for event_id, event in events.items():
            if not isinstance(event, dict) or event.get("Type") != "HttpApi":
                continue
            props = event.get("Properties") or {}
            method, path = props.get("Method"), props.get("Path")
            if not binary:
                problems.append(f"{logical_id}: no Metadata.BuildProperties.Binary")
                continue
            if not isinstance(method, str) or not isinstance(path, str):
                problems.append(f"{logical_id}.{event_id}: HttpApi event without literal Method and Path")
                continue
            routes.add((method.upper(), path, binary))
    return routes, problems


def definition_routes(tpl: dict) -> tuple[dict[tuple[str, str], bool | None], list[str]]:
    """{(METHOD, PATH): has security} from the DefinitionBody of every HttpApi; None for an
    explicit empty `security: []` (a public route)."""
    found: dict[tuple[str, str], bool | None] = {}
    problems: list[str] = []
    for logical_id, res in (tpl.get("Resources") or {}).items():
        if not isinstance(res, dict) or res.get("Type") != "AWS::Serverless::HttpApi":
            continue
        body = (res.get("Properties") or {}).get("DefinitionBody")
        if not isinstance(body, dict):
            problems.append(f"{logical_id}: no inline DefinitionBody (routes' security is declared there)")
            continue
        for path, item in (body.get("paths") or {}).items():
            if not isinstance(item, dict):
                problems.append(f"{logical_id}: path {path} is not a plain mapping")
                continue
            for method, op in item.items():
                if method.lower() not in HTTP_METHODS:
                    continue
                security = op.get("security") if isinstance(op, dict) else None
                if security == []:
                    found[(method.upper(), path)] = None
                else:
                    found[(method.upper(), path)] = bool(security)
    return found, problems


def local_routes(cmd: str) -> tuple[set[Route], set[tuple[str, str]]]:
    """The routes the local stack serves, and the (METHOD, PATH) of its public ones."""
    proc = subprocess.run(cmd, shell=True, cwd=REPO, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"check_routes: `{cmd}` exited with {proc.returncode}")
    routes: set[Route] = set()
    public: set[tuple[str, str]] = set()
    for n, line in enumerate(proc.stdout.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) not in (3, 4) or (len(parts) == 4 and parts[3] != "public"):
            raise SystemExit(f"check_routes: `{cmd}` line {n}: expected `METHOD PATH binary [public]`, got {line!r}")
        routes.add((parts[0].upper(), parts[1], parts[2]))
        if len(parts) == 4:
            public.add((parts[0].upper(), parts[1]))
    return routes, public


def fmt(r: Route) -> str:
    return f"  {r[0]:<7} {r[1]:<45} {r[2]}"


def main() -> int:
    tpl = load_template(TEMPLATE)
    ours, problems = template_routes(tpl)
    declared, more = definition_routes(tpl)
    problems += more

    ok = True
    for p in problems:
        print(f"template.yaml: {p}")
        ok = False

    cmd = os.environ.get("LOCAL_ROUTES_CMD") or DEFAULT_CMD
    theirs, public = local_routes(cmd)

    # Template against itself and the code's public routes: every served route declared
    # with an authorizer but for exactly the public ones (`security: []`), nothing extra.
    served = {(m, p) for m, p, _ in ours}
    for m, p in sorted(served):
        if (m, p) not in declared:
            print(f"template.yaml: {m} {p} has an HttpApi event but no DefinitionBody entry (would have no authorizer)")
            ok = False
        elif declared[(m, p)] is None and (m, p) not in public:
            print(f"template.yaml: {m} {p} has `security: []` but the code does not mark it public (route would be open)")
            ok = False
        elif declared[(m, p)] is False:
            print(f"template.yaml: {m} {p} has no `security` in the DefinitionBody (route would be open)")
            ok = False
        elif declared[(m, p)] and (m, p) in public:
            print(f"template.yaml: {m} {p} is public in the code but has an authorizer (the page could not load)")
            ok = False
    for m, p in sorted(set(declared) - served):
        print(f"template.yaml: {m} {p} is in the DefinitionBody but no function's HttpApi event serves it")
        ok = False
    only_template = sorted(ours - theirs)
    only_local = sorted(theirs - ours)
    if only_template:
        print("in template.yaml but not served locally:")
        print("\n".join(fmt(r) for r in only_template))
    if only_local:
        print("served locally but not in template.yaml:")
        print("\n".join(fmt(r) for r in only_local))
    if only_template or only_local:
        ok = False

    if not ok:
        print(f"routes: {len(ours)} in template.yaml, {len(theirs)} served locally, DRIFT")
        return 1
    print(f"routes: {len(ours)} in template.yaml ({len(public)} public), {len(theirs)} served locally, no drift")
    return 0


if __name__ == "__main__":
    sys.exit(main())
