"""A subscriber's whole story in a real browser (Debian's headless Chromium) against
`newsdrop run`, with the mails read from the instance's Maildir outbox: subscribe with
their choices, confirm, the welcome, a weekly digest at their hour in their zone with their
topics only, a change of mind from the manage link in that digest, a pause, a resume with
what they missed, and unsubscribing. Digests are sent in this process at chosen instants
(the store is the service's), so that a week passes in seconds."""

from __future__ import annotations

import mailbox
import re
from datetime import datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from zoneinfo import ZoneInfo

from chrome import CHROMEDRIVER, CHROMIUM, needs_browser, shot
from newsdrop.config import load_settings
from newsdrop.mail.deliver import send_digests
from newsdrop.store import Store

from live import RunningService, publish, served_entries, subscriber, until

pytestmark = needs_browser

if CHROMIUM and CHROMEDRIVER:
    from selenium import webdriver
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.select import Select

KYIV = ZoneInfo("Europe/Kyiv")
EMAIL = "olena@example.org"


def mails(home: Path) -> list[EmailMessage]:
    """Every mail in the outbox, in the order written (``mailbox`` names a message by the
    time: seconds, then ".M" and microseconds)."""
    box = mailbox.Maildir(home / "state" / "outbox", create=False)
    return [
        message_from_bytes(box.get_bytes(key), policy=policy.default)  # type: ignore[misc]
        for key in sorted(box.iterkeys(), key=written)
    ]


def written(key: str) -> tuple[int, int]:
    seconds, _, rest = key.partition(".M")
    return int(seconds), int(rest.partition("P")[0])


def text_of(mail: EmailMessage) -> str:
    return mail.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]


def digests(home: Path) -> list[EmailMessage]:
    return [
        m for m in mails(home) if "List-Unsubscribe" in m and "Welcome" not in str(m["Subject"])
    ]


def send_at(service: RunningService, moment: datetime) -> list[str]:
    """Send what is due at ``moment`` (in this process, on the service's store, with its
    address in the links); the titles in the digest that went, if one did."""
    settings = load_settings(service.home, environ=service.env)
    store = Store.open(settings.store_url)
    try:
        report = send_digests(settings, store, now=moment)
        ours = [p for p in report.opened if p.state == "queued"]
        return sorted(s.entry.title for p in ours for s in store.entries_by_id(p.entry_ids))
    finally:
        store.close()


