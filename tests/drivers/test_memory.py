"""The memory pair: delivery, deadlines, and each fault kind, seeded and deterministic."""

from __future__ import annotations

import threading
import time

import pytest

from drivers.base import TransportClosedError, Word
from drivers.memory import Faults, LeakError, assert_drained, pair


def _read_all(end: object, count: int, timeout: float = 2.0) -> list[Word]:
    from drivers.memory import MemoryTransport

    assert isinstance(end, MemoryTransport)
    got: list[Word] = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        got += end.read(deadline)
    return got


def test_words_cross_with_the_wakeup_bit_on_the_first_byte_only() -> None:
    host, machine = pair()
    host.write(bytes([0x01, 0x1F, 0xFF]), wakeup=True)
    got = machine.read(time.monotonic() + 1)
    assert got == [Word(0x01, True), Word(0x1F, False), Word(0xFF, False)]
    machine.write(b"\x81", wakeup=True)  # a chirp
    assert host.read(time.monotonic() + 1) == [Word(0x81, True)]
    assert_drained(host, machine)


def test_read_returns_empty_at_the_deadline() -> None:
    host, _ = pair()
    assert host.read(time.monotonic() + 0.02) == []
    assert host.read(time.monotonic() - 1) == []


def test_max_words_bounds_a_read() -> None:
    host, machine = pair()
    host.write(bytes(range(10)), wakeup=False)
    assert len(machine.read(time.monotonic() + 1, max_words=4)) == 4
    assert len(machine.read(time.monotonic() + 1)) == 6


def test_wakeup_without_bytes_is_refused() -> None:
    host, _ = pair()
    with pytest.raises(ValueError, match="memory:host"):
        host.write(b"", wakeup=True)


def test_drop_corrupt_duplicate_are_seeded_and_counted() -> None:
    def run(seed: int) -> tuple[list[Word], Faults]:
        faults = Faults(drop=0.1, corrupt=0.1, duplicate=0.1, seed=seed)
        host, machine = pair(faults=faults)
        host.write(bytes(range(256)) * 4, wakeup=False)
        got = machine.read(time.monotonic() + 1, max_words=4096)
        return got, faults

    first, faults = run(3)
    second, _ = run(3)
    assert first == second  # deterministic for a seed
    assert faults.dropped > 0 and faults.corrupted > 0 and faults.duplicated > 0
    assert len(first) == 1024 - faults.dropped + faults.duplicated
    # nothing was sent with the wakeup bit: any set one is a corruption of the 9th bit
    assert 0 < sum(1 for w in first if w.wakeup) <= faults.corrupted
    assert run(4)[0] != first


def test_split_returns_short_runs_in_order() -> None:
    host, machine = pair(faults=Faults(split=True, seed=1))
    host.write(bytes(range(100)), wakeup=True)
    runs = []
    got: list[Word] = []
    while len(got) < 100:
        run = machine.read(time.monotonic() + 1)
        runs.append(len(run))
        got += run
    assert [w.value for w in got] == list(range(100))
    assert len(runs) > 1


def test_cut_for_a_stretch_then_delivery_resumes() -> None:
    host, machine = pair()
    with host.faults.during(cut=True):
        host.write(b"\x01\x02", wakeup=True)
        assert machine.read(time.monotonic() + 0.02) == []
    host.write(b"\x03", wakeup=True)
    assert machine.read(time.monotonic() + 1) == [Word(3, True)]
    assert host.faults.cut is False
    assert host.faults.dropped == 2


def test_during_rejects_unknown_settings_and_bad_values() -> None:
    faults = Faults()
    with pytest.raises(TypeError, match="unknown"), faults.during(garble=1.0):
        pass
    with pytest.raises(ValueError, match=r"Faults\.drop"):
        Faults(drop=1.5)


def test_per_direction_faults() -> None:
    host, machine = pair(to_machine=Faults(cut=True), to_host=Faults())
    host.write(b"\x01", wakeup=True)
    machine.write(b"\x02", wakeup=False)
    assert machine.read(time.monotonic() + 0.02) == []
    assert host.read(time.monotonic() + 1) == [Word(2, False)]


def test_delay_holds_words_back_and_discard_keeps_words_on_the_wire() -> None:
    host, machine = pair(faults=Faults(delay_s=0.05))
    host.write(b"\x01", wakeup=True)
    machine.discard_input()  # not arrived yet: stays
    assert machine.unread() == [Word(1, True)]
    assert machine.read(time.monotonic() + 2) == [Word(1, True)]


def test_discard_input_drops_arrived_words() -> None:
    host, machine = pair()
    host.write(b"\x01\x02", wakeup=True)
    machine.discard_input()
    assert machine.read(time.monotonic() + 0.01) == []


def test_leak_check_names_the_end_and_the_bytes() -> None:
    host, machine = pair()
    host.write(b"\x01\xff", wakeup=True)
    with pytest.raises(LeakError, match=r"memory:machine: 2 unread words \[01 ff\]"):
        assert_drained(host, machine)


def test_close_unblocks_a_reader_in_another_thread() -> None:
    _, machine = pair()
    errors: list[BaseException] = []
    started = threading.Event()

    def reader() -> None:
        started.set()
        try:
            machine.read(time.monotonic() + 30)
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=reader)
    t.start()
    assert started.wait(5)
    machine.close()
    t.join(5)
    assert not t.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], TransportClosedError)
    assert errors[0].device == "memory:machine"


def test_write_to_a_closed_peer_is_lost_not_an_error() -> None:
    host, machine = pair()
    machine.close()
    host.write(b"\x01", wakeup=True)  # a powered-off machine: the bytes go nowhere
    with pytest.raises(TransportClosedError):
        machine.write(b"\x01", wakeup=False)
