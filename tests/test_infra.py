"""The SAM template, expanded by aws-sam-translator as `sam deploy` would, then checked by cfn-lint
(which on its own does not look inside SAM resources) and by what the pipeline relies on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import lint
from cfnlint.decode import cfn_yaml
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator

from fanout.backends.aws import bootstrap, expiry
from fanout.backends.aws.outbox import idempotency_key
from fanout.backends.aws.table import chunk_key, job_key, plan_key, result_key
from fanout.models import ChunkRef, JobId, TenantId
from fanout.settings import Settings

TEMPLATE = Path(__file__).parents[1] / "infra" / "template.yaml"
ROOT = TEMPLATE.parents[1]
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/fanout:latest"
AGREED_SETTINGS = {
    "FANOUT_BACKEND",
    "FANOUT_TABLE",
    "FANOUT_CHUNK_QUEUE_URL",
    "FANOUT_DEAD_LETTER_QUEUE_URL",
    "FANOUT_NOTIFY_QUEUE_URL",
    "FANOUT_BUCKET",
    "FANOUT_RETENTION_DAYS",
    "FANOUT_TASKS",
}

Template = dict[str, Any]


def sam_template() -> Template:
    loaded: Template = json.loads(json.dumps(cfn_yaml.load(str(TEMPLATE))))
    return loaded


def expand(template: Template) -> Template:
    """What `sam deploy` sends to CloudFormation (ImageUri, which `sam build` fills in from the
    function's Metadata, set to a placeholder)."""
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            resource["Properties"]["ImageUri"] = IMAGE
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_DEFAULT_REGION", "us-east-1")  # the translator reads it, as boto3 does
        result: Template = Translator(None, Parser()).translate(
            template, parameter_values={}, get_managed_policy_map=lambda: {}
        )
    return result


@pytest.fixture(scope="module")
def expanded() -> Template:
    return expand(sam_template())


def of_type(template: Template, kind: str) -> dict[str, Template]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == kind}


def handlers(template: Template) -> dict[str, str]:
    functions = of_type(template, "AWS::Lambda::Function")
    return {name: f["Properties"]["ImageConfig"]["Command"][0] for name, f in functions.items()}


def function_of(template: Template, target: Any) -> str | None:
    """The function a `FunctionName` refers to: the function itself, or an alias of it (SAM's
    AutoPublishAlias points event sources at the alias)."""
    name = target.get("Ref") if isinstance(target, dict) else None
    resource = template["Resources"].get(name, {})
    if resource.get("Type") == "AWS::Lambda::Alias":
        return function_of(template, resource["Properties"]["FunctionName"])
    return name if resource.get("Type") == "AWS::Lambda::Function" else None


def mapping_of(template: Template, function: str) -> Template:
    for mapping in of_type(template, "AWS::Lambda::EventSourceMapping").values():
        if function_of(template, mapping["Properties"]["FunctionName"]) == function:
            return mapping
    raise AssertionError(f"{function} has no event source mapping")


def source_of(template: Template, mapping: Template) -> Template:
    arn = mapping["Properties"]["EventSourceArn"]["Fn::GetAtt"]
    resource: Template = template["Resources"][arn[0]]
    return resource


# -- a minimal evaluator of Lambda event filter patterns (the subset the template uses) --------
# https://docs.aws.amazon.com/lambda/latest/dg/invocation-eventfiltering.html


def matches(pattern: Any, value: Any) -> bool:
    if isinstance(pattern, dict):
        if not isinstance(value, dict):
            return False
        return all(key in value and matches(sub, value[key]) for key, sub in pattern.items())
    assert isinstance(pattern, list), f"unsupported filter rule {pattern!r}"
    return any(matches_rule(rule, value) for rule in pattern)


def matches_rule(rule: Any, value: Any) -> bool:
    if isinstance(rule, dict):
        assert set(rule) == {"prefix"}, f"unsupported filter rule {rule!r}"
        return isinstance(value, str) and value.startswith(rule["prefix"])
    return bool(rule == value)


def stream_record(event: str, key: dict[str, str], kind: str) -> Template:
    """A DynamoDB stream record about the item with this key and `kind` attribute (as the AWS
    store writes them), as Lambda delivers it: a REMOVE has the old image only."""
    keys = {name: {"S": value} for name, value in key.items()}
    image = {**keys, "kind": {"S": kind}}
    return {
        "eventName": event,
        "eventSource": "aws:dynamodb",
        "dynamodb": {
            "Keys": keys,
            "OldImage" if event == "REMOVE" else "NewImage": image,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        },
    }


