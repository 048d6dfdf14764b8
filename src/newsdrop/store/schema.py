"""The tables as they are now: what every query reads and writes.

A change here goes with a new file in migrations/ that makes an existing store match it
(the migrations hold their own frozen copies of the tables as each version made them, so a
new column here never reaches a migration that created its table)."""

from __future__ import annotations

import sqlalchemy as sa

from newsdrop.store.times import UTCDateTime

metadata = sa.MetaData()

schema_version = sa.Table(
    "schema_version",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("applied", UTCDateTime, nullable=False),
)

entries = sa.Table(
    "entries",
    metadata,
    sa.Column("id", sa.String(400), primary_key=True),
    sa.Column("slug", sa.String(120), nullable=False, unique=True),
    # Not unique: a withdrawn entry keeps the path its file had, which a new file may take.
    sa.Column("source", sa.String(1000), nullable=False, index=True),
    sa.Column("file_size", sa.BigInteger, nullable=False),
    sa.Column("file_mtime_ns", sa.BigInteger, nullable=False),
    sa.Column("file_hash", sa.String(64), nullable=False, index=True),
    sa.Column("content_hash", sa.String(64), nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("summary", sa.Text, nullable=False),
    sa.Column("content_html", sa.Text, nullable=False),
    sa.Column("content_text", sa.Text, nullable=False),
    sa.Column("author", sa.Text, nullable=False),
    sa.Column("lang", sa.String(35), nullable=False),
    sa.Column("tags", sa.Text, nullable=False),  # JSON array
    sa.Column("media", sa.Text, nullable=False),  # JSON array
    sa.Column("notes", sa.Text, nullable=False, server_default="[]"),  # JSON array (v17)
    sa.Column("word_count", sa.Integer, nullable=False),
    sa.Column("reading_minutes", sa.Integer, nullable=False),
    sa.Column("last_paragraph", sa.Text, nullable=False),
    sa.Column("published", UTCDateTime, nullable=False, index=True),
    sa.Column("updated", UTCDateTime, nullable=False),
    sa.Column("first_seen", UTCDateTime, nullable=False, index=True),
    sa.Column("withdrawn", sa.Boolean, nullable=False, default=False),
    sa.Column("changed", UTCDateTime, nullable=False),
    # Publication: seq orders entries as first published (archive pages are seq ranges);
    # both are set once, when the entry first becomes visible, and never change.
    sa.Column("seq", sa.Integer, nullable=True, unique=True),
    sa.Column("first_published", UTCDateTime, nullable=True, index=True),
    # The store revision of the last change to this row: what a build has not seen yet.
    sa.Column("rev", sa.Integer, nullable=False, default=0, index=True),
)

# Tags of live entries by slug, with the entry's seq, so that a tag feed is one walk down an
# index that stops after max_entries rows, however old and common the tag is.
entry_tags = sa.Table(
    "entry_tags",
    metadata,
    sa.Column("entry_id", sa.String(400), primary_key=True),
    sa.Column("tag_slug", sa.String(120), primary_key=True),
    sa.Column("seq", sa.Integer, nullable=True),
    sa.Index("ix_entry_tags_slug_seq", "tag_slug", "seq"),
)

# What the last feed build published of each entry (owned by publish/build.py): when an
# entry changes, the tag feeds and day pages it used to be on are rebuilt too.
built_entries = sa.Table(
    "built_entries",
    metadata,
    sa.Column("entry_id", sa.String(400), primary_key=True),
    sa.Column("tag_slugs", sa.Text, nullable=False),  # JSON array
    sa.Column("day", sa.String(10), nullable=False, index=True),  # YYYY-MM-DD, site's zone
    sa.Column("slug", sa.String(120), nullable=False),
)

counters = sa.Table(
    "counters",
    metadata,
    sa.Column("name", sa.String(40), primary_key=True),
    sa.Column("value", sa.Integer, nullable=False),
)


problems = sa.Table(
    "problems",
    metadata,
    sa.Column("source", sa.String(1000), primary_key=True),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("file_size", sa.BigInteger, nullable=False),
    sa.Column("file_mtime_ns", sa.BigInteger, nullable=False),
    sa.Column("seen", UTCDateTime, nullable=False),
    # What judged the file (version 6): its sha256, and the fingerprint of the code and
    # settings that found it wanting; "" for a problem that is looked at again on every run.
    sa.Column("file_hash", sa.String(64), nullable=False, server_default=""),
    sa.Column("judged", sa.String(64), nullable=False, server_default=""),
)

ingest_runs = sa.Table(
    "ingest_runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("started", UTCDateTime, nullable=False),
    sa.Column("finished", UTCDateTime, nullable=False),
    sa.Column("summary", sa.Text, nullable=False),  # JSON counts
)

# The last paragraph of each document's current version, to learn boilerplate that ends
# many different bodies: one row per document, so edits of one file count once.
tails = sa.Table(
    "tails",
    metadata,
    sa.Column("source", sa.String(1000), primary_key=True),
    sa.Column("paragraph_hash", sa.String(64), nullable=False, index=True),
    sa.Column("body_hash", sa.String(64), nullable=False),
)


subscribers = sa.Table(
    "subscribers",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("email", sa.String(320), nullable=False),
    sa.Column("email_key", sa.String(320), nullable=False, unique=True),  # lower-cased
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("timezone", sa.String(64), nullable=False),
    sa.Column("frequency", sa.String(10), nullable=False),
    sa.Column("tags", sa.Text, nullable=False),  # JSON array
    sa.Column("state", sa.String(16), nullable=False, index=True),
    sa.Column("created", UTCDateTime, nullable=False),
    sa.Column("changed", UTCDateTime, nullable=False),
    sa.Column("activated", UTCDateTime, nullable=True),
    # The subscriber's latest period (kept with the ledger row, in one transaction), so that
    # finding what is due costs one read of this table, however long the ledger grows.
    sa.Column("period_end", UTCDateTime, nullable=True),
    sa.Column("period_seq", sa.Integer, nullable=False, default=0),
    # Their own hour and weekly day (migration 10); NULL: the site's, as configured.
    sa.Column("send_at", sa.String(5), nullable=True),
    sa.Column("weekday", sa.String(9), nullable=True),
    # Migration 12: no mail until then (NULL: not paused; past: the window starts there, no
    # backlog), and the version their manage and feed links were made with.
    sa.Column("paused_until", UTCDateTime, nullable=True),
    sa.Column("token_version", sa.Integer, nullable=False, default=0),
    # Migration 13: the soft-bounce score as of ``soft_at`` (it halves every
    # [bounces] soft_half_life_days; past [bounces] soft_limit the address is bounced).
    sa.Column("soft_score", sa.Float, nullable=False, default=0.0),
    sa.Column("soft_at", UTCDateTime, nullable=True),
    # Migration 18: the language of their mails ("": the site's).
    sa.Column("language", sa.String(35), nullable=False, server_default=""),
)


# The ledger: one row per subscriber and period, created before anything is sent.
deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("subscriber_id", sa.Integer, nullable=False),
    sa.Column("due", UTCDateTime, nullable=False),  # the period's name: its due instant
    sa.Column("window_start", UTCDateTime, nullable=False),
    sa.Column("window_end", UTCDateTime, nullable=False),
    # What the digest holds: the entries with seq in (seq_start, seq_end]. Seqs are given
    # when entries are committed, so no entry falls between two digests, however a long
    # ingest and a send interleave.
    sa.Column("seq_start", sa.Integer, nullable=False),
    sa.Column("seq_end", sa.Integer, nullable=False),
    sa.Column("state", sa.String(12), nullable=False, index=True),
    sa.Column("entry_ids", sa.Text, nullable=False),  # JSON: the contents, frozen at creation
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("next_attempt", UTCDateTime, nullable=True),  # when a retrying one is due again
    sa.Column("reply", sa.Text, nullable=False, default=""),
    sa.Column("claim", sa.String(32), nullable=True, index=True),  # the run sending it
    sa.Column("created", UTCDateTime, nullable=False),
    sa.Column("changed", UTCDateTime, nullable=False),
    # The `newsdrop run` instance that claimed a digest being sent (version 4), so that its
    # claims move on as soon as it is known dead, not after [mail] claim_timeout_s.
    sa.Column("claimed_by", sa.String(200), nullable=True),
    # A failure the recipient's address caused (version 8: a 5xx at RCPT, a full mailbox to
    # the last try), which alone counts toward bouncing it; our message's or the relay's don't.
    sa.Column(
        "recipient_fault", sa.Boolean, nullable=False, default=False, server_default=sa.false()
    ),
    sa.UniqueConstraint("subscriber_id", "due", name="uq_deliveries_period"),
    # Two runs that read the same last period can record only one next period.
    sa.UniqueConstraint("subscriber_id", "window_start", name="uq_deliveries_follows"),
)


