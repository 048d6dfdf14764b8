"""Files in seeds/ -> normalize -> store. Reads files, never changes them.

A scan lists seeds/ (scan.py: skipping dotfiles, editor and partial files, symlinks that
lead outside seeds/, FIFOs and devices), compares each file's size and mtime with what the
store remembers, reads and hashes only what moved, recognises renames by content, withdraws
the entries of vanished files, and records every file that cannot become an entry as a
problem with its reason. One bad file never stops the run."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from newsdrop import media
from newsdrop.config import Settings
from newsdrop.errors import ConfigError, SourceError, TooLargeError
from newsdrop.ingest import sandbox
from newsdrop.ingest.hints import hints_for, judge_fingerprint, learned_boilerplate
from newsdrop.ingest.normalize import mint_id
from newsdrop.ingest.references import check_media, media_changed
from newsdrop.ingest.scan import SeedFile, read_document, scan
from newsdrop.model import Entry, Hints, Problem
from newsdrop.store import EntryWrite, Identity, ProblemWrite, Store

log = logging.getLogger(__name__)


BATCH = 500  # entries written per transaction


Progress = Callable[[int, int], None]


Committed = Callable[[list[str], int], None]  # entry ids written, documents read in all


@dataclass(slots=True)
class IngestReport:
    """What one ingest run did; ``as_dict`` is the ``--json`` summary."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    renamed: list[tuple[str, str]] = field(default_factory=list)
    withdrawn: list[str] = field(default_factory=list)
    unchanged: int = 0
    problems: list[Problem] = field(default_factory=list)
    ignored: list[tuple[str, str]] = field(default_factory=list)
    held: list[str] = field(default_factory=list)  # still being written: taken by a later run
    normalised: int = 0  # documents parsed by this run (a problem judged before is not)

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.renamed or self.withdrawn)

    def summary(self) -> str:
        """One line for people: what this ingest did."""
        problems = len(self.problems)
        return (
            f"ingest: {len(self.added)} added, {len(self.updated)} updated, {len(self.renamed)} "
            f"renamed, {self.unchanged} unchanged, {len(self.withdrawn)} withdrawn, "
            f"{problems} {'problem' if problems == 1 else 'problems'}"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "added": len(self.added),
            "updated": len(self.updated),
            "renamed": len(self.renamed),
            "unchanged": self.unchanged,
            "withdrawn": len(self.withdrawn),
            "problems": [{"path": p.source, "reason": p.reason} for p in self.problems],
            "ignored": [{"path": path, "reason": reason} for path, reason in self.ignored],
            "held": len(self.held),
            "normalised": self.normalised,
        }


def ingest(
    settings: Settings,
    store: Store,
    *,
    now: datetime,
    progress: Progress | None = None,
    settle_ns: int = 0,
    complete: Collection[str] = (),
    committed: Committed | None = None,
) -> IngestReport:
    """Bring the store in line with seeds/: one pass, idempotent, never fatal for one file.

    With ``settle_ns`` (the service's watcher), a new or changed file whose mtime is
    more recent than that is held as it was: it may still be being written; unless it
    is in ``complete`` (the watcher saw it renamed into place). ``committed`` hears of
    each batch of entries written, as it is (the service renders their pages meanwhile).
    """
    if not settings.seeds_dir.is_dir():
        # Never read a missing folder as "every document was deleted".
        raise ConfigError(
            f"the seeds folder {settings.seeds_dir} does not exist; create it, or fix "
            f"[paths] seeds in {settings.source}; nothing was withdrawn"
        )
    # One ingest of a store at a time, across processes and machines: a second one
    # (cron on another machine sharing seeds/) waits, then finds the files done.
    with store.exclusive("ingest"):
        run = _Run(settings, store, now=now, progress=progress, committed=committed)
        return run.run(settle_ns=settle_ns, complete=complete)


