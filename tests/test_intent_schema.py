"""The intent schemas: go-compat (both styles, every kind, both sides of every rule), the built-in schema's
hint, the operator's own JSON Schema files (draft-07 and 2020-12), the Intent record and lone surrogates."""

from __future__ import annotations

import copy
import json
import pickle
from pathlib import Path
from typing import Any

import pytest

from conductor_loop.intent import KUBERNETES, Intent
from conductor_loop.intent_schema import BUILTIN, GO_COMPAT, SchemaLoadError, load_schema
from conductor_loop.intent_schema.base import IntentSchema, shown
from conductor_loop.validate import ValidationError, parse_intent
from intent_fixtures import KINDS, flat, k8s

HINT = "looks like a Kubernetes-style intent: run with --intent-schema go-compat to accept the Go loop's formats"


def go(doc: Any) -> Intent:
    return parse_intent(json.dumps(doc).encode(), GO_COMPAT)


def go_reason(doc: Any) -> str:
    with pytest.raises(ValidationError) as info:
        go(doc)
    return info.value.reason


def with_meta(doc: dict[str, Any], **over: Any) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    doc["metadata"].update(over)
    return doc


# --- flat scaling style --------------------------------------------------------------------------------


def test_flat_go_intent_with_extra_keys_is_accepted() -> None:
    intent = go(flat(correlation_id="c-1", priority=7))
    assert (intent.style, intent.intent_type, intent.target, intent.namespace, intent.replicas) == (
        "flat", "scaling", "odu-high-phy", "oran-odu", 3)
    assert (intent.priority, intent.correlation_id, intent.scaling) == (7, "c-1", True)
    assert intent.data["timestamp"] == "2026-01-15T10:15:02Z"


@pytest.mark.parametrize("kind", ["scaling", "deployment", "service"])
def test_flat_intent_types_accepted(kind: str) -> None:
    assert go(flat(intent_type=kind)).intent_type == kind


@pytest.mark.parametrize(("value", "got"), [("configuration", "got 'configuration'"), (3, "got integer"),
                                            (None, "missing")])
def test_flat_intent_type_rejected(value: Any, got: str) -> None:
    assert go_reason(flat(intent_type=value)) == (
        f"go-compat: $.intent_type: must be one of scaling, deployment, service ({got})")


@pytest.mark.parametrize("key", ["target", "namespace"])
def test_flat_target_and_namespace_any_non_empty_string(key: str) -> None:
    assert getattr(go(flat(**{key: "Any Name_at.all"})), key) == "Any Name_at.all"
    assert go_reason(flat(**{key: ""})) == f"go-compat: $.{key}: must be a non-empty string, got an empty string"
    assert go_reason(flat(**{key: 5})) == f"go-compat: $.{key}: must be a non-empty string, got integer"
    assert go_reason(flat(**{key: None})) == f"go-compat: $.{key}: is required (a non-empty string)"


@pytest.mark.parametrize("value", [1, 100, 2.5, 50.0])
def test_flat_replicas_numbers_in_range(value: float) -> None:
    assert go(flat(replicas=value)).data["replicas"] == value


@pytest.mark.parametrize(("value", "what"), [
    (0, "must be from 1 to 100, got 0"),
    (101, "must be from 1 to 100, got 101"),
    (0.5, "must be from 1 to 100, got 0.5"),
    ("3", "must be a number, got string"),
    (True, "must be a number, got boolean"),
])
def test_flat_replicas_rejected(value: Any, what: str) -> None:
    assert go_reason(flat(replicas=value)) == f"go-compat: $.replicas: {what}"
    assert go_reason(flat(intent_type="deployment", replicas=value)) == f"go-compat: $.replicas: {what}"


def test_flat_replicas_required_for_scaling_only() -> None:
    assert go_reason(flat(replicas=None)) == "go-compat: $.replicas: is required (a number from 1 to 100)"
    for kind in ("deployment", "service"):
        intent = go(flat(intent_type=kind, replicas=None))
        assert intent.replicas is None and not intent.scaling


