"""The FHIR R4 API through real HTTP and real clients (fhirclient, fhirpy): every answer valid against the
official R4 JSON Schema, scopes, patients and hospital grants enforced, booking through the same rules."""

from __future__ import annotations

import copy
import json
import uuid
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from carebridge.core import clock
from tests.factories import (
    PASSWORD,
    auth,
    load_formulary,
    make_consultation,
    make_hospital,
    make_patient,
    make_schedule,
    make_staff,
    ok,
)
from tests.test_oauth import (
    ASSERTION_TYPE,
    REDIRECT,
    approved,
    assertion,
    authorize_params,
    code_exchange,
    consent,
    patient_browser,
    pkce,
    redirect_query,
)
from tests.test_openplatform import backend_app, patient_app
from tests.test_supervision import make_regulator

FHIR = "/fhir/R4"
SCOPES = ["launch/patient", "patient/*.rs", "patient/Appointment.cruds", "user/Slot.rs", "offline_access"]


class Schema:
    """The official FHIR R4 JSON Schema, one compiled validator per resource type (the whole-schema oneOf is
    very slow); a Bundle's entries are checked one by one against their own type."""

    def __init__(self, path: Path) -> None:
        document = json.loads(path.read_text())
        self.definitions = document["definitions"]
        light = copy.deepcopy(self.definitions)
        light["ResourceList"] = {}  # entries are validated separately
        self.light = light

    @cache  # noqa: B019 - one Schema per run
    def validator(self, kind: str) -> jsonschema.Draft6Validator:
        definitions = self.light if kind == "Bundle" else self.definitions
        return jsonschema.Draft6Validator({"$ref": f"#/definitions/{kind}", "definitions": definitions})

    def check(self, resource: dict[str, Any]) -> dict[str, Any]:
        kind = resource["resourceType"]
        errors = sorted(self.validator(kind).iter_errors(resource), key=lambda e: list(e.path))
        assert not errors, f"{kind} is not valid R4: {errors[0].message} at {list(errors[0].path)}"
        if kind == "Bundle":
            for entry in resource.get("entry", []):
                self.check(entry["resource"])
        return resource


@pytest.fixture(scope="session")
def schema(testdata: Path) -> Schema:
    return Schema(testdata / "fhir-r4-jsonschema" / "fhir.schema.json")


