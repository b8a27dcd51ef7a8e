"""A process that writes through the services without end, for the kill tests:
`python -m tests.store.writer DB SEED` prints "writing" once it has begun."""

from __future__ import annotations

import random
import sys
from pathlib import Path

from ivr.agents.cases import CaseDesk
from ivr.agents.queue import AgentQueue
from ivr.services.accounts import Accounts
from ivr.services.calls import CallRecorder, Outcome, TurnRecord
from ivr.services.codes import Codes, SmsOutbox
from ivr.services.store import Store
from ivr.services.tickets import Messages, Tickets

MESSAGES = Messages(created="Ticket {number} opened.", resolved="Ticket {number}: {resolution}")


def write_forever(db: Path, seed: int) -> None:
    rng = random.Random(seed)
    store = Store(db)
    accounts = Accounts(store)
    outbox = SmsOutbox(store)
    tickets = Tickets(store, outbox)
    queue = AgentQueue(store)
    desk = CaseDesk(store)
    n = 0
    print("writing", flush=True)
    while True:
        n += 1
        phone = f"1{seed:04d}{n:06d}"
        accounts.add(phone, f"Caller {n}")
        rec = CallRecorder(store, channel="sip", locale="en-US", caller_id=phone, server="w")
        for step in range(rng.randint(1, 6)):
            rec.state(f"state{step}")
            rec.line("ivr", f"prompt {step}")
            rec.turn(TurnRecord("main_menu", "dtmf", str(step), str(step), None))
            rec.turn_latency(12.5)
        codes = Codes(store, accounts, outbox, fixed_code="246810")
        codes.issue(phone)
        if rng.random() < 0.5:
            codes.verify(phone, "246810")
        else:
            for _ in range(3):
                codes.verify(phone, "000000")
        ticket = tickets.create(
            "content_review", {"n": n}, caller=phone, locale="en-US", messages=MESSAGES
        )
        tickets.update(ticket.number, status="resolved", resolution="done", messages=MESSAGES)
        queue_id = queue.enqueue(rec.call_id, "caller_request", {"n": n}, caller=phone)
        desk.promise_callback(queue_id)
        desk.assign(queue_id, None)
        rec.set(intent="agent", ticket_team="content_review")
        if rng.random() < 0.8:
            rec.finish(Outcome.TRANSFERRED, reason="caller_request")


if __name__ == "__main__":
    write_forever(Path(sys.argv[1]), int(sys.argv[2]))
