import ArgumentParser
import Report

struct Explain: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show what the dynamic loader will do for PROGRAM, from its ELF files alone."
    )
    @Argument(help: "The program to analyse.") var program: String
    func run() throws {
        throw ValidationError("explain is not built yet")
    }
}
