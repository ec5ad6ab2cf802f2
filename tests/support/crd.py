"""The FleetMonitor CRD as the tests read it (through the operator's own reader), and specs
defaulted from it as the API server would store them: the operator's model repeats none of the
CRD's defaults, so a spec a unit test builds goes through `defaulted` first."""

from __future__ import annotations

from fleet_operator import openapi
from fleet_operator.settings import Settings

CRD = openapi.read_crd(Settings.model_fields["crd_path"].default)
SCHEMA = openapi.version_schema(CRD)


def defaulted(spec: dict) -> dict:
    return openapi.default_spec(CRD, spec)