@pytest.mark.parametrize("source", ["user", "planner", "test", None])
def test_flat_source_accepted(source: str | None) -> None:
    assert go(flat(source=source)).data.get("source") == source


@pytest.mark.parametrize(("source", "got"), [("robot", "got 'robot'"), ("", "got ''"), (1, "got integer")])
def test_flat_source_rejected(source: Any, got: str) -> None:
    assert go_reason(flat(source=source)) == f"go-compat: $.source: must be one of user, planner, test ({got})"


def test_api_version_without_kind_is_flat_style() -> None:
    doc = flat(apiVersion="nephoran.com/v1")
    assert go(doc).style == "flat"
    assert go_reason({"apiVersion": "nephoran.com/v1", "spec": {}}).startswith("go-compat: $.intent_type:")


# --- Kubernetes style ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_accepted(kind: str) -> None:
    intent = go(k8s(kind))
    assert (intent.style, intent.intent_type, intent.namespace) == (KUBERNETES, kind, "oran-odu")
    assert intent.scaling is (kind == "ScalingIntent")


@pytest.mark.parametrize("version", ["nephoran.com/v1", "v1", "apps/v1", "intent.nephoran.io/v1beta2", "x/v2alpha1"])
def test_api_version_accepted(version: str) -> None:
    assert go(dict(k8s(), apiVersion=version)).style == KUBERNETES


@pytest.mark.parametrize(("version", "got"), [
    ("nephoran.com/", "'nephoran.com/'"), ("V1", "'V1'"), ("nephoran.com/1", "'nephoran.com/1'"),
    ("Nephoran.com/v1", "'Nephoran.com/v1'"), ("a/b/v1", "'a/b/v1'"), ("", "''"), (1, "integer"),
])
def test_api_version_rejected(version: Any, got: str) -> None:
    assert go_reason(dict(k8s(), apiVersion=version)) == (
        f"go-compat: $.apiVersion: must look like group/v1 or v1, got {got}")


@pytest.mark.parametrize("kind", ["Intent", "scalingintent", "Deployment"])
def test_kind_rejected(kind: str) -> None:
    assert go_reason(dict(k8s(), kind=kind)) == (
        "go-compat: $.kind: must be one of NetworkIntent, ResourceIntent, ScalingIntent, DeploymentIntent, "
        f"ServiceIntent (got {kind!r})")


@pytest.mark.parametrize("key", ["name", "namespace"])
def test_metadata_names_dns1123_subdomain(key: str) -> None:
    for good in ("odu", "odu-1.v2", "a" * 253, "0"):
        assert go(with_meta(k8s(), **{key: good})).data["metadata"][key] == good
    for bad in ("Odu", "odu_1", "-odu", "odu.", "a" * 254, "", "od u"):
        reason = go_reason(with_meta(k8s(), **{key: bad}))
        assert reason.startswith(f"go-compat: $.metadata.{key}: must be a DNS-1123 subdomain"), reason
        assert reason.endswith(f"got {shown(bad)}")  # a 254-character value is cut
    assert go_reason(with_meta(k8s(), **{key: 3})).endswith("got integer")


def test_metadata_optional_but_an_object() -> None:
    doc = k8s()
    del doc["metadata"]
    intent = go(doc)
    assert intent.namespace is None and intent.correlation_id is None
    assert go_reason(dict(k8s(), metadata="x")) == "go-compat: $.metadata: must be an object, got string"
    no_names = with_meta(k8s())
    del no_names["metadata"]["name"], no_names["metadata"]["namespace"]
    assert go(no_names).namespace is None


@pytest.mark.parametrize("labels", [
    {}, {"app": "odu"}, {"app.kubernetes.io/name": "O-d_u.1"}, {"a": ""}, {"x" * 63: "y" * 63},
    {"example.com/Tier_1": "v"},
])
def test_labels_accepted(labels: dict[str, str]) -> None:
    assert go(with_meta(k8s(), labels=labels)).data["metadata"]["labels"] == labels


