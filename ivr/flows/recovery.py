"""Account recovery (CALLFLOWS.md): prove the bound phone, one-time code, reset walkthrough."""

from __future__ import annotations

from typing import Final

from ivr.dialog.turns import AskKind, Sensitive
from ivr.flows.base import FlowHandlers, FlowSpec
from ivr.flows.walkthrough import run_walkthrough
from ivr.services.codes import Issue, Verify
from ivr.services.recovery_guard import HOLD_REASON, Attempt

MAX_NUMBERS: Final = 3

SPEC: Final = FlowSpec(
    name="account_recovery",
    states=(
        "recovery_start",
        "confirm_caller_id",
        "phone_number",
        "confirm_phone_number",
        "lookup",
        "try_another_number",
        "send_code",
        "verification_code",
        "confirm_verification_code",
        "verify_code",
        "reset_password",
        "recovery_worked",
    ),
    transitions=(
        ("known_caller", "recovery_start", "confirm_caller_id"),
        ("hold", "recovery_start", "transfer"),
        ("unknown_caller", "recovery_start", "phone_number"),
        ("yes", "confirm_caller_id", "send_code"),
        ("no", "confirm_caller_id", "phone_number"),
        ("hold", "confirm_caller_id", "transfer"),
        ("next", "phone_number", "confirm_phone_number"),
        ("give_up", "phone_number", "transfer"),
        ("yes", "confirm_phone_number", "lookup"),
        ("no", "confirm_phone_number", "phone_number"),
        ("corrected", "confirm_phone_number", "confirm_phone_number"),
        ("found", "lookup", "send_code"),
        ("not_found", "lookup", "try_another_number"),
        ("hold", "lookup", "transfer"),
        ("yes", "try_another_number", "phone_number"),
        ("no", "try_another_number", "transfer"),
        ("sent", "send_code", "verification_code"),
        ("locked", "send_code", "transfer"),
        ("next", "verification_code", "confirm_verification_code"),
        ("resend", "verification_code", "verification_code"),
        ("locked", "verification_code", "transfer"),
        ("yes", "confirm_verification_code", "verify_code"),
        ("no", "confirm_verification_code", "verification_code"),
        ("corrected", "confirm_verification_code", "confirm_verification_code"),
        ("ok", "verify_code", "reset_password"),
        ("wrong", "verify_code", "verification_code"),
        ("expired", "verify_code", "send_code"),
        ("locked", "verify_code", "transfer"),
        ("next", "reset_password", "recovery_worked"),
        ("yes", "recovery_worked", "anything_else"),
        ("no", "recovery_worked", "transfer"),
    ),
)


def _last4(phone: str) -> str:
    return phone[-4:]


