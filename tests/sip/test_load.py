"""Load: SIPp places 30 calls at once, 20 s each, streaming caller speech the whole time."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ivr.qa.synth import caller_speech
from ivr.speech.audio import ulaw_encode
from tests.sip.peers import Scenario, run_sipp, start_ivr

CALLS = 30


def test_thirty_calls_at_once(ivr_home: Path, tmp_path: Path) -> None:
    speech = caller_speech("ticket status").to_rate(8000).samples
    loop = np.concatenate([np.zeros(8000 * 2, np.int16), speech, np.zeros(8000 * 3, np.int16)])
    audio = tmp_path / "caller.ulaw"
    audio.write_bytes(ulaw_encode(loop))
    server = start_ivr(ivr_home, tmp_path, "--max-calls", "40")
    try:
        scenario = Scenario().invite().audio(audio).pause(20000).bye()
        result = run_sipp(
            scenario.xml(), server.port, tmp_path, calls=CALLS, rate=CALLS, timeout=120
        )
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        rows = server.wait_records(CALLS, timeout=60)
    finally:
        server.stop()
    assert len(rows) == CALLS
    for row in rows:  # every call answered, heard out, and recorded to its end
        assert row["error"] is None
        assert row["ended_at"] is not None
        assert '"main_menu"' in row["states"]
        if row["outcome"] == "abandoned":  # the caller hung up after 20 s
            assert row["ended_at"] - row["started_at"] > 15, dict(row)
        else:  # or the flow handed the silent caller to an agent first; they never asked for one
            assert row["outcome"] == "transferred", dict(row)
            assert row["transfer_reason"] in ("no_input", "no_match"), dict(row)