@pytest.mark.parametrize(("labels", "where", "what"), [
    ({"bad key": "v"}, '["bad key"]', "not a label key: the name 'bad key'"),
    ({"-app": "v"}, '["-app"]', "not a label key: the name '-app'"),
    ({"x" * 64: "v"}, "." + "x" * 64, "not a label key: the name"),
    ({"Example.com/app": "v"}, '["Example.com/app"]', "not a label key: the prefix 'Example.com'"),
    ({"/app": "v"}, '["/app"]', "not a label key: the prefix ''"),
    ({"a/b/c": "v"}, '["a/b/c"]', "not a label key: the prefix 'a/b'"),
    ({"app": "-odu"}, ".app", "not a label value"),
    ({"app": "y" * 64}, ".app", "not a label value"),
    ({"app": "a b"}, ".app", "not a label value"),
    ({"app": 3}, ".app", "must be a string, got integer"),
])
def test_labels_rejected(labels: dict[str, Any], where: str, what: str) -> None:
    reason = go_reason(with_meta(k8s(), labels=labels))
    assert reason.startswith(f"go-compat: $.metadata.labels{where}: {what}"), reason


def test_labels_must_be_an_object() -> None:
    assert go_reason(with_meta(k8s(), labels=["a"])) == "go-compat: $.metadata.labels: must be an object, got array"


def test_spec_required_object() -> None:
    doc = k8s()
    del doc["spec"]
    assert go_reason(doc) == "go-compat: $.spec: is required (an object)"
    assert go_reason(dict(k8s(), spec=[])) == "go-compat: $.spec: must be an object, got array"


# --- per kind ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("action", ["deploy", "scale", "update", "delete"])
def test_network_actions_accepted(action: str) -> None:
    assert go(k8s("NetworkIntent", action=action)).data["spec"]["action"] == action


@pytest.mark.parametrize(("action", "got"), [("create", "got 'create'"), (None, "missing"), (1, "got integer")])
def test_network_action_rejected(action: Any, got: str) -> None:
    assert go_reason(k8s("NetworkIntent", action=action)) == (
        f"go-compat: $.spec.action: must be one of deploy, scale, update, delete ({got})")


def test_network_optional_parts_may_be_absent() -> None:
    assert go(k8s("NetworkIntent", target=None, parameters=None, constraints=None)).intent_type == "NetworkIntent"
    assert go(k8s("NetworkIntent", parameters={})).intent_type == "NetworkIntent"
    assert go(k8s("NetworkIntent", parameters={"networkFunctions": []})).intent_type == "NetworkIntent"


def network_fn(**over: Any) -> dict[str, Any]:
    fn: dict[str, Any] = {"name": "upf", "type": "5g-core", "resources": {"cpu": "2", "memory": "4Gi"}}
    fn.update(over)
    return k8s("NetworkIntent", parameters={"networkFunctions": [{"name": "amf", "type": "x"},
                                                                 {k: v for k, v in fn.items() if v is not None}]})


