// Trace codec benchmark: reads a recorded trace, then times decoding it and
// encoding its events again with the real writer, and sizes two alternative
// encodings of the same events (a fixed-width binary record with the path
// inline, and JSON lines) to justify the format's choice.
//
//   swift run -c release trace-codec-bench TRACE.lpt
import Foundation
import TraceFormat

func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

let args = CommandLine.arguments
guard args.count == 2 else {
    FileHandle.standardError.write("usage: trace-codec-bench TRACE.lpt\n".data(using: .utf8)!)
    exit(64)
}
let file = args[1]
let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: file)))

var best = Double.infinity
var trace: Trace! = nil
for _ in 0..<3 {
    let t0 = now()
    trace = try TraceReader.decode(bytes, file: file)
    best = min(best, now() - t0)
}
let n = trace.events.count
let decodeSeconds = best

// Encode again through the real writer (what the tracer pays per event).
let out = NSTemporaryDirectory() + "trace-codec-bench-\(getpid()).lpt"
var encodeBest = Double.infinity
var encodedBytes = 0
for _ in 0..<3 {
    let fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    let t0 = now()
    let w = try TraceWriter(fd: fd)
    for e in trace.events {
        switch e {
        case .syscall(var s):
            s.path = w.internPath(trace.path(s.path))
            if let r = s.resolved { s.resolved = w.internPath(trace.path(r)) }
            try w.write(s)
        case .audit(var a):
            a.name = w.internPath(trace.path(a.name))
            try w.write(a)
        case .process(let p): try w.write(p)
        case .exec(var x):
            x.path = w.internPath(trace.path(x.path))
            x.argv = x.argv.map { w.intern(trace.string($0)) }
            try w.write(x)
        case .exit(let x): try w.write(x)
        case .note(let x): try w.note(pid: x.pid, trace.string(x.text))
        case .caller(let x): try w.write(x)
        }
    }
    try w.finish(endNs: trace.endNs ?? 0)
    encodeBest = min(encodeBest, now() - t0)
    encodedBytes = w.bytesWritten
}
unlink(out)

// Alternatives, sized on the same events.
var fixedWidth = 0   // 56-byte record (pid, tid, call, flags, result, dirfd, t0, t1) + path bytes + NUL
var jsonLines = 0
for e in trace.events {
    switch e {
    case .syscall(let s):
        let p = trace.path(s.path)
        fixedWidth += 56 + p.utf8.count + 1
        jsonLines += "{\"pid\":\(s.pid),\"tid\":\(s.tid),\"call\":\"\(s.call.name)\",\"path\":\"\(p)\",\"flags\":\(s.flags),\"result\":\(s.result),\"t0\":\(s.entryNs),\"t1\":\(s.exitNs)}\n".utf8.count
    case .audit(let a):
        let p = trace.path(a.name)
        fixedWidth += 32 + p.utf8.count + 1
        jsonLines += "{\"pid\":\(a.pid),\"audit\":\(a.kind.rawValue),\"flag\":\(a.flag),\"name\":\"\(p)\",\"t\":\(a.timeNs)}\n".utf8.count
    default:
        fixedWidth += 32
        jsonLines += 64
    }
}

func mb(_ b: Int) -> String { String(format: "%.1f MB", Double(b) / 1e6) }
print("trace: \(file)")
print("events: \(n)")
print(String(format: "loadprobe v1 (varint + interned dir/base): %@, %.1f bytes/event", mb(bytes.count), Double(bytes.count) / Double(n)))
print(String(format: "fixed-width binary, path inline:         %@, %.1f bytes/event", mb(fixedWidth), Double(fixedWidth) / Double(n)))
print(String(format: "JSON lines:                              %@, %.1f bytes/event", mb(jsonLines), Double(jsonLines) / Double(n)))
print(String(format: "decode: %.3f s, %.2f M events/s, %.0f MB/s", decodeSeconds, Double(n) / decodeSeconds / 1e6, Double(bytes.count) / decodeSeconds / 1e6))
print(String(format: "encode: %.3f s, %.2f M events/s (%@ written; includes making path strings back from the table)", encodeBest, Double(n) / encodeBest / 1e6, mb(encodedBytes)))
