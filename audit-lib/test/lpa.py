#!/usr/bin/env python3
"""Reader for loadprobe audit segment files (a-<pid>-<n>.lpa), wire format version 3.

Mirrors Sources/CAudit/include/loadprobe_wire.h. Used by audit-lib/selftest.sh; the real
reader is the Swift tracer. As a script: `lpa.py FILE...` prints headers and records.
"""
import os
import struct
import sys

MAGIC = b"LPAUDIT1"
VERSION = 3
HEADER_SIZE = 128
SEGMENT_BYTES = 64 * 1024 * 1024
# magic, version, header_size, used, capacity, pid, ppid, segment, clock_source,
# image_start_ns, image_id, forked, la_version, parent_image_id, first_seq, dropped,
# time_base_ns, pad
HEADER = struct.Struct("<8sIIQQiiIIQQIIQIIQ32s")
assert HEADER.size == HEADER_SIZE
FLAG_ESCAPE = 15

IMAGE, OBJSEARCH, OBJOPEN, ACTIVITY, PREINIT, OBJCLOSE = 1, 2, 3, 4, 5, 6
KIND_NAMES = {IMAGE: "IMAGE", OBJSEARCH: "OBJSEARCH", OBJOPEN: "OBJOPEN",
              ACTIVITY: "ACTIVITY", PREINIT: "PREINIT", OBJCLOSE: "OBJCLOSE"}
LA_SER = {0x01: "ORIG", 0x02: "LIBPATH", 0x04: "RUNPATH", 0x08: "CONFIG",
          0x40: "DEFAULT", 0x80: "SECURE"}
LA_ACT = {0: "CONSISTENT", 1: "ADD", 2: "DELETE"}


class FormatError(Exception):
    pass


class Segment:
    def __init__(self, path, header, records, problems, file_size):
        self.path = path
        self.file_size = file_size
        self.problems = problems  # list of strings: anything a strict reader would flag
        self.records = records
        for k, v in header.items():
            setattr(self, k, v)


class _Cut(Exception):
    pass


def _var(data, off, limit):
    v = shift = 0
    while True:
        if off >= limit or shift > 63:
            raise _Cut()
        b = data[off]
        off += 1
        v |= (b & 0x7F) << shift
        if b < 0x80:
            return v, off
        shift += 7