@pytest.mark.parametrize(("doc", "reason"), [
    (k8s("NetworkIntent", target="edge"), "$.spec.target: must be an object, got string"),
    (k8s("NetworkIntent", constraints=[]), "$.spec.constraints: must be an object, got array"),
    (k8s("NetworkIntent", parameters="x"), "$.spec.parameters: must be an object, got string"),
    (k8s("NetworkIntent", parameters={"networkFunctions": {}}),
     "$.spec.parameters.networkFunctions: must be an array, got object"),
    (k8s("NetworkIntent", parameters={"networkFunctions": ["upf"]}),
     "$.spec.parameters.networkFunctions[0]: must be an object, got string"),
    (network_fn(name=""),
     "$.spec.parameters.networkFunctions[1].name: must be a non-empty string, got an empty string"),
    (network_fn(name=None), "$.spec.parameters.networkFunctions[1].name: is required (a non-empty string)"),
    (network_fn(type=7), "$.spec.parameters.networkFunctions[1].type: must be a non-empty string, got integer"),
    (network_fn(resources=[]), "$.spec.parameters.networkFunctions[1].resources: must be an object, got array"),
    (network_fn(resources={"cpu": ""}),
     "$.spec.parameters.networkFunctions[1].resources.cpu: must be a non-empty string, got an empty string"),
    (network_fn(resources={"memory": 4}),
     "$.spec.parameters.networkFunctions[1].resources.memory: must be a non-empty string, got integer"),
    (network_fn(resources={"storage": None, "cpu": "1"}),
     "$.spec.parameters.networkFunctions[1].resources.storage: must be a non-empty string, got null"),
    (k8s("NetworkIntent", parameters={"connectivity": {"n3": 24}}),
     "$.spec.parameters.connectivity.n3: must be a string, got integer"),
    (k8s("NetworkIntent", parameters={"connectivity": "n3"}),
     "$.spec.parameters.connectivity: must be an object, got string"),
    (k8s("NetworkIntent", parameters={"sla": {"latency": 10}}),
     "$.spec.parameters.sla.latency: must be a string, got integer"),
    (k8s("NetworkIntent", parameters={"sla": []}), "$.spec.parameters.sla: must be an object, got array"),
])
def test_network_rules_rejected(doc: dict[str, Any], reason: str) -> None:
    assert go_reason(doc) == f"go-compat: {reason}"


def test_network_function_without_resources_and_other_keys_is_fine() -> None:
    assert go(network_fn(resources=None, version="1.2")).intent_type == "NetworkIntent"
    assert go(network_fn(resources={"gpu": 1})).intent_type == "NetworkIntent"


def test_resource_intent_action() -> None:
    assert go(k8s("ResourceIntent", action="anything at all")).intent_type == "ResourceIntent"
    assert go_reason(k8s("ResourceIntent", action="")) == (
        "go-compat: $.spec.action: must be a non-empty string, got an empty string")
    assert go_reason(k8s("ResourceIntent", action=None)) == "go-compat: $.spec.action: is required (a non-empty string)"
    assert go_reason(k8s("ResourceIntent", action=["x"])) == (
        "go-compat: $.spec.action: must be a non-empty string, got array")


@pytest.mark.parametrize("replicas", [1, 100, 7.5])
def test_scaling_intent_replicas_accepted(replicas: float) -> None:
    assert go(k8s("ScalingIntent", replicas=replicas)).data["spec"]["replicas"] == replicas


@pytest.mark.parametrize(("replicas", "what"), [
    (0, "must be from 1 to 100, got 0"), (101, "must be from 1 to 100, got 101"),
    ("4", "must be a number, got string"), (None, "is required (a number from 1 to 100)"),
])
def test_scaling_intent_replicas_rejected(replicas: Any, what: str) -> None:
    assert go_reason(k8s("ScalingIntent", replicas=replicas)) == f"go-compat: $.spec.replicas: {what}"


def test_deployment_intent_target() -> None:
    assert go(k8s("DeploymentIntent", target="ric")).target == "ric"
    assert go_reason(k8s("DeploymentIntent", target="")) == (
        "go-compat: $.spec.target: must be a non-empty string, got an empty string")
    assert go_reason(k8s("DeploymentIntent", target=None)) == (
        "go-compat: $.spec.target: is required (a non-empty string)")
    assert go_reason(k8s("DeploymentIntent", target={"name": "ric"})) == (
        "go-compat: $.spec.target: must be a non-empty string, got object")


def test_service_intent_ports() -> None:
    assert go(k8s("ServiceIntent", ports=[])).intent_type == "ServiceIntent"
    assert go_reason(k8s("ServiceIntent", ports={"http": 80})) == (
        "go-compat: $.spec.ports: must be an array, got object")
    assert go_reason(k8s("ServiceIntent", ports=None)) == "go-compat: $.spec.ports: is required (an array)"