def stream_filters(template: Template, function: str = "AggregatorFunction") -> list[Any]:
    mapping = mapping_of(template, function)
    filters = mapping["Properties"]["FilterCriteria"]["Filters"]
    return [json.loads(f["Pattern"]) for f in filters]


def passes(filters: list[Any], record: Template) -> bool:
    return any(matches(pattern, record) for pattern in filters)


# -- tests -------------------------------------------------------------------------------------


def test_the_expanded_template_has_no_cfn_lint_errors(expanded: Template) -> None:
    found = lint(json.dumps(expanded), regions=["us-east-1"])
    errors = [f"{m.rule.id} {m.message} (line {m.linenumber})" for m in found]
    assert not [e for e in errors if e.startswith("E")], "\n".join(errors)


def test_cfn_lint_finds_a_wrong_attribute_inside_a_sam_function() -> None:
    """The check above can fail: a bad GetAtt in an event source is caught after expansion."""
    template = sam_template()
    stream = template["Resources"]["AggregatorFunction"]["Properties"]["Events"]["ChunkResults"]
    stream["Properties"]["Stream"] = {"Fn::GetAtt": ["Table", "StreamName"]}
    found = lint(json.dumps(expand(template)), regions=["us-east-1"])
    assert any(m.rule.id.startswith("E") for m in found)


