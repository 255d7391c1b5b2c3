"""A machine's reply window, and what came after it closed.

SAS §2.3.1 (reference §3.6) gives a machine 20 ms to start its answer, after which the host
may time out; the agent waits ``poll.reply_timeout_ms`` (50 ms by default) after the last
byte. Older machines can be slower (nCompass reads for 200 ms, reference §3.6). Bytes that
come after a window closed are thrown away before the next send, because a late frame would
be taken for the next send's reply (docs/sas.md, "A machine that answers after the window").
Thrown away silently, they made every long poll such a machine answers meet "silence": the
poll was remembered as unsupported (SAS §3.5: only an unsupported poll goes unanswered), and
no meter was ever read.

So late bytes are read before they are dropped: they are counted and logged as a ``late``
bad frame, and they double that machine's window, up to :data:`MAX_WINDOW_S` (the longest
reply's wire time, :data:`MAX_REPLY_S`); the line owner also tells the host,
so that a long poll answered late is a failed poll, not an unsupported one. A window never
shrinks while the agent runs: a machine late once is late again under the same load.
"""

from __future__ import annotations

from collections.abc import Sequence

from drivers.base import Transport, Word
from sas_protocol.host import HostProtocol
from sas_protocol.messages.requests import GeneralPoll, Poll

#: the widest a machine's reply window grows (s): the longest reply (255-byte body) takes
#: about 150 ms at 19200 baud, and nCompass reads for 200 ms (reference §3.6)
MAX_WINDOW_S = 0.25
#: A reply window is extended while bytes keep arriving, but never beyond this after the
#: poll was written (a line that spews noise must not hold the poll cycle forever), unless
#: the reply may take longer by the reference's timing (:func:`reply_bound`).
MAX_REPLY_S = 0.25
#: Reference §3.6 (SAS §2.3.1-2.3.2): a machine starts its reply within 20 ms and may leave
#: up to 5 ms between its bytes; a byte takes 11 bits at 19200 baud.
REPLY_START_S = 0.020
BYTE_GAP_S = 0.005
WIRE_S_PER_BYTE = 11 / 19200
#: the longest reply frame: addr cmd len, a 255-byte body, the CRC
LONGEST_FRAME = 260
#: the longest reply to a general poll: an RTE frame (7C, 15 bytes, reference §3.12)
LONGEST_GENERAL_REPLY = 15
#: reads of what is waiting, at most, before a send: a line that spews noise must not hold
#: the poll (the rest is thrown away unread)
_MOST_READS = 8


class ReplyWindow:
    """One machine's reply window (s): the configured one, widened by late answers."""

    def __init__(self, configured: float) -> None:
        self.configured = configured
        self.seconds = configured

    def widen(self) -> bool:
        """A late answer came: double the window, up to :data:`MAX_WINDOW_S`. True if it
        changed."""
        wider = min(MAX_WINDOW_S, self.seconds * 2)
        if wider <= self.seconds:
            return False
        self.seconds = wider
        return True


def read_late(transport: Transport, now: float) -> list[Word]:
    """What arrived since the last reply window closed, then the rest discarded (with any
    partly decoded word). ``now`` (the transport's clock) as the deadline: each read is one
    look at the line, with no wait."""
    words: list[Word] = []
    for _ in range(_MOST_READS):
        got = transport.read(now)
        if not got:
            break
        words.extend(got)
    transport.discard_input()
    return words


def is_answer(words: Sequence[Word]) -> bool:
    """Whether late ``words`` hold a machine's answer: a word without the wakeup bit. A lone
    address byte with it is a chirp (SAS §4.2: a machine no host polled for 5 s sends its
    address every 200 ms), which on a shared line can come from another machine at any
    time: it says nothing about this machine's window."""
    return any(not w.wakeup for w in words)


def reply_words(words: Sequence[Word]) -> list[Word]:
    """The ``words`` that can be part of a reply: those without the wakeup bit. SAS §1.2.1 /
    §4.2 (reference §3.1, §3.6): a machine sets that bit only to chirp its address, so a
    word with it is never part of a reply (a machine nobody polls on a shared line chirps
    every 200 ms, and its chirps must not spoil the reply they fall into)."""
    return [w for w in words if not w.wakeup]


def late_answers_count(host: HostProtocol, poll: Poll) -> bool:
    """Whether bytes that came after a reply window closed are kept for the re-send's
    window: only for a non-RTE general poll. Every copy of it gets the same one-byte answer
    (SAS §3.5: the same poll again is an implied NACK, the machine re-sends), so a machine
    that answers after the window (later than SAS §2.3.1's 20 ms) is still read, one copy
    late; thrown away, its exception would be acknowledged unread by the sync poll that
    follows the failed poll (issue 17). A late long-poll or RTE frame is not kept: its bytes
    would be misread as the re-send's frame."""
    return isinstance(poll, GeneralPoll) and not host.rte_mode


def reply_bound(poll: Poll) -> float:
    """How long after its poll a conforming machine may still be sending the reply (s).

    Reference §3.6 allows 20 ms before the first byte and 5 ms between bytes, so a 2F or 6F
    reply of some 100 bytes may take over half a second on a machine that uses its gaps: cut
    at :data:`MAX_REPLY_S` (its bytes' wire time alone), every such read failed and its tail
    was read as exception bytes. Variable-length replies are bounded by the longest frame,
    general polls by the longest RTE frame; never less than :data:`MAX_REPLY_S`."""
    if isinstance(poll, GeneralPoll):
        length = LONGEST_GENERAL_REPLY
    else:
        length = poll.reply_length or LONGEST_FRAME
    worst = REPLY_START_S + length * WIRE_S_PER_BYTE + (length - 1) * BYTE_GAP_S
    return max(MAX_REPLY_S, worst)