# --- the Intent record in both styles --------------------------------------------------------------------


def test_kubernetes_fields_priority_and_correlation_from_annotations_first() -> None:
    doc = with_meta(k8s("ScalingIntent"), annotations={"nephoran.io/correlation-id": "from-annotation"},
                    labels={"nephoran.io/correlation-id": "from-label"})
    intent = go(doc)
    assert (intent.target, intent.namespace, intent.replicas, intent.priority) == ("odu-high-phy", "oran-odu", 4, 9)
    assert intent.correlation_id == "from-annotation"


@pytest.mark.parametrize(("annotations", "labels", "expected"), [
    ({"correlation_id": "a2"}, {"nephoran.io/correlation-id": "l1"}, "a2"),
    ({}, {"nephoran.io/correlation-id": "l1", "correlation_id": "l2"}, "l1"),
    ({"other": "x"}, {"correlation_id": "l2"}, "l2"),
    ({"nephoran.io/correlation-id": ""}, {"correlation_id": "l2"}, "l2"),
    ({}, {}, None),
])
def test_correlation_id_lookup_order(annotations: dict[str, str], labels: dict[str, str], expected: str | None) -> None:
    assert go(with_meta(k8s(), annotations=annotations, labels=labels)).correlation_id == expected


def test_flat_correlation_key_in_kubernetes_spec_is_not_used() -> None:
    assert go(k8s(correlation_id="in-spec")).correlation_id is None


@pytest.mark.parametrize(("priority", "expected"), [(0, 0), (10, 10), (11, 5), ("8", 5), (3.0, 3), (True, 5)])
def test_priority_both_styles(priority: Any, expected: int) -> None:
    assert go(flat(priority=priority)).priority == expected
    assert go(k8s(priority=priority)).priority == expected


def test_defaults_when_absent() -> None:
    assert go(k8s("ServiceIntent")).priority == 5
    assert go(flat()).priority == 5 and go(flat()).correlation_id is None


# --- the built-in schema and its hint ---------------------------------------------------------------------


def builtin_reason(doc: Any) -> str:
    with pytest.raises(ValidationError) as info:
        parse_intent(json.dumps(doc).encode())
    return info.value.reason


@pytest.mark.parametrize("kind", KINDS)
def test_builtin_rejects_kubernetes_style_with_the_hint(kind: str) -> None:
    assert builtin_reason(k8s(kind)) == f"unknown field(s): apiVersion, kind, metadata, spec; {HINT}"


def test_builtin_hint_only_for_kubernetes_style() -> None:
    assert builtin_reason(flat()) == "unknown field(s): timestamp"
    assert HINT not in builtin_reason({"apiVersion": "v1", "spec": {}})
    assert HINT not in builtin_reason({"kind": "ScalingIntent", "spec": {}})


def test_builtin_still_accepts_its_intents() -> None:
    intent = parse_intent(json.dumps(flat(timestamp=None)).encode())
    assert (intent.style, intent.scaling, intent.replicas) == ("flat", True, 3)
    assert parse_intent(json.dumps(flat(timestamp=None, intent_type="deployment")).encode()).scaling


# --- load_schema and pickling -----------------------------------------------------------------------------


def test_names_and_typos() -> None:
    assert load_schema("builtin") is BUILTIN and load_schema(" go-compat ") is GO_COMPAT
    for bad in ("go_compat", "strict", ""):
        with pytest.raises(SchemaLoadError, match="use builtin, go-compat or the path of a JSON Schema file"):
            load_schema(bad)


@pytest.mark.parametrize("schema", [BUILTIN, GO_COMPAT])
def test_stateless_schemas_pickle_as_themselves(schema: IntentSchema) -> None:
    assert pickle.loads(pickle.dumps(schema)) is schema


# --- the operator's own JSON Schema -----------------------------------------------------------------------

