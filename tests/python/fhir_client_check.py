#!/usr/bin/env python3
"""Drives a freshly initialised Caldicott FHIR API with an independent client, fhirpy.

Usage: fhir_client_check.py BASE_URL CA_CERT
   or: CALDICOTT_FHIR_BASE=... CALDICOTT_FHIR_CA=... fhir_client_check.py

BASE_URL is the FHIR base (https://localhost:8443/fhir); CA_CERT is the PEM certificate
the server presents (the self-signed one `caldicott init` writes to DATA/tls/cert.pem).
TLS verification stays on: requests trusts exactly that certificate.

It creates Patients and Observations with fhirpy's resource `save()`, reads, updates and
deletes one, and searches with fhirpy's search API (string, date prefixes, token with
system, reference, sort, paging across several pages by following `next` links, count),
comparing every result exactly (ids and order) with what it wrote. It exits 0 when all
checks pass and 1 with a `FAIL:` line otherwise. The server must hold no Patient or
Observation beforehand.

`cargo test --test fhirpy` runs it (with the interpreter named by CALDICOTT_TEST_PYTHON);
`cargo xtask test` sets up that interpreter from tests/python/requirements.txt.
"""

import datetime
import importlib.metadata
import os
import sys
import traceback
from urllib.parse import parse_qs, urlsplit

import requests
from fhirpy import SyncFHIRClient
from fhirpy.base.exceptions import OperationOutcome, ResourceNotFound

NHS_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
PATIENTS = 30
PAGE = 7

FAMILIES = ["Okafor", "Nguyen", "Patel", "Brown", "Okafor-Reid", "Williams"]
GIVEN = ["Ann", "Bola", "Chen", "Dev", "Eilidh", "Farah", "Gareth", "Hana", "Idris", "Jo"]
GENDERS = ["female", "male", "female", "male", "other"]


class Failure(Exception):
    pass


def expect(condition, message):
    """Like assert, but survives `python -O`."""
    if not condition:
        raise Failure(message)


def expect_eq(actual, expected, what):
    if actual != expected:
        raise Failure(f"{what}:\n  expected {expected!r}\n  got      {actual!r}")


def nhs_number(serial):
    """A valid NHS number in the 999 range (never issued to a person): 999, six digits,
    and the modulus-11 check digit. Serials whose check digit would be 10 are skipped by
    the caller."""
    digits = f"999{serial:06d}"
    total = sum(int(d) * w for d, w in zip(digits, range(10, 1, -1)))
    check = 11 - total % 11
    if check == 11:
        check = 0
    if check == 10:
        return None
    return digits + str(check)


def nhs_numbers(n):
    out, serial = [], 1000
    while len(out) < n:
        v = nhs_number(serial)
        if v:
            out.append(v)
        serial += 7
    return out


def patient_rows():
    """What the script writes: one dict per patient, in creation order. Birth years are
    distinct (37 and 80 are coprime), so sorting by birthdate has no ties."""
    rows = []
    for i, nhs in enumerate(nhs_numbers(PATIENTS)):
        rows.append(
            {
                "nhs": nhs,
                "family": FAMILIES[i % len(FAMILIES)],
                "given": GIVEN[i % len(GIVEN)],
                "gender": GENDERS[i % len(GENDERS)],
                "birthDate": datetime.date(1935 + (i * 37) % 80, 1 + (i * 5) % 12, 1 + (i * 11) % 28),
                "observations": i % 3,
            }
        )
    return rows


class Requests:
    """Every HTTP exchange fhirpy makes, through a requests response hook."""

    def __init__(self):
        self.log = []

    def hook(self, response, *args, **kwargs):
        self.log.append((response.request.method, response.request.url, response.status_code))

    def mark(self):
        return len(self.log)

    def since(self, mark):
        return self.log[mark:]