def read_segment(path, strict=True):
    """Reads one segment: its header and the records in [header_size, header_size + used)."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < HEADER_SIZE:
        raise FormatError("%s: %d bytes, shorter than the header" % (path, len(data)))
    (magic, version, header_size, used, capacity, pid, ppid, segment, clock_source,
     image_start_ns, image_id, forked, la_version, parent_image_id, first_seq, dropped,
     time_base_ns, pad) = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise FormatError("%s: bad magic %r" % (path, magic))
    if version != VERSION:
        raise FormatError("%s: unknown version %d" % (path, version))
    if header_size != HEADER_SIZE:
        raise FormatError("%s: header_size %d" % (path, header_size))
    header = dict(used=used, capacity=capacity, pid=pid, ppid=ppid, segment=segment,
                  clock_source=clock_source, image_start_ns=image_start_ns, image_id=image_id,
                  forked=forked, la_version=la_version, parent_image_id=parent_image_id,
                  first_seq=first_seq, dropped=dropped, time_base_ns=time_base_ns)
    problems = []
    if any(pad):
        problems.append("header padding not zero")
    if used > capacity:
        problems.append("used %d > capacity %d" % (used, capacity))
    records = []
    limit = min(len(data), header_size + used, header_size + capacity)
    prev = b""  # the previous record's path: the next one is coded against it
    stats = dict(new_bytes=0, path_bytes=0)
    t = time_base_ns
    off = header_size

    def coded_path(off):
        nonlocal prev
        keep, off = _var(data, off, limit)
        tail, off = _var(data, off, limit)
        n, off = _var(data, off, limit)
        if off + n > limit:
            raise _Cut()
        if keep + tail > len(prev):
            problems.append("record at %d: keeps %d + %d bytes of a %d-byte previous path" % (off, keep, tail, len(prev)))
        prev = prev[:keep] + data[off:off + n] + (prev[len(prev) - tail:] if tail else b"")
        new = prev
        stats["new_bytes"] += n
        stats["path_bytes"] += len(new)
        return new.decode("utf-8", "surrogateescape"), off + n

    while off < limit:
        start = off
        try:
            b = data[off]
            off += 1
            kind, flag = b & 0x0F, b >> 4
            if flag == FLAG_ESCAPE:
                flag, off = _var(data, off, limit)
            dt, off = _var(data, off, limit)
            lmid = 0
            if kind == OBJOPEN:
                z, off = _var(data, off, limit)
                lmid = (z >> 1) ^ -(z & 1)
            name = ""
            if kind in (IMAGE, OBJSEARCH, OBJOPEN, OBJCLOSE):
                name, off = coded_path(off)
        except _Cut:
            problems.append("record at %d runs past used" % start)
            break
        if kind not in KIND_NAMES:
            problems.append("record at %d: unknown kind %d" % (start, kind))
            break
        t += dt
        records.append(dict(kind=kind, kind_name=KIND_NAMES[kind], flag=flag, size=off - start,
                            time_ns=t, pid=pid, lmid=lmid, name=name,
                            seq=first_seq + len(records), offset=start))
    seg = Segment(path, header, records, problems, len(data))
    seg.new_bytes, seg.path_bytes = stats["new_bytes"], stats["path_bytes"]
    # bytes past `used` are zero unless a record was being written when the process ended
    seg.cut = any(data[header_size + used: header_size + used + 64]) if header_size + used < len(data) else False
    return seg


def read_dir(d):
    """All segments in directory d, keyed by file name."""
    out = {}
    for fn in sorted(os.listdir(d)):
        if fn.endswith(".lpa"):
            out[fn] = read_segment(os.path.join(d, fn))
    return out


def images(d):
    """Groups the segments of directory d by image: {image_id: [segments by number]}."""
    by_image = {}
    for seg in read_dir(d).values():
        by_image.setdefault(seg.image_id, []).append(seg)
    for segs in by_image.values():
        segs.sort(key=lambda s: s.segment)
    return by_image


def describe(r):
    if r["kind"] == OBJSEARCH:
        extra = "|".join(v for k, v in LA_SER.items() if r["flag"] & k) or hex(r["flag"])
    elif r["kind"] == ACTIVITY:
        extra = LA_ACT.get(r["flag"], hex(r["flag"]))
    elif r["kind"] == OBJOPEN:
        extra = "lmid=%d" % r["lmid"]
    else:
        extra = ""
    return "%6d %-9s %-10s pid=%d t=%d %s" % (r["seq"], r["kind_name"], extra, r["pid"], r["time_ns"], r["name"])


def main(argv):
    rc = 0
    for p in argv[1:]:
        try:
            seg = read_segment(p)
        except (OSError, FormatError) as e:
            print("lpa: %s" % e, file=sys.stderr)
            rc = 1
            continue
        print("%s: pid %d ppid %d segment %d image %#x forked %d parent_image %#x clock %d la_version %d "
              "used %d capacity %d first_seq %d dropped %d; %d records, %.1f bytes/record, "
              "path bytes: %d written for %d"
              % (p, seg.pid, seg.ppid, seg.segment, seg.image_id, seg.forked, seg.parent_image_id,
                 seg.clock_source, seg.la_version, seg.used, seg.capacity, seg.first_seq, seg.dropped,
                 len(seg.records), seg.used / max(1, len(seg.records)), seg.new_bytes, seg.path_bytes))
        for r in seg.records:
            print(describe(r))
        for pr in seg.problems:
            print("PROBLEM: " + pr)
            rc = 1
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv))
