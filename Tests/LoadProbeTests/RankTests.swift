import Foundation
import Testing
import Tracer
@testable import LoadProbe

/// `--full-ranks`: which ranks record in full, the launchers' variables, and
/// the warning rank 0 gives when every rank of a large job records in full.
@Suite struct RankTests {
    @Test func selection() throws {
        let s = try RankSelection("0,first-per-node,every:64,100-102")
        let full = (0..<200).filter { s.recordsFully(JobPlace(rank: $0, localRank: $0 % 16, size: 200)) }
        #expect(full == [0, 16, 32, 48, 64, 80, 96, 100, 101, 102, 112, 128, 144, 160, 176, 192])
        #expect(try RankSelection("none").recordsFully(JobPlace(rank: 0)) == false)
        #expect(try RankSelection("all").recordsFully(JobPlace(rank: 12345)))
        // Outside a job every recording is full.
        #expect(try RankSelection("none").recordsFully(JobPlace()))
        for bad in ["", "x", "every:0", "5-2", "-1", "0,,1", "every:"] {
            #expect(throws: RankSelectionError.self, "\(bad)") { try RankSelection(bad) }
        }
    }

    @Test func placeFromLaunchers() {
        #expect(JobPlace(environment: ["SLURM_PROCID": "5", "SLURM_LOCALID": "1", "SLURM_NTASKS": "8"]) == JobPlace(rank: 5, localRank: 1, size: 8))
        #expect(JobPlace(environment: ["OMPI_COMM_WORLD_RANK": "3", "OMPI_COMM_WORLD_LOCAL_RANK": "0", "OMPI_COMM_WORLD_SIZE": "4",
                                       "SLURM_PROCID": "0"]) == JobPlace(rank: 3, localRank: 0, size: 4))
        #expect(JobPlace.launcher(["OMPI_COMM_WORLD_RANK": "3", "SLURM_PROCID": "0"]) == "open-mpi")
        #expect(JobPlace.launcher(["SLURM_PROCID": "0", "PMI_RANK": "0"]) == "slurm")
        #expect(JobPlace.launcher(["PMI_RANK": "0"]) == "mpich")
        #expect(JobPlace.launcher([:]) == nil)
    }

    @Test("rank 0 of a 128-rank job recording everything in full says what it weighs; other ranks, small jobs, small traces and --full-ranks 0 do not")
    func largeJobWarning() throws {
        let file = NSTemporaryDirectory() + "lp-rank-\(getpid()).lpt"
        defer { unlink(file) }
        let fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        #expect(ftruncate(fd, 3 << 20) == 0)
        close(fd)
        let all = RecordInvocation(command: ["x"])
        let job = ["SLURM_PROCID": "0", "SLURM_NTASKS": "128"]
        let w = Record.largeJobWarning(all, traceFile: file, environment: job)
        #expect(w?.hasPrefix("every one of the job's 128 ranks records a full trace (this one 3 MB, about 384 MB for the job)") == true, "\(w ?? "none")")
        #expect(Record.largeJobWarning(all, traceFile: file, environment: ["SLURM_PROCID": "1", "SLURM_NTASKS": "128"]) == nil)
        #expect(Record.largeJobWarning(all, traceFile: file, environment: ["SLURM_PROCID": "0", "SLURM_NTASKS": "8"]) == nil)
        var some = all
        some.fullRanks = "0"
        #expect(Record.largeJobWarning(some, traceFile: file, environment: job) == nil)
        let small = file + ".small"
        defer { unlink(small) }
        FileManager.default.createFile(atPath: small, contents: Data(count: 1000))
        #expect(Record.largeJobWarning(all, traceFile: small, environment: job) == nil)
    }

    @Test("rank 0 says when the output pattern makes every rank write one file")
    func sharedOutput() {
        var how = RecordInvocation(command: ["x"])
        how.output = "same.lpt"
        let w = Record.sharedOutputWarning(how, environment: ["SLURM_PROCID": "0", "SLURM_NTASKS": "4"])
        #expect(w?.contains("every rank of the job writes the same file") == true, "\(w ?? "none")")
        #expect(Record.sharedOutputWarning(how, environment: ["SLURM_PROCID": "1", "SLURM_NTASKS": "4"]) == nil)
        #expect(Record.sharedOutputWarning(how, environment: [:]) == nil)
        #expect(Record.sharedOutputWarning(how, environment: ["SLURM_PROCID": "0", "SLURM_NTASKS": "1"]) == nil)
        how.output = "lp-%j/%r.lpt"
        #expect(Record.sharedOutputWarning(how, environment: ["SLURM_PROCID": "0", "SLURM_NTASKS": "4"]) == nil)
    }
}
