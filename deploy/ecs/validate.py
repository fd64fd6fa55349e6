#!/usr/bin/env python3
"""Validate ECS task definitions offline against the AWS API model in botocore.

Checks each file as the input of ECS RegisterTaskDefinition (the format
`aws ecs register-task-definition --cli-input-json file://...` takes): unknown
keys, wrong types, missing required fields and out-of-range numbers fail.
No AWS account or network is used.

    python3 deploy/ecs/validate.py deploy/ecs/task-definition.json
"""

import json
import sys

import botocore.session
from botocore.validate import ParamValidator


def main(paths):
    model = botocore.session.get_session().get_service_model("ecs")
    shape = model.operation_model("RegisterTaskDefinition").input_shape
    failed = False
    for path in paths:
        with open(path, encoding="utf-8") as f:
            params = json.load(f)
        report = ParamValidator().validate(params, shape)
        if report.has_errors():
            failed = True
            print(f"FAIL {path}:\n{report.generate_report()}")
        else:
            print(f"ok   {path} (RegisterTaskDefinition, botocore {botocore.__version__})")
    return 1 if failed else 0


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: validate.py TASK_DEFINITION.json...")
    sys.exit(main(sys.argv[1:]))
