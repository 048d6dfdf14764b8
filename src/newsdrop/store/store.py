"""The Store: every domain's queries on one engine, and each process's own open store.

One class for callers (``store.subscribers()``, ``store.claim_batch(...)``), composed of one
class per domain, each in its own module beside this one: a change to subscribers touches
subscribers.py, schema.py and one new file in migrations/."""

from __future__ import annotations

from newsdrop.store.cluster import ClusterQueries
from newsdrop.store.confirmations import ConfirmationQueries
from newsdrop.store.entries import EntryQueries
from newsdrop.store.ledger import Ledger
from newsdrop.store.reads import PublicationReads
from newsdrop.store.returned import ReturnedQueries
from newsdrop.store.runs import RunRecords
from newsdrop.store.subscribers import SubscriberQueries


class Store(
    EntryQueries,
    PublicationReads,
    SubscriberQueries,
    Ledger,
    ConfirmationQueries,
    ReturnedQueries,
    RunRecords,
    ClusterQueries,
):
    """All reads and writes of the database. Blocking: the service calls it from threads."""


_opened: dict[str, Store] = {}


def opened(url: str) -> Store:
    """This process's own connection to the store at ``url``, opened on first use and
    kept (a worker process's: the service's pipeline process, a render process)."""
    if url not in _opened:
        _opened[url] = Store.open(url)
    return _opened[url]
