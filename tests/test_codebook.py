from pathlib import Path

import pytest
import yaml

from pipeline.codebook import load_codebook, parse_codebook
from pipeline.errors import UserError
from pipeline.paths import default_codebook


def test_dimension_ids_are_the_contract():
    cb = load_codebook()
    assert cb.ids("stage") == ["load_model", "node_conversion", "optimization", "export", "validation",
                               "not_distinguishable"]
    assert cb.ids("symptom") == ["crash", "wrong_model", "bad_performance", "build_failure", "hang", "unreported"]
    assert set(cb.ids("cause")) == {
        "api_misuse", "incompatibility", "type_problem", "shape_problem", "incorrect_numerical_computation",
        "incorrect_assignment", "incorrect_exception_handling", "misconfiguration", "concurrency",
        "algorithmic_error", "typo", "testing", "documentation", "others"}
    assert cb.subtypes("incompatibility") == ["internal", "external", "resource"]
    assert cb.subtypes("type_problem") == ["node", "tensor", "conventional"]
    assert cb.subtypes("typo") == []
    assert cb.version


def test_every_category_has_display_and_definition():
    cb = load_codebook()
    for dim in ("stage", "symptom", "cause"):
        for cat in cb.dimensions[dim].categories:
            assert cat.display and len(cat.definition) > 20, cat.id


@pytest.mark.parametrize("dim,value,expected", [
    ("stage", "Node Transformation", "node_conversion"),
    ("stage", "Not Dis.", "not_distinguishable"),
    ("stage", "Tracer", "load_model"),
    ("stage", "Protobuf", "export"),
    ("symptom", "Wrong Code", "wrong_model"),
    ("cause", "Incompatability", "incompatibility"),
    ("cause", "Incorrect Code Logic", "algorithmic_error"),
    ("cause", "Tensor Shape Problem", "shape_problem"),
    ("cause", "node_conversion", None),
])
def test_resolve_spellings(dim, value, expected):
    cb = load_codebook()
    if expected is None:
        with pytest.raises(KeyError, match="valid:"):
            cb.resolve(dim, value)
    else:
        assert cb.resolve(dim, value) == expected


def test_resolve_codes_as_the_main_sheets_use_them():
    cb = load_codebook()
    assert cb.resolve("cause", 12, by="code") == "others"
    assert cb.resolve("cause", 14, by="code") == "testing"
    assert cb.resolve("cause_subtype", 2, by="code", cause="incompatibility") == "external"
    with pytest.raises(KeyError):
        cb.resolve("cause", 99, by="code")


def test_invalid_codebooks_are_rejected(tmp_path: Path):
    data = yaml.safe_load(default_codebook().read_text())
    dup = yaml.safe_load(default_codebook().read_text())
    dup["dimensions"]["stage"]["categories"][1]["id"] = "load_model"
    with pytest.raises(UserError, match="duplicate id 'load_model'"):
        parse_codebook(dup)
    clash = yaml.safe_load(default_codebook().read_text())
    clash["dimensions"]["symptom"]["categories"][0]["codes"] = [2]
    with pytest.raises(UserError, match="code 2"):
        parse_codebook(clash)
    del data["dimensions"]["cause"]
    with pytest.raises(UserError, match="missing dimension"):
        parse_codebook(data)
    bad = tmp_path / "cb.yaml"
    bad.write_text("version: [unclosed")
    with pytest.raises(UserError, match="not valid YAML"):
        load_codebook(bad)
