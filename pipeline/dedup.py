"""Drop events seen before: the same (utm_id, event_id) within the dedup window, by arrival time.

The memory is kept in hour slots of arrival, shared by every UTM of the Deduper:

- the exact record of each remembered pair, (UTM number, 64-bit CityHash64 of the event id, arrival
  in epoch seconds), 20 bytes, lives in a file of its slot, off the heap (an unlinked temporary file,
  read with `os.pread`: the kernel's page cache, not this process's RSS);
- on the heap, per sealed slot, a 32-bit fingerprint of each pair (from the UTM's and the event's
  hashes) sorted the way its file is: the top bits are implied by a table of bin offsets, the low
  16 bits kept (2 bytes a pair, plus 4 bytes a bin for one bin per ~16 pairs);
- the slot still taking pairs keeps a small dict of its newest pairs (exact) and sorted runs of
  (fingerprint, record number in its file), 8 bytes a pair, until the hour is over and it is sealed.

A lookup searches each slot's fingerprints; a fingerprint that matches is confirmed against the
exact record in the file (UTM, hash and arrival). So the answer is exact: a copy within the window
is dropped, a copy at or after it is taken, a new event is never dropped, up to a collision of two
64-bit hashes of event ids of one UTM within one window (about n^2 / 2^65 for n ids: 4 * 10^-7 for
a UTM that sends 4 million ids a day), as before. Fingerprints only decide how often a file is read:
a new event matches some fingerprint with a probability of about (pairs held) / 2^32 (2% with the
86.4 million pairs of a day at 1,000 events/s), and then costs one read of 20 bytes.

Whole slots are forgotten once their newest arrival is a window old (up to an hour after their
oldest pair's window ended: those are still answered exactly, by their arrival in the record).

The bound: at most `max_per_utm` pairs a UTM (counted per slot). A UTM that would pass it forgets
its oldest slot's pairs (counted in `evicted`; their heap room is given back when that slot is
rewritten, once a quarter of it is forgotten, or when it expires); if all its pairs are in the open
slot, its new pairs are taken and not remembered (also counted). A new event is never dropped for
want of room; only a copy of an id forgotten that way would be taken again.

The state log (`drain`/`encode_pairs`, read back by `load_block`) carries the exact records in a
binary block: a UTM table and three packed arrays, 20 bytes a pair; `load`/`load_key` still take
the pairs of the JSON shapes written before.
"""
from __future__ import annotations

import os
import struct
import tempfile
from array import array
from bisect import bisect_left
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import IO, Sequence

import numpy as np
import orjson
from clickhouse_cityhash.cityhash import CityHash64

SLOT_SECONDS = 3600.0
"""A slot holds the pairs that arrived within one hour (of epoch time)."""
RECENT_MAX = 4096
"""Pairs the open slot keeps in its dict before they go to its file and a sorted run."""
MAX_RUNS = 3
MAX_PER_UTM = 4_000_000
"""Default bound of pairs per UTM: 46 distinct ids a second for 24 h."""
PURGE_SHARE = 4
"""A sealed slot is rewritten without its forgotten pairs once they are a quarter of it."""

RECORD = np.dtype([("utm", "<u4"), ("hash", "<u8"), ("time", "<f8")])
RECORD_BYTES = RECORD.itemsize  # 20
_MIX = 0x9E3779B97F4A7C15
_MASK = (1 << 64) - 1
_MAGIC = b"\x00MD1"
"""A binary block of pairs; a JSON value (the older log shape) starts with `[`."""


def dedup_key(utm_id: str, event_id: str) -> str:
    """The pair as the state log wrote it before hashes (read back by `Deduper.load_key`)."""
    return f"{utm_id}\x1f{event_id}"


def id_hash(event_id: str) -> int:
    return CityHash64(event_id.encode("utf-8", "surrogatepass"))  # type: ignore[no-any-return]


def _fingerprints(salts: np.ndarray, hashes: np.ndarray) -> np.ndarray:
    """The 32-bit fingerprint of each (UTM salt, event hash), as `Deduper._fingerprint` makes one."""
    with np.errstate(over="ignore"):
        return ((salts ^ hashes) * np.uint64(_MIX) >> np.uint64(32)).astype(np.uint32)