# Work shared by several `newsdrop run` instances on one store: a lease names the one
# instance that does a kind of work until it expires; instances report themselves.
leases = sa.Table(
    "leases",
    metadata,
    sa.Column("name", sa.String(40), primary_key=True),
    sa.Column("holder", sa.String(200), nullable=False),
    sa.Column("taken", UTCDateTime, nullable=False),  # when this holder took it
    sa.Column("expires", UTCDateTime, nullable=False),
)
instances = sa.Table(
    "instances",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("host", sa.String(200), nullable=False),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("started", UTCDateTime, nullable=False),
    sa.Column("seen", UTCDateTime, nullable=False),
    sa.Column("stopped", UTCDateTime, nullable=True),
)


# Confirmation mails (double opt-in, version 5), kept until sent so that none is lost to a
# relay that is down. A table of its own rather than a kind of `deliveries` row: a ledger
# row is a period (unique per subscriber and due instant, with a window and seqs, counted
# by the bounce rule and `digest status`), and every digest query would need a filter.
# One row per subscriber (the key), so a pending address has at most one mail queued.
confirmations = sa.Table(
    "confirmations",
    metadata,
    sa.Column("subscriber_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("state", sa.String(12), nullable=False, index=True),  # as deliveries.state
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("next_attempt", UTCDateTime, nullable=True),
    sa.Column("reply", sa.Text, nullable=False, default=""),
    sa.Column("claim", sa.String(32), nullable=True),
    sa.Column("requested", UTCDateTime, nullable=False),  # the subscribe request it answers
    sa.Column("changed", UTCDateTime, nullable=False),
    sa.Column("sent", UTCDateTime, nullable=True),  # its link's validity counts from here
    sa.Column("claimed_by", sa.String(200), nullable=True),  # version 9, as in deliveries
    # Version 12: which mail ("confirm", "welcome", "account": a link to their address and
    # data, "address": the link that confirms a new address, sent to ``address``).
    sa.Column("kind", sa.String(12), nullable=False, default="confirm"),
    sa.Column("address", sa.String(320), nullable=True),
)


# The sending rate of the whole store, whichever processes send: a token bucket kept as
# the instant its next token is free (one row per bucket; "mail" for digests).
rate_buckets = sa.Table(
    "rate_buckets",
    metadata,
    sa.Column("name", sa.String(40), primary_key=True),
    sa.Column("next_free", sa.Float, nullable=False),  # seconds since the epoch
)


# Request limits every instance shares (migration 11): a count per key and window.
rate_windows = sa.Table(
    "rate_windows",
    metadata,
    sa.Column("key", sa.String(300), primary_key=True),
    sa.Column("expires", sa.Float, nullable=False, index=True),  # seconds since the epoch
    sa.Column("count", sa.Integer, nullable=False),
)


# Every change to a subscriber's choices, pause or state, by them or the operator (version
# 12), in words that never hold the address: what stays after they are deleted names an id.
subscriber_changes = sa.Table(
    "subscriber_changes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("subscriber_id", sa.Integer, nullable=False, index=True),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("by", sa.String(16), nullable=False),  # "subscriber" or "operator"
    sa.Column("change", sa.Text, nullable=False),
)


# Deleted subscribers' addresses as keyed hashes (version 12): an import or `add` of one is
# refused, and the operator can test an address, but no one can list them.
suppressions = sa.Table(
    "suppressions",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("since", UTCDateTime, nullable=False),
)


# Returned mail (version 13): stored before it is acted on, so that a crash loses none,
# and marked handled in the transaction that acts on it, so that none is acted on twice.
returned_mail = sa.Table(
    "returned_mail",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("received", UTCDateTime, nullable=False, index=True),
    sa.Column("envelope_to", sa.String(320), nullable=False),
    sa.Column("data", sa.LargeBinary, nullable=False),
    sa.Column("state", sa.String(10), nullable=False, index=True),  # "stored" or "handled"
    sa.Column("outcome", sa.Text, nullable=False),
    # SHA-256 of envelope_to and data: the same message handed over twice is kept once (v14)
    sa.Column("fingerprint", sa.String(64), nullable=True, unique=True, index=True),
)

# What returned mail did to a subscriber, with the delivery it belongs to (version 13).
bounce_events = sa.Table(
    "bounce_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("subscriber_id", sa.Integer, nullable=False, index=True),
    sa.Column("delivery_id", sa.Integer, nullable=True),
    sa.Column("returned_id", sa.Integer, nullable=True),
    sa.Column("at", UTCDateTime, nullable=False, index=True),
    # "hard", "soft", "complaint" or "unsubscribe" (widened in version 15)
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("detail", sa.Text, nullable=False),
)
