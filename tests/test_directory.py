from __future__ import annotations

import httpx

from tests.factories import auth, make_hospital, ok


def test_public_search_by_region_name_and_title(client: httpx.Client, admin_token: str) -> None:
    world = make_hospital(client, admin_token)
    found = ok(client.get("/api/v1/hospitals", params={"region": "110000", "q": "人民医院"}))
    assert world.hospital_id in [h["id"] for h in found["items"]]
    docs = ok(
        client.get("/api/v1/practitioners", params={"hospital_id": world.hospital_id, "title": "chief_physician"})
    )
    assert [p["id"] for p in docs["items"]] == [world.practitioner_id]
    assert docs["items"][0]["filings"][0]["kind"] == "main"
    depts = ok(client.get(f"/api/v1/hospitals/{world.hospital_id}/departments"))
    assert depts[0]["standard_code"] == "03.04"


def test_hospital_admin_is_scoped_to_own_hospital(client: httpx.Client, admin_token: str) -> None:
    a = make_hospital(client, admin_token)
    b = make_hospital(client, admin_token)
    r = client.patch(f"/api/v1/hospitals/{b.hospital_id}", headers=auth(a.admin_token), json={"name": "篡改医院"})
    assert r.status_code == 403 and r.json()["error"]["code"] == "other_hospital"
    r = client.post(
        f"/api/v1/hospitals/{b.hospital_id}/departments",
        headers=auth(a.admin_token),
        json={"name": "儿科", "standard_code": "07"},
    )
    assert r.status_code == 403
    r = client.patch(
        f"/api/v1/hospitals/{a.hospital_id}", headers=auth(a.admin_token), json={"licence_number": "FAKE-123"}
    )
    assert r.status_code == 403 and r.json()["error"]["code"] == "licensed_field"
    assert (
        ok(
            client.patch(
                f"/api/v1/hospitals/{a.hospital_id}", headers=auth(a.admin_token), json={"address": "朝阳路1号"}
            )
        )["address"]
        == "朝阳路1号"
    )
    assert ok(client.get(f"/api/v1/hospitals/{b.hospital_id}"))["name"] != "篡改医院"


def test_bad_ids_and_unknown_ids(client: httpx.Client) -> None:
    r = client.get("/api/v1/hospitals/not-a-uuid")
    assert r.status_code == 422 and r.json()["error"]["details"]["errors"][0]["field"] == "hospital_id"
    r = client.get("/api/v1/hospitals/00000000-0000-0000-0000-000000000000")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_second_main_filing_conflicts(client: httpx.Client, admin_token: str) -> None:
    a = make_hospital(client, admin_token)
    r = client.post(
        f"/api/v1/practitioners/{a.practitioner_id}/filings",
        headers=auth(a.admin_token),
        json={
            "hospital_id": a.hospital_id,
            "department_id": a.department_id,
            "kind": "main",
            "valid_from": "2024-01-01",
        },
    )
    assert r.status_code == 409 and r.json()["error"]["code"] == "main_filing_exists"