def main():
    sys.stdout.reconfigure(line_buffering=True)  # keep stdout and stderr in order
    base = (sys.argv[1] if len(sys.argv) > 1 else os.environ.get("CALDICOTT_FHIR_BASE", "")).rstrip("/")
    ca = sys.argv[2] if len(sys.argv) > 2 else os.environ.get("CALDICOTT_FHIR_CA", "")
    if not base or not ca:
        print(__doc__, file=sys.stderr)
        return 2
    expect(os.path.isfile(ca), f"CA certificate {ca} does not exist")
    print(f"fhirpy {importlib.metadata.version('fhirpy')}, requests {requests.__version__}, "
          f"Python {sys.version.split()[0]}; server {base}")

    http = Requests()
    # requests trusts exactly the server's certificate; verification is never turned off.
    # Every request but metadata carries a bearer token (caldicott token issue).
    token = os.environ.get("CALDICOTT_FHIR_TOKEN", "")
    expect(token.startswith("cdt_"), "CALDICOTT_FHIR_TOKEN holds a Caldicott token")
    client = SyncFHIRClient(
        base,
        authorization=f"Bearer {token}",
        requests_config={"verify": ca, "timeout": 60, "hooks": {"response": [http.hook]}},
    )

    # --- metadata -------------------------------------------------------------------------
    cap = client.execute("metadata", method="get")
    expect_eq(cap["resourceType"], "CapabilityStatement", "metadata resourceType")
    expect_eq(cap["fhirVersion"], "4.0.1", "metadata fhirVersion")
    expect("application/fhir+json" in cap["format"], f"metadata format lists FHIR JSON: {cap['format']}")
    types = {r["type"]: r for r in cap["rest"][0]["resource"]}
    for t in ("Patient", "Observation"):
        expect(t in types, f"metadata lists {t}")
        codes = {i["code"] for i in types[t]["interaction"]}
        for c in ("read", "create", "update", "delete", "search-type"):
            expect(c in codes, f"metadata: {t} supports {c} (has {sorted(codes)})")
    params = {p["name"] for p in types["Patient"]["searchParam"]}
    for p in ("family", "birthdate", "identifier", "gender"):
        expect(p in params, f"metadata: Patient search parameter {p}")
    print("metadata: CapabilityStatement for FHIR 4.0.1 lists Patient and Observation")

    before = client.resources("Patient").fetch_raw()
    expect_eq(before["total"], 0, "Patients before the run (the check needs a fresh server)")

    # --- create ---------------------------------------------------------------------------
    rows = patient_rows()
    for i, row in enumerate(rows):
        p = client.resource(
            "Patient",
            identifier=[{"system": NHS_SYSTEM, "value": row["nhs"]}],
            name=[{"use": "official", "family": row["family"], "given": [row["given"]]}],
            gender=row["gender"],
            birthDate=row["birthDate"].isoformat(),
        )
        p.save()
        expect(p.id, f"created Patient {row['nhs']} has an id")
        expect_eq(p["meta"]["versionId"], "1", f"versionId of new Patient {p.id}")
        expect_eq(p["identifier"][0]["value"], row["nhs"], "created Patient echoes its identifier")
        row["id"] = p.id
        row["resource"] = p
        row["obs"] = []
        for j in range(row["observations"]):
            o = client.resource(
                "Observation",
                status="final",
                code={"coding": [{"system": LOINC, "code": "29463-7", "display": "Body weight"}]},
                subject=p.to_reference(),
                effectiveDateTime=f"2024-{1 + j * 4:02d}-{1 + i % 20:02d}T09:30:00Z",
                valueQuantity={"value": 60 + i + j, "unit": "kg", "system": UCUM, "code": "kg"},
            )
            o.save()
            expect(o.id, "created Observation has an id")
            expect_eq(o["subject"].reference, f"Patient/{p.id}", "Observation subject")
            row["obs"].append((o["effectiveDateTime"], o.id))
    ids = [r["id"] for r in rows]
    expect_eq(len(set(ids)), PATIENTS, "distinct Patient ids")
    n_obs = sum(len(r["obs"]) for r in rows)
    print(f"created {PATIENTS} Patients and {n_obs} Observations with save()")

    # --- read, update, vread --------------------------------------------------------------
    target = rows[7]
    read = client.reference("Patient", target["id"]).to_resource()
    expect_eq(read.id, target["id"], "read id")
    expect_eq(read["meta"]["versionId"], "1", "read versionId")
    expect_eq(read["name"][0]["family"], target["family"], "read family")
    expect_eq(read["birthDate"], target["birthDate"].isoformat(), "read birthDate")
    read["telecom"] = [{"system": "phone", "value": "01632 960001", "use": "home"}]
    read["name"][0]["given"] = ["Rosalind"]
    read.save()
    expect_eq(read.id, target["id"], "updated id")
    expect_eq(read["meta"]["versionId"], "2", "versionId after update")
    target["given"] = "Rosalind"
    again = client.get("Patient", target["id"])
    expect_eq(again["meta"]["versionId"], "2", "versionId read after update")
    expect_eq(again["name"][0]["given"], ["Rosalind"], "given name read after update")
    expect_eq(again["telecom"][0]["value"], "01632 960001", "telecom read after update")
    v1 = read.execute("_history/1", method="get")
    expect_eq(v1["meta"]["versionId"], "1", "vread _history/1 versionId")
    expect_eq(v1["name"][0]["given"], [GIVEN[7]], "vread _history/1 keeps the old name")
    mark = http.mark()
    read.refresh()  # If-None-Match with the current version: 304, nothing changes
    expect_eq(http.since(mark)[-1][2], 304, "refresh() of the current version is 304 Not Modified")
    expect_eq(read["meta"]["versionId"], "2", "versionId after refresh")
    print(f"read Patient/{target['id']}, updated it to version 2, vread version 1, refresh 304")

    # --- search ---------------------------------------------------------------------------
    def by_birth(rs, reverse=False):
        return [r["id"] for r in sorted(rs, key=lambda r: r["birthDate"], reverse=reverse)]

    def live():
        return [r for r in rows if not r.get("deleted")]

    counted_with_fallback = []

    def count(ss, what):
        """fhirpy's count() adds `_totalMethod=count`, a parameter of one vendor's server
        that the FHIR specification does not define; see the note printed when the server
        refuses it."""
        try:
            return ss.count()
        except OperationOutcome as e:
            if "_totalMethod" not in str(e):
                raise
            if not counted_with_fallback:
                print("NOTE: the server refused fhirpy's non-standard `_totalMethod=count` "
                      "parameter (FHIR R4 search: servers SHOULD ignore unknown parameters); "
                      "counting with the standard `_summary=count` instead")
            counted_with_fallback.append(what)
            bundle = ss.clone(_summary="count", override=True).fetch_raw()
            expect_eq(bundle.get("entry", []), [], f"{what}: _summary=count returns no entries")
            return bundle["total"]

    def check_search(ss, expected_ids, what):
        got = [r.id for r in ss.fetch_all()]
        expect_eq(got, expected_ids, f"{what}: ids in order")
        expect_eq(count(ss, what), len(expected_ids), f"{what}: count()")

    patients = client.resources("Patient")

    # String search: starts-with, case-insensitive; `:exact` matches whole and case.
    okafor = [r for r in live() if r["family"].lower().startswith("okafor")]
    expect(len(okafor) == 10, "fixture: ten Okafor* patients")
    check_search(patients.search(family="Okafor").sort("birthdate"), by_birth(okafor), "family=Okafor")
    check_search(patients.search(family="okafor").sort("-birthdate"), by_birth(okafor, True), "family=okafor")
    exact = [r for r in live() if r["family"] == "Okafor"]
    check_search(patients.search(family__exact="Okafor").sort("birthdate"), by_birth(exact), "family:exact=Okafor")
    check_search(patients.search(given="Rosalind"), [target["id"]], "given=Rosalind (the update)")
    check_search(
        patients.search(given=GIVEN[7]).sort("birthdate"),
        by_birth([r for r in live() if r["given"] == GIVEN[7]]),
        f"given={GIVEN[7]} (the updated Patient's old name no longer matches)",
    )

    # Date prefixes.
    cut = datetime.date(1980, 1, 1)
    check_search(
        patients.search(birthdate__ge=cut).sort("birthdate"),
        by_birth([r for r in live() if r["birthDate"] >= cut]),
        "birthdate=ge1980-01-01",
    )
    check_search(
        patients.search(birthdate__ge="1960", birthdate__lt="1970").sort("birthdate"),
        by_birth([r for r in live() if 1960 <= r["birthDate"].year < 1970]),
        "birthdate=ge1960&birthdate=lt1970",
    )
    check_search(
        patients.search(gender="female", birthdate__le="1975-06-30").sort("-birthdate"),
        by_birth([r for r in live() if r["gender"] == "female" and r["birthDate"] <= datetime.date(1975, 6, 30)], True),
        "gender=female&birthdate=le1975-06-30",
    )

    # Token with system.
    probe = rows[12]
    found = patients.search(identifier=f"{NHS_SYSTEM}|{probe['nhs']}").get()
    expect_eq(found.id, probe["id"], "identifier=system|value get()")
    check_search(patients.search(identifier=f"{NHS_SYSTEM}|{probe['nhs']}"), [probe["id"]], "identifier=system|value")
    check_search(patients.search(identifier=f"http://example.org/other|{probe['nhs']}"), [], "identifier with another system")

    # Paging: every patient, sorted, PAGE per page; fetch_all() must follow `next`.
    everyone = patients.sort("birthdate").limit(PAGE)
    first = everyone.fetch_raw()
    expect_eq(first["total"], PATIENTS, "total of the first page")
    expect_eq(len(first["entry"]), PAGE, "entries on the first page")
    links = {l["relation"]: l["url"] for l in first["link"]}
    expect("next" in links, f"first page has a next link: {links}")
    expect(links["next"].startswith(base + "/"), f"next link {links['next']} is under the base {base}")
    mark = http.mark()
    got = [r.id for r in everyone.fetch_all()]
    expect_eq(got, by_birth(rows), "all Patients sorted by birthdate, across pages")
    pages = http.since(mark)
    expected_pages = -(-PATIENTS // PAGE)
    expect_eq(len(pages), expected_pages, f"requests fetch_all() made for {PATIENTS} Patients, {PAGE} a page")
    offsets = [int(parse_qs(urlsplit(url).query).get("_offset", ["0"])[0]) for _, url, _ in pages]
    expect_eq(offsets, [PAGE * k for k in range(expected_pages)], "_offset of each page fetched")
    expect(all(s == 200 for _, _, s in pages), f"every page is 200: {pages}")
    expect_eq([r.id for r in everyone.fetch()], by_birth(rows)[:PAGE], "fetch() gives the first page only")
    expect_eq(count(patients, "all Patients"), PATIENTS, "count() of all Patients")
    check_search(patients.sort("-birthdate").limit(4), by_birth(rows, True), "all Patients, -birthdate, 4 a page")
    print(f"paged through {PATIENTS} Patients in {expected_pages} pages of {PAGE} following next links")

    # Reference search.
    for row in rows[:6]:
        expected = [oid for _, oid in sorted(row["obs"])]
        ss = client.resources("Observation").search(patient=row["resource"]).sort("date")
        check_search(ss, expected, f"Observation?patient=Patient/{row['id']}")
        check_search(
            client.resources("Observation").search(subject=f"Patient/{row['id']}", code=f"{LOINC}|29463-7").sort("-date"),
            list(reversed(expected)),
            f"Observation?subject=Patient/{row['id']}&code=loinc|29463-7",
        )
    expect_eq(count(client.resources("Observation"), "all Observations"), n_obs, "count() of all Observations")

    # $everything: the patient and its observations.
    withobs = rows[5]
    bundle = withobs["resource"].execute("$everything", method="get")
    got = sorted(e["resource"]["id"] for e in bundle["entry"])
    expect_eq(got, sorted([withobs["id"]] + [oid for _, oid in withobs["obs"]]), "Patient/$everything ids")
    print("reference searches and $everything match the Observations written")

    # --- delete ---------------------------------------------------------------------------
    gone = next(r for r in rows if r["family"] == "Okafor" and not r["obs"])
    gone["resource"].delete()
    gone["deleted"] = True
    try:
        client.get("Patient", gone["id"])
        raise Failure(f"Patient/{gone['id']} can still be read after delete")
    except ResourceNotFound:
        pass
    r = requests.get(f"{base}/Patient/{gone['id']}", headers={"Accept": "application/fhir+json", "Authorization": f"Bearer {token}"}, verify=ca, timeout=60)
    expect_eq(r.status_code, 410, f"status of reading deleted Patient/{gone['id']} (body {r.text[:300]})")
    okafor = [r for r in live() if r["family"].lower().startswith("okafor")]
    check_search(patients.search(family="Okafor").sort("birthdate"), by_birth(okafor), "family=Okafor after delete")
    check_search(patients.sort("birthdate").limit(PAGE), by_birth(live()), "all Patients after delete")
    check_search(patients.search(identifier=f"{NHS_SYSTEM}|{gone['nhs']}"), [], "identifier of the deleted Patient")
    print(f"deleted Patient/{gone['id']}: read is 410 Gone and searches leave it out")

    if counted_with_fallback:
        print(f"NOTE: {len(counted_with_fallback)} counts used _summary=count instead of fhirpy's count()")
    print("fhirpy check: all checks passed")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Failure as e:
        print(f"FAIL: {e}", file=sys.stderr)
        sys.exit(1)
    except Exception as e:  # a client error, an HTTP error, a refused request...
        traceback.print_exc()
        print(f"FAIL: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