def encode_pairs(pairs: Sequence[tuple[str, int, float]]) -> bytes:
    """The pairs `drain` gave as one binary block for the state log: a UTM table, then per pair the
    UTM's number in it (u32), the event id's hash (u64) and the arrival (f64), little-endian."""
    numbers: dict[str, int] = {}
    local = np.fromiter((numbers.setdefault(p[0], len(numbers)) for p in pairs), dtype="<u4", count=len(pairs))
    hashes = np.fromiter((p[1] for p in pairs), dtype="<u8", count=len(pairs))
    times = np.fromiter((p[2] for p in pairs), dtype="<f8", count=len(pairs))
    names = [u.encode("utf-8", "surrogatepass") for u in numbers]
    return b"".join((_MAGIC, struct.pack("<II", len(names), len(pairs)),
                     np.fromiter(map(len, names), dtype="<u2", count=len(names)).tobytes(), *names,
                     local.tobytes(), hashes.tobytes(), times.tobytes()))


def decode_pairs(block: bytes) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """(UTM ids, each pair's UTM number in them, hashes, arrivals) of a block `encode_pairs` made."""
    names, local, hashes, times = _decode(block)
    return [name.decode("utf-8", "surrogatepass") for name in names], local, hashes, times


def _decode(block: bytes) -> tuple[list[bytes], np.ndarray, np.ndarray, np.ndarray]:
    """`decode_pairs` with the UTM ids left as UTF-8 bytes."""
    if not block.startswith(_MAGIC):
        raise ValueError("not a block of dedup pairs")
    utms, count = struct.unpack_from("<II", block, 4)
    at = 12
    lengths = np.frombuffer(block, dtype="<u2", count=utms, offset=at)
    at += 2 * utms
    ends = (np.cumsum(lengths, dtype=np.int64) + at).tolist()
    names = [block[start:end] for start, end in zip([at] + ends[:-1], ends)]
    at = ends[-1] if ends else at
    local = np.frombuffer(block, dtype="<u4", count=count, offset=at)
    hashes = np.frombuffer(block, dtype="<u8", count=count, offset=at + 4 * count)
    times = np.frombuffer(block, dtype="<f8", count=count, offset=at + 12 * count)
    return names, local, hashes, times


def is_block(value: bytes) -> bool:
    return value.startswith(_MAGIC)


def pair_bytes(pair: tuple[str, int, float]) -> int:
    """The most a pair adds to a block (its UTM's name counted in full)."""
    return 16 + 2 + 4 * len(pair[0])


@dataclass(slots=True)
class _Run:
    """Pairs of the open slot: fingerprints sorted ascending, each with its record's number in the file."""

    prints: array
    places: array

    @classmethod
    def of(cls, prints: np.ndarray, places: np.ndarray) -> "_Run":
        order = np.argsort(prints, kind="stable")
        return cls(array("I", prints[order].astype(np.uint32).tobytes()),
                   array("I", places[order].astype(np.uint32).tobytes()))

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        return np.frombuffer(self.prints, dtype=np.uint32), np.frombuffer(self.places, dtype=np.uint32)


