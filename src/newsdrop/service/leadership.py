"""Leading: several instances may share the store; the one that holds the lease ingests, builds
and opens periods, and hands over at once when it stops."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from datetime import UTC, datetime

from newsdrop.service.base import LEADER, ServiceBase, in_words, log_failure

log = logging.getLogger("newsdrop.service")


class Leadership(ServiceBase):
    """Leading: several instances may share the store; the one that holds the lease
    ingests, builds and opens periods, and hands over at once when it stops."""

    async def lead(self) -> None:
        """Take or renew the leader's lease, and say that this instance is alive. The leader
        ingests, builds and opens digest periods; every instance serves and sends."""
        seconds = self.settings.cluster.lease_seconds
        asked = time.monotonic()
        now = datetime.now(UTC)
        try:
            leading = await asyncio.to_thread(
                self.store.take_lease, LEADER, self.instance, now=now, seconds=seconds
            )
            await asyncio.to_thread(
                self.store.heartbeat, self.instance, pid=os.getpid(), host=socket.gethostname(),
                url=self.status["url"], started=self.health.started, now=now,
            )  # fmt: skip
        except Exception as exc:  # the store is out of reach: stop leading, keep serving
            # Said once, as what it is: not "another instance leads" (none may).
            if not self.health.store_write:
                log_failure("this instance stops leading: the lease could not be written", exc)
            self.health.store_write = in_words(exc)
            leading = False
        else:
            if self.health.store_write:
                log.info("the store can be written again", extra={"instance": self.instance})
            self.health.store_write = ""
        if leading:
            self.lease_deadline = asked + seconds * 0.8
        self.health.leader = leading
        if leading != self.leader:
            self.leader = leading
            self.status["leader"] = leading
            if leading or not self.health.store_write:
                log.info(
                    "this instance leads: it ingests, builds and opens digest periods"
                    if leading
                    else "another instance leads now; this one serves and sends",
                    extra={"instance": self.instance},
                )
            if leading:
                self.request()
                self.wake_digests()
            self.write_status()
        if leading and self.deferred:  # a request made while not leading runs now
            self.deferred = False
            self.request()

    async def keep_leading(self) -> None:
        every = self.settings.cluster.lease_seconds / 3
        while not self.stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), timeout=every)
            if not self.stopping.is_set():
                await self.lead()

    def step_down(self) -> None:
        if self.leader:
            self.store.release_lease(LEADER, self.instance)
        self.store.instance_stopped(self.instance, now=datetime.now(UTC))
