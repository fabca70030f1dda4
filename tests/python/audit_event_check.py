"""Validates Caldicott's audit output with an independent FHIR model library.

Usage: audit_event_check.py BUNDLE.json...

Each file is a FHIR Bundle from the server (an AuditEvent search, or a patient access
report). The Bundle and every AuditEvent in it are validated with the `fhir.resources`
pydantic models (R4B, whose Bundle and AuditEvent are R4's). Prints one line per file;
exits 1 on the first invalid resource, naming it and the model's error.
"""

import json
import sys

from fhir.resources.R4B.auditevent import AuditEvent
from fhir.resources.R4B.bundle import Bundle


def main(paths):
    total = 0
    for path in paths:
        with open(path, encoding="utf-8") as f:
            bundle = json.load(f)
        try:
            Bundle.model_validate(bundle)
        except Exception as e:  # pydantic's ValidationError, with every problem listed
            print(f"{path}: the Bundle is not valid FHIR: {e}")
            return 1
        events = [
            e["resource"]
            for e in bundle.get("entry", [])
            if e.get("resource", {}).get("resourceType") == "AuditEvent"
        ]
        if not events:
            print(f"{path}: no AuditEvent in the Bundle")
            return 1
        for r in events:
            try:
                AuditEvent.model_validate(r)
            except Exception as e:
                print(f"{path}: AuditEvent/{r.get('id')} is not valid FHIR: {e}")
                return 1
        total += len(events)
        print(f"{path}: Bundle and {len(events)} AuditEvents valid")
    print(f"all valid: {total} AuditEvents")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
