# -*- test-case-name: tests.test_kube_watchstream -*-
"""
Serve Kubernetes watches over HTTP as kube-apiserver does: a 200 response
with chunked transfer encoding carrying newline-delimited JSON events
(C{{"type": ..., "object": ...}}), each flushed as it happens, ended cleanly
at the watch's timeout, when the client goes away, or when the client stops
reading for too long.

Everything that schedules work for watches goes through one L{WatchHub} per
reactor: a coarse L{TimerWheel} holds every watch's timeout and its next
BOOKMARK, so a process with a hundred thousand open watches has one pending
reactor call for all of them rather than one (or two) per watch.

How a stream ends, and why (kube-apiserver 1.35, C{handlers/watch.go} and
the watch cache's C{cacheWatcher}):

  - at C{timeoutSeconds} (or the apiserver's randomised default), cleanly:
    the terminating chunk, no error; client-go simply watches again;
  - with an ERROR event carrying a Status when the requested
    resourceVersion is too old (410 Expired) or too new (504): the
    apiserver reports those inside a 200 stream, not as HTTP errors;
  - when the client stops reading and more than L{MAX_BUFFERED_BYTES} (or
    L{MAX_BUFFERED_EVENTS}) of events pile up: cleanly, as the watch cache
    closes an unresponsive watcher. What was not delivered is dropped; the
    client resumes from the last resourceVersion it received and gets the
    rest from the history (or a 410 and a relist).
"""

from __future__ import annotations

import heapq
import json
import math
import weakref
from typing import Any, Callable, Optional

from twisted.internet.interfaces import IDelayedCall, IPushProducer, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.http import Request
from zope.interface import implementer

from scaleagent.kube.errors import APIError
from scaleagent.kube.store import ERROR, Watch

__all__ = [
    "BOOKMARK_INTERVAL",
    "MAX_BUFFERED_BYTES",
    "MAX_BUFFERED_EVENTS",
    "TimerWheel",
    "WatchHub",
    "WatchStream",
    "encode_event",
]

#: How often a watch that allowed bookmarks gets one (the watch cache's
#: C{bookmarkFrequency}).
BOOKMARK_INTERVAL = 60.0

#: What may pile up for a client that stopped reading before its watch is
#: closed. The watch cache bounds its per-watcher channel by events; bytes
#: are what cost us memory, so both bound it.
MAX_BUFFERED_BYTES = 1024 * 1024
MAX_BUFFERED_EVENTS = 1000

#: The timer wheel's granularity: timeouts and bookmarks are at most this
#: late, never early.
TIMER_RESOLUTION = 1.0

_EVENT_PREFIXES = {
    event_type: b'{"type":"' + event_type.encode("ascii") + b'","object":'
    for event_type in ("ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR")
}

# The object most recently serialised for a watch event, and its bytes. The
# store delivers one change to every matching watch in a row, so the watches
# of one resource (several Rancher replicas, steve, kubectl) share one
# serialisation, as the apiserver's CacheableObject lets its watchers do.
_last_encoded: list = [None, b""]


