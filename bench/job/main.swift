// job-bench-gen: makes a job directory of traces for the job-report benchmark
// (bench/job/run): ranks 0..<R, R = --summaries + --full, the full ranks
// spread evenly (rank 0 among them), each a re-encoding of FULL with its own
// rank, host and start; the others summary traces made from SUMMARY the same
// way, with exec → main varied a little (deterministic) so the job has a spread.
//
//   job-bench-gen SUMMARY.lpt FULL.lpt OUTDIR --summaries 10000 --full 64 [--per-node 32]
import Foundation
import TraceFormat

let args = CommandLine.arguments
func value(_ name: String, _ fallback: Int) -> Int { args.firstIndex(of: name).flatMap { Int(args[$0 + 1]) } ?? fallback }
guard args.count >= 4 else {
    FileHandle.standardError.write(Data("usage: job-bench-gen SUMMARY.lpt FULL.lpt OUTDIR --summaries N --full M [--per-node K]\n".utf8))
    exit(64)
}
let summaries = value("--summaries", 0), fulls = value("--full", 1), perNode = max(1, value("--per-node", 32))
let summary = try TraceReader.read(file: args[1])
let full = try TraceReader.read(file: args[2])
let out = args[3]
try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
let ranks = summaries + fulls
let stride = max(1, ranks / max(1, fulls))
let fullRanks = Set((0..<fulls).map { $0 * stride })

/// Deterministic jitter in [0, 1): a rank's own.
func jitter(_ rank: Int, _ salt: UInt64) -> Double {
    var x = UInt64(rank) &* 0x9E37_79B9_7F4A_7C15 &+ salt
    x = (x ^ (x >> 30)) &* 0xBF58_476D_1CE4_E5B9
    x = (x ^ (x >> 27)) &* 0x94D0_49BB_1331_11EB
    return Double((x ^ (x >> 31)) >> 11) / Double(1 << 53)
}

/// The trace again with this rank's metadata; events and objects as they were.
func write(_ t: Trace, rank: Int, to path: String) throws {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    guard fd >= 0 else { throw NSError(domain: "open \(path)", code: Int(errno)) }
    let w = try TraceWriter(fd: fd)
    // The strings in the reader's order get the reader's ids, so events keep theirs.
    for (i, s) in t.strings.enumerated() where i > 0 {
        let id = w.intern(s)
        precondition(id == UInt32(i), "string ids differ: \(id) for \(i)")
    }
    let host = "node\(String(rank / perNode).leftPadded(4))"
    for (k, v) in t.meta {
        switch k {
        case MetaKey.rank.rawValue: try w.meta(k, String(rank))
        case MetaKey.localRank.rawValue: try w.meta(k, String(rank % perNode))
        case MetaKey.jobSize.rawValue: try w.meta(k, String(ranks))
        case MetaKey.host.rawValue: try w.meta(k, host)
        case MetaKey.startNs.rawValue:
            try w.meta(k, String((UInt64(v) ?? 0) + UInt64(rank % perNode) * 1_000_000))
        case MetaKey.summaryExecToMainNs.rawValue:
            // Most ranks within 20 % of the recorded time; one in 50 up to twice as slow.
            let base = Double(UInt64(v) ?? 0)
            let f = 0.9 + 0.2 * jitter(rank, 1) + (rank % 50 == 7 ? jitter(rank, 2) : 0)
            try w.meta(k, String(UInt64(base * f)))
        default: try w.meta(k, v)
        }
    }
    for e in t.events { try w.write(e) }
    for o in t.objects { try w.write(o) }
    try w.finish(endNs: t.endNs ?? 0)
    if let f = w.failure { throw f }
}

extension String {
    func leftPadded(_ n: Int) -> String { count >= n ? self : String(repeating: "0", count: n - count) + self }
}

var bytes = 0
for rank in 0..<ranks {
    let path = out + "/\(rank).lpt"
    try write(fullRanks.contains(rank) ? full : summary, rank: rank, to: path)
    var st = stat()
    if stat(path, &st) == 0 { bytes += Int(st.st_size) }
}
print("job-bench-gen: \(ranks) ranks (\(fullRanks.count) full, \(ranks - fullRanks.count) summary) in \(out), \(bytes) bytes")