class _Run:
    """One ingest, step by step: sort the scanned files (unchanged, held, to read), read
    and normalise those to read, write their entries in batches, then record problems and
    withdrawals. Its fields are the run's state, shared by the steps."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        now: datetime,
        progress: Progress | None,
        committed: Committed | None,
    ) -> None:
        self.settings, self.store, self.now = settings, store, now
        self.progress, self.committed = progress, committed
        self.report = IngestReport()
        self.files = scan(settings.seeds_dir, ignored=self.report.ignored)
        self.known = store.file_states()
        self.standing = {p.source: p for p in store.problems()}
        self.max_bytes = settings.normalize.max_bytes
        self.judged = judge_fingerprint(settings)
        self.limits = sandbox.Limits(settings.normalize.timeout_s, settings.normalize.max_memory_mb)
        self.todo: list[SeedFile] = []
        self.again: set[str] = set()  # entries to read again though their files did not change
        self.writes: list[EntryWrite] = []
        self.ids_written: set[str] = set()
        self.touched: list[tuple[str, int, int]] = []
        self.found_problems: list[ProblemWrite] = []
        self.media_problems: list[Problem] = []  # recorded after the entry itself is written

    def run(self, *, settle_ns: int, complete: Collection[str]) -> IngestReport:
        if settle_ns:  # the service: a warm worker waits for the next document dropped in
            # (its first ingest waits for it to load the parsers, not the first document)
            sandbox.prestart(self.limits)
        self.sort(settle_ns=settle_ns, complete=complete)
        self.find_vanished()
        self.hints = hints_for(
            self.settings, now=self.now, learned=learned_boilerplate(self.settings, self.store)
        )
        self.taken = self.store.taken_slugs()
        self.new_hints = replace(self.hints, taken_slugs=self.taken, updated=None)  # it grows
        # Learning changes the hints every BATCH entries: then one document at a time.
        window = 1 if self.settings.normalize.learn_boilerplate else 16
        for pending, outcome in sandbox.normalize_many(
            self.prepared(), limits=self.limits, window=window
        ):
            self.report.normalised += 1
            self.take(pending, outcome)
        self.write(self.writes)
        return self.finish()

    def sort(self, *, settle_ns: int, complete: Collection[str]) -> None:
        """Which scanned files are unchanged, still problems, held (maybe still being
        written) or to be read."""
        report, standing = self.report, self.standing
        now_ns = int(self.now.timestamp() * 1e9)
        for source, seed in self.files.items():
            state = self.known.get(source)
            same = state is not None and (state.size, state.mtime_ns) == (seed.size, seed.mtime_ns)
            if same and state and state.entry_id and not state.withdrawn:
                if source in standing and media_changed(
                    standing[source], self.store, self.settings, self.limits
                ):
                    self.again.add(source)  # read again: stored without what it lacked
                    self.todo.append(seed)
                    continue
                report.unchanged += 1
                if source in standing:  # a missing image, still missing
                    report.problems.append(standing[source])
            elif same and state and state.entry_id is None and seed.size > self.max_bytes:
                report.problems.append(standing[source])  # still too big: no need to read it
            elif same and state and state.entry_id is None and state.judged == self.judged:
                report.problems.append(standing[source])  # judged by these settings: wanting
            elif settle_ns and abs(now_ns - seed.mtime_ns) < settle_ns and source not in complete:
                report.held.append(source)  # neither read nor withdrawn: the next run takes it
            else:
                self.todo.append(seed)  # new, changed, or a problem to retry (a limit moved?)

    def find_vanished(self) -> None:
        """Files gone since the last run: their problems go, their entries are withdrawn
        unless a file read in this run turns out to be one of them, renamed."""
        known = self.known
        gone = [s for s, st in known.items() if s not in self.files and not st.withdrawn]
        self.store.clear_problems([s for s in gone if known[s].entry_id is None])
        self.to_withdraw = [s for s in gone if known[s].entry_id is not None]
        # Rename candidates: entries whose file vanished in this scan, then older withdrawn ones.
        self.by_hash = {
            st.file_hash: str(st.entry_id) for st in known.values() if st.entry_id and st.withdrawn
        }
        self.by_hash.update({known[s].file_hash: str(known[s].entry_id) for s in self.to_withdraw})
        self.vanished_ids = {str(known[s].entry_id): s for s in self.to_withdraw}

    def write(self, batch: list[EntryWrite]) -> None:
        self.store.write_entries(batch, now=self.now)
        if self.committed is not None and batch:
            self.committed([w.entry.id for w in batch], len(self.todo))
        batch.clear()

    def problem(
        self, seed: SeedFile, reason: str, file_hash: str = "", judged_by: str = ""
    ) -> None:
        """Record a problem; one judged by the document and settings alone (``judged_by``)
        is not read again until the file or those settings change."""
        if self.standing.get(seed.source, Problem("", "", self.now)).reason != reason:
            log.warning("problem %s", reason)
        self.report.problems.append(Problem(seed.source, reason, self.now))
        self.found_problems.append(
            ProblemWrite(self.report.problems[-1], seed.size, seed.mtime_ns, file_hash, judged_by)
        )

    def prepared(self) -> Iterator[sandbox.Job[Pending]]:
        """The documents to normalise, read and hashed as the worker has room for them;
        files that need no parse (touched, renamed, unreadable) are dealt with here."""
        for done, seed in enumerate(self.todo, start=1):
            if self.progress:
                self.progress(done, len(self.todo))
            try:
                data = read_document(seed, max_bytes=self.max_bytes)
            except TooLargeError as exc:
                self.problem(seed, str(exc), "", self.judged)
                continue
            except SourceError as exc:
                self.problem(seed, str(exc))
                continue
            file_hash = hashlib.sha256(data).hexdigest()
            state = self.known.get(seed.source)
            if (
                state
                and state.entry_id is None
                and (state.file_hash, state.judged)
                == (
                    file_hash,
                    self.judged,
                )
            ):  # a problem touched, not changed: judged as it is already
                self.problem(seed, self.standing[seed.source].reason, file_hash, self.judged)
                continue
            live = bool(state and state.entry_id and not state.withdrawn)
            if state and live and state.file_hash == file_hash and seed.source not in self.again:
                self.touched.append((seed.source, seed.size, seed.mtime_ns))  # not changed
                self.report.unchanged += 1
                continue
            if not live and self.renamed(seed, file_hash):
                continue
            identity = self.store.entry_identity(seed.source) if state and state.entry_id else None
            if identity:  # an edit, or a deleted file that came back: the same entry
                seed_hints = replace(
                    self.hints,
                    entry_id=identity.id,
                    slug=identity.slug,
                    first_seen=identity.first_seen,
                )
            else:
                seed_hints = self.new_hints  # its slugs as they are when the answer is taken
            yield (seed, file_hash, live, identity), data, seed.source, seed_hints

    def renamed(self, seed: SeedFile, file_hash: str) -> bool:
        """Whether a new file is an entry's file under a new name (the same bytes as one
        that vanished, or was withdrawn): then the entry moves, and keeps its id."""
        moved = self.by_hash.pop(file_hash, None)
        if moved is None:
            return False
        self.store.move_source(
            moved, seed.source, size=seed.size, mtime_ns=seed.mtime_ns, now=self.now
        )
        old = self.vanished_ids.pop(moved, None)
        if old is not None:
            self.to_withdraw.remove(old)
        self.report.renamed.append((old or "(withdrawn)", seed.source))
        return True

    def take(self, pending: Pending, outcome: Entry | SourceError | sandbox.WorkerFault) -> None:
        """What normalising one document gave: a problem, a draft, or an entry to write."""
        seed, file_hash, live, identity = pending
        if isinstance(outcome, sandbox.WorkerFault):  # a bug must not cost the others their run
            log.error("normalising %s failed:\n%s", seed.source, outcome.trace)
            self.problem(
                seed,
                f"{seed.source}: newsdrop failed on this document ({outcome}); it is retried "
                "when it changes or newsdrop is upgraded; please report this with the file",
                file_hash,
                self.judged,
            )
        elif isinstance(outcome, SourceError):
            self.problem(seed, str(outcome), file_hash, self.judged)
        elif outcome.draft:
            if identity and live:
                self.to_withdraw.append(seed.source)
            self.report.ignored.append((seed.source, "a draft (draft: true in its front matter)"))
        elif (
            not identity
            and _claims_id(outcome, self.hints)
            and (outcome.id in self.ids_written or self.store.has_entry_id(outcome.id))
        ):
            self.problem(
                seed,
                f"{seed.source}: its front-matter id {outcome.id} is already the id of another "
                "entry; give this document an id of its own, or remove the id line",
            )
        else:
            self.accept(seed, file_hash, identity, outcome)

    def accept(
        self, seed: SeedFile, file_hash: str, identity: Identity | None, entry: Entry
    ) -> None:
        """An entry to write (in batches of BATCH), without the files it refers to that are
        not published (its problem says which)."""
        if identity and identity.content_hash == entry.content_hash:
            entry = replace(entry, updated=max(identity.updated, entry.published))
        (self.report.updated if identity else self.report.added).append(seed.source)
        self.taken.add(entry.slug)
        self.ids_written.add(entry.id)
        first_seen = identity.first_seen if identity else self.now
        settings = self.settings
        checked = check_media(seed.source, entry.media, settings.seeds_dir, limits=self.limits)
        if found := checked.problem(seed.source, self.now):
            self.media_problems.append(found)  # published without what it cannot show
            entry = replace(
                entry, content_html=media.without(entry.content_html, checked.unpublished)
            )
        self.writes.append(
            EntryWrite(entry, seed.source, seed.size, seed.mtime_ns, file_hash, first_seen)
        )
        if len(self.writes) >= BATCH:
            self.write(self.writes)
            if settings.normalize.learn_boilerplate:  # learned from this moment on
                learned = self.store.learned_boilerplate()
                self.hints = replace(self.hints, learned_boilerplate=learned)
                self.new_hints = replace(self.hints, taken_slugs=self.taken, updated=None)

    def finish(self) -> IngestReport:
        """Record what was found wanting, withdraw what is gone, publish what is due."""
        report, store, now = self.report, self.store, self.now
        store.touch_files(self.touched)
        by_source = {p.source: p for p in self.media_problems}  # one problem per document
        files = self.files
        self.found_problems += [
            ProblemWrite(p, files[p.source].size, files[p.source].mtime_ns)
            for p in by_source.values()
        ]
        report.problems += list(by_source.values())
        store.record_problems(self.found_problems)
        to_withdraw = self.to_withdraw
        if report.held:  # a held file may be one of these, moved: decide once it has settled
            to_withdraw = [s for s in to_withdraw if s not in self.vanished_ids.values()]
        store.withdraw(to_withdraw, now=now)
        store.publish_due(now=now)
        report.withdrawn = to_withdraw
        for source in to_withdraw:
            log.info("withdrawn %s: the file is gone", source)
        return report


Pending = tuple[SeedFile, str, bool, Identity | None]  # seed, hash, live, identity


def _claims_id(entry: Entry, hints: Hints) -> bool:
    """True when the id came from front matter (a minted id is unique by its slug)."""
    return entry.id != mint_id(hints.tag_authority, hints.first_seen.date(), entry.slug)
