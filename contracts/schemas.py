"""JSON Schema documents generated from the contract models (contracts/schemas/*.json).

Run `python -m contracts.schemas` after changing a model; a test fails while the files on disk
differ from what the models generate, so the schemas and the models cannot drift apart.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from contracts.events import EVENT_MODELS, SCHEMA_VERSION
from contracts.records import AggregateRecord, AlertRecord, DeadLetter

SCHEMA_DIR = Path(__file__).parent / "schemas"
RECORD_MODELS = {"alert": AlertRecord, "aggregate": AggregateRecord, "dead-letter": DeadLetter}


def generated_schemas() -> dict[str, str]:
    """File name -> JSON text for every event family and output record."""
    documents = {}
    for name, model in {**EVENT_MODELS, **RECORD_MODELS}.items():
        schema = model.model_json_schema(by_alias=True, mode="validation")
        schema["$id"] = f"https://fleet-monitor.dev/schemas/{name}.v{SCHEMA_VERSION}.json"
        documents[f"{name}.v{SCHEMA_VERSION}.json"] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    return documents


def main() -> int:
    SCHEMA_DIR.mkdir(exist_ok=True)
    for name, text in generated_schemas().items():
        (SCHEMA_DIR / name).write_text(text)
    print(f"wrote {len(generated_schemas())} schemas to {SCHEMA_DIR}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