def test_a_subscriber_chooses_confirms_changes_pauses_resumes_and_leaves(
    home: Path, browser: webdriver.Chrome
) -> None:
    service = RunningService(home).start()
    try:
        for name, tags in (("War one", "war"), ("Peace one", "peace"), ("Culture one", "culture")):
            publish(
                home / "seeds", f"{name}.md", f"---\ntitle: {name}\ntags: [{tags}]\n---\nText.\n"
            )
        until(lambda: len(served_entries(service)) == 3, timeout=20, what="three entries")

        # Subscribe by keyboard: the zone comes from the browser, by the page's own script.
        browser.execute_cdp_cmd("Emulation.setTimezoneOverride", {"timezoneId": "Europe/Kyiv"})
        browser.get(service.base + "subscribe")
        zone = browser.find_element(By.ID, "tz")
        # The script ran, under the CSP (Chromium's ICU still says Kiev: a valid IANA link).
        assert zone.get_attribute("value") in ("Europe/Kyiv", "Europe/Kiev")
        zone.clear()
        zone.send_keys("Europe/Kyiv")  # the field stays editable
        browser.find_element(By.ID, "email").send_keys(EMAIL)
        browser.find_element(By.CSS_SELECTOR, "input[value=weekly]").send_keys(Keys.SPACE)
        for topic in ("war", "peace"):
            browser.find_element(By.CSS_SELECTOR, f"input[value={topic}]").send_keys(Keys.SPACE)
        Select(browser.find_element(By.ID, "at")).select_by_value("08:00")
        shot(browser, "flow-1-subscribe")
        browser.find_element(By.ID, "email").send_keys(Keys.ENTER)  # submits the form
        until(lambda: "Check your inbox" in browser.page_source, timeout=10, what="the answer")
        assert "a weekly digest on Monday at 08:00 (Europe/Kyiv), on peace and war" in (
            " ".join(browser.find_element(By.TAG_NAME, "main").text.split())
        )

        confirmation = until(lambda: mails(home), timeout=20, what="the confirmation")[0]
        link = re.search(r"http://\S+/confirm\?token=\S+", text_of(confirmation))
        assert link and "Monday at 08:00 (Europe/Kyiv)" in " ".join(text_of(confirmation).split())
        browser.get(link.group(0))
        browser.find_element(By.CSS_SELECTOR, "form.action button").click()
        until(lambda: "You are subscribed" in browser.page_source, timeout=10, what="confirmed")
        welcome = until(lambda: mails(home)[1:], timeout=20, what="the welcome")[0]
        assert "War one" in text_of(welcome) and "Culture one" not in text_of(welcome)

        # The first weekly digest: Monday 08:00 in Kyiv, the chosen topics only.
        publish(home / "seeds", "War two.md", "---\ntitle: War two\ntags: [war]\n---\nText.\n")
        publish(
            home / "seeds", "Culture two.md", "---\ntitle: Culture two\ntags: [culture]\n---\nT.\n"
        )
        until(lambda: len(served_entries(service)) == 5, timeout=20, what="two more")
        today = datetime.now(KYIV)
        monday = (today + timedelta(days=7 - today.weekday())).replace(
            hour=8, minute=0, second=0, microsecond=0
        )
        assert send_at(service, monday - timedelta(minutes=1)) == []  # not before their hour
        assert send_at(service, monday + timedelta(minutes=1)) == ["War two"]
        digest = digests(home)[-1]
        manage = re.search(r"http://\S+/manage/\S+", text_of(digest))
        assert manage, text_of(digest)

        # From that digest's manage link: daily, peace only.
        browser.get(manage.group(0))
        shot(browser, "flow-2-manage")
        browser.find_element(By.CSS_SELECTOR, "input[value=daily]").send_keys(Keys.SPACE)
        browser.find_element(By.CSS_SELECTOR, "input[value=war]").send_keys(Keys.SPACE)
        browser.find_element(By.XPATH, "//button[text()='Save changes']").click()
        until(lambda: "Saved." in browser.page_source, timeout=10, what="saved")
        publish(home / "seeds", "Peace two.md", "---\ntitle: Peace two\ntags: [peace]\n---\nT.\n")
        publish(home / "seeds", "War three.md", "---\ntitle: War three\ntags: [war]\n---\nT.\n")
        until(lambda: len(served_entries(service)) == 7, timeout=20, what="two more")
        tuesday = monday + timedelta(days=1, minutes=1)
        assert send_at(service, tuesday) == ["Peace two"]

        # A pause: nothing; then resume with what was missed: one catch-up mail.
        Select(browser.find_element(By.ID, "weeks")).select_by_value("2")
        browser.find_element(By.XPATH, "//button[text()='Pause']").click()
        until(lambda: "Paused." in browser.page_source, timeout=10, what="paused")
        shot(browser, "flow-3-paused")
        publish(
            home / "seeds", "Peace three.md", "---\ntitle: Peace three\ntags: [peace]\n---\nT.\n"
        )
        until(lambda: len(served_entries(service)) == 8, timeout=20, what="one more")
        assert send_at(service, tuesday + timedelta(days=1)) == []
        browser.find_element(By.XPATH, "//button[text()='Resume and send what I missed']").click()
        until(lambda: "Resumed." in browser.page_source, timeout=10, what="resumed")
        sent_before = len(digests(home))
        assert send_at(service, tuesday + timedelta(days=2)) == ["Peace three"]
        assert len(digests(home)) == sent_before + 1

        # Unsubscribe from the same page: nothing more.
        browser.find_element(By.XPATH, "//button[text()='Unsubscribe']").click()
        until(lambda: "You are unsubscribed" in browser.page_source, timeout=10, what="left")
        shot(browser, "flow-4-unsubscribed")
        publish(home / "seeds", "Peace four.md", "---\ntitle: Peace four\ntags: [peace]\n---\nT.\n")
        until(lambda: len(served_entries(service)) == 9, timeout=20, what="one more")
        assert send_at(service, tuesday + timedelta(days=3)) == []
        assert subscriber(home, EMAIL).state.value == "unsubscribed"
        assert all(m["To"] and EMAIL in str(m["To"]) for m in mails(home))
    finally:
        service.close()


def test_the_subscribe_form_goes_by_keyboard_in_reading_order(
    home: Path, browser: webdriver.Chrome
) -> None:
    """Tab walks the form in the order it reads (one stop per radio group, each topic,
    then zone, hour, day and the button); arrow keys choose within a group; Enter sends."""
    service = RunningService(home).start()
    try:
        publish(home / "seeds", "a.md", "---\ntitle: A\ntags: [war, peace]\n---\nText.\n")
        until(lambda: served_entries(service), timeout=20, what="the entry")
        browser.get(service.base + "subscribe")
        body = browser.find_element(By.TAG_NAME, "body")
        body.send_keys(Keys.TAB)
        stops = []
        for _ in range(20):
            focused = browser.switch_to.active_element
            stops.append(focused.get_attribute("id") or focused.get_attribute("value"))
            if focused.tag_name == "button":
                break
            focused.send_keys(Keys.TAB)
        form = stops[stops.index("email") :]
        assert form == [
            "email", "name", "daily", "peace", "war", "tz", "at", "weekday", "language", ""
        ]  # fmt: skip
        browser.find_element(By.ID, "email").send_keys("keys@example.org")
        browser.find_element(By.CSS_SELECTOR, "input[value=daily]").send_keys(Keys.ARROW_DOWN)
        assert browser.find_element(By.CSS_SELECTOR, "input[value=weekly]").is_selected()
        browser.switch_to.active_element.send_keys(Keys.ENTER)
        until(lambda: "Check your inbox" in browser.page_source, timeout=10, what="sent")
        assert subscriber(home, "keys@example.org").frequency == "weekly"
    finally:
        service.close()
