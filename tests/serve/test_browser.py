"""A real browser against `newsdrop run`: Debian's headless Chromium, driven by Selenium
through Debian's chromedriver (no browser download). Screenshots go to
test-artifacts/screenshots/."""

from __future__ import annotations

import re
from pathlib import Path
from smtpd import PASSWORD, SmtpServer

from chrome import (
    CHROMEDRIVER,
    CHROMIUM,
    axe_violations,
    each_view,
    needs_axe,
    needs_browser,
    shot,
)

from conftest import NOW
from live import RunningService, publish, received, served_entries, state_of, until

pytestmark = needs_browser

if CHROMIUM and CHROMEDRIVER:
    from selenium import webdriver
    from selenium.webdriver.common.by import By


def test_a_reader_browses_subscribes_confirms_and_unsubscribes(
    home: Path, smtp: SmtpServer, browser: webdriver.Chrome
) -> None:
    env = {**smtp.env(), "NEWSDROP_SMTP_PASSWORD": PASSWORD}
    env["NEWSDROP_DIGEST__INTERVAL_SECONDS"] = "3"  # a digest every few seconds
    service = RunningService(home, env=env).start()
    try:
        publish(home / "seeds", "river.md", "---\ntitle: The river rose overnight\n---\nWater.\n")
        until(
            lambda: served_entries(service).get("The river rose overnight"), timeout=5, what="entry"
        )

        browser.get(service.base)
        shot(browser, "1-index")
        browser.find_element(By.LINK_TEXT, "The river rose overnight").click()
        until(lambda: "entries/" in browser.current_url, timeout=10, what="the entry page")
        assert "Water." in browser.find_element(By.TAG_NAME, "main").text
        shot(browser, "2-entry")

        browser.get(service.base)
        browser.find_element(By.NAME, "email").send_keys("reader@example.org")
        browser.find_element(By.CSS_SELECTOR, "form.subscribe button").click()
        until(lambda: "Check your inbox" in browser.page_source, timeout=10, what="the answer")
        shot(browser, "3-subscribed")

        mail = until(lambda: received(smtp, "reader@example.org"), timeout=10, what="the mail")
        text = mail[0].get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
        link = re.search(r"http://\S+/confirm\?token=\S+", text)
        assert link, text
        browser.get(link.group(0))
        shot(browser, "4-confirm")
        browser.find_element(By.CSS_SELECTOR, "form.action button").click()
        until(lambda: "You are subscribed" in browser.page_source, timeout=10, what="confirmed")
        assert state_of(home, "reader@example.org").value == "active"

        # Something new for the first digest, which comes within a few seconds.
        publish(home / "seeds", "bridge.md", "---\ntitle: The bridge reopened\n---\nCars.\n")
        digest = until(
            lambda: [
                m
                for m in received(smtp, "reader@example.org")
                if "List-Unsubscribe" in m and not str(m["Subject"]).startswith("Welcome")
            ],
            timeout=20,
            what="the first digest",
        )[0]
        html = digest.get_body(preferencelist=("html",)).get_content()  # type: ignore[union-attr]
        assert "The bridge reopened" in html
        unsubscribe = re.search(r'href="(http://[^"]+/unsubscribe\?token=[^"]+)"', html)
        assert unsubscribe, "no unsubscribe link in the digest"
        browser.get(unsubscribe.group(1).replace("&amp;", "&"))
        shot(browser, "5-unsubscribe")
        browser.find_element(By.CSS_SELECTOR, "form.action button").click()
        until(lambda: "You are unsubscribed" in browser.page_source, timeout=10, what="done")
        shot(browser, "6-unsubscribed")
        assert state_of(home, "reader@example.org").value == "unsubscribed"
    finally:
        service.close()


@needs_axe
def test_every_page_passes_axe_at_390_and_1280_px_in_light_and_dark(
    home: Path, browser: webdriver.Chrome
) -> None:
    """Every page a reader sees, at a phone's and a desktop's width, in both colour
    schemes: axe-core finds no violation (contrast included); a screenshot of each."""
    from newsdrop.config import instance_secret, load_settings
    from newsdrop.model import SubscriberState
    from newsdrop.store import Store
    from newsdrop.subscribers import (
        confirm_token,
        expiring_token,
        manage_url,
        new_subscriber,
        unsubscribe_token,
    )

    settings = load_settings(home)
    store = Store.open(settings.store_url)
    try:
        (pending, active), _ = store.add_subscribers(
            [new_subscriber(f"{n}@example.org", timezone="UTC") for n in ("new", "old")],
            now=NOW,
            state=SubscriberState.PENDING,
        )
        store.set_subscriber_state(active.id, SubscriberState.ACTIVE, now=NOW)
    finally:
        store.close()
    secret = instance_secret(settings)
    service = RunningService(home).start()
    browser.execute_cdp_cmd("Page.setBypassCSP", {"enabled": True})  # to inject axe-core
    try:
        publish(
            home / "seeds",
            "river.md",
            "---\ntitle: The river rose overnight\ntags: [weather, local news]\n---\n"
            "Water reached the **old bridge** by midnight.\n\n> Stay away from the banks.\n",
        )
        until(lambda: served_entries(service).get("The river rose overnight"), timeout=10, what="1")
        day = next((home / "feeds" / "digests").glob("20*.html")).name
        expires = int(NOW.timestamp()) + 10**8
        pages = {
            "index": "",
            "entry": "entries/the-river-rose-overnight.html",
            "days": "digests/",
            "day": f"digests/{day}",
            "confirm": f"confirm?token={confirm_token(secret, pending.id, expires=expires)}",
            "unsubscribe": f"unsubscribe?token={unsubscribe_token(secret, active.id)}",
            "subscribe": "subscribe",
            "manage": manage_url("", secret, active),
            "account": f"account/{expiring_token(secret, 'account', active.id, expires=expires)}",
            "address": "address/"
            + expiring_token(secret, "address", active.id, expires=expires, extra="n@example.org"),
            "not-found": "no/such/page",
        }
        problems = {}
        for device, scheme in each_view(browser):
            for name, path in pages.items():
                browser.get(service.base + path)
                assert "newsdrop" in browser.page_source  # the page, not a browser error
                shot(browser, f"axe-{name}-{device}-{scheme}")
                if found := axe_violations(browser):
                    problems[f"{name} {device} {scheme}"] = found
        assert not problems, problems
    finally:
        service.close()
