#!/usr/bin/env python3
"""Lays out already-built function binaries as `sam build` would, for `sam local`.

`sam build` compiles every function again (cargo-lambda with an explicit --target, so a
second target directory: about 7 minutes on 2 cores). The binaries the workspace build
already made are the same code, so this copies each function's binary (the template's
`Metadata.BuildProperties.Binary`) to <out>/<LogicalId>/bootstrap and writes
<out>/template.yaml with each function's CodeUri pointing there, as `sam build` does.
Everything else in the template is kept as it is (parsed and written with the SAM CLI's
own YAML helpers, which keep CloudFormation's short-form tags).

    python3 scripts/sam_layout.py --template template.yaml --bin-dir target/debug --out .aws-sam/build
"""

import argparse
import pathlib
import shutil
import sys

from samcli.yamlhelper import yaml_dump, yaml_parse


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--template", default="template.yaml")
    ap.add_argument("--bin-dir", required=True, help="where cargo put the function binaries")
    ap.add_argument("--out", required=True, help="the build directory (.aws-sam/build)")
    args = ap.parse_args()

    template = yaml_parse(pathlib.Path(args.template).read_text())
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    laid = 0
    for logical_id, resource in template.get("Resources", {}).items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        binary = (resource.get("Metadata") or {}).get("BuildProperties", {}).get("Binary")
        if not binary:
            print(f"sam_layout: {logical_id} names no Metadata.BuildProperties.Binary", file=sys.stderr)
            return 1
        source = pathlib.Path(args.bin_dir) / binary
        if not source.is_file():
            print(f"sam_layout: {source} is missing: build the workspace's binaries first", file=sys.stderr)
            return 1
        target = out / logical_id
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        shutil.copy2(source, target / "bootstrap")
        resource.setdefault("Properties", {})["CodeUri"] = logical_id
        # What sam build leaves: no build method (the artifact is built).
        resource["Metadata"] = {"SamResourceId": logical_id}
        laid += 1
    if laid == 0:
        print("sam_layout: the template has no functions", file=sys.stderr)
        return 1
    (out / "template.yaml").write_text(yaml_dump(template))
    print(f"sam_layout: {laid} functions laid out under {out} from {args.bin_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
