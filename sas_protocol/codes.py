"""SAS wire codes: long polls and general-poll exception codes.

The meter table (table C-7 codes, units, sizes, names) lives in ``sas_protocol.meter_codes``
and is re-exported here."""

from __future__ import annotations

from enum import Enum, IntEnum

from sas_protocol.meter_codes import BILL_METER_DOLLARS as BILL_METER_DOLLARS
from sas_protocol.meter_codes import METERS as METERS
from sas_protocol.meter_codes import MeterCode as MeterCode
from sas_protocol.meter_codes import MeterSpec as MeterSpec
from sas_protocol.meter_codes import MeterUnit as MeterUnit
from sas_protocol.meter_codes import meter_name as meter_name
from sas_protocol.meter_codes import meter_spec as meter_spec


class LongPoll(IntEnum):
    """Long-poll commands this package can build and decode (SAS §3.9 of the reference)."""

    SHUTDOWN = 0x01
    STARTUP = 0x02
    SOUND_OFF = 0x03
    SOUND_ON = 0x04
    ENABLE_BILL_ACCEPTOR = 0x06
    DISABLE_BILL_ACCEPTOR = 0x07
    ENABLE_DISABLE_GAME = 0x09
    REAL_TIME_EVENT_REPORTING = 0x0E
    SEND_METERS_10_15 = 0x0F
    SEND_CANCELLED_CREDITS = 0x10
    SEND_COIN_IN = 0x11
    SEND_COIN_OUT = 0x12
    SEND_DROP = 0x13
    SEND_JACKPOT = 0x14
    SEND_GAMES_PLAYED = 0x15
    SEND_GAMES_WON = 0x16
    SEND_GAMES_LOST = 0x17
    SEND_GAMES_SINCE_POWER_UP = 0x18
    SEND_METERS_11_15 = 0x19
    SEND_CURRENT_CREDITS = 0x1A
    SEND_HANDPAY_INFO = 0x1B
    SEND_METERS = 0x1C
    SEND_BILL_METERS = 0x1E
    SEND_MACHINE_INFO = 0x1F
    SEND_TOTAL_BILL_VALUE = 0x20
    ROM_SIGNATURE = 0x21
    DELAY_GAME = 0x2E
    SEND_SELECTED_METERS = 0x2F
    SEND_BILLS_1 = 0x31
    SEND_BILLS_2 = 0x32
    SEND_BILLS_5 = 0x33
    SEND_BILLS_10 = 0x34
    SEND_BILLS_20 = 0x35
    SEND_BILLS_50 = 0x36
    SEND_BILLS_100 = 0x37
    SEND_BILLS_500 = 0x38
    SEND_BILLS_1000 = 0x39
    SEND_BILLS_200 = 0x3A
    SEND_BILLS_25 = 0x3B
    SEND_BILLS_2000 = 0x3C
    SEND_CASHOUT_TICKET_INFO = 0x3D
    SEND_BILLS_2500 = 0x3E
    SEND_BILLS_5000 = 0x3F
    SEND_BILLS_10000 = 0x40
    SEND_BILLS_20000 = 0x41
    SEND_BILLS_25000 = 0x42
    SEND_BILLS_50000 = 0x43
    SEND_BILLS_100000 = 0x44
    SEND_BILLS_250 = 0x45
    SEND_BILL_CREDITS = 0x46
    SEND_LAST_BILL = 0x48
    SEND_ENHANCED_VALIDATION = 0x4D
    SEND_NUMBER_OF_GAMES = 0x51
    SEND_GAME_METERS = 0x52
    SEND_GAME_CONFIGURATION = 0x53
    SEND_SAS_VERSION = 0x54
    SEND_SELECTED_GAME = 0x55
    SEND_ENABLED_GAMES = 0x56
    SEND_EXTENDED_METERS = 0x6F
    AFT_LOCK_AND_STATUS = 0x74
    SEND_DATE_TIME = 0x7E
    SET_DATE_TIME = 0x7F
    REMOTE_HANDPAY_RESET = 0x94
    SEND_ENABLED_FEATURES = 0xA0
    ENABLE_HANDPAY_RESET_METHOD = 0xA8
    SEND_EXTENDED_METERS_ALT = 0xAF
    MULTI_DENOM_PREAMBLE = 0xB0
    SEND_CURRENT_PLAYER_DENOMINATION = 0xB1
    SEND_ENABLED_PLAYER_DENOMINATIONS = 0xB2
    SEND_EXTENDED_GAME_INFO = 0xB5


