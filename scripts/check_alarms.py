#!/usr/bin/env python3
"""Operability check of template.yaml: what an operator watches is there for everything
that runs (README "Alarms, tracing and the runbook").

Fails unless:
- every AWS::Serverless::Function has an alarm on AWS/Lambda Errors and one on Throttles
  with the dimension FunctionName: !Ref <that function>;
- ProvisionFailureQueue has a depth (ApproximateNumberOfMessagesVisible) and an age
  (ApproximateAgeOfOldestMessage) alarm on its QueueName;
- every HTTP API has a 5xx alarm (the 5xx metric, alone or in metric math) and a latency
  alarm (Latency) on its ApiId, and a JSON access log (status as a number, the function's
  request id);
- every DynamoDB table has a throttling alarm on its read and write throttle events, for
  the table and each of its live global secondary indexes;
- the health check's Embedded Metric Format summary has its two alarms (BecameFailing,
  Checked);
- every alarm notifies the alarm topic (an AWS::SNS::Topic) on ALARM and on OK;
- Tracing is Active for every function, and each function's role allows the X-Ray
  daemon's writes (xray:PutTraceSegments, xray:PutTelemetryRecords on "*");
- the dashboard names every function and every alarm.

It self-checks first that it notices a missing alarm, an alarm that notifies nobody, a
function without tracing, a function missing from the dashboard and an API without its
access log.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from check_routes import CfnLoader, TEMPLATE  # noqa: E402

XRAY_WRITES = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}
QUEUE = "ProvisionFailureQueue"
HEALTH_NAMESPACE = "InfraKitchen/Integrations"
# Global secondary indexes kept only until CloudFormation can drop them (one per stack
# update): empty, so not watched. See the table's definition.
RETIRED_INDEXES = {"by_name"}


def ref(value) -> str:
    """A dimension's value as comparable text: Ref:X, GetAtt:X.Y, or the literal."""
    if isinstance(value, dict):
        if "Ref" in value:
            return f"Ref:{value['Ref']}"
        if "Fn::GetAtt" in value:
            target = value["Fn::GetAtt"]
            return "GetAtt:" + (".".join(target) if isinstance(target, list) else str(target))
        if "Fn::Sub" in value and isinstance(value["Fn::Sub"], str):
            return f"Sub:{value['Fn::Sub']}"
    return str(value)


def metrics_of(props: dict) -> list[tuple[str, str, dict[str, str]]]:
    """(namespace, metric, dimensions) an alarm reads, single metric or metric math."""
    out = []
    if props.get("MetricName"):
        dims = {d["Name"]: ref(d["Value"]) for d in props.get("Dimensions") or []}
        out.append((props.get("Namespace"), props["MetricName"], dims))
    for q in props.get("Metrics") or []:
        m = ((q.get("MetricStat") or {}).get("Metric")) or {}
        if m.get("MetricName"):
            dims = {d["Name"]: ref(d["Value"]) for d in m.get("Dimensions") or []}
            out.append((m.get("Namespace"), m["MetricName"], dims))
    return out


def of_type(res: dict, kind: str) -> dict[str, dict]:
    return {k: r for k, r in res.items() if isinstance(r, dict) and r.get("Type") == kind}


