#if canImport(Glibc)
import Glibc
#endif

/// Runs `second` on a new thread while `first` runs on this one, and returns
/// both results (the report's two biggest simulations of a trace are
/// independent: the unchanged world and the loader-cache world). Without a
/// thread (pthread_create failed), `second` runs after `first`.
func concurrently<A, B: Sendable>(_ first: () -> A, _ second: @escaping @Sendable () -> B) -> (A, B) {
    let work = ConcurrentWork(second)
    let started = work.start()
    let a = first()
    if started { work.join() } else { work.run() }
    return (a, work.result!)
}

/// A thread's entry: runs the work object it is given.
private func threadEntry(_ raw: UnsafeMutableRawPointer?) -> UnsafeMutableRawPointer? {
    Unmanaged<ThreadWork>.fromOpaque(raw!).takeRetainedValue().run()
    return nil
}

class ThreadWork: @unchecked Sendable {
    var thread = pthread_t()
    func run() {}

    /// Starts `run` on a new thread; false when no thread could be made.
    func start() -> Bool {
        let context = Unmanaged.passRetained(self as ThreadWork).toOpaque()
        if pthread_create(&thread, nil, threadEntry, context) == 0 { return true }
        Unmanaged<ThreadWork>.fromOpaque(context).release()
        return false
    }

    func join() { pthread_join(thread, nil) }
}

/// The second thread's work and result; read only after the join.
final class ConcurrentWork<B: Sendable>: ThreadWork, @unchecked Sendable {
    let work: @Sendable () -> B
    var result: B?
    init(_ work: @escaping @Sendable () -> B) { self.work = work }
    override func run() { result = work() }
}