LONG_POLL_MEANING: dict[LongPoll, str] = {
    LongPoll.SHUTDOWN: "Shutdown: lock out play",
    LongPoll.STARTUP: "Startup: enable play",
    LongPoll.SOUND_OFF: "Sound off",
    LongPoll.SOUND_ON: "Sound on",
    LongPoll.ENABLE_BILL_ACCEPTOR: "Enable bill acceptor",
    LongPoll.DISABLE_BILL_ACCEPTOR: "Disable bill acceptor",
    LongPoll.ENABLE_DISABLE_GAME: "Enable / disable game N",
    LongPoll.REAL_TIME_EVENT_REPORTING: "Enable / disable real-time event reporting",
    LongPoll.SEND_METERS_10_15: "Send meters: cancelled credits, coin in/out, drop, jackpot, games",
    LongPoll.SEND_CANCELLED_CREDITS: "Send total cancelled credits meter",
    LongPoll.SEND_COIN_IN: "Send total coin in meter",
    LongPoll.SEND_COIN_OUT: "Send total coin out meter",
    LongPoll.SEND_DROP: "Send total drop meter",
    LongPoll.SEND_JACKPOT: "Send total jackpot meter",
    LongPoll.SEND_GAMES_PLAYED: "Send games played meter",
    LongPoll.SEND_GAMES_WON: "Send games won meter",
    LongPoll.SEND_GAMES_LOST: "Send games lost meter",
    LongPoll.SEND_GAMES_SINCE_POWER_UP: "Send games since power-up and since slot door closure",
    LongPoll.SEND_METERS_11_15: "Send meters: coin in/out, drop, jackpot, games played",
    LongPoll.SEND_CURRENT_CREDITS: "Send current credits",
    LongPoll.SEND_HANDPAY_INFO: "Send handpay information",
    LongPoll.SEND_METERS: "Send meters: coin in/out, drop, jackpot, games, door opens, resets",
    LongPoll.SEND_BILL_METERS: "Send bill meters: number of $1, $5, $10, $20, $50, $100 bills",
    LongPoll.SEND_MACHINE_INFO: "Send gaming machine ID and information",
    LongPoll.SEND_TOTAL_BILL_VALUE: "Send total dollar value of bills accepted",
    LongPoll.ROM_SIGNATURE: "ROM signature verification",
    LongPoll.DELAY_GAME: "Delay game",
    LongPoll.SEND_SELECTED_METERS: "Send selected meters for game N",
    LongPoll.SEND_BILLS_1: "Send number of $1 bills accepted",
    LongPoll.SEND_BILLS_2: "Send number of $2 bills accepted",
    LongPoll.SEND_BILLS_5: "Send number of $5 bills accepted",
    LongPoll.SEND_BILLS_10: "Send number of $10 bills accepted",
    LongPoll.SEND_BILLS_20: "Send number of $20 bills accepted",
    LongPoll.SEND_BILLS_50: "Send number of $50 bills accepted",
    LongPoll.SEND_BILLS_100: "Send number of $100 bills accepted",
    LongPoll.SEND_BILLS_500: "Send number of $500 bills accepted",
    LongPoll.SEND_BILLS_1000: "Send number of $1,000 bills accepted",
    LongPoll.SEND_BILLS_200: "Send number of $200 bills accepted",
    LongPoll.SEND_BILLS_25: "Send number of $25 bills accepted",
    LongPoll.SEND_BILLS_2000: "Send number of $2,000 bills accepted",
    LongPoll.SEND_CASHOUT_TICKET_INFO: "Send cash out ticket information",
    LongPoll.SEND_BILLS_2500: "Send number of $2,500 bills accepted",
    LongPoll.SEND_BILLS_5000: "Send number of $5,000 bills accepted",
    LongPoll.SEND_BILLS_10000: "Send number of $10,000 bills accepted",
    LongPoll.SEND_BILLS_20000: "Send number of $20,000 bills accepted",
    LongPoll.SEND_BILLS_25000: "Send number of $25,000 bills accepted",
    LongPoll.SEND_BILLS_50000: "Send number of $50,000 bills accepted",
    LongPoll.SEND_BILLS_100000: "Send number of $100,000 bills accepted",
    LongPoll.SEND_BILLS_250: "Send number of $250 bills accepted",
    LongPoll.SEND_BILL_CREDITS: "Send credits from bills accepted",
    LongPoll.SEND_LAST_BILL: "Send last accepted bill information",
    LongPoll.SEND_ENHANCED_VALIDATION: "Send enhanced validation information",
    LongPoll.SEND_NUMBER_OF_GAMES: "Send number of games implemented",
    LongPoll.SEND_GAME_METERS: "Send game N meters: coin in/out, jackpot, games played",
    LongPoll.SEND_GAME_CONFIGURATION: "Send game N configuration",
    LongPoll.SEND_SAS_VERSION: "Send SAS version and machine serial number",
    LongPoll.SEND_SELECTED_GAME: "Send selected game number",
    LongPoll.SEND_ENABLED_GAMES: "Send enabled game numbers",
    LongPoll.SEND_EXTENDED_METERS: "Send extended meters for game N",
    LongPoll.AFT_LOCK_AND_STATUS: "AFT game lock and status request",
    LongPoll.SEND_DATE_TIME: "Send current date and time",
    LongPoll.SET_DATE_TIME: "Receive date and time",
    LongPoll.REMOTE_HANDPAY_RESET: "Remote handpay reset",
    LongPoll.SEND_ENABLED_FEATURES: "Send enabled features for game N",
    LongPoll.ENABLE_HANDPAY_RESET_METHOD: "Enable jackpot handpay reset method",
    LongPoll.SEND_EXTENDED_METERS_ALT: "Send extended meters for game N (alternate)",
    LongPoll.MULTI_DENOM_PREAMBLE: "Multi-denomination preamble",
    LongPoll.SEND_CURRENT_PLAYER_DENOMINATION: "Send current player denomination",
    LongPoll.SEND_ENABLED_PLAYER_DENOMINATIONS: "Send enabled player denominations",
    LongPoll.SEND_EXTENDED_GAME_INFO: "Send extended game N information",
}