@dataclass(slots=True)
class _Slot:
    """The pairs that arrived within one hour: their exact records in a file, fingerprints on the heap."""

    seq: int
    hour: int
    file: IO[bytes]
    size: int = 0  # records in the file
    newest: float = float("-inf")
    counts: array = field(default_factory=lambda: array("I"))  # pairs per UTM number
    dead: int = 0  # pairs of UTMs that forgot this slot (evicted), still in it
    # open: runs; sealed: bins and low 16 bits, in the file's order
    runs: list[_Run] | None = field(default_factory=list)
    bins: array | None = None
    low: array | None = None
    shift: int = 32

    @property
    def fd(self) -> int:
        return self.file.fileno()

    def append(self, records: np.ndarray) -> int:
        """Write records at the end of the file; returns the number of the first."""
        first = self.size
        os.pwrite(self.fd, records.tobytes(), first * RECORD_BYTES)
        self.size += len(records)
        if len(records):
            self.newest = max(self.newest, float(records["time"].max()))
        return first

    def records(self) -> np.ndarray:
        data = os.pread(self.fd, self.size * RECORD_BYTES, 0)
        return np.frombuffer(data, dtype=RECORD, count=self.size)

    def record(self, place: int) -> np.void:
        return np.frombuffer(os.pread(self.fd, RECORD_BYTES, place * RECORD_BYTES), dtype=RECORD)[0]

    def count(self, utm: int, by: int = 1) -> None:
        counts = self.counts
        if utm >= len(counts):
            counts.frombytes(bytes(4 * (utm + 1 - len(counts))))
        counts[utm] += by

    def places_of(self, fingerprint: int) -> list[int]:
        """Record numbers whose fingerprint matches."""
        places: list[int] = []
        if self.runs is not None:
            for run in self.runs:
                prints = run.prints
                i = bisect_left(prints, fingerprint)
                while i < len(prints) and prints[i] == fingerprint:
                    places.append(run.places[i])
                    i += 1
            return places
        assert self.bins is not None and self.low is not None
        b = fingerprint >> self.shift
        low = fingerprint & 0xFFFF
        end = self.bins[b + 1]
        i = bisect_left(self.low, low, self.bins[b], end)
        while i < end and self.low[i] == low:
            places.append(i)
            i += 1
        return places

    def heap_bytes(self) -> int:
        held = self.counts.itemsize * len(self.counts)
        if self.runs is not None:
            return held + sum(8 * len(r.prints) for r in self.runs)
        assert self.bins is not None and self.low is not None
        return held + 4 * len(self.bins) + 2 * len(self.low)


def _bin_bits(count: int) -> int:
    """About 16 pairs a bin, 2^4 to 2^16 bins."""
    return max(4, min(16, count.bit_length() - 4))