def check(tpl: dict) -> tuple[list[str], str]:
    res = tpl.get("Resources") or {}
    problems: list[str] = []
    alarms = of_type(res, "AWS::CloudWatch::Alarm")
    functions = of_type(res, "AWS::Serverless::Function")
    watched = [(name, m) for name, a in alarms.items() for m in metrics_of(a.get("Properties") or {})]

    def has(namespace: str, metrics: set[str], dim: str, value: str) -> bool:
        return any(
            ns == namespace and metric in metrics and dims.get(dim) == value
            for _, (ns, metric, dims) in watched
        )

    if not functions:
        problems.append("no AWS::Serverless::Function found")
    for f in functions:
        for metric in ("Errors", "Throttles"):
            if not has("AWS/Lambda", {metric}, "FunctionName", f"Ref:{f}"):
                problems.append(f"{f}: no alarm on AWS/Lambda {metric} (FunctionName: !Ref {f})")

    if QUEUE not in res:
        problems.append(f"{QUEUE}: not in the template")
    for metric in ("ApproximateNumberOfMessagesVisible", "ApproximateAgeOfOldestMessage"):
        if not has("AWS/SQS", {metric}, "QueueName", f"GetAtt:{QUEUE}.QueueName"):
            problems.append(f"{QUEUE}: no alarm on AWS/SQS {metric}")

    apis = of_type(res, "AWS::Serverless::HttpApi")
    if not apis:
        problems.append("no AWS::Serverless::HttpApi found")
    for api, a in apis.items():
        for metric in ("5xx", "Latency"):
            if not has("AWS/ApiGateway", {metric}, "ApiId", f"Ref:{api}"):
                problems.append(f"{api}: no alarm on AWS/ApiGateway {metric} (ApiId: !Ref {api})")
        # The access log ties a request to its function's logs and trace (the runbook's
        # 5xx entry reads it); its status must be a number for metric filters.
        access = (a.get("Properties") or {}).get("AccessLogSettings") or {}
        fmt = str(access.get("Format") or "")
        if not access.get("DestinationArn") or '"status":$context.status' not in fmt \
                or "$context.integration.requestId" not in fmt:
            problems.append(
                f"{api}: no JSON access log with the status as a number and the function's request id"
            )

    for table, t in of_type(res, "AWS::DynamoDB::Table").items():
        indexes = [
            i["IndexName"]
            for i in (t.get("Properties") or {}).get("GlobalSecondaryIndexes") or []
            if i.get("IndexName") not in RETIRED_INDEXES
        ]
        for metric in ("ReadThrottleEvents", "WriteThrottleEvents"):
            for index in [None, *indexes]:
                ok = any(
                    ns == "AWS/DynamoDB"
                    and m == metric
                    and dims.get("TableName") == f"Ref:{table}"
                    and dims.get("GlobalSecondaryIndexName") == index
                    for _, (ns, m, dims) in watched
                )
                if not ok:
                    where = f"index {index}" if index else "the table"
                    problems.append(f"{table}: no alarm on {metric} of {where}")

    for metric in ("BecameFailing", "Checked"):
        if not any(ns == HEALTH_NAMESPACE and m == metric for _, (ns, m, _) in watched):
            problems.append(f"health check: no alarm on {HEALTH_NAMESPACE} {metric}")

    topics = {f"Ref:{t}" for t in of_type(res, "AWS::SNS::Topic")}
    if not topics:
        problems.append("no AWS::SNS::Topic for the alarms")
    for name, a in alarms.items():
        props = a.get("Properties") or {}
        for key in ("AlarmActions", "OKActions"):
            if not {ref(x) for x in props.get(key) or []} & topics:
                problems.append(f"{name}: {key} does not name the alarm topic")

    globals_tracing = ((tpl.get("Globals") or {}).get("Function") or {}).get("Tracing")
    for f, r in functions.items():
        props = r.get("Properties") or {}
        if props.get("Tracing", globals_tracing) != "Active":
            problems.append(f"{f}: Tracing is not Active")
        role = props.get("Role")
        target = (role or {}).get("Fn::GetAtt") if isinstance(role, dict) else None
        role_id = (target[0] if isinstance(target, list) else str(target).split(".")[0]) if target else None
        if role_id not in res:
            problems.append(f"{f}: no role of its own (Role: !GetAtt <Role>.Arn)")
            continue
        allowed: set[str] = set()
        for policy in (res[role_id].get("Properties") or {}).get("Policies") or []:
            for st in policy["PolicyDocument"]["Statement"]:
                actions = st.get("Action")
                if st.get("Effect") == "Allow" and st.get("Resource") == "*":
                    allowed.update(actions if isinstance(actions, list) else [actions])
        missing = sorted(XRAY_WRITES - allowed)
        if missing:
            problems.append(f"{f}: its role {role_id} does not allow {', '.join(missing)} on \"*\"")

    dashboards = of_type(res, "AWS::CloudWatch::Dashboard")
    bodies = []
    for d in dashboards.values():
        body = (d.get("Properties") or {}).get("DashboardBody")
        bodies.append(body.get("Fn::Sub") if isinstance(body, dict) else body)
    text = "\n".join(b for b in bodies if isinstance(b, str))
    if not dashboards:
        problems.append("no AWS::CloudWatch::Dashboard")
    for f in functions:
        if "${" + f + "}" not in text:
            problems.append(f"{f}: not on the dashboard (${{{f}}})")
    for name in alarms:
        if "${" + name + ".Arn}" not in text:
            problems.append(f"{name}: not on the dashboard's alarm widget (${{{name}.Arn}})")

    summary = (
        f"alarms: {len(alarms)} alarms notifying the topic; {len(functions)} functions traced, "
        f"each with errors and throttles alarms and on the dashboard; the failure queue, "
        f"{len(apis)} API(s), the table and the health check watched"
    )
    return problems, summary


def self_check(tpl: dict) -> list[str]:
    """Tamperings that check() must notice; returns the ones it missed."""
    res = tpl["Resources"]
    alarms = of_type(res, "AWS::CloudWatch::Alarm")
    functions = list(of_type(res, "AWS::Serverless::Function"))
    missed = []

    def expect(what: str, change) -> None:
        t = copy.deepcopy(tpl)
        change(t)
        if not check(t)[0]:
            missed.append(what)

    errors = next(
        n for n, a in alarms.items() if (a.get("Properties") or {}).get("MetricName") == "Errors"
    )
    depth = next(
        n
        for n, a in alarms.items()
        if (a.get("Properties") or {}).get("MetricName") == "ApproximateNumberOfMessagesVisible"
    )
    expect(f"{errors} removed", lambda t: t["Resources"].pop(errors))
    expect(f"{depth} removed", lambda t: t["Resources"].pop(depth))
    expect(
        f"{errors} notifying nobody on OK",
        lambda t: t["Resources"][errors]["Properties"].pop("OKActions"),
    )
    expect(
        f"{functions[0]} traced PassThrough",
        lambda t: t["Resources"][functions[0]]["Properties"].update(Tracing="PassThrough"),
    )

    api = next(iter(of_type(res, "AWS::Serverless::HttpApi")))
    expect(
        f"{api} without its access log",
        lambda t: t["Resources"][api]["Properties"].pop("AccessLogSettings"),
    )

    def new_function(t: dict) -> None:
        t["Resources"]["ExtraFunction"] = copy.deepcopy(t["Resources"][functions[0]])

    expect("a function without alarms", new_function)
    return missed


def main() -> int:
    tpl = yaml.load(TEMPLATE.read_text(), Loader=CfnLoader)  # noqa: S506 - SafeLoader subclass
    missed = self_check(tpl)
    if missed:
        print("check_alarms: self-check failed, unnoticed: " + "; ".join(missed))
        return 1
    problems, summary = check(tpl)
    for p in problems:
        print(p)
    if problems:
        print(f"alarms: {len(problems)} problem(s) in template.yaml")
        return 1
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