class ExceptionCategory(Enum):
    """What an exception code is about, for routing to event channels."""

    DOOR = "door"
    POWER = "power"
    TILT = "tilt"
    BILL = "bill"
    PRINTER = "printer"
    HANDPAY = "handpay"
    TICKET = "ticket"
    GAME = "game"
    PROGRESSIVE = "progressive"
    MEMORY = "memory"
    OPERATOR = "operator"
    AFT = "aft"
    OTHER = "other"


class ExceptionCode(IntEnum):
    """General-poll exception codes (SAS table A-1, reference §3.11)."""

    NO_ACTIVITY = 0x00
    SLOT_DOOR_OPENED = 0x11
    SLOT_DOOR_CLOSED = 0x12
    DROP_DOOR_OPENED = 0x13
    DROP_DOOR_CLOSED = 0x14
    CARD_CAGE_OPENED = 0x15
    CARD_CAGE_CLOSED = 0x16
    AC_POWER_APPLIED = 0x17
    AC_POWER_LOST = 0x18
    CASHBOX_DOOR_OPENED = 0x19
    CASHBOX_DOOR_CLOSED = 0x1A
    CASHBOX_REMOVED = 0x1B
    CASHBOX_INSTALLED = 0x1C
    BELLY_DOOR_OPENED = 0x1D
    BELLY_DOOR_CLOSED = 0x1E
    NO_ACTIVITY_WAITING_FOR_PLAYER = 0x1F
    GENERAL_TILT = 0x20
    COIN_IN_TILT = 0x21
    COIN_OUT_TILT = 0x22
    HOPPER_EMPTY = 0x23
    EXTRA_COIN_PAID = 0x24
    DIVERTER_MALFUNCTION = 0x25
    CASHBOX_FULL = 0x27
    BILL_JAM = 0x28
    BILL_ACCEPTOR_FAILURE = 0x29
    REVERSE_BILL = 0x2A
    BILL_REJECTED = 0x2B
    COUNTERFEIT_BILL = 0x2C
    REVERSE_COIN_IN = 0x2D
    CASHBOX_NEAR_FULL = 0x2E
    BILL_ACCEPTOR_VERSION_CHANGED = 0x2F
    CMOS_RAM_ERROR_RECOVERED = 0x31
    CMOS_RAM_ERROR_NOT_RECOVERED = 0x32
    CMOS_RAM_ERROR_BAD_DEVICE = 0x33
    EEPROM_DATA_ERROR = 0x34
    EEPROM_BAD_DEVICE = 0x35
    EPROM_VERSION_CHANGED = 0x36
    EPROM_BAD_CHECKSUM = 0x37
    PARTITIONED_EPROM_VERSION_CHANGED = 0x38
    PARTITIONED_EPROM_BAD_CHECKSUM = 0x39
    MEMORY_ERROR_RESET = 0x3A
    LOW_BACKUP_BATTERY = 0x3B
    OPERATOR_CHANGED_OPTIONS = 0x3C
    CASHOUT_TICKET_PRINTED = 0x3D
    HANDPAY_VALIDATED = 0x3E
    VALIDATION_ID_NOT_CONFIGURED = 0x3F
    REEL_TILT = 0x40
    REEL_1_TILT = 0x41
    REEL_2_TILT = 0x42
    REEL_3_TILT = 0x43
    REEL_4_TILT = 0x44
    REEL_5_TILT = 0x45
    REEL_DISCONNECTED = 0x46
    BILL_ACCEPTED_1 = 0x47
    BILL_ACCEPTED_5 = 0x48
    BILL_ACCEPTED_10 = 0x49
    BILL_ACCEPTED_20 = 0x4A
    BILL_ACCEPTED_50 = 0x4B
    BILL_ACCEPTED_100 = 0x4C
    BILL_ACCEPTED_2 = 0x4D
    BILL_ACCEPTED_500 = 0x4E
    BILL_ACCEPTED = 0x4F
    BILL_ACCEPTED_200 = 0x50
    HANDPAY_PENDING = 0x51
    HANDPAY_RESET = 0x52
    NO_PROGRESSIVE_INFO = 0x53
    PROGRESSIVE_WIN = 0x54
    PLAYER_CANCELLED_HANDPAY = 0x55
    SAS_PROGRESSIVE_LEVEL_HIT = 0x56
    SYSTEM_VALIDATION_REQUEST = 0x57
    NON_SAS_PROGRESSIVE_LEVEL_HIT = 0x59
    JACKPOT_KEYED_OFF_TO_MACHINE_PAY = 0x5A
    TIP_AWARDED = 0x5F
    PRINTER_COMM_ERROR = 0x60
    PRINTER_PAPER_OUT = 0x61
    CASHOUT_BUTTON_PRESSED = 0x66
    TICKET_INSERTED = 0x67
    TICKET_TRANSFER_COMPLETE = 0x68
    AFT_TRANSFER_COMPLETE = 0x69
    AFT_REQUEST_HOST_CASHOUT = 0x6A
    AFT_REQUEST_HOST_CASHOUT_WIN = 0x6B
    AFT_REGISTRATION_REQUEST = 0x6C
    AFT_REGISTRATION_ACKNOWLEDGED = 0x6D
    AFT_REGISTRATION_CANCELLED = 0x6E
    GAME_LOCKED = 0x6F
    EXCEPTION_BUFFER_OVERFLOW = 0x70
    CHANGE_LAMP_ON = 0x71
    CHANGE_LAMP_OFF = 0x72
    PRINTER_PAPER_LOW = 0x74
    PRINTER_POWER_OFF = 0x75
    PRINTER_POWER_ON = 0x76
    REPLACE_PRINTER_RIBBON = 0x77
    PRINTER_CARRIAGE_JAM = 0x78
    COIN_IN_LOCKOUT_MALFUNCTION = 0x79
    SOFT_METERS_RESET = 0x7A
    BILL_TOTALS_RESET = 0x7B
    LEGACY_BONUS_PAY = 0x7C
    GAME_STARTED = 0x7E
    GAME_ENDED = 0x7F
    HOPPER_FULL = 0x80
    HOPPER_LEVEL_LOW = 0x81
    ATTENDANT_MENU_ENTERED = 0x82
    ATTENDANT_MENU_EXITED = 0x83
    OPERATOR_MENU_ENTERED = 0x84
    OPERATOR_MENU_EXITED = 0x85
    OUT_OF_SERVICE = 0x86
    DRAW_CARDS_REQUESTED = 0x87
    REEL_STOPPED = 0x88
    CREDIT_WAGERED = 0x89
    GAME_RECALL_DISPLAYED = 0x8A
    CARD_HELD = 0x8B
    GAME_SELECTED = 0x8C
    COMPONENT_LIST_CHANGED = 0x8E
    AUTHENTICATION_COMPLETE = 0x8F
    POWER_OFF_CARD_CAGE_ACCESS = 0x98
    POWER_OFF_SLOT_DOOR_ACCESS = 0x99
    POWER_OFF_CASHBOX_DOOR_ACCESS = 0x9A
    POWER_OFF_DROP_DOOR_ACCESS = 0x9B
    SESSION_START = 0x9E
    SESSION_END = 0x9F
    METER_CHANGE_PENDING = 0xA0
    METER_CHANGE_CANCELLED = 0xA1
    ENABLED_GAMES_CHANGED = 0xA2


