import ArgumentParser
import Report
import LoaderModel
#if canImport(Glibc)
import Glibc
#endif

struct Fix: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a fixed copy of a program: shrinkwrapped, or with a dependency view.",
        discussion: """
        The fix the report predicts, applied to a copy (patchelf writes it; the program and its libraries \
        are never changed). Before writing, the hazards that would make the copy behave differently refuse \
        (--force goes on). After writing, the loader model checks that the copy loads the same objects in \
        the same order and prints the predicted file calls before and after; --check runs both once under \
        loadprobe and prints diff's verdict.

        The whole loop (docs/fix.md):
          loadprobe -o app.lpt -- ./app                  # record
          loadprobe report app.lpt                       # what each fix would give back
          loadprobe record --what-if shrinkwrap --from app.lpt -o try.lpt -- ./app
          loadprobe diff app.lpt try.lpt                 # the fix tried, no file changed
          loadprobe fix shrinkwrap ./app -o app.fixed --from app.lpt --check
          loadprobe -o fixed.lpt -- ./app.fixed
          loadprobe diff app.lpt fixed.lpt               # the fix applied
        """,
        subcommands: [FixShrinkwrap.self, FixView.self]
    )
}

struct FixOptions: ParsableArguments {
    @Argument(help: "The program to fix (not changed).") var program: String
    @Option(name: .shortAndLong, help: ArgumentHelp("The fixed copy to write; it must not exist (see --overwrite).", valueName: "file"))
    var output: String
    @Option(name: .customLong("from"), help: ArgumentHelp("Take the resolution (and the environment) from this recorded run of the program instead of the loader model here.", valueName: "trace"))
    var trace: String?
    @Flag(help: "Go on despite the hazards that would make the copy behave differently.") var force = false
    @Flag(help: "Replace OUTPUT (and the view directory's symlinks) when they exist.") var overwrite = false
    @Flag(help: "Run the program and the copy once each under loadprobe (arguments after --) and print diff's verdict.")
    var check = false
    @Option(help: ArgumentHelp("The patchelf to run.", valueName: "path")) var patchelf = "patchelf"
    @Argument(parsing: .postTerminator, help: "With --check: the arguments to run both programs with.")
    var arguments: [String] = []

    func validate() throws {
        if !arguments.isEmpty && !check { throw ValidationError("arguments after '--' are for --check") }
        if output.isEmpty { throw ValidationError("'-o' needs a file name") }
    }
}

struct FixShrinkwrap: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "shrinkwrap",
        abstract: "Copy PROGRAM with every library of its start-up in DT_NEEDED by absolute path, in load order.",
        discussion: """
        Examples:
          loadprobe fix shrinkwrap ./app -o ./app.shrinkwrap
          loadprobe fix shrinkwrap ./app -o ./app.shrinkwrap --from app.lpt --lift-dlopen --check -- --input deck.in
        """
    )
    @OptionGroup var options: FixOptions
    @Flag(name: .customLong("lift-dlopen"), help: "Add the libraries the recorded run dlopened too (needs --from).")
    var liftDlopen = false

    func validate() throws {
        if liftDlopen && options.trace == nil {
            throw ValidationError("'--lift-dlopen' needs '--from TRACE': only a recording knows what the program dlopens")
        }
    }

    func run() throws { Fixer(kind: .shrinkwrap, options: options, liftDlopen: liftDlopen, viewDirectory: nil).run() }
}

struct FixView: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "view",
        abstract: "Make a directory of symlinks to PROGRAM's libraries and copy PROGRAM with that directory as its only RUNPATH.",
        discussion: """
        Example:
          loadprobe fix view ./app -o ./app.view --view-dir ./app-libs
        """
    )
    @OptionGroup var options: FixOptions
    @Option(name: .customLong("view-dir"), help: ArgumentHelp("The view directory to create (new or empty).", valueName: "dir"))
    var viewDirectory: String

    func run() throws { Fixer(kind: .view, options: options, liftDlopen: false, viewDirectory: viewDirectory).run() }
}