def test_every_function_names_a_handler_that_imports_and_is_callable(
    expanded: Template, tmp_path: Path
) -> None:
    """In a fresh interpreter, as Lambda's runtime client does (module path, then attribute);
    on the embedded backend, none of them imports boto3 (a cold start saves ~270 ms)."""
    names = sorted(set(handlers(expanded).values()))
    assert len(names) == 8
    script = (
        "import importlib, sys\n"
        "for name in sys.argv[1:]:\n"
        "    module, _, attribute = name.rpartition('.')\n"
        "    assert callable(getattr(importlib.import_module(module), attribute)), name\n"
        "assert 'boto3' not in sys.modules, 'boto3 imported on the embedded backend'\n"
    )
    env = {**os.environ, "FANOUT_DATA_DIR": str(tmp_path)}
    env.pop("FANOUT_BACKEND", None)
    run = subprocess.run(
        [sys.executable, "-c", script, *names], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr


def test_the_stream_filter_passes_only_inserts_of_chunk_results(expanded: Template) -> None:
    """With the AWS backend's own keys: a redelivered chunk's rewrite (MODIFY), an expiry
    (REMOVE), a split chunk's tombstone at its result key, and every other kind of item are not
    counted, so the aggregator is invoked only for what it counts."""
    filters = stream_filters(expanded)
    chunk = ChunkRef(JobId("0190aa"), 0, 250)
    assert passes(filters, stream_record("INSERT", result_key(chunk), "result"))
    assert not passes(filters, stream_record("MODIFY", result_key(chunk), "result"))
    assert not passes(filters, stream_record("REMOVE", result_key(chunk), "result"))
    assert not passes(filters, stream_record("INSERT", result_key(chunk), "split"))
    assert not passes(filters, stream_record("INSERT", job_key(chunk.job_id), "job"))
    assert not passes(filters, stream_record("INSERT", chunk_key(chunk), "chunk"))


def test_the_job_objects_filter_passes_only_removals_of_job_items(expanded: Template) -> None:
    """TTL's removal (or a delete) of a job item, and nothing else: not its insert or update,
    not the removal of any other item of the job or of the table."""
    filters = stream_filters(expanded, "JobObjectsFunction")
    job = JobId("0190aa")
    chunk = ChunkRef(job, 0, 250)
    assert passes(filters, stream_record("REMOVE", job_key(job), "job"))
    assert not passes(filters, stream_record("INSERT", job_key(job), "job"))
    assert not passes(filters, stream_record("MODIFY", job_key(job), "job"))
    others = [
        (result_key(chunk), "result"),
        (chunk_key(chunk), "chunk"),
        (plan_key(job, 0), "plan"),
        ({"pk": f"EVENT#evt_{job}", "sk": "EVENT"}, "event"),
        (idempotency_key(TenantId("tenant"), "key"), "idempotency"),
        ({"pk": "STREAM", "sk": "SHARD#1"}, "checkpoint"),
        ({"pk": "STREAM#job-objects", "sk": "SHARD#1"}, "checkpoint"),
    ]
    for key, kind in others:
        assert not passes(filters, stream_record("REMOVE", key, kind)), key


@pytest.mark.parametrize("function", ["AggregatorFunction", "JobObjectsFunction"])
def test_the_stream_is_retried_in_halves_from_the_oldest_record(
    expanded: Template, function: str
) -> None:
    stream = mapping_of(expanded, function)["Properties"]
    assert stream["StartingPosition"] == "TRIM_HORIZON"
    assert stream["BisectBatchOnFunctionError"] is True
    assert 0 <= stream["MaximumRetryAttempts"] < 10_000
    assert "OnFailure" in stream["DestinationConfig"]
    # A per-shard checkpoint needs one batch per shard at a time.
    assert stream.get("ParallelizationFactor", 1) == 1
    assert "FunctionResponseTypes" not in stream  # a failure retries the whole batch


@pytest.mark.parametrize(
    "function", ["ChunkWorkerFunction", "NotifierFunction", "DeadLetterFunction"]
)
def test_sqs_mappings_report_batch_item_failures_and_cap_concurrency(
    expanded: Template, function: str
) -> None:
    mapping = mapping_of(expanded, function)
    assert source_of(expanded, mapping)["Type"] == "AWS::SQS::Queue"
    properties = mapping["Properties"]
    assert properties["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert "MaximumConcurrency" in properties["ScalingConfig"]


def test_the_chunk_workers_concurrency_is_the_parameter(expanded: Template) -> None:
    scaling = mapping_of(expanded, "ChunkWorkerFunction")["Properties"]["ScalingConfig"]
    assert scaling["MaximumConcurrency"] == {"Ref": "MaxConcurrency"}


@pytest.mark.parametrize(
    "function", ["ChunkWorkerFunction", "NotifierFunction", "DeadLetterFunction"]
)
def test_each_queue_hides_a_message_six_times_as_long_as_its_function_may_run(
    expanded: Template, function: str
) -> None:
    """Lambda's guide for SQS event sources: visibility timeout at least six times the
    function's timeout, so retries of a throttled batch are not received twice."""
    timeout = expanded["Resources"][function]["Properties"]["Timeout"]
    queue = source_of(expanded, mapping_of(expanded, function))
    assert queue["Properties"]["VisibilityTimeout"] >= 6 * timeout


def test_the_chunk_queue_dead_letters_after_the_configured_receive_count(
    expanded: Template,
) -> None:
    redrive = expanded["Resources"]["ChunkQueue"]["Properties"]["RedrivePolicy"]
    assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": ["ChunkDeadLetterQueue", "Arn"]}
    assert redrive["maxReceiveCount"] == {"Ref": "MaxReceiveCount"}
    environment = expanded["Resources"]["ChunkWorkerFunction"]["Properties"]["Environment"]
    assert environment["Variables"]["FANOUT_MAX_RECEIVE_COUNT"] == {"Ref": "MaxReceiveCount"}


def test_the_table_has_the_agreed_keys_stream_and_ttl(expanded: Template) -> None:
    table = expanded["Resources"]["Table"]["Properties"]
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert {(k["AttributeName"], k["KeyType"]) for k in table["KeySchema"]} == {
        ("pk", "HASH"),
        ("sk", "RANGE"),
    }
    assert table["StreamSpecification"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}


def test_the_table_matches_what_fanout_aws_bootstrap_creates(expanded: Template) -> None:
    table = expanded["Resources"]["Table"]["Properties"]
    attributes = {a["AttributeName"]: a["AttributeType"] for a in table["AttributeDefinitions"]}
    assert attributes == bootstrap.ATTRIBUTES
    indexes = {
        index["IndexName"]: tuple(key["AttributeName"] for key in index["KeySchema"])
        for index in table["GlobalSecondaryIndexes"]
    }
    assert indexes == bootstrap.INDEXES
    projections = {
        index["IndexName"]: index["Projection"]["ProjectionType"]
        for index in table["GlobalSecondaryIndexes"]
    }
    assert projections == bootstrap.PROJECTIONS
    assert table["TimeToLiveSpecification"]["AttributeName"] == bootstrap.TTL_ATTRIBUTE


def test_every_variable_the_template_sets_is_a_setting(expanded: Template) -> None:
    """Settings ignore unknown FANOUT_ variables: a misspelt one would be silently lost."""
    known = {f"FANOUT_{name.upper()}" for name in Settings.model_fields}
    for name, function in of_type(expanded, "AWS::Lambda::Function").items():
        variables = set(function["Properties"]["Environment"]["Variables"])
        assert {v for v in variables if v.startswith("FANOUT_")} <= known, name


def test_every_function_is_configured_with_the_agreed_settings(expanded: Template) -> None:
    for name, function in of_type(expanded, "AWS::Lambda::Function").items():
        variables = function["Properties"]["Environment"]["Variables"]
        assert set(variables) >= AGREED_SETTINGS, name
        assert variables["FANOUT_BACKEND"] == "aws"


def test_only_the_api_function_reads_the_api_keys_and_only_from_ssm(expanded: Template) -> None:
    """No key sits in the template or an environment variable: the API function is told the
    SecureString's name, and only its role may read it."""
    assert "ApiKeys" not in expanded["Parameters"]
    functions = of_type(expanded, "AWS::Lambda::Function")
    for name, function in functions.items():
        variables = function["Properties"]["Environment"]["Variables"]
        assert "FANOUT_API_KEYS" not in variables, name
        assert ("FANOUT_API_KEYS_PARAMETER" in variables) == (name == "ApiFunction"), name
    readers = [
        name
        for name, role in of_type(expanded, "AWS::IAM::Role").items()
        if "ssm:GetParameter" in json.dumps(role)
    ]
    assert readers == ["ApiRole"]


def test_s3_input_files_under_jobs_trigger_the_ingest_function(expanded: Template) -> None:
    bucket = expanded["Resources"]["Bucket"]["Properties"]
    configs = bucket["NotificationConfiguration"]["LambdaConfigurations"]
    assert len(configs) == 1
    assert configs[0]["Event"] == "s3:ObjectCreated:*"
    assert configs[0]["Function"] == {"Fn::GetAtt": ["S3IngestFunction", "Arn"]}
    rules = configs[0]["Filter"]["S3Key"]["Rules"]
    assert rules == [{"Name": "prefix", "Value": "jobs/"}]


def test_the_reconciler_runs_on_a_schedule(expanded: Template) -> None:
    rules = of_type(expanded, "AWS::Events::Rule")
    targets = [t for rule in rules.values() for t in rule["Properties"]["Targets"]]
    assert {"Fn::GetAtt": ["ReconcilerFunction", "Arn"]} in [t["Arn"] for t in targets]


def test_the_outputs_name_the_api_url_bucket_and_table(expanded: Template) -> None:
    assert {"ApiUrl", "BucketName", "TableName"} <= set(expanded["Outputs"])


# -- operations: alarms, logs, lifecycle, backups, failure destinations, throttling --------------


def alarms_on(template: Template) -> dict[tuple[str, str], Template]:
    """Alarms by (metric, the resource its dimension names)."""
    found = {}
    for alarm in of_type(template, "AWS::CloudWatch::Alarm").values():
        properties = alarm["Properties"]
        [dimension] = properties["Dimensions"]
        value = dimension["Value"]
        target = value.get("Ref") or value["Fn::GetAtt"][0]
        found[properties["MetricName"], target] = properties
    return found


def test_every_failure_an_operator_must_see_raises_an_alarm_to_the_topic(
    expanded: Template,
) -> None:
    alarms = alarms_on(expanded)
    expected = {
        ("ApproximateAgeOfOldestMessage", "ChunkDeadLetterQueue"),
        ("ApproximateNumberOfMessagesVisible", "NotifyDeadLetterQueue"),
        ("ApproximateNumberOfMessagesVisible", "StreamFailureQueue"),
        ("ApproximateNumberOfMessagesVisible", "IngestFailureQueue"),
        ("ApproximateAgeOfOldestMessage", "NotifyQueue"),
        ("IteratorAge", "AggregatorFunction"),
        ("ApproximateNumberOfMessagesVisible", "JobObjectsFailureQueue"),
        ("IteratorAge", "JobObjectsFunction"),
        ("5xx", "HttpApi"),
    }
    functions = set(of_type(expanded, "AWS::Lambda::Function"))
    expected |= {(metric, f) for f in functions for metric in ("Errors", "Throttles")}
    assert set(alarms) == expected
    for key, alarm in alarms.items():
        assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}], key
        assert alarm["TreatMissingData"] == "notBreaching", key  # no data: nothing happened


