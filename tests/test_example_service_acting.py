"""The demo agency service reads who is served and who is acting from the claims alone."""

from __future__ import annotations

from examples.agency_service.app import acting


def test_a_carer_acting_directly() -> None:
    claims = {"sub": "mary", "act": {"sub": "carol"}, "delegation": {"id": "d1", "type": "carer", "mode": "act"}}
    assert acting(claims) == {"type": "carer", "mode": "act", "actor": "carol", "passed_on_by": None}


def test_an_onward_delegate_names_who_passed_it_on() -> None:
    claims = {"sub": "mary", "act": {"sub": "dave", "act": {"sub": "carol"}},
              "delegation": {"id": "d2", "type": "carer", "mode": "view"}}
    assert acting(claims) == {"type": "carer", "mode": "view", "actor": "dave", "passed_on_by": "carol"}


def test_no_delegation_means_the_person_signed_in_is_served() -> None:
    assert acting({"sub": "mary"}) is None
    assert acting({"sub": "mary", "act": "not an object", "delegation": {"type": "carer"}}) is None