class RecoveryHandlers(FlowHandlers):
    def _hold(self, attempt: Attempt) -> str:
        """Over a limit on recovery attempts: the caller is told and goes to an agent, whose
        case says why."""
        self.dialog.say("security_hold")
        self.ctx.transfer_reason = HOLD_REASON
        self.ctx.collected["security_hold"] = attempt.why(self.services.guard.window_s)
        return "hold"

    def do_recovery_start(self) -> str:
        guard = self.services.guard
        held = guard.caller_held()
        if held is not None:
            guard.step("start", f"held:{held.hold}", detail=held.why(guard.window_s))
            return self._hold(held)
        account = self.services.accounts.by_phone(self.ctx.caller_id)
        guard.step("start", "known_caller" if account else "unknown_caller")
        if account is not None:
            self.ctx.candidate_phone = account.phone
            return "known_caller"
        return "unknown_caller"

    def do_confirm_caller_id(self) -> str:
        assert self.ctx.candidate_phone
        answer = self.dialog.ask(
            "confirm_caller_id",
            grammar="yes_no",
            kind=AskKind.YES_NO,
            last4=self.dialog.digits(_last4(self.ctx.candidate_phone), "auto"),
        )
        if answer.value == "yes":
            attempt = self.services.guard.attempt(
                self.ctx.candidate_phone, found=True, how="caller_id"
            )
            if attempt.hold is not None:
                return self._hold(attempt)
            self.ctx.account_phone = self.ctx.candidate_phone
            self.remember_account(self.ctx.candidate_phone)
        return answer.value

    def do_phone_number(self) -> str:
        if self.ctx.numbers_tried >= MAX_NUMBERS:
            self.ctx.transfer_reason = "identification_failed"
            return "give_up"
        answer = self.dialog.ask(
            "phone_number", grammar="phone_number", kind=AskKind.DIGITS, sensitive=Sensitive.PHONE
        )
        self.ctx.numbers_tried += 1
        self.ctx.candidate_phone = answer.digits
        return "next"

    def do_confirm_phone_number(self) -> str:
        phone = self.ctx.candidate_phone
        assert phone
        answer, self.ctx.candidate_phone = self.read_back(
            "confirm_phone_number",
            phone,
            grammar="phone_number",
            sensitive=Sensitive.PHONE,
            number=self.dialog.digits(phone, "phone", keep=4),
        )
        return answer

    def do_lookup(self) -> str:
        assert self.ctx.candidate_phone
        account = self.services.accounts.by_phone(self.ctx.candidate_phone)
        attempt = self.services.guard.attempt(
            self.ctx.candidate_phone, found=account is not None, how="phone_number"
        )
        if attempt.hold is not None:
            return self._hold(attempt)
        if account is None:
            self.dialog.say("number_not_found")
            return "not_found"
        self.ctx.account_phone = account.phone
        self.remember_account(account.phone)
        self.ctx.collected["phone_last4"] = _last4(account.phone)
        return "found"

    def do_try_another_number(self) -> str:
        answer = self.dialog.ask("try_another_number", grammar="yes_no", kind=AskKind.YES_NO)
        if answer.value == "no":
            self.ctx.transfer_reason = "identification_failed"
        return answer.value

    def do_send_code(self) -> str:
        phone = self.ctx.account_phone
        assert phone
        issued = self.services.codes.issue(phone)
        self.services.guard.step("send_code", str(issued), account=phone)
        if issued is not Issue.SENT:
            self.dialog.say("recovery_locked")
            self.ctx.transfer_reason = "verification_failed"
            return "locked"
        self.dialog.say("code_sent", last4=self.dialog.digits(_last4(phone)))
        return "sent"

    def do_verification_code(self) -> str:
        phone = self.ctx.account_phone
        assert phone
        answer = self.dialog.ask(
            "verification_code",
            grammar="verification_code",
            kind=AskKind.DIGITS,
            sensitive=Sensitive.CODE,
        )
        if answer.value == "resend":
            issued = self.services.codes.issue(phone, resend=True)
            self.services.guard.step("resend_code", str(issued), account=phone)
            if issued is Issue.SENT:
                self.dialog.say("code_resent", last4=self.dialog.digits(_last4(phone)))
            elif issued is Issue.LOCKED:
                self.ctx.transfer_reason = "verification_failed"
                return "locked"
            else:
                self.dialog.say("resend_limit")
            return "resend"
        self.ctx.candidate_code = answer.digits
        return "next"

    def do_confirm_verification_code(self) -> str:
        code = self.ctx.candidate_code
        assert code
        answer, self.ctx.candidate_code = self.read_back(
            "confirm_verification_code",
            code,
            grammar="verification_code",
            sensitive=Sensitive.CODE,
            code=self.dialog.digits(code, "auto", keep=0),
        )
        return answer

    def do_verify_code(self) -> str:
        phone, code = self.ctx.account_phone, self.ctx.candidate_code
        assert phone and code
        self.ctx.candidate_code = None
        result = self.services.codes.verify(phone, code)
        self.services.guard.step("verify_code", str(result), account=phone)
        if result is Verify.OK:
            self.ctx.verified = True
            return "ok"
        if result is Verify.WRONG:
            self.dialog.say("code_mismatch")
            return "wrong"
        if result is Verify.EXPIRED:
            self.dialog.say("code_expired")
            return "expired"
        self.dialog.say("recovery_locked")
        self.ctx.transfer_reason = "verification_failed"
        return "locked"

    def do_reset_password(self) -> str:
        article = self.services.knowledge.get("reset_password")
        run_walkthrough(self.dialog, article, text_steps=self.steps_texter(article))
        self.services.guard.step("reset_password", "walked_through", account=self.ctx.account_phone)
        return "next"

    def do_recovery_worked(self) -> str:
        answer = self.dialog.ask("recovery_worked", grammar="yes_no", kind=AskKind.YES_NO)
        self.services.guard.step("recovery_worked", answer.value, account=self.ctx.account_phone)
        if answer.value == "no":
            self.ctx.transfer_reason = "task_failed"
        return answer.value
