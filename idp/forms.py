"""Every state-changing form is submitted once: a single-use token in each rendered form.

Each form carries ``form_token`` beside its CSRF token: a fresh random value per rendering, signed
with its time (the CSRF token authenticates the browser; this one names one filling-in of one form,
and is kept apart from CSRF and its rotation). A token older than ``KEPT_FOR`` is refused ("reload
the page"), so the worker can forget older submissions without letting an old page write twice.
The first POST carrying a token *claims* it before the view runs, by inserting its hash into
``form_submissions`` in the request's transaction; the view ends with
:func:`completed` (or :func:`remember_outcome`), which stores where the change led in that same row, so
the change, its claim and its outcome commit together or not at all.

A second POST of the same token (a double click, a resubmitted page, a retried request) fails to
insert the claim and is answered with the first one's outcome: a redirect to the same place, never
an error page and never a second write. Two at once: on PostgreSQL the second INSERT waits for the
first transaction (unique index) and then finds its row; on SQLite ``BEGIN IMMEDIATE`` runs them one
after the other. A submission that ends without an outcome (a form with errors, a rollback) leaves
no claim, so the corrected form can be sent again; one that commits anyway (an attempt reserved
before the check, idp.attempts) keeps the claim with no outcome, which sends a second submission
back to the form. Such a commit also makes a claim visible while its view still runs: a second
submission then waits briefly for the outcome. Nothing stored names a link's secret: the path is
kept as logged (``<secret:…>`` parts redacted) and outcomes are the pages a change led to.

A POST without a token is handled as before: our pages always render one, and an attacker gains
nothing by leaving it out (CSRF still applies, and limits are counted per submission).
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
import time
from typing import Any

from flask import Flask, current_app, g, redirect, request, session
from itsdangerous import BadSignature, TimestampSigner
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response  # what flask.redirect is typed to return

from idp.errors import PageError
from idp.logs import logged_path
from idp.models import FormSubmission
from idp.security import check_csrf
from idp.services import db
from keys.digests import secret_digest

FIELD = "form_token"
TOKEN = re.compile(r"^[A-Za-z0-9_.-]{40,200}$")
OUTCOME_POLLS, OUTCOME_POLL_SECONDS = 10, 0.2  # a second submission waits at most 2 s for the first's outcome
KEPT_FOR = dt.timedelta(days=2)  # pruned by the worker after this; a page older than that is reloaded
# Not forms of ours: protocol endpoints authenticate the client, the passkey ceremonies are JSON
# (their challenges are single use already), and signing in: a repeat is a new sign-in of the same
# person (each attempt counted by the throttle), and a replayed outcome could not hand the browser
# the session cookie of the first (kept only hashed), so it would leave the person signed out; and
# RP-initiated logout, whose outcome is Authlib's redirect to the agency, and ending an ended session
# changes nothing.
NOT_CLAIMED = frozenset({
    "protocol.token", "protocol.revoke", "protocol.introspect", "protocol.userinfo", "registration.register",
    "registration.manage", "authorize.authorize", "ledger.entries", "signin.signin", "logout.end_session",
    "passkeys.register_options", "passkeys.register_verify", "passkeys.signin_options", "passkeys.signin_verify",
    "passkeys.confirm_options", "passkeys.confirm_verify",
})


def form_token() -> str:
    """A new token for one rendered form (a Jinja global: ``{{ form_token() }}``)."""
    return _signer().sign(secrets.token_urlsafe(32)).decode()


def _signer() -> TimestampSigner:
    return TimestampSigner(current_app.secret_key or "", salt="form-token")


def _fresh(token: str) -> bool:
    try:
        _signer().unsign(token, max_age=int(KEPT_FOR.total_seconds()))
    except BadSignature:  # also SignatureExpired
        return False
    return True


def _submitted_token() -> str | None:
    return request.form.get(FIELD) if request.method == "POST" and request.endpoint not in NOT_CLAIMED else None


def replay_claimed_submission() -> Response | None:
    """before_request, ahead of the CSRF check: a token whose first submission has finished and
    handed the browser no state is answered with its outcome. That answer is a redirect and writes
    nothing, so it needs no CSRF check; and a form whose first submission started a new sign-in
    session (a password change) rotated the CSRF token the page still carries, so its second
    submission could not pass the check. An outcome that sets flow-cookie state is given only after
    the CSRF check: otherwise another site could post a token of the attacker's own (their recovery
    challenge, say) and plant that state in the victim's browser (login CSRF)."""
    token = _submitted_token()
    if token is None or not TOKEN.match(token) or not _fresh(token):
        return None
    first = db().get(FormSubmission, secret_digest(token))
    if first is None or first.outcome is None or first.flow:
        return None
    return redirect(first.outcome)


def claim_submission() -> Response | None:
    """before_request: claim the form's token, or answer a second submission with the first's outcome."""
    token = _submitted_token()
    if token is None:
        return None
    if not TOKEN.match(token) or not _fresh(token):
        raise PageError("This page has expired", "Go back, reload the page and try again.", 400)
    # The path as logged (link secrets redacted); no outcome until the change commits one.
    claim = FormSubmission(token_hash=secret_digest(token), path=logged_path()[:2000], outcome=None)
    session_ = db()
    session_.add(claim)
    try:
        session_.flush()  # PostgreSQL: waits here while another transaction holds the same token
    except IntegrityError:
        session_.rollback()
        return replay(session_.get(FormSubmission, claim.token_hash))
    g.form_claim = claim  # a rollback expunges it: remember_outcome then does nothing
    return None


def replay(first: FormSubmission | None) -> Response:
    """The first submission's outcome, again: where it led, and the flow-cookie values it set. A
    first submission still running (a view that committed an attempt before its change: idp.attempts)
    is waited for, briefly; one that ended with no outcome sends the browser back to the form."""
    if first is None:  # removed by the worker meanwhile: the page is too old to trust
        raise PageError("This page has expired", "Go back, reload the page and try again.", 400)
    for _ in range(OUTCOME_POLLS):
        if first.outcome is not None:
            break
        time.sleep(OUTCOME_POLL_SECONDS)
        db().rollback()  # a new snapshot: the first submission may have committed since
        db().refresh(first)
    session.update(first.flow or {})
    return redirect(first.outcome or request.path)


def remember_outcome(location: str, flow: dict[str, Any] | None = None) -> None:
    """Where this submission led (a local path) and the flow-cookie values it set: given again to a
    second submission. Call before the commit of the change, so they commit together."""
    claim: FormSubmission | None = g.get("form_claim")
    if claim is not None and claim in db():
        claim.outcome, claim.flow = location[:2000], flow


def completed(location: str, flow: dict[str, Any] | None = None) -> Response:
    """The end of a state-changing form: the change and its outcome committed, then the redirect."""
    remember_outcome(location, flow)
    db().commit()
    return redirect(location)


def prune(session_: Session, now: dt.datetime) -> int:
    """Forget submissions older than ``KEPT_FOR`` (the worker)."""
    return session_.execute(delete(FormSubmission).where(FormSubmission.created_at < now - KEPT_FOR)).rowcount  # type: ignore[attr-defined, no-any-return]


def init_forms(app: Flask) -> None:
    """Call after the CSRF check is registered: the replay goes just in front of it, the claim after it."""
    checks = app.before_request_funcs.setdefault(None, [])
    checks.insert(checks.index(check_csrf), replay_claimed_submission)
    app.before_request(claim_submission)
    app.jinja_env.globals["form_token"] = form_token
