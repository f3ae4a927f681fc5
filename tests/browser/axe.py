"""axe-core (bundled by axe-playwright-python) run on a page in the browser: WCAG 2.2 A and AA rules."""

from __future__ import annotations

from typing import Any

from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page

# sign-in.md "Pages": WCAG 2.2 AA, checked by axe-core in a real browser.
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]
OPTIONS = {"runOnly": {"type": "tag", "values": WCAG_TAGS}, "resultTypes": ["violations"]}

_axe = Axe()


def violations(page: Page) -> list[dict[str, Any]]:
    return list(_axe.run(page, options=OPTIONS).response["violations"])


def describe(found: list[dict[str, Any]]) -> str:
    lines = []
    for violation in found:
        lines.append(f"- {violation['id']} ({violation['impact']}): {violation['help']} <{violation['helpUrl']}>")
        for node in violation["nodes"]:
            lines.append(f"    {node['target']}: {node['failureSummary']}".replace("\n", " "))
    return "\n".join(lines)


def assert_accessible(page: Page) -> None:
    """Fail listing every WCAG 2.2 A/AA violation axe finds on the page as it is now."""
    found = violations(page)
    assert not found, f"axe found {len(found)} accessibility violation(s) on {page.url}:\n{describe(found)}"
