"""The browser tests skip on a machine without Chromium, except where REQUIRE_BROWSER=1 (CI)."""

from __future__ import annotations

import pytest

from tests.browser.conftest import unavailable


def test_a_missing_browser_skips_the_browser_tests(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REQUIRE_BROWSER", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no browser here"):
        unavailable("no browser here")


def test_a_missing_browser_fails_when_browser_tests_are_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REQUIRE_BROWSER", "1")
    with pytest.raises(pytest.fail.Exception, match="REQUIRE_BROWSER=1 but no browser here"):
        unavailable("no browser here")