def fhir(response: httpx.Response, schema: Schema, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/fhir+json"), response.headers
    return schema.check(response.json())


def outcome(response: httpx.Response, schema: Schema, status: int, code: str) -> dict[str, Any]:
    body = fhir(response, schema, status)
    assert body["resourceType"] == "OperationOutcome", body
    codes = [c["code"] for issue in body["issue"] for c in issue["details"]["coding"]]
    assert code in codes, body
    return body


class World:
    """Hospital X granted the app and gave its pool places; hospital Y did not grant it."""

    def __init__(self, client: httpx.Client, admin_token: str, scopes: list[str] = SCOPES) -> None:
        self.x = make_hospital(client, admin_token)
        self.y = make_hospital(client, admin_token)
        self.scopes = scopes
        self.app = approved(client, admin_token, patient_app(scopes=scopes))
        self.developer = self.app["developer_token"]
        self.sandbox = ok(client.get(f"/api/v1/partner-apps/{self.app['id']}/sandbox", headers=auth(self.developer)))
        channel = self.app["channel"]
        ok(
            client.put(
                f"/api/v1/hospitals/{self.x.hospital_id}/partner-apps/{self.app['id']}",
                headers=auth(self.x.admin_token),
            ),
            201,
        )
        self.schedule = make_schedule(client, self.x, pools={"platform": 2, channel: 1})
        self.other_schedule = make_schedule(client, self.y, pools={"platform": 2, "onsite": 1})
        self.browser, self.patient_id = patient_browser(client.base_url)
        self.token = self.login(client, self.browser, self.patient_id)

    def login(self, client: httpx.Client, browser: httpx.Client, patient_id: str, scope: str | None = None) -> str:
        verifier, challenge = pkce()
        params = authorize_params(client, self.app, challenge, scope=scope or " ".join(self.scopes))
        code = redirect_query(consent(browser, params, patient_id))["code"]
        exchange = code_exchange(self.app, code, verifier)
        return ok(client.post("/oauth/token", data=exchange))["access_token"]


def backend_token(client: httpx.Client, admin_token: str, world: World, scopes: list[str]) -> str:
    """A client-credentials token of a new backend app, approved for ``scopes`` and granted by hospital X."""
    from joserfc.jwk import ECKey

    key = ECKey.generate_key("P-384", parameters={"kid": "b1"})
    app = approved(client, admin_token, backend_app(jwks={"keys": [key.as_dict(private=False)]}, scopes=scopes))
    ok(
        client.put(
            f"/api/v1/hospitals/{world.x.hospital_id}/partner-apps/{app['id']}", headers=auth(world.x.admin_token)
        ),
        201,
    )
    audience = str(client.base_url).rstrip("/") + "/oauth/token"
    form = {
        "grant_type": "client_credentials",
        "scope": " ".join(scopes),
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion(key, app["client_id"], audience),
    }
    return ok(client.post("/oauth/token", data=form))["access_token"]


def new_appointment(slot_id: str, patient_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Appointment",
        "status": "booked",
        "slot": [{"reference": f"Slot/{slot_id}"}],
        "participant": [{"actor": {"reference": f"Patient/{patient_id}"}, "status": "accepted"}],
        **extra,
    }


def test_capability_statement_and_tokens(client: httpx.Client, schema: Schema, admin_token: str) -> None:
    meta = fhir(client.get(f"{FHIR}/metadata"), schema)
    assert meta["resourceType"] == "CapabilityStatement" and meta["fhirVersion"] == "4.0.0"
    security = meta["rest"][0]["security"]
    uris = {e["url"]: e["valueUri"] for e in security["extension"][0]["extension"]}
    assert uris["token"].endswith("/oauth/token") and uris["authorize"].endswith("/oauth/authorize")
    assert {r["type"] for r in meta["rest"][0]["resource"]} >= {"Slot", "Appointment", "Patient", "Schedule"}
    # no token, a user's own token, an unknown token: 401 as an OperationOutcome
    outcome(client.get(f"{FHIR}/Slot"), schema, 401, "not_authenticated")
    outcome(client.get(f"{FHIR}/Slot", headers=auth(admin_token)), schema, 401, "invalid_token")
    outcome(client.get(f"{FHIR}/Slot", headers=auth("cba_forged")), schema, 401, "invalid_token")
    # unknown routes and methods speak FHIR too
    outcome(client.get(f"{FHIR}/Spaceship/1", headers=auth("x")), schema, 404, "not_found")


def test_slots_patient_booking_and_isolation(client: httpx.Client, schema: Schema, admin_token: str) -> None:  # noqa: PLR0915
    world = World(client, admin_token)
    h = auth(world.token)
    sid = world.schedule["id"]

    found = fhir(client.get(f"{FHIR}/Slot", params={"schedule": sid, "_include": "Slot:schedule"}, headers=h), schema)
    slots = [e["resource"] for e in found["entry"] if e["search"]["mode"] == "match"]
    included = [e["resource"] for e in found["entry"] if e["search"]["mode"] == "include"]
    assert found["total"] == 4 and len(slots) == 4 and {s["status"] for s in slots} == {"free"}
    assert [s["resourceType"] for s in included] == ["Schedule"] and included[0]["id"] == sid
    assert included[0]["actor"][0]["reference"] == f"Practitioner/{world.x.practitioner_id}"
    first = slots[0]
    # start filters and paging
    after = fhir(
        client.get(f"{FHIR}/Slot", params={"schedule": sid, "start": f"gt{first['start']}"}, headers=h), schema
    )
    assert after["total"] == 3
    page = fhir(client.get(f"{FHIR}/Slot", params={"schedule": sid, "_count": 3}, headers=h), schema)
    assert len(page["entry"]) == 3 and [link["relation"] for link in page["link"]] == ["self", "next"]
    nxt = next(link["url"] for link in page["link"] if link["relation"] == "next")
    rest = fhir(client.get(nxt, headers=h), schema)
    assert len(rest["entry"]) == 1
    # bad search input: a clear 400, never silently ignored
    outcome(client.get(f"{FHIR}/Slot", params={"shedule": sid}, headers=h), schema, 400, "unknown_search_parameter")
    outcome(client.get(f"{FHIR}/Slot", params={"start": "ge-tomorrow"}, headers=h), schema, 400, "bad_search_parameter")
    outcome(client.get(f"{FHIR}/Slot", params={"_count": "1000"}, headers=h), schema, 400, "bad_search_parameter")
    outcome(client.get(f"{FHIR}/Slot", params={"schedule": "nope"}, headers=h), schema, 400, "bad_id")
    outcome(client.get(f"{FHIR}/Slot/not-an-id", headers=h), schema, 404, "not_found")

    # hospital Y never granted the app: its schedules and slots do not exist for it
    other = fhir(client.get(f"{FHIR}/Slot", params={"schedule": world.other_schedule["id"]}, headers=h), schema)
    assert other["total"] == 0 and other["entry"] == []
    outcome(client.get(f"{FHIR}/Schedule/{world.other_schedule['id']}", headers=h), schema, 404, "not_found")
    outcome(client.get(f"{FHIR}/Organization/{world.y.hospital_id}", headers=h), schema, 404, "not_found")
    assert fhir(client.get(f"{FHIR}/Organization/{world.x.hospital_id}", headers=h), schema)["name"]
    orgs = fhir(client.get(f"{FHIR}/Organization", headers=h), schema)
    assert sorted(e["resource"]["id"] for e in orgs["entry"]) == sorted(
        [world.x.hospital_id, world.sandbox["hospital_id"]]
    )
    doctor = fhir(client.get(f"{FHIR}/Practitioner/{world.x.practitioner_id}", headers=h), schema)
    assert doctor["name"][0]["text"]
    fhir(client.get(f"{FHIR}/HealthcareService/{world.x.department_id}", headers=h), schema)

    # the patient in context: name shown (consented), no ID number or phone; another patient does not exist
    me = fhir(client.get(f"{FHIR}/Patient/{world.patient_id}", headers=h), schema)
    assert me["name"][0]["text"] == "李华" and "identifier" not in me and "telecom" not in me
    _b, stranger = patient_browser(client.base_url)
    outcome(client.get(f"{FHIR}/Patient/{stranger}", headers=h), schema, 404, "not_found")

    # booking from the app's own pool, idempotent with a key
    body = new_appointment(first["id"], world.patient_id)
    headers = {**h, "Idempotency-Key": "fhir-book-1", "content-type": "application/fhir+json"}
    booked = fhir(client.post(f"{FHIR}/Appointment", content=json.dumps(body), headers=headers), schema, 201)
    assert booked["status"] == "booked" and booked["slot"][0]["reference"] == f"Slot/{first['id']}"
    again = fhir(client.post(f"{FHIR}/Appointment", content=json.dumps(body), headers=headers), schema, 201)
    assert again["id"] == booked["id"]
    slot = fhir(client.get(f"{FHIR}/Slot/{first['id']}", headers=h), schema)
    assert slot["status"] == "busy"  # the app's pool held one place
    mine = fhir(client.get(f"{FHIR}/Appointment", params={"patient": world.patient_id}, headers=h), schema)
    assert [e["resource"]["id"] for e in mine["entry"]] == [booked["id"]]
    read = fhir(client.get(f"{FHIR}/Appointment/{booked['id']}", headers=h), schema)
    assert read["participant"][0]["actor"]["reference"] == f"Patient/{world.patient_id}"

    # the same rules as the JSON API, as OperationOutcomes with the same codes
    second = new_appointment(slots[1]["id"], world.patient_id)
    outcome(client.post(f"{FHIR}/Appointment", json=second, headers=h), schema, 409, "already_booked")
    full_browser, full_patient = patient_browser(client.base_url)
    full_token = world.login(client, full_browser, full_patient)
    taken = new_appointment(first["id"], full_patient)
    outcome(client.post(f"{FHIR}/Appointment", json=taken, headers=auth(full_token)), schema, 409, "slot_full")
    # the token acts for its patient only
    outcome(
        client.post(f"{FHIR}/Appointment", json=new_appointment(slots[2]["id"], stranger), headers=h),
        schema,
        403,
        "patient_not_in_context",
    )
    # bad resources: unknown elements, wrong types, a bogus status, unknown references
    bad = {**second, "colour": "blue"}
    issues = outcome(client.post(f"{FHIR}/Appointment", json=bad, headers=h), schema, 400, "invalid_resource")
    assert issues["issue"][0]["expression"] == ["Appointment.colour"]
    outcome(
        client.post(f"{FHIR}/Appointment", json={**second, "start": "tomorrow"}, headers=h),
        schema,
        400,
        "invalid_resource",
    )
    outcome(
        client.post(f"{FHIR}/Appointment", json={**second, "status": "bogus"}, headers=h),
        schema,
        400,
        "unsupported_status",
    )
    outcome(
        client.post(f"{FHIR}/Appointment", json=new_appointment(str(uuid.uuid4()), world.patient_id), headers=h),
        schema,
        422,
        "unknown_reference",
    )
    outcome(client.post(f"{FHIR}/Appointment", content=b"{oops", headers=headers), schema, 400, "malformed_json")
    outcome(
        client.post(f"{FHIR}/Appointment", json={"resourceType": "Slot"}, headers=h), schema, 400, "wrong_resource_type"
    )
    outcome(
        client.post(f"{FHIR}/Appointment", content=b"x", headers={**h, "content-type": "text/plain"}),
        schema,
        415,
        "unsupported_media_type",
    )

    # cancel by updating the status; a second time changes nothing
    cancel = {**read, "status": "cancelled", "cancelationReason": {"text": "改约其他时间"}}
    done = fhir(client.put(f"{FHIR}/Appointment/{booked['id']}", json=cancel, headers=h), schema)
    assert done["status"] == "cancelled" and done["cancelationReason"]["text"] == "改约其他时间"
    assert (
        fhir(client.put(f"{FHIR}/Appointment/{booked['id']}", json=cancel, headers=h), schema)["status"] == "cancelled"
    )
    assert fhir(client.get(f"{FHIR}/Slot/{first['id']}", headers=h), schema)["status"] == "free"
    outcome(
        client.put(f"{FHIR}/Appointment/{booked['id']}", json={**read, "status": "arrived"}, headers=h),
        schema,
        400,
        "unsupported_update",
    )

    # a hospital revoking its grant: the same token reaches nothing there, at once
    ok(
        client.delete(
            f"/api/v1/hospitals/{world.x.hospital_id}/partner-apps/{world.app['id']}", headers=auth(world.x.admin_token)
        )
    )
    assert fhir(client.get(f"{FHIR}/Slot", params={"schedule": sid}, headers=h), schema)["total"] == 0
    outcome(client.get(f"{FHIR}/Appointment/{booked['id']}", headers=h), schema, 404, "not_found")

    # an expired token is refused
    clock.shift(timedelta(hours=2))
    outcome(client.get(f"{FHIR}/Organization", headers=h), schema, 401, "invalid_token")
    for c in (world.browser, full_browser, _b):
        c.close()


def test_scopes_limit_what_a_token_does(client: httpx.Client, schema: Schema, admin_token: str) -> None:
    world = World(client, admin_token, scopes=["launch/patient", "patient/Slot.rs", "patient/Appointment.rs"])
    narrow = world.login(client, world.browser, world.patient_id, scope="launch/patient patient/Slot.rs")
    h = auth(narrow)
    fhir(client.get(f"{FHIR}/Slot", params={"schedule": world.schedule["id"]}, headers=h), schema)
    outcome(client.get(f"{FHIR}/Appointment", headers=h), schema, 403, "scope_missing")
    outcome(client.get(f"{FHIR}/Patient/{world.patient_id}", headers=h), schema, 403, "scope_missing")
    slot_id = fhir(client.get(f"{FHIR}/Slot", params={"schedule": world.schedule["id"]}, headers=h), schema)
    first = slot_id["entry"][0]["resource"]["id"]
    outcome(
        client.post(f"{FHIR}/Appointment", json=new_appointment(first, world.patient_id), headers=auth(world.token)),
        schema,
        403,
        "scope_missing",
    )


def test_backend_app_reads_slots_of_granting_hospitals(client: httpx.Client, schema: Schema, admin_token: str) -> None:
    world = World(client, admin_token)
    h = auth(backend_token(client, admin_token, world, ["system/Slot.rs", "system/Appointment.crs"]))
    slots = fhir(client.get(f"{FHIR}/Slot", params={"schedule": world.schedule["id"]}, headers=h), schema)
    # its own pool is empty (the hospital gave places to the other app): every slot is busy for it
    assert slots["total"] == 4 and {e["resource"]["status"] for e in slots["entry"]} == {"busy"}
    assert (
        fhir(client.get(f"{FHIR}/Slot", params={"schedule": world.other_schedule["id"]}, headers=h), schema)["total"]
        == 0
    )
    first = slots["entry"][0]["resource"]["id"]
    outcome(
        client.post(f"{FHIR}/Appointment", json=new_appointment(first, world.patient_id), headers=h),
        schema,
        403,
        "patient_context_required",
    )


def test_locations_roles_encounters_and_medication_requests(
    client: httpx.Client, schema: Schema, admin_token: str
) -> None:  # noqa: PLR0915
    world = World(client, admin_token)
    h = auth(world.token)  # patient/*.rs: the patient in context
    x, y = world.x, world.y
    # Location: the granting hospital's campuses; another hospital's does not exist for the app
    campus = ok(
        client.post(
            f"/api/v1/hospitals/{x.hospital_id}/campuses",
            headers=auth(x.admin_token),
            json={"name": "东院区", "address": "北京市朝阳区东三环中路 1 号"},
        ),
        201,
    )
    elsewhere = ok(
        client.post(
            f"/api/v1/hospitals/{y.hospital_id}/campuses", headers=auth(y.admin_token), json={"name": "西院区"}
        ),
        201,
    )
    locations = fhir(client.get(f"{FHIR}/Location", params={"organization": x.hospital_id}, headers=h), schema)
    assert [e["resource"]["name"] for e in locations["entry"]] == ["东院区"]
    place = fhir(client.get(f"{FHIR}/Location/{campus['id']}", headers=h), schema)
    assert place["managingOrganization"]["reference"] == f"Organization/{x.hospital_id}"
    assert place["address"]["text"].startswith("北京市")
    outcome(client.get(f"{FHIR}/Location/{elsewhere['id']}", headers=h), schema, 404, "not_found")
    # PractitionerRole: the doctor's filing at X, with the department; none at Y for this app
    roles = fhir(client.get(f"{FHIR}/PractitionerRole", params={"practitioner": x.practitioner_id}, headers=h), schema)
    assert len(roles["entry"]) == 1
    role = roles["entry"][0]["resource"]
    assert role["organization"]["reference"] == f"Organization/{x.hospital_id}" and role["active"] is True
    assert role["healthcareService"][0]["reference"] == f"HealthcareService/{x.department_id}"
    fhir(client.get(f"{FHIR}/PractitionerRole/{role['id']}", headers=h), schema)
    assert fhir(client.get(f"{FHIR}/PractitionerRole", params={"active": "true"}, headers=h), schema)["entry"]
    hidden = fhir(client.get(f"{FHIR}/PractitionerRole", params={"organization": y.hospital_id}, headers=h), schema)
    assert hidden["entry"] == []
    outcome(
        client.get(f"{FHIR}/PractitionerRole", params={"active": "maybe"}, headers=h),
        schema,
        400,
        "bad_search_parameter",
    )

    # Encounter: the patient's own online consultation at X, not another patient's, nor one at Y
    session_token = world.browser.cookies["cb_session"]  # the patient's own login, as CareBridge's pages use it
    mine = make_consultation(client, admin_token, world=x, patient=(session_token, world.patient_id))
    theirs = make_consultation(client, admin_token, world=x)
    at_y = make_consultation(client, admin_token, world=y)
    found = fhir(client.get(f"{FHIR}/Encounter", headers=h), schema)
    assert [e["resource"]["id"] for e in found["entry"]] == [mine.consultation_id]
    encounter = fhir(client.get(f"{FHIR}/Encounter/{mine.consultation_id}", headers=h), schema)
    assert encounter["status"] == "in-progress" and encounter["class"]["code"] == "VR"
    assert encounter["subject"]["reference"] == f"Patient/{world.patient_id}" and "start" in encounter["period"]
    outcome(client.get(f"{FHIR}/Encounter/{theirs.consultation_id}", headers=h), schema, 404, "not_found")
    finished = fhir(client.get(f"{FHIR}/Encounter", params={"status": "finished"}, headers=h), schema)
    assert finished["entry"] == []
    outcome(client.get(f"{FHIR}/Encounter", params={"status": "done"}, headers=h), schema, 400, "bad_search_parameter")

    # MedicationRequest: each drug of a signed prescription; a draft is not shown; approval makes it active
    drugs = load_formulary(client, x)
    doctor = auth(mine.doctor_token)
    body = {
        "diagnoses": ["I10"],
        "items": [
            {
                "drug_id": drugs["amlodipine"]["id"],
                "dose": 5,
                "frequency": "qd",
                "route": "oral",
                "days": 7,
                "quantity": 1,
            }
        ],
    }
    rx = ok(client.post(f"/api/v1/consultations/{mine.consultation_id}/prescriptions", headers=doctor, json=body), 201)
    assert fhir(client.get(f"{FHIR}/MedicationRequest", headers=h), schema)["entry"] == []
    ok(client.post(f"/api/v1/prescriptions/{rx['id']}/sign", headers=doctor, json={"password": PASSWORD}))
    held = fhir(client.get(f"{FHIR}/MedicationRequest", params={"encounter": mine.consultation_id}, headers=h), schema)
    assert [e["resource"]["status"] for e in held["entry"]] == ["on-hold"]
    ok(client.post(f"/api/v1/prescriptions/{rx['id']}/approve", headers=auth(make_staff(client, x)), json={}))
    request = fhir(client.get(f"{FHIR}/MedicationRequest/{held['entry'][0]['resource']['id']}", headers=h), schema)
    assert request["status"] == "active" and request["groupIdentifier"]["value"] == rx["id"]
    assert request["reasonCode"][0]["coding"][0]["code"] == "I10"
    assert request["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"] == 5

    # a backend app with system/ scopes sees every patient's at X, nothing at Y; without the scope: 403
    backend = auth(backend_token(client, admin_token, world, ["system/Encounter.rs", "system/MedicationRequest.rs"]))
    every = fhir(client.get(f"{FHIR}/Encounter", params={"_count": 100}, headers=backend), schema)
    ids = {e["resource"]["id"] for e in every["entry"]}
    assert {mine.consultation_id, theirs.consultation_id} <= ids and at_y.consultation_id not in ids
    assert len(fhir(client.get(f"{FHIR}/MedicationRequest", headers=backend), schema)["entry"]) == 1
    narrow = auth(backend_token(client, admin_token, world, ["system/Slot.rs"]))
    outcome(client.get(f"{FHIR}/Encounter", headers=narrow), schema, 403, "scope_missing")
    outcome(client.get(f"{FHIR}/MedicationRequest", headers=narrow), schema, 403, "scope_missing")


def test_audit_events_for_regulators_in_their_region(client: httpx.Client, schema: Schema, admin_token: str) -> None:
    # districts no other test uses: a district regulator becomes the most local one told of new cases there
    near = make_hospital(client, admin_token, region="110106")
    far = make_hospital(client, admin_token, region="110108")
    near_schedule, far_schedule = make_schedule(client, near), make_schedule(client, far)
    regulator = auth(make_regulator(client, admin_token, region="110106"))
    everything = auth(admin_token)

    def schedules_created(headers: dict[str, str]) -> dict[str, dict]:
        params = {"subtype": "schedule.created", "_count": 100}
        found = fhir(client.get(f"{FHIR}/AuditEvent", params=params, headers=headers), schema)
        return {e["resource"]["entity"][0]["what"]["reference"]: e["resource"] for e in found["entry"]}

    seen = schedules_created(regulator)
    assert f"Schedule/{near_schedule['id']}" in seen and f"Schedule/{far_schedule['id']}" not in seen
    event = seen[f"Schedule/{near_schedule['id']}"]
    assert event["action"] == "C" and event["source"]["observer"]["reference"] == f"Organization/{near.hospital_id}"
    assert event["agent"][0]["role"][0]["text"] == "hospital_admin"
    far_event = schedules_created(everything)[f"Schedule/{far_schedule['id']}"]  # a platform admin sees all
    outcome(client.get(f"{FHIR}/AuditEvent/{far_event['id']}", headers=regulator), schema, 404, "not_found")
    fhir(client.get(f"{FHIR}/AuditEvent/{far_event['id']}", headers=everything), schema)
    # a patient's unmasked read of their own profile: a read (R), found by patient
    token, patient_id, _ = make_patient(client)
    ok(client.get(f"/api/v1/patients/{patient_id}", headers=auth(token)))
    reads = fhir(client.get(f"{FHIR}/AuditEvent", params={"patient": patient_id}, headers=everything), schema)
    assert {e["resource"]["action"] for e in reads["entry"]} == {"R"}
    assert "patient.personal_data.read" in {e["resource"]["subtype"][0]["code"] for e in reads["entry"]}
    day = f"ge{clock.now().date().isoformat()}"
    assert fhir(client.get(f"{FHIR}/AuditEvent", params={"date": day}, headers=regulator), schema)["entry"]
    # nobody else: no token, a patient, a partner app's token
    outcome(httpx.get(f"{client.base_url}{FHIR}/AuditEvent"), schema, 401, "not_authenticated")  # no cookies
    outcome(client.get(f"{FHIR}/AuditEvent", headers=auth(token)), schema, 403, "role_not_allowed")
    world = World(client, admin_token, scopes=["launch/patient", "patient/*.rs"])
    outcome(client.get(f"{FHIR}/AuditEvent", headers=auth(world.token)), schema, 403, "regulators_only")

    # a partner app reading a patient of the regulator's region: no hospital's record, the patient's region's
    browser, local = patient_browser(client.base_url, region="110106")
    app_token = auth(world.login(client, browser, local))
    fhir(client.get(f"{FHIR}/Patient/{local}", headers=app_token), schema)
    fhir(client.get(f"{FHIR}/Patient/{world.patient_id}", headers=auth(world.token)), schema)  # a 110105 patient
    app_reads = {"patient": f"{local},{world.patient_id}", "subtype": "patient.personal_data.read", "_count": 100}
    found = fhir(client.get(f"{FHIR}/AuditEvent", params=app_reads, headers=regulator), schema)
    partner_reads = [e["resource"] for e in found["entry"] if e["resource"]["agent"][0].get("altId")]
    assert [r["entity"][0]["what"]["reference"] for r in partner_reads] == [f"Patient/{local}"]
    assert partner_reads[0]["agent"][0]["altId"] == world.app["client_id"]


def test_spec_examples_are_answered_with_clear_outcomes(
    client: httpx.Client, schema: Schema, admin_token: str, testdata: Path
) -> None:
    world = World(client, admin_token)
    h = {**auth(world.token), "content-type": "application/fhir+json"}
    examples = testdata / "fhir-r4-examples"
    for name in ("appointment-example.json", "appointment-example-request.json", "appointment-example2doctors.json"):
        body = (examples / name).read_bytes()
        r = client.post(f"{FHIR}/Appointment", content=body, headers=h)
        assert 400 <= r.status_code < 500, (name, r.text)
        answer = fhir(r, schema, r.status_code)
        assert answer["resourceType"] == "OperationOutcome"
        codes = {c["code"] for i in answer["issue"] for c in i["details"]["coding"]}
        assert codes & {"slot_required", "unknown_reference"}, (name, answer)
    huge = b'{"resourceType": "Appointment", "comment": "' + b"x" * 70_000 + b'"}'
    outcome(client.post(f"{FHIR}/Appointment", content=huge, headers=h), schema, 413, "body_too_large")
    for name in ("slot-example.json", "schedule-example.json"):
        kind = json.loads((examples / name).read_text())["resourceType"]
        r = client.post(f"{FHIR}/{kind}", content=(examples / name).read_bytes(), headers=h)
        outcome(r, schema, 405, "method_not_allowed")


def test_fhirclient_end_to_end(client: httpx.Client, schema: Schema, admin_token: str) -> None:
    from fhirclient import client as smart_client
    from fhirclient.models.appointment import Appointment
    from fhirclient.models.slot import Slot

    world = World(client, admin_token)
    base = str(client.base_url).rstrip("/")
    smart = smart_client.FHIRClient(
        settings={
            "app_id": world.app["client_id"],
            "api_base": f"{base}{FHIR}",
            "redirect_uri": REDIRECT,
            "scope": "patient/*.rs patient/Appointment.cruds offline_access",
        }
    )
    url = smart.authorize_url  # discovery: fhirclient reads the CapabilityStatement's oauth-uris
    assert url.startswith(f"{base}/oauth/authorize?")
    page = world.browser.get(url)
    assert page.status_code == 200, page.text
    params = dict(httpx.URL(url).params)
    form = {**params, "decision": "allow", "patient_id": world.patient_id, "csrf": world.browser.cookies["cb_csrf"]}
    back = world.browser.post("/oauth/authorize", data=form)
    assert back.status_code == 302, back.text
    smart.handle_callback(back.headers["location"])
    assert smart.ready and smart.patient_id == world.patient_id
    assert smart.patient.name[0].text == "李华"
    search = Slot.where({"schedule": world.schedule["id"], "status": "free", "_count": "3", "_total": "accurate"})
    pages = list(search.perform_iter(smart.server))  # follows the Bundle's next link
    assert [len(p.entry) for p in pages] == [3, 1] and pages[0].total == 4
    slot = pages[0].entry[0].resource
    appointment = Appointment(new_appointment(slot.id, world.patient_id))
    created = appointment.create(smart.server)
    assert created["status"] == "booked", created
    schema.check(created)


def test_fhirpy_search_and_create(client: httpx.Client, schema: Schema, admin_token: str) -> None:
    from fhirpy import SyncFHIRClient

    world = World(client, admin_token)
    base = str(client.base_url).rstrip("/")
    fhirpy = SyncFHIRClient(f"{base}{FHIR}", authorization=f"Bearer {world.token}")
    slots = fhirpy.resources("Slot").search(schedule=world.schedule["id"]).fetch()
    assert len(slots) == 4
    appointment = fhirpy.resource("Appointment", **new_appointment(slots[0]["id"], world.patient_id))
    appointment.save()
    assert appointment["id"] and appointment["status"] == "booked"
    again = fhirpy.resources("Appointment").search(patient=world.patient_id).fetch()
    assert [a["id"] for a in again] == [appointment["id"]]
    schema.check(again[0].serialize())


def test_appointments_created_together_through_an_app(client: httpx.Client, schema: Schema, admin_token: str) -> None:
    """Patients booking one slot of the app's pool at the same moment, through FHIR and the JSON API with the
    app's tokens: decided together (scheduling.desk), as many places as the pool holds, each refusal a clear
    OperationOutcome (FHIR) or error (JSON), every answer a valid resource."""
    import asyncio

    world = World(client, admin_token)
    channel = world.app["channel"]
    scarce = make_schedule(client, world.x, pools={channel: 2}, session="evening", start="18:00", end="18:30")
    slot_id = ok(client.get(f"/api/v1/schedules/{scarce['id']}"))["slots"][0]["id"]
    people = []
    for _ in range(5):
        browser, patient_id = patient_browser(client.base_url)
        people.append((world.login(client, browser, patient_id), patient_id))

    async def together() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=str(client.base_url), timeout=60) as ac:
            calls = [
                ac.post(
                    f"{FHIR}/Appointment",
                    json=new_appointment(slot_id, patient_id),
                    headers={**auth(token), "Idempotency-Key": str(uuid.uuid4())},
                )
                for token, patient_id in people[:4]
            ]
            token, patient_id = people[4]
            wanted = {"patient_id": patient_id, "slot_id": slot_id}
            calls.append(ac.post("/api/v1/appointments", headers=auth(token), json=wanted))
            calls.append(  # a patient the token does not act for
                ac.post(f"{FHIR}/Appointment", json=new_appointment(slot_id, people[1][1]), headers=auth(people[0][0]))
            )
            return await asyncio.gather(*calls)

    answers = asyncio.run(together())
    booked = [r for r in answers[:5] if r.status_code == 201]
    assert len(booked) == 2, [r.text for r in answers]
    for r in answers[:4]:
        if r.status_code == 201:
            assert fhir(r, schema, 201)["slot"][0]["reference"] == f"Slot/{slot_id}"
        else:
            outcome(r, schema, 409, "slot_full")
    if answers[4].status_code != 201:
        assert answers[4].status_code == 409 and answers[4].json()["error"]["code"] == "slot_full"
    outcome(answers[5], schema, 403, "patient_not_in_context")
    assert fhir(client.get(f"{FHIR}/Slot/{slot_id}", headers=auth(world.token)), schema)["status"] == "busy"
