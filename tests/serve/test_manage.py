"""The subscribe page with real choices and the preference centre (/manage/<token>), over
HTTP against the web app under uvicorn; the store says what each request did."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from html import unescape
from pathlib import Path
from urllib.parse import urlsplit

import feedparser
import pytest
from lxml import html as lxml_html

from newsdrop.mail.deliver import send_digests
from newsdrop.model import Subscriber, SubscriberState
from newsdrop.serve.manage import csrf_token
from newsdrop.store import Store
from newsdrop.subscribers import feed_url, link_token, manage_url, new_subscriber

from appserver import AppServer

SECRET = b"a test secret of enough length"  # AppServer's


@pytest.fixture
def server(
    home: Path, do_ingest: Callable[..., object], do_build: Callable[..., object]
) -> Iterator[AppServer]:
    seeds = home / "seeds"
    for n, tags in enumerate(("war, Kyiv", "war", "peace", "Kyiv")):
        (seeds / f"n{n}.md").write_text(f"---\ntitle: News {n}\ntags: [{tags}]\n---\nText {n}.\n")
    now = datetime.now(UTC)
    do_ingest(now)
    do_build(now)
    with AppServer(home) as running:
        yield running


def page(text: str) -> lxml_html.HtmlElement:
    return lxml_html.fromstring(text)


def test_the_subscribe_page_offers_every_choice_and_runs_its_one_script_by_hash(
    server: AppServer,
) -> None:
    answer = server.http.get("/subscribe")
    assert answer.status_code == 200
    doc = page(answer.text)
    topics = {
        " ".join(label.text_content().split()) for label in doc.cssselect("fieldset#topics label")
    }
    assert topics == {"war (2)", "Kyiv (2)", "peace (1)"}  # counted over 30 days, by name
    frequencies = [i.get("value") for i in doc.cssselect("input[name=frequency]")]
    assert frequencies == ["instant", "daily", "weekly", "monthly"]
    assert len(doc.cssselect("select#at option")) == 49  # the usual time, and 48 half hours
    assert "Europe/Kyiv" in {o.get("value") for o in doc.cssselect("datalist#zones option")}
    zone = doc.cssselect("input#tz")[0]
    assert zone.get("value") == "UTC" and zone.get("data-auto") == "1"  # the site's, for now
    for field in ("email", "name", "tz", "at", "weekday"):  # every field has its label
        assert doc.cssselect(f"label[for={field}]"), field
    # The script runs because the CSP names its hash, and nothing else may run.
    script = doc.cssselect("script")[0].text
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    csp = answer.headers["content-security-policy"]
    assert f"script-src 'sha256-{digest}'" in csp and "default-src 'none'" in csp
    assert answer.headers.get_list("content-security-policy") == [csp]
    assert "script-src" not in server.http.get("/atom.xml").headers["content-security-policy"]


def test_a_form_with_mistakes_says_what_to_fix_beside_each_field_and_keeps_the_rest(
    server: AppServer,
) -> None:
    form = {
        "email": "not an address",
        "frequency": "hourly",
        "topics": ["war"],
        "tz": "Mars/Olympus",
        "at": "07:15",
        "weekday": "someday",
    }
    answer = server.http.post("/subscribe", data=form)
    assert answer.status_code == 400
    doc = page(answer.text)
    for field in ("email", "tz", "at", "weekday"):
        control = doc.cssselect(f"#{field}")[0]
        assert control.get("aria-invalid") == "true", field
        assert f"{field}-error" in control.get("aria-describedby", "").split(), field
        assert doc.cssselect(f"#{field}-error"), field
    assert "hourly" not in doc.cssselect("#frequency-error")[0].text_content()
    summary = [a.get("href") for a in doc.cssselect(".problems a")]
    assert sorted(summary) == ["#at", "#email", "#frequency", "#tz", "#weekday"]
    # What was right is kept: the chosen topic, and the zone as typed (not the browser's).
    assert doc.cssselect("input[name=topics][value=war]")[0].get("checked") is not None
    zone = doc.cssselect("input#tz")[0]
    assert zone.get("value") == "Mars/Olympus" and zone.get("data-auto") is None
    assert server.store.subscriber("not an address") is None


def test_a_subscription_keeps_every_choice_and_the_answer_says_them(server: AppServer) -> None:
    form = {
        "email": "Mykola@Example.org",
        "name": "Mykola",
        "frequency": "weekly",
        "topics": ["war", "peace"],
        "tz": "Europe/Kyiv",
        "at": "08:00",
        "weekday": "friday",
    }
    answer = server.http.post("/subscribe", data=form)
    assert answer.status_code == 200, answer.text
    said = " ".join(unescape(answer.text).split())
    assert "a weekly digest on Friday at 08:00 (Europe/Kyiv), on war and peace" in said
    person = server.store.subscriber("mykola@example.org")
    assert person is not None and person.state is SubscriberState.PENDING
    assert (person.frequency, person.tags, person.timezone) == (
        "weekly",
        ("war", "peace"),
        "Europe/Kyiv",
    )
    assert (person.send_at, person.weekday, person.name) == ("08:00", "friday", "Mykola")
    # The index page's short form (no choices): a daily digest at the site's hour and zone.
    assert server.http.post("/subscribe", data={"email": "short@example.org"}).status_code == 200
    short = server.store.subscriber("short@example.org")
    assert short is not None
    assert (short.frequency, short.tags, short.timezone, short.send_at) == (
        "daily",
        (),
        "UTC",
        None,
    )


def active(store: Store, email: str = "reader@example.org") -> Subscriber:
    wanted = new_subscriber(email, timezone="UTC", frequency="daily", tags="war")
    added, _ = store.add_subscribers([wanted], now=datetime.now(UTC), state=SubscriberState.ACTIVE)
    return added[0]


def path_of(person: Subscriber) -> str:
    return "/" + manage_url("", SECRET, person)


def post(server: AppServer, person: Subscriber, **fields: object) -> object:
    token = path_of(person).rsplit("/", 1)[1]
    data = {"csrf": csrf_token(SECRET, token), **fields}
    return server.http.post(path_of(person), data=data)


def test_opening_the_manage_page_changes_nothing_and_shows_the_choices(server: AppServer) -> None:
    person = active(server.store)
    for _ in range(2):  # a mail scanner follows the link first
        answer = server.http.get(path_of(person))
        assert answer.status_code == 200
    doc = page(answer.text)
    assert "reader@example.org" in doc.text_content()
    assert doc.cssselect("input[name=topics][value=war]")[0].get("checked") is not None
    assert doc.cssselect("input[name=frequency][value=daily]")[0].get("checked") is not None
    assert server.store.subscriber_changes(person.id) == []
    again = server.store.subscriber("reader@example.org")
    assert again == person


def test_changes_from_the_manage_page_are_kept_recorded_and_said(server: AppServer) -> None:
    person = active(server.store)
    choices = {
        "do": "save",
        "frequency": "weekly",
        "topics": ["peace", "Kyiv"],
        "tz": "Europe/Kyiv",
        "at": "18:30",
        "weekday": "sunday",
        "name": "R",
    }
    answer = post(server, person, **choices)
    assert answer.status_code == 303  # type: ignore[attr-defined]
    assert answer.headers["location"].endswith("?done=saved")  # type: ignore[attr-defined]
    now = server.store.subscriber("reader@example.org")
    assert now is not None
    assert (now.frequency, now.tags, now.timezone, now.send_at, now.weekday) == (
        "weekly", ("peace", "Kyiv"), "Europe/Kyiv", "18:30", "sunday",
    )  # fmt: skip
    changes = [
        what for _, by, what in server.store.subscriber_changes(person.id) if by == "subscriber"
    ]
    assert "frequency: daily → weekly" in changes and "topics: war → peace, Kyiv" in changes
    assert "name changed" in changes and not any("reader@" in c for c in changes)
    location = urlsplit(answer.headers["location"])  # type: ignore[attr-defined]
    shown = server.http.get(f"{location.path}?{location.query}")
    assert "Saved." in shown.text and "on Sunday at 18:30 (Europe/Kyiv)" in unescape(shown.text)
    wrong = post(server, person, **{**choices, "tz": "Nowhere/City"})
    assert wrong.status_code == 400 and "Nothing was changed" in wrong.text  # type: ignore[attr-defined]
    assert server.store.subscriber("reader@example.org") == now


def test_a_pause_stops_mail_until_a_resume_and_what_i_missed_reaches_back(
    server: AppServer,
) -> None:
    person = active(server.store)
    answer = post(server, person, do="pause", weeks="2")
    assert answer.status_code == 303  # type: ignore[attr-defined]
    paused = server.store.subscriber("reader@example.org")
    assert paused is not None and paused.paused_until is not None
    assert (
        timedelta(days=13, hours=23) < paused.paused_until - datetime.now(UTC) <= timedelta(days=14)
    )
    shown = server.http.get(path_of(person)).text
    assert "Resume and send what I missed" in shown and "paused until" in shown
    assert post(server, person, do="pause", weeks="3").status_code == 400  # type: ignore[attr-defined]
    assert post(server, person, do="resume-missed").status_code == 303  # type: ignore[attr-defined]
    back = server.store.subscriber("reader@example.org")
    assert back is not None and back.paused_until is None  # the window reaches back
    post(server, person, do="pause", weeks="1")
    post(server, person, do="resume")
    fresh = server.store.subscriber("reader@example.org")
    assert fresh is not None and fresh.paused_until is not None  # starts from now: no backlog
    assert not fresh.paused(datetime.now(UTC))


def test_unsubscribe_and_come_back_from_the_same_link(server: AppServer) -> None:
    person = active(server.store)
    assert post(server, person, do="unsubscribe").status_code == 303  # type: ignore[attr-defined]
    assert server.store.subscriber("reader@example.org").state is SubscriberState.UNSUBSCRIBED  # type: ignore[union-attr]
    shown = server.http.get(path_of(person))
    assert shown.status_code == 200 and "Subscribe again" in shown.text  # the link still works
    assert post(server, person, do="resubscribe").status_code == 303  # type: ignore[attr-defined]
    assert server.store.subscriber("reader@example.org").state is SubscriberState.ACTIVE  # type: ignore[union-attr]


def test_a_post_without_the_pages_token_or_from_another_site_changes_nothing(
    server: AppServer,
) -> None:
    person = active(server.store)
    url = path_of(person)
    assert server.http.post(url, data={"do": "unsubscribe"}).status_code == 403
    assert server.http.post(url, data={"do": "unsubscribe", "csrf": "forged"}).status_code == 403
    token = url.rsplit("/", 1)[1]
    good = {"do": "unsubscribe", "csrf": csrf_token(SECRET, token)}
    for headers in ({"origin": "https://evil.example"}, {"sec-fetch-site": "cross-site"}):
        assert server.http.post(url, data=good, headers=headers).status_code == 403
    assert server.store.subscriber("reader@example.org").state is SubscriberState.ACTIVE  # type: ignore[union-attr]
    same = {"origin": server.base.rstrip("/"), "sec-fetch-site": "same-origin"}
    assert server.http.post(url, data=good, headers=same).status_code == 303


def test_a_manage_link_dies_when_renewed_and_no_other_token_opens_it(server: AppServer) -> None:
    person = active(server.store)
    other = active(server.store, "other@example.org")
    old = path_of(person)
    assert server.http.get(old).status_code == 200
    feed_token = link_token(SECRET, "feed", person)
    mangled = [
        f"/manage/{feed_token}",  # a feed reader's token opens no manage page
        old[:-2] + "xx",
        old.replace(f"/{person.id}.", f"/{other.id}."),  # another subscriber's id
        "/manage/1",
        "/manage/../../etc",
    ]
    for path in mangled:
        answer = server.http.get(path)
        assert answer.status_code in (404, 400), path
        assert "other@example.org" not in answer.text and "reader@example.org" not in answer.text
    server.store.rotate_subscriber_links(person.id, now=datetime.now(UTC))
    assert server.http.get(old).status_code == 404
    renewed = server.store.subscriber("reader@example.org")
    assert renewed is not None and server.http.get(path_of(renewed)).status_code == 200
    assert path_of(renewed) != old


def test_the_private_feed_holds_each_digest_sent_and_its_token_opens_nothing_else(
    server: AppServer,
) -> None:
    wanted = new_subscriber("reader@example.org", timezone="UTC", frequency="daily", tags="war")
    joined = datetime.now(UTC) - timedelta(days=2)
    (person,), _ = server.store.add_subscribers([wanted], now=joined, state=SubscriberState.ACTIVE)
    report = send_digests(server.settings, server.store, now=datetime.now(UTC))
    assert len(report.sent) == 1
    path = urlsplit(feed_url("http://x/", SECRET, person)).path
    answer = server.http.get(path)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/atom+xml")
    assert answer.headers["cache-control"].startswith("private")
    feed = feedparser.parse(answer.content)
    assert feed.bozo == 0, feed.bozo_exception
    (entry,) = feed.entries
    assert entry.title.endswith(": 2 stories")
    assert "News 0" in entry.content[0].value and "News 1" in entry.content[0].value
    assert "News 2" not in entry.content[0].value  # peace: not theirs
    view = urlsplit(entry.link)
    assert server.http.get(f"{view.path}?{view.query}").status_code == 200  # its web view
    manage_token = path_of(person).rsplit("/", 1)[1]
    assert server.http.get(f"/me/{manage_token}/digests.atom").status_code == 404
    assert server.http.get(path_of(person).replace("manage", "me") + "/x").status_code == 404
    server.store.rotate_subscriber_links(person.id, now=datetime.now(UTC))
    assert server.http.get(path).status_code == 404
    shown = server.http.get(path_of(server.store.subscriber("reader@example.org"))).text  # type: ignore[arg-type]
    assert "/me/" in shown and "digests.atom" in shown
