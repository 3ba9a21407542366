import SystemLayer
import LoaderModel
#if canImport(Glibc)
import Glibc
#endif

/// Reads the loader's world while the program runs: each file the program is
/// seen to open or map is handed over (`add`, on the recording thread) and read
/// on a thread of its own (`FileFacts.read`: identity, content hash, ELF
/// facts), so that the OBJECT records cost the program nothing and the
/// recording's end only what came last (`finish`). The worker touches nothing
/// but its queue and its results; the trace writer stays on the recording thread.
final class WorldCollector: @unchecked Sendable {
    private var mutex = pthread_mutex_t()
    private var wake = pthread_cond_t()
    private var queue: [String] = []
    private var results: [String: FileFacts] = [:]
    private var closing = false
    private var thread = pthread_t()
    private var started = false
    /// The directory the program started in (loadprobe's): a relative path the
    /// audit library reports (argv[0] "./app", a library found through a
    /// relative RPATH entry) is relative to it.
    private let startDirectory = Proc.readLink("/proc/self/cwd")

    init() {
        pthread_mutex_init(&mutex, nil)
        pthread_cond_init(&wake, nil)
        let context = Unmanaged.passRetained(self).toOpaque()
        started = pthread_create(&thread, nil, { raw in
            Unmanaged<WorldCollector>.fromOpaque(raw!).takeRetainedValue().work()
            return nil
        }, context) == 0
        if !started { Unmanaged<WorldCollector>.fromOpaque(context).release() }
    }

    deinit {
        pthread_cond_destroy(&wake)
        pthread_mutex_destroy(&mutex)
    }

    /// Where the collector reads a file named by `path`, and the path its OBJECT record gives.
    func absolute(_ path: String) -> String {
        guard !path.hasPrefix("/"), let startDirectory else { return path }
        return LoaderPath.absolute(path, in: startDirectory)
    }

    /// A file seen opened.
    func add(_ name: String) {
        let path = absolute(name)
        guard path.hasPrefix("/") else { return }
        pthread_mutex_lock(&mutex)
        queue.append(path)
        pthread_cond_signal(&wake)
        pthread_mutex_unlock(&mutex)
    }

    private func work() {
        // Only idle CPU time: the program's start-up comes first.
        var param = sched_param()
        _ = pthread_setschedparam(pthread_self(), 5 /* SCHED_IDLE */, &param)
        pthread_mutex_lock(&mutex)
        while true {
            while queue.isEmpty && !closing { pthread_cond_wait(&wake, &mutex) }
            if queue.isEmpty { break }
            let batch = queue
            queue.removeAll()
            pthread_mutex_unlock(&mutex)
            var done: [(String, FileFacts)] = []
            for path in batch { if let f = FileFacts.read(path) { done.append((path, f)) } }
            pthread_mutex_lock(&mutex)
            for (p, f) in done { results[p] = f }
        }
        pthread_mutex_unlock(&mutex)
    }

    /// Waits for the files handed over so far (reading them here when no
    /// thread could be started) and returns what was read, by path.
    func finish() -> [String: FileFacts] {
        pthread_mutex_lock(&mutex)
        closing = true
        pthread_cond_signal(&wake)
        pthread_mutex_unlock(&mutex)
        if started {
            pthread_join(thread, nil)
        } else {
            for path in queue { if let f = FileFacts.read(path) { results[path] = f } }
            queue.removeAll()
        }
        return results
    }
}