DRAFT7 = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "required": ["intent_type", "target", "namespace"],
    "properties": {
        "intent_type": {"enum": ["scaling", "rollout"]},
        "replicas": {"type": "integer", "minimum": 1},
        "created": {"type": "string", "format": "date-time"},
        "ports": {"type": "array", "items": [{"type": "integer"}]},
    },
}
DRAFT2020 = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["kind", "spec"],
    "properties": {
        "kind": {"const": "ServiceIntent"},
        "spec": {"$ref": "#/$defs/spec"},
    },
    "$defs": {
        "spec": {
            "type": "object",
            "required": ["ports"],
            "properties": {"ports": {"type": "array", "prefixItems": [{"type": "integer"}], "minItems": 1}},
        },
    },
}


def user_schema(tmp_path: Path, doc: Any, name: str = "site.schema.json") -> IntentSchema:
    path = tmp_path / name
    path.write_text(json.dumps(doc) if not isinstance(doc, str) else doc)
    return load_schema(str(path))


def user_reason(schema: IntentSchema, doc: Any) -> str:
    with pytest.raises(ValidationError) as info:
        parse_intent(json.dumps(doc).encode(), schema)
    return info.value.reason


def test_draft7_user_schema_accepts_and_rejects(tmp_path: Path) -> None:
    schema = user_schema(tmp_path, DRAFT7)
    intent = parse_intent(json.dumps(flat(intent_type="rollout", anything={"goes": 1})).encode(), schema)
    assert (intent.intent_type, intent.target, intent.scaling) == ("rollout", "odu-high-phy", False)
    assert user_reason(schema, flat(replicas=0)) == (
        "schema site.schema.json: $.replicas: 0 is less than the minimum of 1")
    assert user_reason(schema, flat(target=None)) == "schema site.schema.json: $: 'target' is a required property"
    assert user_reason(schema, flat(created="2026-02-30T10:00:00Z")).startswith(
        "schema site.schema.json: $.created: '2026-02-30T10:00:00Z' is not a 'date-time'")
    assert parse_intent(json.dumps(flat(created="2026-02-28T10:00:00.5+01:00")).encode(), schema).replicas == 3
    # draft-07 array form of items: the first element must be an integer
    assert user_reason(schema, flat(ports=["http"])) == (
        "schema site.schema.json: $.ports[0]: 'http' is not of type 'integer'")


def test_2020_12_user_schema_accepts_and_rejects(tmp_path: Path) -> None:
    schema = user_schema(tmp_path, DRAFT2020, "k8s.json")
    doc = k8s("ServiceIntent", ports=[8080, "extra"])
    intent = parse_intent(json.dumps(doc).encode(), schema)
    assert (intent.style, intent.intent_type, intent.namespace) == (KUBERNETES, "ServiceIntent", "oran-odu")
    # prefixItems is a 2020-12 keyword: a draft-07 validator would ignore it
    assert user_reason(schema, k8s("ServiceIntent", ports=["http"])) == (
        "schema k8s.json: $.spec.ports[0]: 'http' is not of type 'integer'")
    assert user_reason(schema, k8s("ServiceIntent", ports=[])) == (
        "schema k8s.json: $.spec.ports: [] should be non-empty")
    assert user_reason(schema, dict(k8s("ServiceIntent"), kind="ScalingIntent")) == (
        "schema k8s.json: $.kind: 'ServiceIntent' was expected")


def test_user_schema_without_dollar_schema_is_2020_12(tmp_path: Path) -> None:
    doc = {k: v for k, v in DRAFT2020.items() if k != "$schema"}
    schema = user_schema(tmp_path, doc)
    assert "is not of type 'integer'" in user_reason(schema, k8s("ServiceIntent", ports=["http"]))


def test_user_schema_is_loaded_once_and_pickles_with_its_text(tmp_path: Path) -> None:
    schema = user_schema(tmp_path, DRAFT7)
    (tmp_path / "site.schema.json").write_text("{ not json any more")  # workers never read the file again
    copy_ = pickle.loads(pickle.dumps(schema))
    assert copy_ == schema and copy_ is not schema
    assert user_reason(copy_, flat(replicas=0)).endswith("0 is less than the minimum of 1")
    assert schema.spec == str(tmp_path / "site.schema.json")


