#!/usr/bin/env python3
"""Contract check: openapi.yaml against itself and against recorded responses.

1. Validates openapi.yaml as an OpenAPI 3.1 document (openapi_spec_validator).
2. Checks that every operation has an operationId and documents at least one 4xx response,
   and that every example in the spec (media-type `example`/`examples`, request and
   response) matches the schema it illustrates.
3. With a path (argv[1], else $IK_RESPONSES) to a JSON-lines file of recorded responses
   (which must cover every operation, or --min-operations N of them),
   one object a line:
       {"method": "POST", "route": "/integrations/aws/{id}", "status": 201,
        "content_type": "application/json", "body": <json or null>,
        "headers": {"etag": "\"1\"", ...}}            # "headers" is optional
   checks that every (route, method, status) is documented, that the content type is one
   the response documents (or that a bodiless response has no body), that the body
   matches the schema (JSON Schema 2020-12, $refs resolved against the whole spec), and,
   when "headers" is recorded, that the response's required headers are present and
   match their schemas.

Exits 0 with a one-line summary, or 1 listing every mismatch (route, status, JSON path,
message). Needs openapi-spec-validator, jsonschema (>= 4.18, with referencing) and PyYAML
in the running interpreter; it installs nothing.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Iterator

import yaml
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate as validate_spec
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

REPO = Path(__file__).resolve().parent.parent
SPEC_PATH = Path(os.environ.get("IK_OPENAPI", REPO / "openapi.yaml"))
SPEC_URI = "urn:ik:openapi"
HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")


def load_spec(path: Path) -> dict:
    with path.open(encoding="utf-8") as f:
        return yaml.safe_load(f)


def pointer_escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def deref(spec: dict, obj: Any, seen: frozenset = frozenset()) -> Any:
    """Follows an OpenAPI (non-schema) `$ref` such as '#/components/responses/NotFound'."""
    while isinstance(obj, dict) and "$ref" in obj:
        ref = obj["$ref"]
        if not ref.startswith("#/") or ref in seen:
            raise ValueError(f"unsupported or circular $ref {ref!r}")
        seen = seen | {ref}
        node: Any = spec
        for token in ref[2:].split("/"):
            token = token.replace("~1", "/").replace("~0", "~")
            node = node[int(token)] if isinstance(node, list) else node[token]
        obj = node
    return obj


class Contract:
    def __init__(self, spec: dict):
        self.spec = spec
        resource = Resource.from_contents(spec, default_specification=DRAFT202012)
        self.registry = Registry().with_resource(SPEC_URI, resource)
        self._validators: dict[str, Draft202012Validator] = {}

    def validator(self, pointer: str) -> Draft202012Validator:
        """A validator for the schema at a JSON pointer into the spec (refs resolve there)."""
        v = self._validators.get(pointer)
        if v is None:
            v = Draft202012Validator(
                {"$ref": f"{SPEC_URI}#{pointer}"},
                registry=self.registry,
                format_checker=Draft202012Validator.FORMAT_CHECKER,
            )
            self._validators[pointer] = v
        return v

    def errors(self, pointer: str, instance: Any) -> list[tuple[str, str]]:
        out = []
        for e in sorted(self.validator(pointer).iter_errors(instance), key=lambda e: e.json_path):
            # Report the most specific cause of a oneOf/anyOf/allOf failure: the deepest,
            # preferring a broken rule over "is not of type 'null'".
            best = e
            while best.context:
                best = min(
                    best.context,
                    key=lambda c: (-len(c.absolute_path), c.validator == "type", len(c.message)),
                )
            message = redact(best.message, best.instance)
            out.append((best.json_path, message if best is e else f"{message} (in {e.validator})"))
        return out

    def operations(self) -> Iterator[tuple[str, str, dict, str]]:
        """(route, method, operation, pointer-to-operation)."""
        for route, item in (self.spec.get("paths") or {}).items():
            item = deref(self.spec, item)
            for method in HTTP_METHODS:
                op = item.get(method)
                if isinstance(op, dict):
                    yield route, method, op, f"/paths/{pointer_escape(route)}/{method}"

    def responses(self, op_pointer: str) -> Iterator[tuple[str, dict, str]]:
        """(status key, dereferenced response, pointer to the response as dereferenced)."""
        op = deref(self.spec, {"$ref": "#" + op_pointer})
        for status, resp in (op.get("responses") or {}).items():
            pointer = f"{op_pointer}/responses/{pointer_escape(str(status))}"
            # Point at the dereferenced location so schema pointers below are real paths.
            while isinstance(resp, dict) and "$ref" in resp:
                pointer = resp["$ref"][1:]
                resp = deref(self.spec, resp)
            yield str(status), resp, pointer


def redact(message: str, instance: Any) -> str:
    """Keeps long string values (key ids, secrets a response should never have held) out of logs."""
    if isinstance(instance, str) and len(instance) > 12:
        shown = repr(instance)
        if shown in message:
            return message.replace(shown, repr(f"{instance[:4]}...({len(instance)} chars)"))
    return message


def media_base(content_type: str | None) -> str | None:
    if content_type is None:
        return None
    return content_type.split(";", 1)[0].strip().lower()


def find_response(contract: Contract, op_pointer: str, status: int) -> tuple[str, dict, str] | None:
    found = {k.upper(): (k, r, p) for k, r, p in contract.responses(op_pointer)}
    for key in (str(status), f"{str(status)[0]}XX"):
        if key in found:
            return found[key]
    return None


def check_spec_rules(contract: Contract) -> tuple[list[str], int]:
    problems: list[str] = []
    n_ops = 0
    op_ids: dict[str, str] = {}
    for route, method, op, op_pointer in contract.operations():
        n_ops += 1
        where = f"{method.upper()} {route}"
        op_id = op.get("operationId")
        if not op_id:
            problems.append(f"{where}: no operationId")
        elif op_id in op_ids:
            problems.append(f"{where}: operationId {op_id!r} also used by {op_ids[op_id]}")
        else:
            op_ids[op_id] = where
        statuses = [k for k, _, _ in contract.responses(op_pointer)]
        if not any(s.upper().startswith("4") for s in statuses):
            problems.append(f"{where}: no 4xx response documented")
        # Examples must match their schemas (request bodies and responses).
        media_sites: list[tuple[str, dict, str]] = []
        body = op.get("requestBody")
        if body is not None:
            body_pointer = f"{op_pointer}/requestBody"
            while isinstance(body, dict) and "$ref" in body:
                body_pointer = body["$ref"][1:]
                body = deref(contract.spec, body)
            for mt, media in (body.get("content") or {}).items():
                media_sites.append((f"{where} request {mt}", media, f"{body_pointer}/content/{pointer_escape(mt)}"))
        for status, resp, resp_pointer in contract.responses(op_pointer):
            for mt, media in (resp.get("content") or {}).items():
                media_sites.append((f"{where} {status} {mt}", media, f"{resp_pointer}/content/{pointer_escape(mt)}"))
        for label, media, media_pointer in media_sites:
            if "schema" not in media:
                continue
            samples = []
            if "example" in media:
                samples.append(("example", media["example"]))
            for name, ex in (media.get("examples") or {}).items():
                ex = deref(contract.spec, ex)
                if "value" in ex:
                    samples.append((f"examples.{name}", ex["value"]))
            for name, value in samples:
                for path, msg in contract.errors(f"{media_pointer}/schema", value):
                    problems.append(f"{label} {name}: {path}: {msg}")
    return problems, n_ops


def check_recorded(contract: Contract, path: Path) -> tuple[list[str], int, set[tuple[str, str]]]:
    ops = {(route, method.upper()): op_pointer for route, method, _, op_pointer in contract.operations()}
    problems: list[str] = []
    count = 0
    unrouted: list[int] = []
    seen_ops: set[tuple[str, str]] = set()
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                method = str(rec["method"]).upper()
                route = rec["route"]
                status = int(rec["status"])
            except (ValueError, KeyError, TypeError) as e:
                problems.append(f"{path}:{lineno}: not a recorded response ({e})")
                continue
            if route is None:
                # A path no route matches never reaches a function: API Gateway answers it
                # itself (404, or 405 from the local gateway's method check), so only the
                # status is checked here.
                unrouted.append(status)
                if status not in (404, 405):
                    problems.append(f"{path.name}:{lineno} {method} {rec.get('path')} {status}: "
                                    "no route matches, yet the answer is not the gateway's 404/405")
                continue
            count += 1
            where = f"{path.name}:{lineno} {method} {route} {status}"
            op_pointer = ops.get((route, method))
            if op_pointer is None:
                problems.append(f"{where}: operation not in the spec")
                continue
            seen_ops.add((route, method))
            found = find_response(contract, op_pointer, status)
            if found is None:
                problems.append(f"{where}: status {status} not documented for this operation")
                continue
            _, resp, resp_pointer = found
            content = resp.get("content") or {}
            body = rec.get("body")
            ctype = media_base(rec.get("content_type"))
            if not content:
                if body is not None:
                    problems.append(f"{where}: $: the response documents no body, got one")
            elif ctype is None and body is None:
                problems.append(f"{where}: $: the response documents a body ({', '.join(content)}), got none")
            else:
                by_type = {media_base(k): k for k in content}
                key = by_type.get(ctype)
                if key is None:
                    problems.append(
                        f"{where}: content type {rec.get('content_type')!r} not documented "
                        f"(documented: {', '.join(content)})"
                    )
                elif "schema" in content[key]:
                    schema_pointer = f"{resp_pointer}/content/{pointer_escape(key)}/schema"
                    for jpath, msg in contract.errors(schema_pointer, body):
                        problems.append(f"{where}: {jpath}: {msg}")
            headers = rec.get("headers")
            if isinstance(headers, dict):
                lower = {str(k).lower(): v for k, v in headers.items()}
                for name, hdr in (resp.get("headers") or {}).items():
                    hdr_pointer = f"{resp_pointer}/headers/{pointer_escape(name)}"
                    while isinstance(hdr, dict) and "$ref" in hdr:
                        hdr_pointer = hdr["$ref"][1:]
                        hdr = deref(contract.spec, hdr)
                    value = lower.get(name.lower())
                    if value is None:
                        if hdr.get("required"):
                            problems.append(f"{where}: header {name}: required, missing")
                        continue
                    schema = hdr.get("schema") or {}
                    if schema.get("type") == "integer":
                        try:
                            value = int(value)
                        except ValueError:
                            pass
                    for _, msg in contract.errors(f"{hdr_pointer}/schema", value):
                        problems.append(f"{where}: header {name}: {msg}")
    return problems, count, seen_ops, len(unrouted)


def main(argv: list[str]) -> int:
    import argparse

    ap = argparse.ArgumentParser(description="openapi.yaml against itself and recorded responses")
    ap.add_argument("recorded", nargs="?", default=os.environ.get("IK_RESPONSES"))
    ap.add_argument("--min-operations", default="all",
                    help="how many of the spec's operations the recording must cover (default: all)")
    args = ap.parse_args(argv[1:])
    spec = load_spec(SPEC_PATH)
    try:
        validate_spec(spec)
    except Exception as e:  # the validator's own error types vary across versions
        print(f"openapi: {SPEC_PATH.name} is not a valid OpenAPI 3.1 document:\n  {e}", file=sys.stderr)
        return 1
    contract = Contract(spec)
    problems, n_ops = check_spec_rules(contract)
    if problems:
        print(f"openapi: {SPEC_PATH.name} breaks the project's rules:", file=sys.stderr)
        for p in problems:
            print(f"  {p}", file=sys.stderr)
        return 1

    recorded = args.recorded
    if not recorded:
        print(f"openapi: spec valid; {n_ops} operations, each with an operationId and a 4xx response; examples match")
        return 0
    path = Path(recorded)
    if not path.is_file():
        print(f"openapi: no recorded responses at {path}", file=sys.stderr)
        return 1
    problems, count, seen_ops, unrouted = check_recorded(contract, path)
    # An empty or partial recording proves nothing about the operations it lacks.
    want = n_ops if args.min_operations == "all" else int(args.min_operations)
    if len(seen_ops) < want:
        missing = sorted(
            f"{m} {r}" for r, m, _, _ in ((r, m.upper(), o, p) for r, m, o, p in contract.operations())
            if (r, m) not in seen_ops
        )
        problems.append(
            f"{path.name}: {count} responses cover {len(seen_ops)} of {n_ops} operations, "
            f"at least {want} required; never answered: {', '.join(missing) or '-'}"
        )
    if problems:
        print(f"openapi: {len(problems)} mismatch(es) between {path} and the spec:", file=sys.stderr)
        for p in problems:
            print(f"  {p}", file=sys.stderr)
        return 1
    print(
        f"openapi: spec valid; {count} recorded responses across {len(seen_ops)} operations "
        f"(of {n_ops}) match the spec; {unrouted} unrouted requests got the gateway's 404/405"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
