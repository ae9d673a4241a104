"""Least privilege, checked on the expanded template: what each function's role allows, action by
action and resource by resource, is the table below. A statement that grows (a new action, a
wider resource, a managed policy, `*`) fails here, and the failure prints the table as it now is.

`tests/aws/test_policies_on_moto.py` checks the other direction: that every request each
function makes on the moto server is allowed by this table.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.test_infra import Template, expand, function_of, of_type, sam_template

BUCKET = "arn:${AWS::Partition}:s3:::fanout-${Id}"
# What the job-objects function may list (a condition on s3:ListBucket, which the table below
# cannot hold): the prefixes of jobs' objects, not uploads/ or jobs/.
LISTABLE = ["inputs/*", "results/*"]
PARAMETER = "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter"


def logs(group: str) -> set[str]:
    return {f"logs:CreateLogStream {group}.Arn", f"logs:PutLogEvents {group}.Arn"}


def sqs_source(queue: str) -> set[str]:
    """What Lambda's SQS event source does with the function's role."""
    return {
        f"sqs:{a} {queue}.Arn" for a in ("ReceiveMessage", "DeleteMessage", "GetQueueAttributes")
    }


def table(*actions: str) -> set[str]:
    return {f"dynamodb:{action} Table.Arn" for action in actions}


def objects(action: str, *prefixes: str) -> set[str]:
    return {f"s3:{action} bucket/{prefix}/*" for prefix in prefixes}


# function: {"<action> <resource>"}, resources by logical id (`Table.Arn`), S3 keys by prefix.
ALLOWED: dict[str, set[str]] = {
    "ApiFunction": logs("ApiLogGroup")
    | {"ssm:GetParameter ssm:parameter${ApiKeysParameter}", "kms:Decrypt ApiKeysKmsKeyArn"}
    | table("GetItem", "BatchGetItem", "Query", "PutItem", "UpdateItem", "DeleteItem")
    | table("BatchWriteItem")
    | {"dynamodb:Query ${Table.Arn}/index/by_tenant"}
    | {"dynamodb:Query ${Table.Arn}/index/by_tenant_status"}
    | {"dynamodb:Query ${Table.Arn}/index/active", "dynamodb:Query ${Table.Arn}/index/due"}
    | {"sqs:SendMessage ChunkQueue.Arn", "sqs:SendMessage NotifyQueue.Arn"}
    | objects("PutObject", "inputs", "outputs", "uploads")
    | objects("GetObject", "results", "uploads", "inputs"),
    "ChunkWorkerFunction": logs("ChunkWorkerLogGroup")
    | sqs_source("ChunkQueue")
    | table("GetItem", "BatchGetItem", "PutItem", "UpdateItem")
    | objects("GetObject", "inputs")
    | objects("PutObject", "results"),
    "AggregatorFunction": logs("AggregatorLogGroup")
    | {
        f"dynamodb:{a} Table.StreamArn"
        for a in ("DescribeStream", "GetRecords", "GetShardIterator", "ListStreams")
    }
    | {"sqs:SendMessage StreamFailureQueue.Arn"}
    | table("GetItem", "Query", "PutItem", "UpdateItem")
    | {"sqs:SendMessage ChunkQueue.Arn", "sqs:SendMessage NotifyQueue.Arn"}
    | objects("GetObject", "results")
    | objects("PutObject", "outputs"),
    "NotifierFunction": logs("NotifierLogGroup")
    | sqs_source("NotifyQueue")
    | table("GetItem", "UpdateItem")
    | {"dynamodb:Query ${Table.Arn}/index/due", "sqs:SendMessage NotifyQueue.Arn"},
    "DeadLetterFunction": logs("DeadLetterLogGroup")
    | sqs_source("ChunkDeadLetterQueue")
    | table("GetItem", "BatchGetItem", "PutItem", "UpdateItem")
    | {"sqs:SendMessage ChunkQueue.Arn"}
    | objects("GetObject", "inputs")
    | objects("PutObject", "inputs", "results"),
    "ReconcilerFunction": logs("ReconcilerLogGroup")
    | table("GetItem", "BatchGetItem", "Query", "PutItem", "UpdateItem", "DeleteItem")
    | {"dynamodb:Query ${Table.Arn}/index/active"}
    | {"sqs:SendMessage ChunkQueue.Arn", "sqs:SendMessage NotifyQueue.Arn"}
    | objects("GetObject", "results", "inputs")
    | objects("PutObject", "outputs", "inputs"),
    "JobObjectsFunction": logs("JobObjectsLogGroup")
    | {
        f"dynamodb:{a} Table.StreamArn"
        for a in ("DescribeStream", "GetRecords", "GetShardIterator", "ListStreams")
    }
    | {"sqs:SendMessage JobObjectsFailureQueue.Arn", "s3:ListBucket bucket"}
    | objects("DeleteObject", "inputs", "results", "outputs"),
    "S3IngestFunction": logs("S3IngestLogGroup")
    | {"sqs:SendMessage IngestFailureQueue.Arn"}
    | table("GetItem", "PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem")
    | {"sqs:SendMessage ChunkQueue.Arn"}
    | objects("GetObject", "jobs")
    | objects("PutObject", "inputs"),
}


def describe(resource: Any) -> str:
    """A policy resource as text: `Table.Arn`, `${Table.Arn}/index/due`, `bucket/inputs/*`."""
    if isinstance(resource, str):
        return resource
    [(function, argument)] = resource.items()
    if function == "Fn::GetAtt":
        return ".".join(argument)
    if function == "Ref":
        return str(argument)
    if function == "Fn::Sub":
        text = argument if isinstance(argument, str) else argument[0]
        return text.replace(BUCKET, "bucket").replace(PARAMETER, "ssm:parameter")
    raise AssertionError(f"unexpected resource {resource!r}")


def statements(role: Template) -> Iterator[Template]:
    """Every statement of a role's inline policies; a conditional one (`Fn::If`) as the
    statement it may become, so the table holds the most a role can be given."""
    for policy in role["Properties"].get("Policies", []):
        for statement in policy["PolicyDocument"]["Statement"]:
            if "Fn::If" in statement:
                statement = statement["Fn::If"][1]
            yield statement


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def grants(role: Template) -> set[str]:
    return {
        f"{action} {describe(resource)}"
        for statement in statements(role)
        if statement["Effect"] == "Allow"
        for action in as_list(statement["Action"])
        for resource in as_list(statement["Resource"])
    }


def role_of(template: Template, function: str) -> Template:
    role = template["Resources"][function]["Properties"]["Role"]
    assert set(role) == {"Fn::GetAtt"}, f"{function}'s role is not one of the template's"
    resource: Template = template["Resources"][role["Fn::GetAtt"][0]]
    return resource


def allowed(template: Template) -> dict[str, set[str]]:
    functions = of_type(template, "AWS::Lambda::Function")
    return {name: grants(role_of(template, name)) for name in functions}


def printed(table: dict[str, set[str]]) -> str:
    return "\n".join(f"{name}:\n  " + "\n  ".join(sorted(table[name])) for name in sorted(table))


@pytest.fixture(scope="module")
def expanded() -> Template:
    return expand(sam_template())


def test_each_function_is_allowed_exactly_what_the_table_says(expanded: Template) -> None:
    found = allowed(expanded)
    grown = {f: sorted(found[f] - ALLOWED.get(f, set())) for f in found}
    gone = {f: sorted(ALLOWED[f] - found.get(f, set())) for f in ALLOWED}
    assert not any(grown.values()) and not any(gone.values()), (
        f"grown: {json.dumps(grown, indent=1)}\ngone: {json.dumps(gone, indent=1)}\n"
        f"the roles now allow:\n{printed(found)}"
    )


def test_a_grown_statement_is_caught() -> None:
    """The check above can fail: the chunk worker (which runs user code) given Scan."""
    template = sam_template()
    role = template["Resources"]["ChunkWorkerRole"]["Properties"]
    statement = next(
        s for s in role["Policies"][0]["PolicyDocument"]["Statement"] if s.get("Sid") == "Table"
    )
    statement["Action"].append("dynamodb:Scan")
    found = allowed(expand(template))
    assert found["ChunkWorkerFunction"] - ALLOWED["ChunkWorkerFunction"] == {
        "dynamodb:Scan Table.Arn"
    }


def test_no_role_has_a_managed_policy_a_wildcard_or_a_second_function(expanded: Template) -> None:
    """SAM's policy templates and event-source policies bring `Resource: "*"` and actions the
    code never uses; every function here has a role of its own with written-out statements."""
    roles = of_type(expanded, "AWS::IAM::Role")
    used = [role_of(expanded, f) for f in of_type(expanded, "AWS::Lambda::Function")]
    assert len({id(role) for role in used}) == len(used) == len(roles)
    for name, role in roles.items():
        assert "ManagedPolicyArns" not in role["Properties"], name
        for statement in statements(role):
            actions, resources = as_list(statement["Action"]), as_list(statement["Resource"])
            assert not any(a == "*" or a.endswith(":*") for a in actions), name
            assert "*" not in resources, name
            assert statement["Effect"] == "Allow" and "NotAction" not in statement, name


def test_every_function_may_write_its_own_log_group_only(expanded: Template) -> None:
    for name, function in of_type(expanded, "AWS::Lambda::Function").items():
        group = function["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
        assert expanded["Resources"][group]["Type"] == "AWS::Logs::LogGroup"
        log_grants = {g for g in grants(role_of(expanded, name)) if g.startswith("logs:")}
        assert log_grants == logs(group), name


def test_each_event_source_reads_with_the_role_of_its_function(expanded: Template) -> None:
    """Lambda's event sources poll with the function's role: each SQS source may receive from
    and delete on its own queue, the stream source read its stream, nothing else."""
    for mapping in of_type(expanded, "AWS::Lambda::EventSourceMapping").values():
        function = function_of(expanded, mapping["Properties"]["FunctionName"])
        assert function is not None
        source = mapping["Properties"]["EventSourceArn"]["Fn::GetAtt"]
        role_grants = grants(role_of(expanded, function))
        if source[1] == "StreamArn":
            assert "dynamodb:GetRecords Table.StreamArn" in role_grants
        else:
            assert sqs_source(source[0]) <= role_grants, function


def test_the_job_objects_function_lists_only_the_prefixes_of_jobs(expanded: Template) -> None:
    """s3:ListBucket is on the bucket, not its keys: a condition keeps it to what holds jobs'
    objects (uploads/ and jobs/ hold files their uploaders named)."""
    [listing] = [
        s
        for s in statements(role_of(expanded, "JobObjectsFunction"))
        if "s3:ListBucket" in as_list(s["Action"])
    ]
    assert listing["Condition"] == {"StringLike": {"s3:prefix": LISTABLE}}
    others = [
        name
        for name in of_type(expanded, "AWS::Lambda::Function")
        if any(
            a in ("s3:ListBucket", "s3:DeleteObject")
            for s in statements(role_of(expanded, name))
            for a in as_list(s["Action"])
        )
    ]
    assert others == ["JobObjectsFunction"]