def test_user_schema_with_unresolvable_ref_fails_the_intent_not_the_loop(tmp_path: Path) -> None:
    schema = user_schema(tmp_path, {"$schema": "https://json-schema.org/draft/2020-12/schema",
                                    "properties": {"spec": {"$ref": "#/$defs/missing"}}})
    assert user_reason(schema, k8s()).startswith("schema site.schema.json: cannot be applied:")


@pytest.mark.parametrize(("content", "problem"), [
    ("{ nope", "not JSON: Expecting property name enclosed in double quotes at line 1 column 3"),
    ('["type"]', "not a JSON Schema (the top level must be an object)"),
    ('{"type": "nope"}', "invalid schema at $.type: 'nope' is not valid under any of the given schemas"),
    ('{"$schema": "http://json-schema.org/draft-07/schema#", "minimum": "one"}',
     "invalid schema at $.minimum: 'one' is not of type 'number'"),
    ('{"$schema": "https://example.com/my-draft"}', "unknown $schema 'https://example.com/my-draft'"),
])
def test_broken_user_schema_names_file_and_problem(tmp_path: Path, content: str, problem: str) -> None:
    path = tmp_path / "broken.json"
    path.write_text(content)
    with pytest.raises(SchemaLoadError) as info:
        load_schema(str(path))
    assert str(info.value) == f"intent schema {path}: {problem}"


def test_missing_or_unreadable_schema_file(tmp_path: Path) -> None:
    with pytest.raises(SchemaLoadError, match=r"intent schema .*/absent\.json: not found"):
        load_schema(str(tmp_path / "absent.json"))
    with pytest.raises(SchemaLoadError, match="is a directory"):
        load_schema(str(tmp_path) + "/")
    (tmp_path / "latin1.json").write_bytes(b'{"title": "caf\xe9"}')
    with pytest.raises(SchemaLoadError, match="not UTF-8"):
        load_schema(str(tmp_path / "latin1.json"))


# --- lone surrogates: a safety rule of every schema ---------------------------------------------------------

ANY = {"$schema": "https://json-schema.org/draft/2020-12/schema"}


@pytest.mark.parametrize(("raw", "where"), [
    (b'{"intent_type": "scaling", "target": "odu", "namespace": "oran", "replicas": 3, "reason": "x\\udfff"}',
     "$.reason"),
    (b'{"apiVersion": "v1", "kind": "ServiceIntent", "spec": {"ports": [80, "\\ud800"]}}', "$.spec.ports[1]"),
    (b'{"metadata": {"labels": {"\\uDC00": "v"}}}', '$.metadata.labels (in the key "\\udc00")'),
    (b'{"a": {"b c": ["ok", {"d": "\\ud83d"}]}}', '$.a["b c"][1].d'),
])
def test_lone_surrogate_rejected_with_json_path_in_every_schema(tmp_path: Path, raw: bytes, where: str) -> None:
    for schema in (BUILTIN, GO_COMPAT, user_schema(tmp_path, ANY)):
        with pytest.raises(ValidationError) as info:
            parse_intent(raw, schema)
        reason = info.value.reason
        assert reason == f"lone surrogate escape at {where}: a \\uD800-\\uDFFF escape without its pair is not text"
        reason.encode("utf-8")  # the reason itself can always be recorded


def test_surrogate_pairs_and_escaped_backslashes_are_fine(tmp_path: Path) -> None:
    raw = json.dumps(flat(reason="\U0001f600", note="\\udfff")).encode()  # a real pair; a literal backslash-u
    assert b"\\ud83d\\ude00" in raw and b"\\\\udfff" in raw
    intent = parse_intent(raw, GO_COMPAT)
    assert intent.data["reason"] == "\U0001f600" and intent.data["note"] == "\\udfff"