def test_the_alarm_email_is_optional(expanded: Template) -> None:
    subscription = expanded["Resources"]["AlarmEmailSubscription"]
    assert subscription["Condition"] == "HasAlarmEmail"
    assert expanded["Parameters"]["AlarmEmail"]["Default"] == ""
    assert subscription["Properties"]["Endpoint"] == {"Ref": "AlarmEmail"}


def test_every_log_group_keeps_logs_for_the_retention_parameter(expanded: Template) -> None:
    groups = of_type(expanded, "AWS::Logs::LogGroup")
    assert len(groups) == len(of_type(expanded, "AWS::Lambda::Function")) + 1  # + API access
    for name, group in groups.items():
        assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}, name
    stage = next(iter(of_type(expanded, "AWS::ApiGatewayV2::Stage").values()))
    assert stage["Properties"]["AccessLogSettings"]["DestinationArn"] == {
        "Fn::GetAtt": ["ApiAccessLogGroup", "Arn"]
    }


def test_the_bucket_expires_job_objects_only_as_a_backstop_long_after_the_longest_run(
    expanded: Template,
) -> None:
    """A job's objects go with its job item (JobObjectsFunction); the lifecycle age on the whole
    bucket is only a backstop, by default longer than the retention after a longest run and a
    redrive's, so no object goes while its job may still read it. Uploads and input files under
    jobs/ belong to no job id and keep ages of their own."""
    rules = expanded["Resources"]["Bucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    whole = [r for r in rules if "Prefix" not in r and "Filter" not in r]
    assert [r["ExpirationInDays"] for r in whole] == [{"Ref": "ObjectBackstopDays"}]
    by_prefix = {r["Prefix"]: r["ExpirationInDays"] for r in rules if "Prefix" in r}
    assert by_prefix == {"uploads/": 2, "jobs/": {"Ref": "RetentionDays"}}
    assert all(r["Status"] == "Enabled" for r in rules)
    parameters = expanded["Parameters"]
    longest_run_days = expiry.LONGEST_RUN / 86400
    backstop = parameters["ObjectBackstopDays"]
    assert backstop["Default"] >= parameters["RetentionDays"]["Default"] + 2 * longest_run_days
    assert backstop["MinValue"] > longest_run_days


def test_point_in_time_recovery_is_a_parameter_on_by_default(expanded: Template) -> None:
    table = expanded["Resources"]["Table"]["Properties"]
    assert table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] == {
        "Fn::If": ["PitrEnabled", True, False]
    }
    assert expanded["Parameters"]["PointInTimeRecovery"]["Default"] == "true"


