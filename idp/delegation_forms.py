"""Reading the delegation forms: every field checked, every error a message for the page."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from consent.delegations import Terms
from idp.models import Agency, Client
from idp.oauth.claims import SCOPE_DESCRIPTIONS
from idp.services import db
from store.db import utcnow

RELATIONSHIPS = {"carer": "Carer", "family": "Family member"}
MODES = {"act": "Use services for you", "view": "Only see your details"}
ONWARD = {"no": "No", "yes": "Yes, to one other person, with no more than I allow them"}
NOT_DELEGABLE = frozenset({"openid", "offline_access"})


def agencies() -> list[Agency]:
    return list(db().scalars(select(Agency).order_by(Agency.name)))


def delegable_scopes() -> list[str]:
    """Every scope some client is registered for, bar signing in itself and refresh tokens."""
    found = {scope for value in db().scalars(select(Client.scope)) for scope in value.split()} - NOT_DELEGABLE
    standard = [scope for scope in SCOPE_DESCRIPTIONS if scope in found]
    return standard + sorted(found - set(standard))


def end_date(form: MultiDict[str, str], now: dt.datetime) -> tuple[dt.datetime | None, str | None]:
    """The end date from day/month/year fields (end of that day, UTC); empty means the default."""
    parts = [form.get(name, "").strip()[:4] for name in ("end-day", "end-month", "end-year")]
    if not any(parts):
        return None, None
    try:
        day = dt.date(int(parts[2]), int(parts[1]), int(parts[0]))
    except ValueError:
        return None, "The end date must be a real date, like 27 3 2027"
    ends = dt.datetime.combine(day, dt.time(23, 59, 59), dt.UTC)
    if ends <= now:
        return None, "The end date must be in the future"
    return ends, None


def terms_from(form: MultiDict[str, str], *, types: dict[str, str] = RELATIONSHIPS, onward: bool = False,
               agency_choices: set[str] | None = None, scope_choices: set[str] | None = None,
               modes: dict[str, str] = MODES) -> tuple[Terms | None, dict[str, str]]:
    """The terms a form asks for. ``onward``: the form asks whether they may pass it on;
    ``agency_choices``/``scope_choices``/``modes``: what may be chosen (default: everything there is)."""
    errors: dict[str, str] = {}
    kind, mode = form.get("type", ""), form.get("mode", "")
    if kind not in types:
        errors["type"] = "Choose the relationship"
    if mode not in modes:
        errors["mode"] = "Choose what they can do"
    may_pass_on = form.get("onward", "no") if onward else "no"
    if may_pass_on not in ONWARD:
        errors["onward"] = "Choose whether they can pass this on"
    known_agencies = {a.id for a in agencies()} if agency_choices is None else agency_choices
    known_scopes = set(delegable_scopes()) if scope_choices is None else scope_choices
    chosen_agencies, agency_error = _chosen(form, "services", "agency", known_agencies)
    chosen_scopes, scope_error = _chosen(form, "details", "scope", known_scopes)
    errors |= {key: message for key, message in (("services", agency_error), ("details", scope_error)) if message}
    ends, date_error = end_date(form, utcnow())
    if date_error:
        errors["end-day"] = date_error
    if errors:
        return None, errors
    scopes = frozenset(chosen_scopes) | {"openid"} if chosen_scopes is not None else None
    return Terms(type=kind, mode=mode, agencies=tuple(chosen_agencies) if chosen_agencies is not None else None,
                 scopes=scopes, ends_at=ends, may_delegate_onward=may_pass_on == "yes"), {}


def _chosen(form: MultiDict[str, str], radio: str, box: str, known: set[str]) -> tuple[list[str] | None, str | None]:
    """``all`` → None; ``some`` → the ticked values, which must all be known (forged ones are errors)."""
    choice = form.get(radio, "all")
    if choice == "all":
        return None, None
    values = [value[:100] for value in form.getlist(box)]
    if choice != "some" or not values:
        return None, "Choose at least one, or choose all"
    if not set(values) <= known:
        return None, "Choose from the list"
    return sorted(set(values)), None
