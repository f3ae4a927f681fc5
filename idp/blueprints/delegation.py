"""Support networks, the citizen's side (delegation.md "Lifecycle"): "People who can act for you"
(invite, approve or decline requests, renew, revoke, Stop everyone, activity) and "People you can
act for" (ask to become a carer, stop acting), and the emailed invitation link (accept or decline).

Every change is one transaction with its ledger entry, its outbox emails and the tokens it revokes;
a bad id, link, date or scope is a 4xx page and saves nothing.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from flask import Blueprint, Response, g, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import select

from consent import delegations as lifecycle
from consent.contact_details import email_problem, name_problem
from consent.delegation_models import Delegation
from consent.errors import DelegationError, DelegationInvalid, DelegationNotFound
from consent.pseudonyms import pseudonym_from, record_pseudonyms, reference_from
from idp.attempts import guess_succeeded, reserve_email, reserve_guess
from idp.blueprints.account import signed_in
from idp.consent_ledger import ledger
from idp.delegation_effects import ServiceEffects, send_invitation, send_request
from idp.delegation_forms import MODES, ONWARD, RELATIONSHIPS, agencies, delegable_scopes, end_date, terms_from
from idp.dependents import agreement_assurance, agreement_opens, create_dependent, handed_over_at, own_account_problem
from idp.errors import PageError
from idp.forms import completed
from idp.login_sessions import current_session
from idp.models import Account, Agency
from idp.oauth.claims import SCOPE_DESCRIPTIONS
from idp.services import db, services
from store.db import utcnow

bp = Blueprint("delegation", __name__)
PENDING_INVITATION = "delegation_invitation"  # the link opened before signing in (flow cookie)


@bp.app_errorhandler(DelegationError)
def delegation_error(error: DelegationError) -> Response:
    db().rollback()  # nothing is half-saved
    html = render_template("errors/error.html", title="There is a problem", message=str(error))
    return Response(html, status=error.status, mimetype="text/html")


def _names(ids: set[str | None]) -> dict[str, Account]:
    wanted = {i for i in ids if i}
    return {a.id: a for a in db().scalars(select(Account).where(Account.id.in_(wanted)))} if wanted else {}


def _page(template: str, **context: Any) -> dict[str, Any]:
    return {"relationships": RELATIONSHIPS, "modes": MODES, "onward": ONWARD, "descriptions": SCOPE_DESCRIPTIONS,
            "agency_names": {a.id: a.name for a in agencies()}, **context}


# -- People who can act for you ------------------------------------------------------------------

@bp.get("/account/delegates")
@signed_in
def delegates() -> str:
    mine = lifecycle.of_principal(db(), g.account.id)
    by_id = {d.id: d for d in mine}
    # An onward delegation names who passed it on: the delegate of the one it came from.
    passed_on_by = {d.id: by_id[d.parent_id].delegate_id for d in mine if d.parent_id in by_id}
    people = _names({d.delegate_id for d in mine})
    offer = handed_over_at(db(), g.account.id)
    return render_template("delegation/delegates.html", **_page(
        "", delegations=mine, people=people, passed_on_by=passed_on_by, done=request.args.get("done"),
        parent_age=services().settings.delegation_parent_age, now=utcnow(),
        agree_from=agreement_opens(offer) if offer is not None and offer.verified_at else None))


@bp.route("/account/delegates/invite", methods=["GET", "POST"])
@signed_in
def invite() -> ResponseReturnValue:
    form = request.form if request.method == "POST" else request.args
    context = _page("", form=form, agencies=agencies(), scopes=delegable_scopes())
    if request.method == "GET":
        return render_template("delegation/invite.html", errors={}, **context)
    terms, errors = terms_from(request.form, onward=True)
    email = request.form.get("email", "").strip().lower()[:320]
    if problem := email_problem(email):
        errors["email"] = problem
    elif email == g.account.email:
        errors["email"] = "Enter someone else's email address: you cannot act for yourself"
    if errors or terms is None:
        return Response(render_template("delegation/invite.html", errors=errors, **context), status=400)
    reserve_email(email)
    delegation, token = lifecycle.invite_delegate(db(), g.account.id, email, terms, ledger=ledger())
    link = services().settings.endpoint(url_for("delegation.invitation", token=token))
    send_invitation(db(), to=email, principal=g.account, delegation=delegation, link=link)
    return completed(url_for("delegation.delegates", done="invited"))


@bp.post("/account/delegates/<delegation_id>/<action>")
@signed_in
def decide(delegation_id: str, action: str) -> ResponseReturnValue:
    """The principal's buttons: revoke, approve or decline a request, renew; a young person's
    agreement that their parent keeps helping (continue)."""
    delegation = lifecycle.owned(db(), delegation_id, principal_id=g.account.id)
    by, effects = lifecycle.actor(g.account.id), ServiceEffects()
    if action == "revoke":
        if delegation.type == "attorney":
            raise PageError("Contact us to end this", "A power of attorney is ended by our staff. "
                            "Contact us to contest it.", 403)
        lifecycle.transition(db(), delegation, "revoke", by=by, reason="revoked_by_principal", ledger=ledger(),
                             effects=effects)
    elif action in ("approve", "decline") and delegation.status == "requested":
        reason = "approved" if action == "approve" else "request_declined"
        lifecycle.transition(db(), delegation, action, by=by, reason=reason, ledger=ledger(), effects=effects)
    elif action == "renew":
        renew(delegation)
    elif action == "continue":
        assurance = agreement_assurance(db(), g.account, current_session())  # type: ignore[arg-type]
        lifecycle.continue_for_young_person(db(), delegation, g.account.id, ledger=ledger(), effects=effects,
                                            comes_of_age=comes_of_age(g.account), note=handover_evidence(g.account),
                                            assurance=assurance)
    else:
        raise PageError("There is a problem", "That action is not available.", 404)
    return completed(url_for("delegation.delegates", done=action))


def comes_of_age(account: Account) -> dt.datetime | None:
    """When the configured age is reached (the parent's delegation would pause)."""
    if account.birthdate is None:
        return None
    age = services().settings.delegation_parent_age
    born = account.birthdate
    day = born.replace(year=born.year + age) if (born.month, born.day) != (2, 29) else dt.date(born.year + age, 3, 1)
    return dt.datetime.combine(day, dt.time(), dt.UTC)


def handover_evidence(account: Account) -> str | None:
    """For operators (``idp delegation list``): an agreement given from an account a parent handed
    over can only be as sure as that address was the young person's."""
    offer = handed_over_at(db(), account.id)
    if offer is None or offer.verified_at is None:
        return None
    return f"account handed over by its parent on {offer.verified_at:%Y-%m-%d} to {offer.email}"


def renew(delegation: Delegation) -> None:
    """delegation.md "Review": a fresh approval by the principal, with a new end date."""
    if delegation.type == "attorney":
        raise PageError("Contact us to renew this", "A power of attorney is renewed by our staff.", 403)
    ends, problem = end_date(request.form, utcnow())
    if problem:
        raise DelegationInvalid(problem)
    ends = ends or lifecycle.default_end(utcnow())
    lifecycle.check_terms(lifecycle.Terms(type=delegation.type, mode=delegation.mode, ends_at=ends), utcnow())
    lifecycle.transition(db(), delegation, "renew", by=lifecycle.actor(g.account.id), reason="renewed",
                         ledger=ledger(), effects=ServiceEffects(), ends_at=ends, reminded_at=None)


@bp.route("/account/delegates/stop-everyone", methods=["GET", "POST"])
@signed_in
def stop_everyone() -> ResponseReturnValue:
    if request.method == "GET":
        return render_template("delegation/stop_everyone.html", errors={})
    if request.form.get("confirm") != "yes":
        errors = {"confirm": "Select yes if you want to stop everyone acting for you"}
        return Response(render_template("delegation/stop_everyone.html", errors=errors), status=400)
    lifecycle.stop_everyone(db(), g.account.id, ledger=ledger(), effects=ServiceEffects())
    return completed(url_for("delegation.delegates", done="stopped"))


# -- People you can act for ----------------------------------------------------------------------

@bp.get("/account/acting-for")
@signed_in
def acting_for() -> str:
    theirs = lifecycle.of_delegate(db(), g.account.id)
    passed_on = lifecycle.passed_on_by(db(), g.account.id)
    people = _names({*(d.principal_id for d in theirs), *(d.delegate_id for d in passed_on)})
    grown_up = {d.id for d in theirs if d.type == "parent" and own_account_problem(db(), d, g.account) is None}
    return render_template("delegation/acting_for.html", **_page(
        "", delegations=theirs, passed_on=passed_on, people=people, done=request.args.get("done"),
        now=utcnow(), can_have_own_account=grown_up))


@bp.post("/account/acting-for/<delegation_id>/stop")
@signed_in
def stop_acting(delegation_id: str) -> ResponseReturnValue:
    delegation = lifecycle.owned(db(), delegation_id, delegate_id=g.account.id)
    lifecycle.transition(db(), delegation, "revoke", by=lifecycle.actor(g.account.id), reason="revoked_by_delegate",
                         ledger=ledger(), effects=ServiceEffects())
    return completed(url_for("delegation.acting_for", done="stopped"))


@bp.route("/account/acting-for/<delegation_id>/pass-on", methods=["GET", "POST"])
@signed_in
def pass_on(delegation_id: str) -> ResponseReturnValue:
    """delegation.md: a delegate allowed to delegate onward invites one more person, with no more than
    they have themselves (one hop). The principal sees it and can stop it, as can the delegate."""
    mine = lifecycle.owned(db(), delegation_id, delegate_id=g.account.id)
    if not (mine.may_delegate_onward and mine.in_force(utcnow())):
        raise PageError("You cannot pass this on", "You are not allowed to pass this on to someone else.", 403)
    principal = db().get(Account, mine.principal_id)
    assert principal is not None  # the delegation's foreign key
    choices = _onward_choices(mine, principal)
    form = request.form if request.method == "POST" else request.args
    context = _page("", form=form, mine=mine, principal=principal, **choices)
    if request.method == "GET":
        return render_template("delegation/pass_on.html", errors={}, **context)
    terms, errors = terms_from(_with_type(request.form, mine.type), types={mine.type: mine.type},
                               agency_choices={a.id for a in choices["agencies"]}, scope_choices=set(choices["scopes"]),
                               modes=choices["modes"])
    email = request.form.get("email", "").strip().lower()[:320]
    if problem := email_problem(email):
        errors["email"] = problem
    elif email in (g.account.email, principal.email):
        errors["email"] = "Enter the email address of someone else"
    if not errors and terms is not None:
        reserve_email(email)
        try:
            onward, token = lifecycle.invite_delegate(db(), mine.principal_id, email, _within(mine, terms),
                                                      ledger=ledger(), by=lifecycle.actor(g.account.id), parent=mine)
        except DelegationInvalid as error:
            db().rollback()
            errors[FIELD_OF_TERM.get(error.term or "", "email")] = str(error)
    if errors or terms is None:
        return Response(render_template("delegation/pass_on.html", errors=errors, **context), status=400)
    link = services().settings.endpoint(url_for("delegation.invitation", token=token))
    send_invitation(db(), to=email, principal=principal, delegation=onward, link=link,
                    passed_on_by=g.account)
    return completed(url_for("delegation.acting_for", done="passed_on"))


def _onward_choices(mine: Delegation, principal: Account) -> dict[str, Any]:
    """What an onward delegation may cover: never more than the delegate's own. The labels name the
    principal: the reader is the delegate, so "you" would be the wrong person."""
    every_agency = agencies()
    scopes = delegable_scopes() if mine.scope_set is None else sorted(mine.scope_set - {"openid"})
    modes = {"act": f"Use services for {principal.given_name}", "view": f"Only see {principal.given_name}'s details"}
    return {"agencies": every_agency if mine.agencies is None else [a for a in every_agency if a.id in mine.agencies],
            "scopes": scopes, "modes": modes if mine.mode == "act" else {"view": modes["view"]}}


# The form field of each term a domain refusal can name (for the error summary's link).
FIELD_OF_TERM = {"ends_at": "end-day", "agencies": "services", "scopes": "details", "mode": "mode", "email": "email"}


def _with_type(form: Any, kind: str) -> Any:
    """An onward delegation has the type of the one it comes from."""
    copied = form.copy()
    copied["type"] = kind
    return copied


def _within(mine: Delegation, terms: lifecycle.Terms) -> lifecycle.Terms:
    """On the onward form, "All" means all that the delegate's own delegation covers."""
    return dataclasses.replace(
        terms,
        agencies=tuple(mine.agencies) if terms.agencies is None and mine.agencies is not None else terms.agencies,
        scopes=mine.scope_set if terms.scopes is None and mine.scope_set is not None else terms.scopes)


@bp.post("/account/acting-for/<delegation_id>/passed-on/<onward_id>/stop")
@signed_in
def stop_passed_on(delegation_id: str, onward_id: str) -> ResponseReturnValue:
    """The delegate who passed a delegation on can end it (so can the principal, on their page)."""
    mine = lifecycle.owned(db(), delegation_id, delegate_id=g.account.id)
    onward = db().get(Delegation, onward_id[:36])
    if onward is None or onward.parent_id != mine.id:
        raise DelegationNotFound("There is no such delegation.")
    lifecycle.transition(db(), onward, "revoke", by=lifecycle.actor(g.account.id), reason="revoked_by_delegate",
                         ledger=ledger(), effects=ServiceEffects())
    return completed(url_for("delegation.acting_for", done="stopped_passed_on"))


@bp.route("/account/acting-for/request", methods=["GET", "POST"])
@signed_in
def ask() -> ResponseReturnValue:
    """A would-be carer asks; the same answer whether or not the email has an account."""
    form = request.form if request.method == "POST" else request.args
    if request.method == "GET":
        return render_template("delegation/request.html", errors={}, **_page("", form=form))
    terms, errors = terms_from(request.form)
    email = request.form.get("email", "").strip().lower()[:320]
    if email_problem(email) or email == g.account.email:
        errors["email"] = "Enter the email address of the person you want to help"
    if errors or terms is None:
        return Response(render_template("delegation/request.html", errors=errors, **_page("", form=form)), 400)
    reserve_email(email)  # whether or not the address has an account
    principal = db().scalar(select(Account).where(Account.email == email, Account.status == "active"))
    if principal is not None:
        lifecycle.request_delegation(db(), g.account.id, principal.id, terms, ledger=ledger())
        send_request(db(), to=principal.email, delegate=g.account)
    return completed(url_for("delegation.acting_for", done="requested"))


@bp.route("/account/acting-for/child", methods=["GET", "POST"])
@signed_in
def add_child() -> ResponseReturnValue:
    """delegation.md ``parent``: a dependent child profile, and the parent's delegation to act for it."""
    form = request.form if request.method == "POST" else request.args
    if request.method == "GET":
        return render_template("delegation/dependent.html", errors={}, form=form)
    fields = {name: request.form.get(name, "").strip()[:200] for name in ("given_name", "family_name")}
    errors = {name: "Enter the child's " + ("first" if name == "given_name" else "last") + " name"
              for name, value in fields.items() if not value}
    errors |= {name: problem for name, value in fields.items() if value and (problem := name_problem(value))}
    born = birthdate(request.form)
    if born is None:
        errors["day"] = "Enter the child's date of birth, like 27 3 2015"
    if request.form.get("confirm") != "yes":
        errors["confirm"] = "Confirm that you have parental responsibility for this child"
    if errors or born is None:
        return Response(render_template("delegation/dependent.html", errors=errors, form=form), status=400)
    try:
        create_dependent(db(), g.account, given_name=fields["given_name"], family_name=fields["family_name"],
                         birthdate=born, parent_age=services().settings.delegation_parent_age, ledger=ledger())
    except DelegationInvalid as error:
        db().rollback()
        html = render_template("delegation/dependent.html", errors={"day": str(error)}, form=form)
        return Response(html, status=400)
    return completed(url_for("delegation.acting_for", done="child"))


def birthdate(form: Any) -> dt.date | None:
    try:
        return dt.date(int(form.get("year", "")[:4]), int(form.get("month", "")[:2]), int(form.get("day", "")[:2]))
    except ValueError:
        return None


# -- the emailed invitation link -----------------------------------------------------------------

@bp.route("/delegation/invitation/<secret:token>", methods=["GET", "POST"])
def invitation(token: str) -> ResponseReturnValue:
    reserve_guess(None)  # the link names no address: the network's budget
    delegation = lifecycle.invitation(db(), token[:100])
    guess_succeeded()
    login = current_session()
    if login is None:
        session[PENDING_INVITATION] = token[:100]
        return render_template("delegation/invitation_signin.html", email=delegation.invite_email)
    delegation = lifecycle.invitation_for(db(), token[:100], login.account.email)  # before anything is shown
    principal = db().get(Account, delegation.principal_id)
    if request.method == "GET":
        return render_template("delegation/invitation.html", **_page(
            "", delegation=delegation, principal=principal, account=login.account))
    session.pop(PENDING_INVITATION, None)
    decision, effects = request.form.get("decision"), ServiceEffects()
    if decision == "accept":
        lifecycle.accept_invitation(db(), token, login.account_id, login.account.email, ledger=ledger(),
                                    effects=effects)
    elif decision == "decline":
        lifecycle.decline_invitation(db(), token, login.account.email, by=lifecycle.actor(login.account_id),
                                     ledger=ledger(), effects=effects)
    else:
        raise PageError("Choose what to do", "Select accept or decline.")
    return completed(url_for("delegation.acting_for", done=decision))


def pending_invitation() -> str | None:
    """Where a citizen who opened an invitation before signing in continues (home page)."""
    token = session.pop(PENDING_INVITATION, None)
    return url_for("delegation.invitation", token=token) if isinstance(token, str) else None


# -- activity ------------------------------------------------------------------------------------

EVENT_WORDS = {
    "acted_on_behalf": "signed in to a service for you", "delegation.invited": "was invited",
    "delegation.accepted": "accepted", "delegation.declined": "declined", "delegation.revoked": "was stopped",
    "delegation.expired": "reached its end", "delegation.requested": "asked to act for you",
    "delegation.created": "was set up", "delegation.suspended": "was paused", "delegation.resumed": "was resumed",
    "delegation.renewed": "was renewed",
}


@bp.get("/account/delegates/activity")
@signed_in
def activity() -> str:
    """delegation.md "Rules": every action taken for the principal, with receipts."""
    mine = set(record_pseudonyms(db(), g.account.id))
    rows = [(item, item.entry) for item in ledger().record_of(db(), g.account.id)
            if item.entry["type"] in EVENT_WORDS and item.entry.get("principal") in mine]
    people, delegation_ids = _named_in(g.account, {entry.get("agency") for _, entry in rows})
    agencies_by_id = {a.id: a.name for a in db().scalars(select(Agency))}
    return render_template("delegation/activity.html", rows=rows[::-1], people=people, words=EVENT_WORDS,
                           agency_names=agencies_by_id, delegation_ids=delegation_ids)


def _named_in(principal: Account, agency_ids: set[str | None]) -> tuple[dict[str, Account], dict[str, str]]:
    """Whom each delegate pseudonym names, and which delegation each ``acted_on_behalf`` reference
    is, in the contexts the rows are in (docs/consent-ledger.md "Pseudonyms"): the principal's
    delegates' pseudonyms recomputed, not looked up, since the ledger holds no shared name."""
    mine = list(db().scalars(select(Delegation).where(Delegation.principal_id == principal.id)))
    delegates = list(db().scalars(select(Account).where(Account.id.in_({d.delegate_id for d in mine}))))
    people = {a.ledger_pseudonym: a for a in delegates if a.ledger_pseudonym}
    people |= {pseudonym_from(a.ledger_secret, agency_id): a
               for a in delegates if a.ledger_secret for agency_id in agency_ids}
    secret = principal.ledger_secret
    references = {} if secret is None else {reference_from(secret, d.id, agency_id): d.id
                                            for d in mine for agency_id in agency_ids if agency_id is not None}
    return people, references