#: Codes that mean "nothing to report" (SAS §2.2.1; IGT machines still send 1F).
IDLE_EXCEPTIONS = frozenset(
    {ExceptionCode.NO_ACTIVITY, ExceptionCode.NO_ACTIVITY_WAITING_FOR_PLAYER}
)

_C = ExceptionCategory
_E = ExceptionCode

_CATEGORY_RANGES: tuple[tuple[int, int, ExceptionCategory], ...] = (
    (0x11, 0x16, _C.DOOR),
    (0x17, 0x18, _C.POWER),
    (0x19, 0x1E, _C.DOOR),
    (0x20, 0x26, _C.TILT),
    (0x27, 0x2E, _C.BILL),
    (0x2F, 0x2F, _C.BILL),
    (0x31, 0x3B, _C.MEMORY),
    (0x3C, 0x3C, _C.OPERATOR),
    (0x3D, 0x3D, _C.TICKET),
    (0x3E, 0x3E, _C.HANDPAY),
    (0x3F, 0x3F, _C.TICKET),
    (0x40, 0x46, _C.TILT),
    (0x47, 0x50, _C.BILL),
    (0x51, 0x52, _C.HANDPAY),
    (0x53, 0x54, _C.PROGRESSIVE),
    (0x55, 0x55, _C.HANDPAY),
    (0x56, 0x56, _C.PROGRESSIVE),
    (0x57, 0x57, _C.TICKET),
    (0x59, 0x59, _C.PROGRESSIVE),
    (0x5A, 0x5A, _C.HANDPAY),
    (0x5F, 0x5F, _C.GAME),
    (0x60, 0x61, _C.PRINTER),
    (0x66, 0x66, _C.GAME),
    (0x67, 0x68, _C.TICKET),
    (0x69, 0x6E, _C.AFT),
    (0x6F, 0x6F, _C.GAME),
    (0x70, 0x70, _C.MEMORY),
    (0x71, 0x72, _C.OTHER),
    (0x74, 0x78, _C.PRINTER),
    (0x79, 0x79, _C.TILT),
    (0x7A, 0x7B, _C.MEMORY),
    (0x7C, 0x7C, _C.GAME),
    (0x7E, 0x7F, _C.GAME),
    (0x80, 0x81, _C.OTHER),
    (0x82, 0x86, _C.OPERATOR),
    (0x87, 0x8C, _C.GAME),
    (0x8E, 0x8F, _C.OTHER),
    (0x98, 0x9B, _C.DOOR),
    (0x9E, 0x9F, _C.GAME),
    (0xA0, 0xA1, _C.MEMORY),
    (0xA2, 0xA2, _C.OPERATOR),
)


