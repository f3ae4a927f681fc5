"""The demo's support network: Alan, Ada's carer and Ethel's parent, uses a demo service for Ethel
and the service says whom he is acting for, from the ``act`` and ``delegation`` claims."""

from __future__ import annotations

import re
from urllib.parse import urljoin

import requests

from idp.demo import CITIZENS
from tests.test_demo import RunningDemo, browser, only_form, path_of, running_demo, submit  # noqa: F401

ALAN = CITIZENS[1]


def text(page: requests.Response) -> str:
    return re.sub(r"\s+", " ", page.text)


def test_alan_uses_a_service_for_his_child(running_demo: RunningDemo, browser: requests.Session) -> None:  # noqa: F811
    url_a, _ = running_demo.service_urls
    page = browser.get(url_a + "/login", allow_redirects=True, timeout=30)
    page = submit(browser, page, [("email", ALAN.email), ("password", ALAN.password)])
    assert path_of(page).startswith("/authorize/who/"), page.text
    assert "Ada Lovelace, as their carer" in text(page) and "Ethel Turing, as their parent" in text(page)
    ethel = re.search(r'value="([^"]+)">\s*<label[^>]*>Ethel Turing', page.text)
    assert ethel is not None
    form = only_form(page)
    page = browser.post(urljoin(page.url, form["action"]), allow_redirects=True, timeout=30,
                        data=[(n, v) for n, v in form["fields"] if n != "who"] + [("who", ethel.group(1))])
    # Ethel has no sign-in of her own: her parent is asked, in his words, what to share of hers.
    assert path_of(page).startswith("/consent/") and "You are deciding for Ethel" in text(page), page.text
    scopes = {value for name, value in only_form(page)["fields"] if name == "scope"}
    assert "email" not in scopes  # a child profile has no address; none is made up
    page = submit(browser, page, [("decision", "allow")])
    assert page.url == url_a + "/", page.text
    assert "You are acting for Ethel Turing as their parent" in text(page)
    assert 'id="actor"' in page.text
