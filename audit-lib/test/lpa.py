#!/usr/bin/env python3
"""Reader for loadprobe audit segment files (a-<pid>-<n>.lpa), wire format version 1.

Mirrors Sources/CAudit/include/loadprobe_wire.h. Used by audit-lib/selftest.sh; the real
reader is the Swift tracer. As a script: `lpa.py FILE...` prints headers and records.
"""
import os
import struct
import sys

MAGIC = b"LPAUDIT1"
VERSION = 1
HEADER_SIZE = 128
SEGMENT_BYTES = 64 * 1024 * 1024
# magic, version, header_size, reserved, capacity, pid, ppid, segment, clock_source,
# image_start_ns, image_id, forked, la_version, parent_image_id, pad
HEADER = struct.Struct("<8sIIQQiiIIQQIIQ48s")
# kind, flag, size, time_ns, pid, lmid, name_len, seq
RECORD = struct.Struct("<HHIQiiII")
assert HEADER.size == HEADER_SIZE and RECORD.size == 32

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


def read_segment(path, strict=True):
    """Reads one segment. Records are those before the first incomplete one."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < HEADER_SIZE:
        raise FormatError("%s: %d bytes, shorter than the header" % (path, len(data)))
    (magic, version, header_size, reserved, capacity, pid, ppid, segment, clock_source,
     image_start_ns, image_id, forked, la_version, parent_image_id, pad) = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise FormatError("%s: bad magic %r" % (path, magic))
    if version != VERSION:
        raise FormatError("%s: unknown version %d" % (path, version))
    if header_size != HEADER_SIZE:
        raise FormatError("%s: header_size %d" % (path, header_size))
    header = dict(reserved=reserved, capacity=capacity, pid=pid, ppid=ppid, segment=segment,
                  clock_source=clock_source, image_start_ns=image_start_ns, image_id=image_id,
                  forked=forked, la_version=la_version, parent_image_id=parent_image_id)
    problems = []
    if any(pad):
        problems.append("header padding not zero")
    records = []
    limit = min(len(data), header_size + reserved, header_size + capacity)
    off = header_size
    while off + RECORD.size <= limit:
        kind, flag, size, time_ns, rpid, lmid, name_len, seq = RECORD.unpack_from(data, off)
        if kind == 0 or size == 0 or off + size > limit:
            break
        want = (RECORD.size + name_len + 1 + 7) & ~7
        body = data[off + RECORD.size: off + size]
        if size != want:
            problems.append("record at %d: size %d, expected %d for name_len %d" % (off, size, want, name_len))
        elif body[name_len] != 0:
            problems.append("record at %d: name not NUL-terminated" % off)
        elif any(body[name_len + 1:]):
            problems.append("record at %d: padding not zero" % off)
        if kind not in KIND_NAMES:
            problems.append("record at %d: unknown kind %d" % (off, kind))
        name = body[:name_len].decode("utf-8", "surrogateescape")
        records.append(dict(kind=kind, kind_name=KIND_NAMES.get(kind, str(kind)), flag=flag,
                            size=size, time_ns=time_ns, pid=rpid, lmid=lmid, name=name,
                            seq=seq, offset=off))
        off += size
    return Segment(path, header, records, problems, len(data))


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
              "reserved %d capacity %d" % (p, seg.pid, seg.ppid, seg.segment, seg.image_id, seg.forked,
                                           seg.parent_image_id, seg.clock_source, seg.la_version,
                                           seg.reserved, seg.capacity))
        for r in seg.records:
            print(describe(r))
        for pr in seg.problems:
            print("PROBLEM: " + pr)
            rc = 1
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv))