def _json(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def encode_event(event_type: str, obj: dict) -> bytes:
    """
    One watch event as the JSON stream serializer frames it: the
    C{metav1.WatchEvent} JSON and a newline.

    @param event_type: C{ADDED}, C{MODIFIED}, C{DELETED}, C{BOOKMARK} or
        C{ERROR}.
    @param obj: the object (or, for C{ERROR}, the Status), already in the
        form the client asked for.
    """
    if _last_encoded[0] is obj:
        body = _last_encoded[1]
    else:
        body = _json(obj)
        _last_encoded[0] = obj
        _last_encoded[1] = body
    prefix = _EVENT_PREFIXES.get(event_type)
    if prefix is None:
        prefix = b'{"type":' + _json(event_type) + b',"object":'
    return prefix + body + b"}\n"


class TimerHandle:
    """A pending call on a L{TimerWheel}; L{cancel} it to drop it."""

    __slots__ = ("_wheel", "_bucket", "_function", "_args")

    def __init__(self, wheel: TimerWheel, bucket: int, function: Callable, args: tuple) -> None:
        self._wheel: Optional[TimerWheel] = wheel
        self._bucket = bucket
        self._function = function
        self._args = args

    @property
    def active(self) -> bool:
        return self._wheel is not None

    def cancel(self) -> None:
        """Forget the call; safe to call more than once, or after it ran."""
        wheel, self._wheel = self._wheel, None
        if wheel is not None:
            wheel._forget(self)


class TimerWheel:
    """
    Coarse timers for many watches: calls are grouped into buckets of
    C{resolution} seconds, and only the earliest non-empty bucket has a
    reactor call. Scheduling and cancelling are O(1) (plus a heap push for
    a new bucket); a call runs at most C{resolution} seconds late.
    """

    _log = Logger()

    def __init__(self, clock: IReactorTime, resolution: float = TIMER_RESOLUTION) -> None:
        self._clock = clock
        self._resolution = resolution
        # bucket number -> its handles (a dict as an ordered set)
        self._buckets: dict[int, dict[TimerHandle, None]] = {}
        self._heap: list[int] = []
        self._call: Optional[IDelayedCall] = None
        self._call_bucket: Optional[int] = None

    def __len__(self) -> int:
        return sum(len(handles) for handles in self._buckets.values())

    def call_later(self, delay: float, function: Callable, *args: Any) -> TimerHandle:
        """
        Call C{function(*args)} once, C{delay} seconds from now (rounded up
        to the wheel's resolution).
        """
        when = self._clock.seconds() + max(0.0, delay)
        bucket = math.ceil(when / self._resolution)
        handle = TimerHandle(self, bucket, function, args)
        handles = self._buckets.get(bucket)
        if handles is None:
            handles = self._buckets[bucket] = {}
            heapq.heappush(self._heap, bucket)
        handles[handle] = None
        if self._call_bucket is None or bucket < self._call_bucket:
            self._schedule()
        return handle

    def _forget(self, handle: TimerHandle) -> None:
        handles = self._buckets.get(handle._bucket)
        if handles is not None:
            handles.pop(handle, None)
            if not handles:
                del self._buckets[handle._bucket]
                if handle._bucket == self._call_bucket:
                    self._schedule()

    def _schedule(self) -> None:
        heap = self._heap
        while heap and heap[0] not in self._buckets:
            heapq.heappop(heap)
        if not heap:
            if self._call is not None and self._call.active():
                self._call.cancel()
            self._call = None
            self._call_bucket = None
            return
        first = heap[0]
        if self._call is not None and self._call.active():
            if self._call_bucket == first:
                return
            self._call.cancel()
        delay = max(0.0, first * self._resolution - self._clock.seconds())
        self._call = self._clock.callLater(delay, self._fire)
        self._call_bucket = first

    def _fire(self) -> None:
        self._call = None
        self._call_bucket = None
        # Buckets are numbered by their time; everything due runs now.
        due = math.floor(self._clock.seconds() / self._resolution + 1e-9)
        heap = self._heap
        while heap and heap[0] <= due:
            handles = self._buckets.pop(heapq.heappop(heap), None)
            if not handles:
                continue
            for handle in handles:
                if handle._wheel is None:
                    continue
                handle._wheel = None
                try:
                    handle._function(*handle._args)
                except Exception:
                    self._log.failure("watch timer {function!r} failed", function=handle._function)
        self._schedule()


class WatchHub:
    """
    What every watch served on one reactor shares: the timer wheel for
    timeouts and bookmarks, and a count of open streams.

    Use L{WatchHub.for_clock}: one hub per reactor (or test clock) per
    process.
    """

    _hubs: "weakref.WeakKeyDictionary[Any, WatchHub]" = weakref.WeakKeyDictionary()

    def __init__(
        self,
        clock: IReactorTime,
        bookmark_interval: float = BOOKMARK_INTERVAL,
        resolution: float = TIMER_RESOLUTION,
    ) -> None:
        self.clock = clock
        self.bookmark_interval = bookmark_interval
        self.wheel = TimerWheel(clock, resolution)
        self.open_streams = 0

    @classmethod
    def for_clock(cls, clock: IReactorTime) -> WatchHub:
        """The hub of C{clock}, made on first use."""
        hub = cls._hubs.get(clock)
        if hub is None:
            hub = cls._hubs[clock] = cls(clock)
        return hub


class WatchStats:
    """
    Counters a stream updates; L{scaleagent.kube.cluster} keeps one per
    cluster.
    """

    __slots__ = ("watches_open", "watches_started", "watch_events", "bytes_sent", "slow_closed")

    def __init__(self) -> None:
        self.watches_open = 0
        self.watches_started = 0
        self.watch_events = 0
        self.bytes_sent = 0
        self.slow_closed = 0


@implementer(IPushProducer)
class WatchStream:
    """
    One watch response in progress.

    The states, in order: I{opening} (the store watch is being opened: its
    initial events are collected, not written, so that an HTTP error can
    still be answered), I{streaming} (events are written as they come;
    while the transport has us paused they are held, up to a bound), and
    I{closed} (the store watch is cancelled, timers are cancelled, and the
    response is finished unless the client went away first).

    @ivar events_sent: events written so far.
    """

    __slots__ = (
        "_request",
        "_hub",
        "_stats",
        "_encode",
        "_watch",
        "_state",
        "_paused",
        "_held",
        "_held_bytes",
        "_timeout_handle",
        "_bookmark_handle",
        "_on_close",
        "events_sent",
        "__weakref__",
    )

    _log = Logger()

    def __init__(
        self,
        request: Request,
        hub: WatchHub,
        stats: WatchStats,
        encode: Callable[[str, dict], bytes] = encode_event,
        on_close: Optional[Callable[[], object]] = None,
    ) -> None:
        """
        @param request: the HTTP request to answer; its response code and
            headers are set by L{open}.
        @param encode: turns an event into the bytes of one frame (it may
            transform the object, e.g. into a Table row).
        @param on_close: called once when the stream closes.
        """
        self._request: Optional[Request] = request
        self._hub = hub
        self._stats = stats
        self._encode = encode
        self._watch: Optional[Watch] = None
        self._state = "opening"
        self._paused = False
        self._held: list[bytes] = []
        self._held_bytes = 0
        self._timeout_handle: Optional[TimerHandle] = None
        self._bookmark_handle: Optional[TimerHandle] = None
        self._on_close = on_close
        self.events_sent = 0

    @property
    def closed(self) -> bool:
        return self._state == "closed"

    def open(
        self,
        start_watch: Callable[[Callable[[str, dict], None]], Watch],
        timeout: Optional[float],
        allow_bookmarks: bool,
    ) -> None:
        """
        Open the store watch and start the response.

        @param start_watch: opens the store watch with the callback it is
            given (C{lambda callback: store.watch(..., callback=callback)}).
        @param timeout: seconds until the stream ends cleanly; L{None} for
            never.
        @param allow_bookmarks: send a BOOKMARK about every
            L{WatchHub.bookmark_interval} seconds.
        @raise APIError: what the apiserver answers as an HTTP error
            (invalid resourceVersion, bad selectors): nothing has been
            written. Expired and too-large resourceVersions are not raised
            but sent as an ERROR event in the stream.
        """
        request = self._request
        assert request is not None
        try:
            self._watch = start_watch(self._deliver)
        except APIError as error:
            if error.code not in (410, 504):
                self._held = []
                self._held_bytes = 0
                self._state = "closed"
                raise
            # The watch cache reports these in a 200 stream as its only
            # event (an errWatcher), and then ends it.
            self._begin_response()
            self._write(encode_event(ERROR, error.to_status()))
            self._close(finish=True)
            return
        self._begin_response()
        self._stats.watches_open += 1
        self._stats.watches_started += 1
        self._hub.open_streams += 1
        self._state = "streaming"
        request.registerProducer(self, True)
        channel = request.channel
        if channel is not None and getattr(channel, "_waitingForTransport", False):
            # The transport was already full when we registered.
            self.pauseProducing()
        request.notifyFinish().addBoth(self._request_done)
        if self._held and not self._paused:
            initial, self._held, self._held_bytes = self._held, [], 0
            self._write(b"".join(initial))
        if self._state != "streaming":
            return
        wheel = self._hub.wheel
        if timeout is not None:
            self._timeout_handle = wheel.call_later(timeout, self._timed_out)
        if allow_bookmarks:
            self._bookmark_handle = wheel.call_later(self._hub.bookmark_interval, self._bookmark)

    def _begin_response(self) -> None:
        request = self._request
        assert request is not None
        request.setResponseCode(200)
        request.responseHeaders.setRawHeaders(b"content-type", [b"application/json"])
        # The apiserver flushes the headers at once; clients wait for them.
        request.write(b"")

    # -- events from the store ---------------------------------------------

    def _deliver(self, event_type: str, obj: dict) -> None:
        if self._state == "closed":
            return
        try:
            frame = self._encode(event_type, obj)
        except Exception:
            # One object that cannot be rendered must not end the watch.
            self._log.failure("cannot encode a {event_type} watch event", event_type=event_type)
            return
        self._stats.watch_events += 1
        if self._state == "opening" or self._paused:
            self._hold(frame)
        else:
            self._write(frame)

    def _hold(self, frame: bytes) -> None:
        self._held.append(frame)
        self._held_bytes += len(frame)
        if self._state == "streaming" and (
            self._held_bytes > MAX_BUFFERED_BYTES or len(self._held) > MAX_BUFFERED_EVENTS
        ):
            self._log.info(
                "closing a watch whose client stopped reading "
                "({events} events, {size} bytes held)",
                events=len(self._held),
                size=self._held_bytes,
            )
            self._stats.slow_closed += 1
            self._held = []
            self._held_bytes = 0
            self._close(finish=True)

    def _write(self, data: bytes) -> None:
        request = self._request
        if request is None:
            return
        self.events_sent += data.count(b"\n")
        self._stats.bytes_sent += len(data)
        request.write(data)

    # -- timers ------------------------------------------------------------

    def _timed_out(self) -> None:
        self._timeout_handle = None
        self._close(finish=True)

    def _bookmark(self) -> None:
        self._bookmark_handle = None
        if self._state != "streaming":
            return
        watch = self._watch
        if watch is not None:
            # The store sends the BOOKMARK through _deliver.
            watch.bookmark()
        if self._state == "streaming":
            self._bookmark_handle = self._hub.wheel.call_later(
                self._hub.bookmark_interval, self._bookmark
            )

    # -- IPushProducer: the transport throttles us ---------------------------

    def pauseProducing(self) -> None:
        self._paused = True

    def resumeProducing(self) -> None:
        if not self._paused:
            return
        self._paused = False
        if self._state == "streaming" and self._held:
            held, self._held, self._held_bytes = self._held, [], 0
            self._write(b"".join(held))

    def stopProducing(self) -> None:
        # The connection is going away; the request's connectionLost follows.
        self._close(finish=False)

    # -- closing -------------------------------------------------------------

    def close(self) -> None:
        """End the stream cleanly now (e.g. the cluster is being removed)."""
        self._close(finish=True)

    def _request_done(self, result: object) -> None:
        # The response finished (our doing) or the client went away.
        self._close(finish=False)
        if isinstance(result, Failure):
            return None
        return result

    def _close(self, finish: bool) -> None:
        if self._state == "closed":
            return
        was_streaming = self._state == "streaming"
        self._state = "closed"
        watch, self._watch = self._watch, None
        if watch is not None:
            watch.cancel()
        for handle in (self._timeout_handle, self._bookmark_handle):
            if handle is not None:
                handle.cancel()
        self._timeout_handle = self._bookmark_handle = None
        self._held = []
        self._held_bytes = 0
        if was_streaming:
            self._stats.watches_open -= 1
            self._hub.open_streams -= 1
        request, self._request = self._request, None
        if request is not None:
            if request.producer is self:
                if request.channel is not None:
                    request.unregisterProducer()
                else:
                    request.producer = None
            if finish and not request.finished and not getattr(request, "_disconnected", False):
                request.finish()
        on_close, self._on_close = self._on_close, None
        if on_close is not None:
            on_close()
