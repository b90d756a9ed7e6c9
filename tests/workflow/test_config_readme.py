"""config/README.md is what docs/config_reference.py generates from the schema, and names every key."""

import importlib.util
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _generator():
    spec = importlib.util.spec_from_file_location("config_reference", ROOT / "docs/config_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _schema_keys(node, out):
    """Every property name of the schema, nested objects and $defs included."""
    if isinstance(node, dict):
        for key, value in node.get("properties", {}).items():
            out.add(key)
            _schema_keys(value, out)
        for key, value in node.items():
            if key != "properties":
                _schema_keys(value, out)
    elif isinstance(node, list):
        for value in node:
            _schema_keys(value, out)
    return out


def test_config_readme_is_generated_from_the_schema():
    expected = _generator().generate()
    actual = (ROOT / "config/README.md").read_text()
    assert actual == expected, "config/README.md is stale: run python docs/config_reference.py > config/README.md"


def test_every_schema_key_has_a_row():
    schema = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
    lines = (ROOT / "config/README.md").read_text().splitlines()
    rows = {line.split("|")[1].strip().strip("`").rsplit(".", 1)[-1] for line in lines if line.startswith("| `")}
    sections = {line[3:].strip() for line in lines if line.startswith("## ")}
    assert set(schema["properties"]) <= sections, "a top-level config key without its section"
    missing = sorted(_schema_keys(schema, set()) - rows - set(schema["properties"]))
    assert not missing, f"schema keys missing from config/README.md: {missing}"


def test_a_key_without_any_description_is_refused(monkeypatch):
    gen = _generator()
    schema = yaml.safe_load(gen.SCHEMA.read_text())
    schema["properties"]["answer"]["properties"]["colour"] = {"type": "string"}
    monkeypatch.setattr(gen.yaml, "safe_load", lambda text, _real=yaml.safe_load: (
        schema if "$schema" in text else _real(text)))
    try:
        gen.generate()
    except SystemExit as e:
        assert "answer.colour" in str(e)
    else:
        raise AssertionError("a key without a description was documented")