def category_of(code: int) -> ExceptionCategory:
    """The category of exception ``code``; OTHER for idle and unknown codes."""
    for low, high, category in _CATEGORY_RANGES:
        if low <= code <= high:
            return category
    return _C.OTHER


EXCEPTION_MEANING: dict[ExceptionCode, str] = {
    _E.NO_ACTIVITY: "No activity",
    _E.SLOT_DOOR_OPENED: "Slot door opened",
    _E.SLOT_DOOR_CLOSED: "Slot door closed",
    _E.DROP_DOOR_OPENED: "Drop door opened",
    _E.DROP_DOOR_CLOSED: "Drop door closed",
    _E.CARD_CAGE_OPENED: "Card cage opened",
    _E.CARD_CAGE_CLOSED: "Card cage closed",
    _E.AC_POWER_APPLIED: "AC power applied to gaming machine",
    _E.AC_POWER_LOST: "AC power lost from gaming machine",
    _E.CASHBOX_DOOR_OPENED: "Cashbox door opened",
    _E.CASHBOX_DOOR_CLOSED: "Cashbox door closed",
    _E.CASHBOX_REMOVED: "Cashbox removed",
    _E.CASHBOX_INSTALLED: "Cashbox installed",
    _E.BELLY_DOOR_OPENED: "Belly door opened",
    _E.BELLY_DOOR_CLOSED: "Belly door closed",
    _E.NO_ACTIVITY_WAITING_FOR_PLAYER: "No activity, waiting for player input (obsolete)",
    _E.GENERAL_TILT: "General tilt",
    _E.COIN_IN_TILT: "Coin in tilt",
    _E.COIN_OUT_TILT: "Coin out tilt",
    _E.HOPPER_EMPTY: "Hopper empty detected",
    _E.EXTRA_COIN_PAID: "Extra coin paid",
    _E.DIVERTER_MALFUNCTION: "Diverter malfunction",
    _E.CASHBOX_FULL: "Cashbox full detected",
    _E.BILL_JAM: "Bill jam",
    _E.BILL_ACCEPTOR_FAILURE: "Bill acceptor hardware failure",
    _E.REVERSE_BILL: "Reverse bill detected",
    _E.BILL_REJECTED: "Bill rejected",
    _E.COUNTERFEIT_BILL: "Counterfeit bill detected",
    _E.REVERSE_COIN_IN: "Reverse coin in detected",
    _E.CASHBOX_NEAR_FULL: "Cashbox near full detected",
    _E.BILL_ACCEPTOR_VERSION_CHANGED: "Bill acceptor version changed",
    _E.CMOS_RAM_ERROR_RECOVERED: "CMOS RAM error (data recovered from EEPROM)",
    _E.CMOS_RAM_ERROR_NOT_RECOVERED: "CMOS RAM error (no data recovered from EEPROM)",
    _E.CMOS_RAM_ERROR_BAD_DEVICE: "CMOS RAM error (bad device)",
    _E.EEPROM_DATA_ERROR: "EEPROM error (data error)",
    _E.EEPROM_BAD_DEVICE: "EEPROM error (bad device)",
    _E.EPROM_VERSION_CHANGED: "EPROM error (different checksum, version changed)",
    _E.EPROM_BAD_CHECKSUM: "EPROM error (bad checksum compare)",
    _E.PARTITIONED_EPROM_VERSION_CHANGED: "Partitioned EPROM error (checksum, version changed)",
    _E.PARTITIONED_EPROM_BAD_CHECKSUM: "Partitioned EPROM error (bad checksum compare)",
    _E.MEMORY_ERROR_RESET: "Memory error reset (operator used self-test switch)",
    _E.LOW_BACKUP_BATTERY: "Low backup battery detected",
    _E.OPERATOR_CHANGED_OPTIONS: "Operator changed options",
    _E.CASHOUT_TICKET_PRINTED: "A cash out ticket has been printed",
    _E.HANDPAY_VALIDATED: "A handpay has been validated",
    _E.VALIDATION_ID_NOT_CONFIGURED: "Validation ID not configured",
    _E.REEL_TILT: "Reel tilt (which reel is not specified)",
    _E.REEL_1_TILT: "Reel 1 tilt",
    _E.REEL_2_TILT: "Reel 2 tilt",
    _E.REEL_3_TILT: "Reel 3 tilt",
    _E.REEL_4_TILT: "Reel 4 tilt",
    _E.REEL_5_TILT: "Reel 5 tilt",
    _E.REEL_DISCONNECTED: "Reel mechanism disconnected",
    _E.BILL_ACCEPTED_1: "$1.00 bill accepted (non-RTE only)",
    _E.BILL_ACCEPTED_5: "$5.00 bill accepted (non-RTE only)",
    _E.BILL_ACCEPTED_10: "$10.00 bill accepted (non-RTE only)",
    _E.BILL_ACCEPTED_20: "$20.00 bill accepted (non-RTE only)",
    _E.BILL_ACCEPTED_50: "$50.00 bill accepted (non-RTE only)",
    _E.BILL_ACCEPTED_100: "$100.00 bill accepted (non-RTE only)",
    _E.BILL_ACCEPTED_2: "$2.00 bill accepted (non-RTE only)",
    _E.BILL_ACCEPTED_500: "$500.00 bill accepted (non-RTE only)",
    _E.BILL_ACCEPTED: "Bill accepted",
    _E.BILL_ACCEPTED_200: "$200.00 bill accepted (non-RTE only)",
    _E.HANDPAY_PENDING: "Handpay is pending",
    _E.HANDPAY_RESET: "Handpay was reset",
    _E.NO_PROGRESSIVE_INFO: "No progressive information received for 5 seconds",
    _E.PROGRESSIVE_WIN: "Progressive win (cashout device / credit paid)",
    _E.PLAYER_CANCELLED_HANDPAY: "Player has cancelled the handpay request",
    _E.SAS_PROGRESSIVE_LEVEL_HIT: "SAS progressive level hit",
    _E.SYSTEM_VALIDATION_REQUEST: "System validation request",
    _E.NON_SAS_PROGRESSIVE_LEVEL_HIT: "Non-SAS progressive level hit",
    _E.JACKPOT_KEYED_OFF_TO_MACHINE_PAY: "Jackpot handpay keyed off to machine pay",
    _E.TIP_AWARDED: "Tip awarded",
    _E.PRINTER_COMM_ERROR: "Printer communication error",
    _E.PRINTER_PAPER_OUT: "Printer paper out error",
    _E.CASHOUT_BUTTON_PRESSED: "Cash out button pressed",
    _E.TICKET_INSERTED: "Ticket has been inserted",
    _E.TICKET_TRANSFER_COMPLETE: "Ticket transfer complete",
    _E.AFT_TRANSFER_COMPLETE: "AFT transfer complete",
    _E.AFT_REQUEST_HOST_CASHOUT: "AFT request for host cashout",
    _E.AFT_REQUEST_HOST_CASHOUT_WIN: "AFT request for host to cash out win",
    _E.AFT_REGISTRATION_REQUEST: "AFT request to register",
    _E.AFT_REGISTRATION_ACKNOWLEDGED: "AFT registration acknowledged",
    _E.AFT_REGISTRATION_CANCELLED: "AFT registration cancelled",
    _E.GAME_LOCKED: "Game locked",
    _E.EXCEPTION_BUFFER_OVERFLOW: "Exception buffer overflow",
    _E.CHANGE_LAMP_ON: "Change lamp on",
    _E.CHANGE_LAMP_OFF: "Change lamp off",
    _E.PRINTER_PAPER_LOW: "Printer paper low",
    _E.PRINTER_POWER_OFF: "Printer power off",
    _E.PRINTER_POWER_ON: "Printer power on",
    _E.REPLACE_PRINTER_RIBBON: "Replace printer ribbon",
    _E.PRINTER_CARRIAGE_JAM: "Printer carriage jammed",
    _E.COIN_IN_LOCKOUT_MALFUNCTION: "Coin in lockout malfunction",
    _E.SOFT_METERS_RESET: "Gaming machine soft (lifetime-to-date) meters reset to zero",
    _E.BILL_TOTALS_RESET: "Bill validator (period) totals have been reset",
    _E.LEGACY_BONUS_PAY: "Legacy bonus pay awarded and/or multiplied jackpot occurred",
    _E.GAME_STARTED: "Game has started",
    _E.GAME_ENDED: "Game has ended",
    _E.HOPPER_FULL: "Hopper full detected",
    _E.HOPPER_LEVEL_LOW: "Hopper level low detected",
    _E.ATTENDANT_MENU_ENTERED: "Display meters or attendant menu entered",
    _E.ATTENDANT_MENU_EXITED: "Display meters or attendant menu exited",
    _E.OPERATOR_MENU_ENTERED: "Self test or operator menu entered",
    _E.OPERATOR_MENU_EXITED: "Self test or operator menu exited",
    _E.OUT_OF_SERVICE: "Gaming machine is out of service (by attendant)",
    _E.DRAW_CARDS_REQUESTED: "Player has requested draw cards (RTE only)",
    _E.REEL_STOPPED: "Reel N has stopped (RTE only)",
    _E.CREDIT_WAGERED: "Coin/credit wagered (RTE only)",
    _E.GAME_RECALL_DISPLAYED: "Game recall entry has been displayed",
    _E.CARD_HELD: "Card held / not held (RTE only)",
    _E.GAME_SELECTED: "Game selected",
    _E.COMPONENT_LIST_CHANGED: "Component list changed",
    _E.AUTHENTICATION_COMPLETE: "Authentication complete",
    _E.POWER_OFF_CARD_CAGE_ACCESS: "Power off card cage access",
    _E.POWER_OFF_SLOT_DOOR_ACCESS: "Power off slot door access",
    _E.POWER_OFF_CASHBOX_DOOR_ACCESS: "Power off cashbox door access",
    _E.POWER_OFF_DROP_DOOR_ACCESS: "Power off drop door access",
    _E.SESSION_START: "Session start",
    _E.SESSION_END: "Session end",
    _E.METER_CHANGE_PENDING: "Meter change pending",
    _E.METER_CHANGE_CANCELLED: "Meter change cancelled",
    _E.ENABLED_GAMES_CHANGED: "Enabled games and/or denominations changed",
}
