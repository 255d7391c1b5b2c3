"""LP 3D cash-out ticket information (reference §3.9b).

``A 3D`` is answered by ``A 3D number amount C``: the validation number of the last
cash-out ticket (4 BCD bytes, 8 digits) and its amount in **cents** (5 BCD bytes), 13 bytes
in all. It serves standard validation only: with secure-enhanced or system validation the
machine sends a zero validation number (spec summary §15.5) and LP 4D carries the record.
saspy reads a 2-byte number [unsure]; ``TicketNumberSize`` selects that layout."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Self

from sas_protocol.bcd import encode_bcd
from sas_protocol.codes import LongPoll
from sas_protocol.errors import LengthError
from sas_protocol.messages.base import Request, Response, bcd_value
from sas_protocol.variants import TicketNumberSize


@dataclass(frozen=True, slots=True)
class CashoutTicketRequest(Request):
    """LP 3D (type R). ``number_size`` sets the reply length the host waits for."""

    number_size: TicketNumberSize = TicketNumberSize.BCD4
    COMMAND: ClassVar[int] = LongPoll.SEND_CASHOUT_TICKET_INFO
    HAS_CRC: ClassVar[bool] = False

    @property
    def reply_length(self) -> int:
        return 2 + self.number_size.size + 5 + 2


@dataclass(frozen=True, slots=True)
class CashoutTicketReply(Response):
    """LP 3D reply: ``validation_number`` (8 or 4 digits) and ``amount`` in cents."""

    validation_number: int
    amount: int
    number_size: TicketNumberSize = TicketNumberSize.BCD4
    COMMAND: ClassVar[int] = LongPoll.SEND_CASHOUT_TICKET_INFO

    def body(self) -> bytes:
        return encode_bcd(self.validation_number, self.number_size.size) + encode_bcd(
            self.amount, 5
        )

    @classmethod
    def from_body(cls, body: bytes, frame: bytes) -> Self:
        # The reply has no length byte; its length tells the two layouts apart.
        sizes = {4 + 5: TicketNumberSize.BCD4, 2 + 5: TicketNumberSize.BCD2}
        if len(body) not in sizes:
            raise LengthError(f"LP 3D reply body is {len(body)} bytes, expected 9 (or 7)", frame)
        size = sizes[len(body)]
        return cls(
            bcd_value(body[: size.size], frame), bcd_value(body[size.size :], frame), size
        )
