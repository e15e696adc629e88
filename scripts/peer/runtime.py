"""A minimal Lambda runtime loop for the Python peer (scripts/bench_runtime.py runs it
as the peer's `bootstrap`): imports the handler module (its module-level clients are
built then, as in Lambda's Init), then GET next / call / POST response over one
keep-alive connection to AWS_LAMBDA_RUNTIME_API, as Lambda's own runtime client does.
"""

import http.client
import json
import os
import sys
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import create_handler  # noqa: E402  (Init: boto3 and its clients)

BASE = "/2018-06-01/runtime/invocation/"


def main():
    host, port = os.environ["AWS_LAMBDA_RUNTIME_API"].rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port))
    while True:
        conn.request("GET", BASE + "next")
        resp = conn.getresponse()
        event = json.loads(resp.read())
        request_id = resp.headers["Lambda-Runtime-Aws-Request-Id"]
        try:
            result, kind = create_handler.handler(event, None), "response"
        except Exception as e:  # reported to the Runtime API as the invocation's error
            traceback.print_exc()
            result, kind = {"errorMessage": str(e), "errorType": type(e).__name__}, "error"
        body = json.dumps(result).encode()
        conn.request("POST", BASE + request_id + "/" + kind, body,
                     {"Content-Type": "application/json"})
        conn.getresponse().read()


if __name__ == "__main__":
    main()