def test_a_failed_ingest_lands_in_its_failure_queue(expanded: Template) -> None:
    configs = of_type(expanded, "AWS::Lambda::EventInvokeConfig")
    [config] = [
        c
        for c in configs.values()
        if c["Properties"]["FunctionName"] == {"Ref": "S3IngestFunction"}
    ]
    destination = config["Properties"]["DestinationConfig"]["OnFailure"]["Destination"]
    assert destination == {"Fn::GetAtt": ["IngestFailureQueue", "Arn"]}


def test_the_api_stage_is_throttled_by_the_parameters(expanded: Template) -> None:
    stage = next(iter(of_type(expanded, "AWS::ApiGatewayV2::Stage").values()))
    settings = stage["Properties"]["DefaultRouteSettings"]
    assert settings["ThrottlingRateLimit"] == {"Ref": "ApiThrottleRateLimit"}
    assert settings["ThrottlingBurstLimit"] == {"Ref": "ApiThrottleBurstLimit"}


@pytest.mark.parametrize(
    ("function", "parameter"),
    [
        ("ApiFunction", "ApiProvisionedConcurrency"),
        ("ChunkWorkerFunction", "ChunkWorkerProvisionedConcurrency"),
    ],
)
def test_provisioned_concurrency_is_a_parameter_off_by_default(
    expanded: Template, function: str, parameter: str
) -> None:
    """The cold-start option that applies to container images (SnapStart does not)."""
    assert expanded["Parameters"][parameter]["Default"] == 0
    aliases = [
        a
        for a in of_type(expanded, "AWS::Lambda::Alias").values()
        if a["Properties"]["FunctionName"] == {"Ref": function}
    ]
    [alias] = aliases
    assert parameter in json.dumps(alias["Properties"]["ProvisionedConcurrencyConfig"])