class Deduper:
    """Remembers each pair for `window` after the arrival of the copy that was taken.

    Newly remembered pairs are kept for `drain` (the driver saves them on the state log, as
    `encode_pairs` blocks); `load_block` (or `load`/`load_key`, pair by pair) gives them back after a
    restart, then `rebuild_index` seals them in. `directory`: where the slot files go (default: the
    temporary directory; put it on a disk, not a tmpfs, for the off-heap part to stay off memory).
    """

    def __init__(self, window: timedelta, *, max_per_utm: int = MAX_PER_UTM, directory: str | None = None) -> None:
        if window <= timedelta(0):
            raise ValueError("dedup window must be positive")
        if max_per_utm < 1:
            raise ValueError("max_per_utm must be positive")
        self.window = window.total_seconds()
        self.max_per_utm = max_per_utm
        self.directory = directory
        self.evicted = 0
        """Pairs forgotten before their window ended because their UTM reached the bound."""
        self._numbers: dict[str, int] = {}
        self._names: list[str] = []
        self._salts = array("Q")
        self._totals = array("q")  # live pairs per UTM number
        self._floors = array("q")  # a UTM forgot its pairs of slots up to this seq
        self._sealed: list[_Slot] = []  # oldest first
        self._index: list[tuple[int, int, array, array, _Slot]] = []  # the sealed slots' lookup, newest first
        self._open: _Slot | None = None
        self._loading: dict[int, _Slot] = {}  # hour -> slot being restored
        self._by_bytes: dict[bytes, int] = {}  # UTM numbers by UTF-8 id, while restoring
        self._recent: dict[int, float] = {}  # (UTM number << 64 | hash) -> arrival, in the open slot
        self._seq = 0
        self._fresh: list[tuple[str, int, float]] = []
        self._older: list[tuple[str, int, float]] = []  # pairs of the JSON log shapes, loaded in blocks

    # --- UTMs and slots -----------------------------------------------------------------------

    def _number(self, utm_id: str) -> int:
        number = self._numbers.get(utm_id)
        if number is None:
            number = self._numbers[utm_id] = len(self._names)
            self._names.append(utm_id)
            self._salts.append(CityHash64(utm_id.encode("utf-8", "surrogatepass")))
            self._totals.append(0)
            self._floors.append(-1)
        return number

    def _slot(self, hour: int) -> _Slot:
        self._seq += 1
        return _Slot(self._seq, hour, tempfile.TemporaryFile(dir=self.directory))

    def _fingerprint(self, number: int, hashed: int) -> int:
        return (((self._salts[number] ^ hashed) * _MIX) & _MASK) >> 32

    # --- answers ------------------------------------------------------------------------------

    def _seen(self, number: int, hashed: int) -> float | None:
        """The latest arrival of the pair among the slots its UTM has not forgotten."""
        latest = self._recent.get(number << 64 | hashed)
        if latest is not None:
            return latest
        fingerprint = self._fingerprint(number, hashed)
        floor = self._floors[number]
        if self._open is not None and self._open.runs:
            latest = self._confirm(self._open, self._open.places_of(fingerprint), number, hashed)
            if latest is not None:
                return latest
        low = fingerprint & 0xFFFF
        for seq, shift, bins, lows, slot in self._index:  # newest first; inline: a miss looks in every slot
            if seq <= floor:
                break
            b = fingerprint >> shift
            end = bins[b + 1]
            i = bisect_left(lows, low, bins[b], end)
            if i < end and lows[i] == low:
                latest = self._confirm(slot, slot.places_of(fingerprint), number, hashed)
                if latest is not None:
                    return latest
        return None

    @staticmethod
    def _confirm(slot: _Slot, places: list[int], number: int, hashed: int) -> float | None:
        """The latest arrival among the slot's records at `places` that are the pair itself."""
        latest = None
        for place in places:
            record = slot.record(place)
            if int(record["utm"]) == number and int(record["hash"]) == hashed:
                seen = float(record["time"])
                latest = seen if latest is None else max(latest, seen)
        return latest

    def _reindex(self) -> None:
        self._sealed.sort(key=lambda s: s.seq)
        self._index = [(s.seq, s.shift, s.bins, s.low, s) for s in reversed(self._sealed)]

    def is_duplicate(self, utm_id: str, event_id: str, now: datetime) -> bool:
        hashed = id_hash(event_id)
        moment = now.timestamp()
        number = self._number(utm_id)
        seen = self._seen(number, hashed)
        if seen is not None and moment - seen < self.window:
            return True
        self._remember(number, hashed, moment)
        return False

    def remembers(self, utm_id: str, event_id: str, now: datetime) -> bool:
        """Would a copy be dropped at `now` (without remembering anything)."""
        number = self._numbers.get(utm_id)
        seen = self._seen(number, id_hash(event_id)) if number is not None else None
        return seen is not None and now.timestamp() - seen < self.window

    def _remember(self, number: int, hashed: int, moment: float) -> None:
        slot = self._open
        if slot is None:  # sealed by `expire` once its hour is over
            slot = self._open = self._slot(int(moment // SLOT_SECONDS))
        if self._totals[number] >= self.max_per_utm and not self._forget_oldest(number):
            self.evicted += 1
            return
        self._recent[number << 64 | hashed] = moment
        slot.count(number)
        self._totals[number] += 1
        self._fresh.append((self._names[number], hashed, moment))
        if len(self._recent) >= RECENT_MAX:
            self._flush()

    def _forget_oldest(self, number: int) -> bool:
        """The UTM forgets its oldest sealed slot that still counts pairs of it; False if none."""
        for slot in self._sealed:
            if slot.seq > self._floors[number] and number < len(slot.counts) and slot.counts[number]:
                forgotten = slot.counts[number]
                slot.counts[number] = 0
                slot.dead += forgotten
                self._floors[number] = slot.seq
                self._totals[number] -= forgotten
                self.evicted += forgotten
                return True
        return False

    def drain(self) -> list[tuple[str, int, float]]:
        """The pairs remembered since the last drain: (utm_id, hash, arrival epoch seconds)."""
        fresh, self._fresh = self._fresh, []
        return fresh

    # --- the open slot ------------------------------------------------------------------------

    def _flush(self) -> None:
        """The open slot's dict to its file and a sorted run; runs merged so that each is much larger
        than the next (a miss looks in every run)."""
        slot = self._open
        if slot is None or not self._recent:
            return
        keys = np.fromiter(self._recent.keys(), dtype=object, count=len(self._recent))
        records = np.empty(len(keys), dtype=RECORD)
        records["utm"] = (keys >> 64).astype(np.uint32)
        records["hash"] = (keys & _MASK).astype(np.uint64)
        records["time"] = np.fromiter(self._recent.values(), dtype=np.float64, count=len(keys))
        self._recent = {}
        first = slot.append(records)
        prints = _fingerprints(np.frombuffer(self._salts, dtype=np.uint64)[records["utm"]], records["hash"])
        assert slot.runs is not None
        slot.runs.append(_Run.of(prints, np.arange(first, first + len(records), dtype=np.uint32)))
        runs = slot.runs
        while len(runs) > 1 and (len(runs) > MAX_RUNS or len(runs[-2].prints) <= 8 * len(runs[-1].prints)):
            newer = runs.pop()
            older_p, older_i = runs[-1].arrays()
            newer_p, newer_i = newer.arrays()
            runs[-1] = _Run.of(np.concatenate((older_p, newer_p)), np.concatenate((older_i, newer_i)))

    def _seal_open(self) -> None:
        slot = self._open
        if slot is None:
            return
        self._flush()
        self._open = None
        self._seal(slot)

    def _seal(self, slot: _Slot) -> None:
        """Rewrite the slot's file in fingerprint order, without forgotten pairs, and keep only the
        fingerprints' bins and low bits on the heap."""
        records = slot.records()
        if len(records):
            utms = records["utm"]
            if slot.dead:
                live = np.frombuffer(self._floors, dtype=np.int64)[utms] < slot.seq
                records = records[live]
                utms = records["utm"]
            prints = _fingerprints(np.frombuffer(self._salts, dtype=np.uint64)[utms], records["hash"])
            del utms
        else:
            prints = np.empty(0, dtype=np.uint32)
        bits = _bin_bits(len(records))
        shift = 32 - bits
        counts = np.bincount(records["utm"], minlength=len(self._names)).astype(np.uint32)
        # by (bin, low 16 bits), in 32 bits (the fingerprint itself at 16 bin bits); one copy of the
        # hour's records at a time (a day's restore seals 24 of them one after the other)
        order = np.argsort(((prints >> np.uint32(shift)) << np.uint32(16)) | (prints & np.uint32(0xFFFF)))
        prints = prints[order]
        file = tempfile.TemporaryFile(dir=self.directory)
        whole = records.view("V20")
        for start in range(0, len(order), 1 << 18):  # written in order a piece at a time
            os.pwrite(file.fileno(), whole[order[start:start + (1 << 18)]].view(np.uint8), start * RECORD_BYTES)
        del order, whole
        slot.file.close()
        slot.file = file
        slot.size = len(records)
        del records
        slot.dead = 0
        slot.runs = None
        slot.shift = shift
        bins = np.searchsorted(prints >> np.uint32(shift), np.arange((1 << bits) + 1, dtype=np.uint32))
        slot.bins = array("I", bins.astype(np.uint32).tobytes())
        slot.low = array("H", (prints & np.uint32(0xFFFF)).astype(np.uint16).tobytes())
        slot.counts = array("I", counts.tobytes())
        self._sealed.append(slot)
        self._reindex()

    # --- restore ------------------------------------------------------------------------------

    def load_block(self, utm_ids: Sequence[str], local: np.ndarray, hashes: np.ndarray, times: np.ndarray,
                   horizon: float = float("-inf")) -> int:
        """Pairs saved by `drain` (as `decode_pairs` gives a block): into the files of their hours,
        in one go; those at or before `horizon` are skipped. Returns how many were taken."""
        numbers = np.fromiter((self._number(u) for u in utm_ids), dtype=np.uint32, count=len(utm_ids))
        return self._load_numbered(numbers, local, hashes, times, horizon)

    def _load_numbered(self, numbers: np.ndarray, local: np.ndarray, hashes: np.ndarray, times: np.ndarray,
                       horizon: float) -> int:
        keep = times > horizon
        if not keep.all():
            local, hashes, times = local[keep], hashes[keep], times[keep]
        if not len(times):
            return 0
        records = np.empty(len(times), dtype=RECORD)
        records["utm"] = numbers[local]
        records["hash"] = hashes
        records["time"] = times
        hours = (times // SLOT_SECONDS).astype(np.int64)
        first, last = int(hours.min()), int(hours.max())
        for hour in range(first, last + 1) if last - first < 64 else np.unique(hours).tolist():
            chosen = records if first == last else records[hours == hour]
            if not len(chosen):
                continue
            slot = self._loading.get(hour)
            if slot is None:
                slot = self._loading[hour] = self._slot(hour)
            slot.append(chosen)
        return len(records)

    def load_value(self, value: bytes, horizon: float = float("-inf")) -> None:
        """One value of the state log as read: a block of pairs, or a JSON list of pairs of the
        shapes written before blocks (`[utm_id, hash, arrival]` or `[utm_id \x1f event_id, arrival]`)."""
        if is_block(value):
            names, local, hashes, times = _decode(value)
            numbers = list(map(self._by_bytes.get, names))  # in C: a block names thousands of UTMs
            if None in numbers:
                for i in [i for i, number in enumerate(numbers) if number is None]:
                    numbers[i] = self._by_bytes[names[i]] = self._number(names[i].decode("utf-8", "surrogatepass"))
            self._load_numbered(np.array(numbers, dtype=np.uint32), local, hashes, times, horizon)
            return
        for pair in orjson.loads(value):
            if pair[-1] <= horizon:
                continue
            if len(pair) == 3:
                self.load(pair[0], int(pair[1]), float(pair[2]))
            else:
                self.load_key(pair[0], float(pair[1]))

    def load(self, utm_id: str, hashed: int, seen: float) -> None:
        """A pair saved by `drain`, one at a time (the JSON shape the log carried before blocks)."""
        self._older.append((utm_id, hashed, seen))
        if len(self._older) >= 100_000:
            self._load_older()

    def _load_older(self) -> None:
        if self._older:
            older, self._older = self._older, []
            self.load_block(*decode_pairs(encode_pairs(older)))

    def load_key(self, key: str, seen: float) -> None:
        """A pair as the state log wrote it before hashes (`dedup_key`)."""
        utm_id, _, event_id = key.partition("\x1f")
        self.load(utm_id, id_hash(event_id), seen)

    def rebuild_index(self, now: datetime | None = None) -> None:
        """Seal the restored slots (and forget those past the window at `now`, when given), then
        hold every UTM to its bound."""
        self._load_older()
        self._by_bytes = {}
        for hour in sorted(self._loading):
            slot = self._loading[hour]
            self._seq += 1
            slot.seq = self._seq  # oldest first, as the open slots went
            self._seal(slot)
            totals = np.frombuffer(self._totals, dtype=np.int64)
            counts = np.frombuffer(slot.counts, dtype=np.uint32)
            totals[:len(counts)] += counts
        self._loading.clear()
        if now is not None:
            self.expire(now)
        over = np.flatnonzero(np.frombuffer(self._totals, dtype=np.int64) > self.max_per_utm)
        for number in over.tolist():
            while self._totals[number] > self.max_per_utm and self._forget_oldest(number):
                pass

    # --- upkeep -------------------------------------------------------------------------------

    def expire(self, now: datetime) -> int:
        """Seal a past hour's open slot, forget slots whose newest pair is a window old, rewrite
        those a quarter forgotten; returns how many pairs went."""
        moment = now.timestamp()
        if self._open is not None and int(moment // SLOT_SECONDS) > self._open.hour:
            self._seal_open()
        dropped = 0
        kept = []
        totals = np.frombuffer(self._totals, dtype=np.int64)
        for slot in self._sealed:
            if moment - slot.newest >= self.window:
                counts = np.frombuffer(slot.counts, dtype=np.uint32)
                totals[:len(counts)] -= counts
                dropped += slot.size - slot.dead
                slot.file.close()
            else:
                kept.append(slot)
        self._sealed = kept
        self._reindex()
        for slot in list(self._sealed):
            if slot.dead and slot.dead * PURGE_SHARE >= slot.size:
                self._sealed.remove(slot)
                self._seal(slot)
        return dropped

    def nbytes(self) -> int:
        """Heap bytes of the remembered pairs (fingerprints, bins, runs, per-UTM counts; the dict of
        the newest pairs not counted)."""
        slots = self._sealed + ([self._open] if self._open is not None else [])
        per_utm = 8 * 3 * len(self._names)
        return per_utm + sum(slot.heap_bytes() for slot in slots)

    def file_bytes(self) -> int:
        """Bytes of the exact records in the slot files (off the heap)."""
        slots = self._sealed + ([self._open] if self._open is not None else []) + list(self._loading.values())
        return RECORD_BYTES * sum(slot.size for slot in slots)

    def __len__(self) -> int:
        """Pairs remembered (of slots not yet forgotten, some possibly past their window)."""
        return int(np.frombuffer(self._totals, dtype=np.int64).sum()) if self._names else 0
