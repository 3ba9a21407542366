import Foundation
import Testing
import TestSupport

/// `loadprobe calibrate` against the bench's latency file system (latfs, FUSE):
/// its configured delay and its own operation counters are the independent truth.
@Suite(.serialized) struct CalibrationTests {
    static var repoRoot: String {
        var dir = URL(fileURLWithPath: productsDir)
        while dir.path != "/" && !FileManager.default.fileExists(atPath: dir.appendingPathComponent("Package.swift").path) {
            dir = dir.deletingLastPathComponent()
        }
        return dir.path
    }

    /// Builds latfs (make) if needed; its path.
    static func latfs() throws -> String {
        let bench = repoRoot + "/bench/pynamic-like"
        let r = try run(["make", "-s", "-C", bench])
        guard r.status == 0 else { throw TestFailure("make -C \(bench): \(r.stderrText)") }
        return bench + "/out/bin/latfs"
    }

    /// Unmounts latfs and waits for it: a busy mount (a file another task has
    /// not closed yet, on a loaded machine) is retried for 10 s, then detached
    /// lazily, and latfs is stopped if it has not ended 5 s later; the test
    /// never waits forever.
    static func unmount(_ mnt: String, _ fs: Process) {
        var tries = 0
        while mounted(mnt) && tries < 100 {
            if (try? run(["fusermount3", "-u", mnt]))?.status == 0 { break }
            usleep(100_000)
            tries += 1
        }
        if mounted(mnt) { _ = try? run(["fusermount3", "-u", "-z", mnt]) }
        var waited = 0
        while fs.isRunning && waited < 500 { usleep(10_000); waited += 1 }
        if fs.isRunning { fs.terminate() }
        fs.waitUntilExit()
    }

