#!/usr/bin/env python3
"""Least privilege check: each function's role in template.yaml against the list of actions
kept beside the code (shared/src/aws/permissions.rs, printed by
`local-api --permissions` or $LOCAL_PERMISSIONS_CMD as `binary action` lines).

A role may grant exactly the listed actions, plus log delivery (logs:CreateLogStream,
logs:PutLogEvents) and trace delivery (xray:PutTraceSegments, xray:PutTelemetryRecords).
Anything granted but not listed, or listed but not granted, is
printed; either exits 1. It self-checks first that it notices an extra grant.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from check_routes import CfnLoader, REPO, TEMPLATE  # noqa: E402

DEFAULT_CMD = "cargo run -q -p local-harness --bin local-api -- --permissions"
LOG_DELIVERY = {"logs:CreateLogStream", "logs:PutLogEvents"}
# Used by Lambda's X-Ray daemon (Tracing: Active) with the function's role, not by the
# code's SDK clients, so the adapters' list cannot name them; scripts/check_alarms.py
# checks that every function role has them.
TRACE_DELIVERY = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}


def role_name(role) -> str | None:
    if isinstance(role, dict) and "Fn::GetAtt" in role:
        target = role["Fn::GetAtt"]
        return target[0] if isinstance(target, list) else str(target).split(".")[0]
    return None


def granted(tpl: dict) -> dict[str, set[str]]:
    """binary -> actions its role grants (log and trace delivery aside)."""
    res = tpl.get("Resources") or {}
    out: dict[str, set[str]] = {}
    for logical_id, r in res.items():
        if r.get("Type") != "AWS::Serverless::Function":
            continue
        binary = ((r.get("Metadata") or {}).get("BuildProperties") or {}).get("Binary")
        name = role_name((r.get("Properties") or {}).get("Role"))
        if not binary or not name or name not in res:
            raise SystemExit(f"check_permissions: {logical_id} has no Binary or no role of its own")
        actions: set[str] = set()
        for policy in res[name]["Properties"].get("Policies") or []:
            for st in policy["PolicyDocument"]["Statement"]:
                if st.get("Effect") != "Allow":
                    continue
                a = st["Action"]
                actions.update(a if isinstance(a, list) else [a])
        out[binary] = actions - LOG_DELIVERY - TRACE_DELIVERY
    return out


def listed(cmd: str) -> dict[str, set[str]]:
    proc = subprocess.run(cmd, shell=True, cwd=REPO, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"check_permissions: `{cmd}` exited with {proc.returncode}")
    out: dict[str, set[str]] = {}
    for line in proc.stdout.splitlines():
        if line.strip():
            binary, action = line.split()
            out.setdefault(binary, set()).add(action)
    return out


def compare(grants: dict[str, set[str]], needs: dict[str, set[str]]) -> list[str]:
    problems = []
    for binary in sorted(set(grants) | set(needs)):
        g, n = grants.get(binary, set()), needs.get(binary, set())
        for a in sorted(g - n):
            problems.append(f"{binary}: template.yaml grants {a}, which the code does not use")
        for a in sorted(n - g):
            problems.append(f"{binary}: the code needs {a}, which template.yaml does not grant")
    return problems


def main() -> int:
    tpl = yaml.load(TEMPLATE.read_text(), Loader=CfnLoader)
    needs = listed(os.environ.get("LOCAL_PERMISSIONS_CMD") or DEFAULT_CMD)
    grants = granted(tpl)
    # Self-check: an extra grant must be caught.
    tampered = copy.deepcopy(grants)
    next(iter(tampered.values())).add("dynamodb:Scan")
    if not compare(tampered, needs):
        print("check_permissions: self-check failed (an extra grant went unnoticed)")
        return 1
    problems = compare(grants, needs)
    for p in problems:
        print(p)
    total = sum(len(a) for a in grants.values())
    if problems:
        print(f"permissions: {len(problems)} difference(s) between template.yaml and the code's list")
        return 1
    print(f"permissions: {len(grants)} roles, {total} actions, each one used by the code (log and trace delivery aside)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
