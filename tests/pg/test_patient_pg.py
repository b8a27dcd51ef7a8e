"""Patient callers on PostgreSQL: remembered under a keyed hash, renewed, expired, forgotten;
the call record says the call was patient."""

from __future__ import annotations

from pathlib import Path

from ivr.services.calls import CallRecorder, load_call
from ivr.services.patients import DAY_SEC, PatientCallers
from ivr.services.pgstore import PgStore
from ivr.services.store import open_store

PHONE = "13800138000"


def test_patient_callers_on_postgresql(pg_dsn: str, tmp_path: Path) -> None:
    store = open_store(pg_dsn, home=tmp_path)
    assert isinstance(store, PgStore)
    now = [1.8e9]
    try:
        callers = PatientCallers(store, b"k" * 32, remember_days=180, clock=lambda: now[0])
        callers.remember(PHONE)
        callers.remember(PHONE)  # again: ON CONFLICT renews the expiry
        assert callers.remembers(PHONE) and not callers.remembers("13900139000")
        rows = store.query("SELECT caller_hash, since, expires_at FROM patient_callers")
        assert len(rows) == 1 and PHONE not in rows[0]["caller_hash"]
        assert rows[0]["expires_at"] - rows[0]["since"] == 180 * DAY_SEC
        now[0] += 181 * DAY_SEC
        assert not callers.remembers(PHONE)
        callers.remember("13900139000")  # removes the expired row
        callers.forget("13900139000")
        assert store.query("SELECT COUNT(*) AS n FROM patient_callers")[0]["n"] == 0
        rec = CallRecorder(store, channel="sip", locale="en-US", caller_id=PHONE)
        rec.set(patient=1)
        call = load_call(store, rec.call_id)
        assert call is not None and call.patient and call.as_dict()["patient"] is True
    finally:
        store.close()