    static func mounted(_ mnt: String) -> Bool {
        guard let info = try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8) else { return false }
        return info.split(separator: "\n").contains { $0.split(separator: " ").count > 4 && $0.split(separator: " ")[4] == mnt }
    }

    @Test("fresh-name lookups are one server operation each, loads the operations of ld.so's, both take the file system's delay")
    func againstLatfs() throws {
        let dir = try scratch("calibrate")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let src = dir + "/src", mnt = dir + "/mnt", stats = dir + "/stats.json"
        try FileManager.default.createDirectory(atPath: mnt, withIntermediateDirectories: true)
        for i in 0..<5 { try write("data \(i)\n", to: src + "/lib\(i).so") }
        // A real library with 300 KB of initialised data: ld.so maps it and relocation touches it,
        // so latfs (which drops cached pages at open) serves it in several READs.
        try write("char big_table[300000] = { 1 };\nint big_value(void) { return big_table[4096]; }\n", to: dir + "/big.c")
        try gcc(["-shared", "-fPIC", "-o", src + "/libbig.so", dir + "/big.c"])
        try FileManager.default.createSymbolicLink(atPath: src + "/link.so", withDestinationPath: "lib0.so")
        try FileManager.default.createDirectory(atPath: src + "/sub", withIntermediateDirectories: true)

        let fs = Process()
        fs.executableURL = URL(fileURLWithPath: try Self.latfs())
        fs.arguments = ["-f", "--delay-us=2000", "--read-delay-us=2000", "--stats=\(stats)", src, mnt]
        fs.standardOutput = FileHandle.nullDevice
        fs.standardError = FileHandle.nullDevice
        try fs.run()
        var waited = 0
        while !Self.mounted(mnt) && waited < 1000 { usleep(10_000); waited += 10 }
        defer { Self.unmount(mnt, fs) }
        try #require(Self.mounted(mnt), "latfs did not mount \(mnt)")

        let r = try run([loadprobe, "calibrate", "--json", "--fs", "fuse", "--count", "40", "--concurrency", "2", mnt])
        try #require(r.status == 0, "calibrate failed: \(r.stderrText)")
        Self.unmount(mnt, fs)

        let out = try #require(try JSONSerialization.jsonObject(with: r.stdout) as? [String: Any])
        #expect(out["format"] as? String == "loadprobe-calibrate/1")
        #expect(out["filesystem"] as? String == "fuse.latfs")
        #expect(out["concurrency"] as? Int == 2)
        let miss = try #require(out["miss"] as? [String: Any])
        let hit = try #require(out["hit"] as? [String: Any])
        let alone = try #require(out["missAlone"] as? [String: Any])
        let open = try #require(out["open"] as? [String: Any])
        let load = try #require(out["load"] as? [String: Any])
        let readlink = try #require(out["readlink"] as? [String: Any])
        #expect(miss["calls"] as? Int == 40)
        #expect(alone["calls"] as? Int == 6)     // one before each load, to price the loads
        #expect(hit["calls"] as? Int == 1)        // the subdirectory (files are loaded, the link read)
        #expect(out["probeDirectories"] as? Int == 2)  // the two threads probed mnt and mnt/sub
        #expect(open["calls"] as? Int == 6)
        #expect(load["calls"] as? Int == 6)
        #expect(readlink["calls"] as? Int == 1)

        // latfs's own counters: every probe reached it exactly once, each load
        // with ld.so's operations: a LOOKUP, the OPEN, one READ, a FLUSH at close;
        // the library's mapped segments more READs (300 KB in FUSE's 128 KB reads).
        let counters = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: stats))) as? [String: Any])
        let ops = try #require(counters["ops"] as? [String: Any])
        #expect(ops["lookup_miss"] as? Int == 46)
        #expect(ops["readlink"] as? Int == 1)
        #expect(ops["open"] as? Int == 6)
        #expect((ops["read"] as? Int ?? 0) >= 5 + 3, "\(ops)")
        #expect(ops["flush"] as? Int == 6)

        // A load waits for its five delayed operations (LOOKUP, OPEN, READ and
        // the GETATTRs of the read and the fstat); the overhead is what is left
        // beyond them at the one-at-a-time latency and the local call cost.
        let loadMedian = try #require(load["medianSeconds"] as? Double)
        #expect(try #require(load["p10Seconds"] as? Double) >= 5 * 0.002)
        let aloneMedian = try #require(alone["medianSeconds"] as? Double)
        let overhead = try #require(out["openOverheadSeconds"] as? Double)
        #expect(abs(overhead - max(0, loadMedian - 5 * aloneMedian - 8e-6)) < 1e-9, "\(overhead) vs \(loadMedian), \(aloneMedian)")

        // Each miss waited for latfs's 2 ms delay (and not for much more on an idle machine).
        let median = try #require(miss["medianSeconds"] as? Double)
        let p10 = try #require(miss["p10Seconds"] as? Double)
        #expect(p10 >= 0.002)
        #expect(median < 0.02)
        // The flags to predict with: measured two at a time, the whole median, and no
        // separate round trip (the measurement holds it).
        let flags = try #require(out["flags"] as? [String])
        #expect(flags.count == 6 && flags[0] == "--latency" && flags[2...3] == ["--round-trip", "0"]
                && flags[4] == "--open-overhead", "\(flags)")
        let us = try #require(Double(flags[1].dropFirst("all=".count).dropLast(2)))
        #expect(abs(us - median * 1e6) < 1, "\(flags) vs median \(median)")

        // One at a time: the median less the fuse profile's own 23 µs round trip.
        let one = try run([loadprobe, "calibrate", "--json", "--fs", "fuse", "--count", "5", src])
        let oneOut = try #require(try JSONSerialization.jsonObject(with: one.stdout) as? [String: Any])
        let oneMedian = try #require((oneOut["miss"] as? [String: Any])?["medianSeconds"] as? Double)
        let oneFlags = try #require(oneOut["flags"] as? [String])
        #expect(oneFlags.count == 4 && oneFlags[2] == "--open-overhead", "\(oneFlags)")
        let expected = max(0, oneMedian * 1e6 - 23)
        let got = try #require(Double(oneFlags[1].dropFirst("all=".count).dropLast(2)))
        #expect(abs(got - expected) < 1, "\(oneFlags) vs median \(oneMedian)")
    }

    @Test("a missing directory or a file: one line, status 1")
    func badInput() throws {
        let dir = try scratch("calibrate-bad")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try write("x", to: dir + "/file")
        for path in [dir + "/missing", dir + "/file"] {
            let r = try run([loadprobe, "calibrate", path])
            #expect(r.status == 1)
            #expect(r.stdout.isEmpty)
            let lines = r.stderrText.split(separator: "\n")
            #expect(lines.count == 1 && lines[0].hasPrefix("loadprobe: calibrate: \(path): "), "\(r.stderrText)")
        }
    }
}
