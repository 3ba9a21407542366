import ArgumentParser
import Tracer

struct Record: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run a command and record its file lookups and library searches.")
    @Argument(parsing: .captureForPassthrough) var command: [String] = []
    func run() throws {}
}
