"""Random documents through the manifest loader: a clean ManifestError or a valid Manifest, never
an unhandled exception."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from toolkit.manifest import Manifest, ManifestError, parse_manifest, read_document

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=20))
json_like = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)

field_names = st.sampled_from(
    ["name", "version", "description", "binding", "auth", "requires", "settings", "actions", "extra"]
)
action = st.fixed_dictionaries(
    {},
    optional={
        "name": st.one_of(st.text(max_size=10), st.sampled_from(["calc", "a b", ""])),
        "description": st.one_of(st.text(max_size=10), json_like),
        "input_schema": st.one_of(json_like, st.fixed_dictionaries({"type": st.sampled_from(["object", "strin", 3])})),
        "timeout_s": st.one_of(st.floats(), st.integers(), st.text(max_size=3)),
        "annotations": st.one_of(json_like, st.fixed_dictionaries({"read_only": scalars})),
        "examples": st.one_of(
            json_like, st.lists(st.fixed_dictionaries({"task": scalars, "arguments": json_like}), max_size=2)
        ),
    },
)
binding = st.one_of(
    json_like,
    st.fixed_dictionaries(
        {"type": st.sampled_from(["python", "http", "openapi", "mcp", "ftp", 1])},
        optional={"module": scalars, "base_url": scalars, "spec": scalars, "command": json_like, "url": scalars},
    ),
)
manifest_like = st.fixed_dictionaries(
    {},
    optional={
        "name": st.one_of(st.text(max_size=10), st.sampled_from(["math", "Bad-Name"]), json_like),
        "description": st.one_of(st.text(max_size=10), json_like),
        "binding": binding,
        "actions": st.one_of(json_like, st.lists(action, max_size=3)),
        "auth": st.one_of(json_like, st.fixed_dictionaries({"env": json_like})),
        "settings": json_like,
    },
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(json_like, manifest_like))
def test_random_documents_end_cleanly(doc):
    try:
        result = parse_manifest(doc, "fuzz.yaml")
    except ManifestError as exc:
        assert exc.errors and all(isinstance(p, str) and isinstance(m, str) for p, m in exc.errors)
        assert all(line.startswith("fuzz.yaml: ") for line in exc.lines())
    else:
        assert isinstance(result, Manifest)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.sampled_from([".yaml", ".json"]))
def test_random_bytes_on_disk_end_cleanly(tmp_path_factory, data, suffix):
    path = tmp_path_factory.getbasetemp() / f"fuzz_manifest{suffix}"  # one file, rewritten per example
    path.write_bytes(data)
    try:
        parse_manifest(read_document(path), str(path))
    except ManifestError as exc:
        assert str(path) in str(exc)
