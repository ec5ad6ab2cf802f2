"""The charts' values.schema.json and README.md are generated from scripts/chart_values (one typed
module per chart) and must match it; every chart gets the fleet-common library chart the same way,
offline, also as the operator image holds it (links dereferenced)."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import pytest
import yaml
from pydantic import TypeAdapter, ValidationError

from tests.support.charts import ROOT, helm

LIBRARY = ROOT / "charts" / "fleet-common"
CHART_DIRS = sorted(p.parent for p in (ROOT / "charts").glob("*/Chart.yaml") if p.parent != LIBRARY)


def _generator():
    spec = importlib.util.spec_from_file_location("chart_schemas", ROOT / "scripts" / "chart-schemas.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GENERATOR = _generator()
sys.path.insert(0, str(ROOT / "scripts"))
from chart_values import CHARTS  # noqa: E402


def test_every_chart_has_a_typed_source() -> None:
    assert sorted(CHARTS) == [p.name for p in CHART_DIRS]


def test_committed_schemas_and_readmes_are_the_generated_ones(capsys: pytest.CaptureFixture[str]) -> None:
    """Fails when a values.schema.json or README.md was edited by hand or the typed source changed
    without `make charts-sync`; the message names the files."""
    assert GENERATOR.main(["--check"]) == 0, capsys.readouterr().err


def test_check_names_a_drifted_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    generated = GENERATOR.generated()
    path = next(p for p in generated if p.name == "values.schema.json")
    copy = tmp_path / "values.schema.json"
    copy.write_text(generated[path].replace('"additionalProperties": false', '"additionalProperties": true', 1))
    monkeypatch.setattr(GENERATOR, "generated", lambda: {copy: generated[path]})
    monkeypatch.setattr(GENERATOR, "ROOT", tmp_path)
    assert GENERATOR.main(["--check"]) == 1
    assert "values.schema.json" in capsys.readouterr().err


@pytest.mark.parametrize("chart", sorted(CHARTS))
def test_chart_defaults_fit_the_typed_source(chart: str) -> None:
    """values.yaml against the pydantic types themselves (helm lint checks it against the schema)."""
    values = yaml.safe_load((ROOT / "charts" / chart / "values.yaml").read_text())
    TypeAdapter(CHARTS[chart].Values).validate_python(values)


def test_typed_source_rejects_what_the_schema_rejects() -> None:
    adapter = TypeAdapter(CHARTS["api"].Values)
    values = yaml.safe_load((ROOT / "charts/api/values.yaml").read_text())
    for broken in ({"replicaCount": -1}, {"imagee": {}}, {"service": {"type": "Ingress"}}):
        with pytest.raises(ValidationError):
            adapter.validate_python({**values, **broken})


def test_unions_become_type_lists_only_when_equivalent() -> None:
    merged = GENERATOR._merge_types([{"type": "integer", "minimum": 1}, {"type": "null"}])
    assert merged == {"type": ["integer", "null"], "minimum": 1}
    # The same keyword on two branches would apply to both once merged: kept as anyOf.
    assert GENERATOR._merge_types([{"type": "integer", "minimum": 1}, {"type": "number", "minimum": 2}]) is None
    assert GENERATOR._merge_types([{"type": "object", "properties": {}}, {"type": "null"}]) is None


def test_schemas_are_draft_07_with_the_library_slot() -> None:
    for chart in CHARTS:
        schema = json.loads((ROOT / "charts" / chart / "values.schema.json").read_text())
        assert schema["$schema"] == GENERATOR.DRAFT and schema["additionalProperties"] is False
        assert schema["properties"]["fleet-common"] == GENERATOR.LIBRARY_SLOT


@pytest.mark.parametrize("chart_dir", CHART_DIRS, ids=lambda p: p.name)
def test_chart_gets_fleet_common_from_the_repository(chart_dir: Path) -> None:
    """Declared in Chart.yaml at the library's version and present as a link to it: nothing to
    download or build, never a stale copy."""
    library = yaml.safe_load((LIBRARY / "Chart.yaml").read_text())
    assert library["type"] == "library"
    dependencies = yaml.safe_load((chart_dir / "Chart.yaml").read_text())["dependencies"]
    assert {
        "name": "fleet-common",
        "version": library["version"],
        "repository": "file://../fleet-common",
    } in dependencies
    link = chart_dir / "charts" / "fleet-common"
    assert link.is_symlink() and link.resolve() == LIBRARY.resolve()


def test_charts_render_the_same_with_the_library_copied_in(tmp_path: Path) -> None:
    """operator/Dockerfile copies the charts with their links dereferenced (cp -R --dereference)."""
    copied = tmp_path / "charts"
    shutil.copytree(ROOT / "charts", copied, symlinks=False)
    assert not (copied / "api" / "charts" / "fleet-common").is_symlink()
    for chart in ("flink-job", "loader", "fleet-operator"):  # no generated (random) Secrets
        release = f"fleet-monitor-{chart}"
        assert helm("template", release, str(copied / chart)) == helm("template", release, str(ROOT / "charts" / chart))


def test_the_library_chart_cannot_be_installed() -> None:
    with pytest.raises(AssertionError, match="library charts are not installable"):
        helm("template", "x", str(LIBRARY))
