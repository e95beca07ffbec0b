#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import NIOCore
import Synchronization

/// Why a worker call got no answer.
public enum WorkerCallError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The call ran past its deadline, so its worker was killed.
    case deadlineExceeded(milliseconds: Int)
    /// The worker died while running the call (a crash, or its memory or CPU limit).
    case workerDied(String)
    /// The worker died while the call waited behind another one: run it again on a new worker.
    case retry
    /// No worker could be started or kept alive.
    case unavailable(String)

    /// Whether the worker died under the call (killed at its deadline, or crashed), so that what
    /// in the call ended it is unknown.
    var endedTheWorker: Bool {
        switch self {
        case .deadlineExceeded, .workerDied: true
        case .retry, .unavailable: false
        }
    }

    public var description: String {
        switch self {
        case .deadlineExceeded(let milliseconds):
            "time limit exceeded: the script ran past \(milliseconds) ms and its worker was stopped"
        case .workerDied(let reason): "the script's worker died (\(reason))"
        case .retry: "the worker was restarted"
        case .unavailable(let reason): "no Lua worker is available: \(reason)"
        }
    }
}

/// One running worker process and the pipes to it. Calls are pipelined: the worker answers
/// them in order, one at a time, so the call at the head of the queue is the one running, and
/// its deadline starts when it reaches the head.
///
/// A caller writes its frame into the pipe itself (non-blocking, under the connection's lock,
/// so frames never interleave) and waits; the connection's own thread waits in `poll` for the
/// answers, resumes the callers in order and kills the worker when the running call passes
/// its deadline. So a call costs the caller one system call and no hop through an event loop:
/// on this kind of machine each cross-thread wake-up is tens of microseconds. When the pipe is
/// full, the rest of the bytes wait in the connection and its thread writes them as the worker
/// reads. The running call fails when the worker dies (`deadlineExceeded` or `workerDied`);
/// calls queued behind it fail with `retry`, to run again on a new worker.
final class WorkerConnection: Sendable {
    let pid: pid_t
    private let toWorker: Int32
    private let fromWorker: Int32
    /// Wakes the connection's thread out of `poll` (bytes left to write, or `terminate`).
    private let wakeRead: Int32
    private let wakeWrite: Int32
    private let onExit: @Sendable (pid_t, String) -> Void
    private let liveness = Liveness()
    private let state = Mutex(State())

    private struct PendingCall {
        var continuation: CheckedContinuation<ByteBuffer, any Error>
        var deadline: Duration
        /// Where the call's frame ends in the bytes sent to the worker: a call whose frame was
        /// not all written when the worker died never ran, and goes again.
        var frameEnd: UInt64
        /// When the call reached the head of the queue, so the worker started on it.
        var startedAt: ContinuousClock.Instant?
    }

    private struct State {
        var calls = CircularBuffer<PendingCall>()
        /// Bytes the pipe did not take yet, in order; written by the connection's thread.
        var unsent = ByteBuffer()
        var bytesQueued: UInt64 = 0
        var bytesWritten: UInt64 = 0
        /// The pipe refused a write (the worker is gone): the end of its output ends the
        /// connection, so the thread stops asking to write.
        var writeFailed = false
        /// Waits for the worker's first frame, which says it is ready; nil after that.
        var ready: CheckedContinuation<Void, any Error>?
        /// Set once the connection gave up on its worker: no descriptor is used after that.
        var isClosed = false
        var terminateRequested = false
    }

    /// Why the connection gives up on its worker.
    private struct Ending {
        var headError: WorkerCallError
        var reason: String
    }

    var isAlive: Bool { liveness.isAlive }

    private init(pid: pid_t, toWorker: Int32, fromWorker: Int32, wake: (Int32, Int32), onExit: @escaping @Sendable (pid_t, String) -> Void) {
        self.pid = pid
        self.toWorker = toWorker
        self.fromWorker = fromWorker
        (wakeRead, wakeWrite) = wake
        self.onExit = onExit
    }

    /// Starts `executable arguments…` with its stdin and stdout on fresh pipes, an empty
    /// environment (no database URL, no secret reaches a worker) and default signal handling,
    /// and waits until it says it is ready. `onExit` runs once, on the connection's thread,
    /// when the worker is gone.
    static func spawn(
        executable: String, arguments: [String], onExit: @escaping @Sendable (pid_t, String) -> Void
    ) async throws -> WorkerConnection {
        _ = ignoresBrokenPipes
        var opened: [Int32] = []
        let connection: WorkerConnection
        do {
            connection = try spawning.withLock { _ in
                let (toWorkerRead, toWorkerWrite) = try makePipe()
                opened += [toWorkerRead, toWorkerWrite]
                let (fromWorkerRead, fromWorkerWrite) = try makePipe()
                opened += [fromWorkerRead, fromWorkerWrite]
                let wake = try makePipe()
                opened += [wake.0, wake.1]
                for descriptor in [toWorkerWrite, fromWorkerRead, wake.0, wake.1] {
                    _ = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) | O_NONBLOCK)
                }
                let pid = try spawnProcess(
                    executable: executable, arguments: arguments, stdin: toWorkerRead, stdout: fromWorkerWrite)
                close(toWorkerRead)
                close(fromWorkerWrite)
                return WorkerConnection(pid: pid, toWorker: toWorkerWrite, fromWorker: fromWorkerRead, wake: wake, onExit: onExit)
            }
        } catch {
            opened.forEach { close($0) }
            throw error
        }
        try await withCheckedThrowingContinuation { (ready: CheckedContinuation<Void, any Error>) in
            connection.state.withLock { $0.ready = ready }
            Thread.detachNewThread { connection.serve() }
        }
        return connection
    }

    /// Held while a worker's pipes are made and it is started (see `makePipe`).
    private static let spawning = Mutex(())

    /// A worker that dies leaves its pipe broken: writes then fail with `EPIPE` instead of
    /// the signal ending the server (NIO does the same for its sockets and pipes).
    private static let ignoresBrokenPipes: Void = {
        signal(SIGPIPE, SIG_IGN)
    }()

    /// How long a new worker may take to load the plugins and confine itself.
    static let startupTimeout = Duration.seconds(10)
    /// The longest `poll` wait while no call runs. A call that starts meanwhile is seen at the
    /// next wake-up, and from then on its deadline to the millisecond; a call whose deadline is
    /// shorter than this wakes the thread itself.
    private static let idlePoll = Duration.milliseconds(100)

    /// Sends `frame` (already length-prefixed) and waits for the answer's payload.
    func call(_ frame: ByteBuffer, deadline: Duration) async throws -> ByteBuffer {
        try await withCheckedThrowingContinuation { continuation in
            let outcome = state.withLock { state -> (accepted: Bool, wake: Bool) in
                guard !state.isClosed, !state.terminateRequested else { return (false, false) }
                let isHead = state.calls.isEmpty
                state.bytesQueued += UInt64(frame.readableBytes)
                state.calls.append(
                    PendingCall(
                        continuation: continuation, deadline: deadline, frameEnd: state.bytesQueued,
                        startedAt: isHead ? ContinuousClock.now : nil))
                // The thread may sleep through an idle wait longer than this call's deadline.
                let wakeForDeadline = isHead && deadline < Self.idlePoll
                guard state.unsent.readableBytes == 0 else {
                    state.unsent.writeImmutableBuffer(frame)
                    return (true, wakeForDeadline)
                }
                var rest = frame
                Self.writeAvailable(&rest, to: toWorker, state: &state)
                // A broken pipe leaves the bytes here; the thread sees the worker's end of input.
                guard rest.readableBytes > 0 else { return (true, wakeForDeadline) }
                state.unsent.writeImmutableBuffer(rest)
                return (true, true)
            }
            if !outcome.accepted { continuation.resume(throwing: WorkerCallError.retry) }
            if outcome.wake { wakeThread() }
        }
    }

    /// Kills the worker; calls in flight fail with `retry` (the running one with `workerDied`).
    func terminate() {
        liveness.markDead()
        let isFirst = state.withLock { state -> Bool in
            guard !state.isClosed, !state.terminateRequested else { return false }
            state.terminateRequested = true
            // Under the lock: once closed, the pool may have reaped the pid, and it may be reused.
            kill(pid, SIGKILL)
            return true
        }
        if isFirst { wakeThread() }
    }

    /// The connection's thread: reads answers, writes what callers left unsent, and watches the
    /// running call's deadline, until it gives up on the worker.
    private func serve() {
        let startupDeadline = ContinuousClock.now + Self.startupTimeout
        var answers = WorkerFrameBuffer()
        var readOn = ReadOnWindow()
        var ending: Ending?
        while ending == nil {
            let (timeout, wantsWrite, terminating) = state.withLock { state in
                (
                    Self.pollTimeout(state, startupDeadline: startupDeadline), state.unsent.readableBytes > 0 && !state.writeFailed,
                    state.terminateRequested
                )
            }
            if terminating {
                ending = Ending(headError: .workerDied("it exited"), reason: "exited")
                break
            }
            var descriptors = [
                pollfd(fd: fromWorker, events: Int16(POLLIN), revents: 0),
                pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0),
                pollfd(fd: toWorker, events: wantsWrite ? Int16(POLLOUT) : 0, revents: 0),
            ]
            if poll(&descriptors, nfds_t(wantsWrite ? 3 : 2), timeout) < 0 && errno != EINTR {
                ending = Ending(headError: .workerDied("poll failed: errno \(errno)"), reason: "poll failed")
                break
            }
            if descriptors[1].revents != 0 { drainWakeups() }
            if wantsWrite && descriptors[2].revents != 0 { writeUnsent() }
            if ending == nil && descriptors[0].revents != 0 {
                // Bytes waiting to be written are not left waiting while reading goes on.
                ending = readAnswers(into: &answers, readOn: &readOn, mayReadOn: !wantsWrite)
            }
            if ending == nil {
                ending = overdue(startupDeadline: startupDeadline)
            }
        }
        finish(ending!)
    }

    /// Milliseconds until the next deadline: the start-up's, the running call's, or the idle wait.
    private static func pollTimeout(_ state: State, startupDeadline: ContinuousClock.Instant) -> Int32 {
        let until: ContinuousClock.Instant
        if state.ready != nil {
            until = startupDeadline
        } else if let head = state.calls.first, let startedAt = head.startedAt {
            until = startedAt + head.deadline
        } else {
            until = ContinuousClock.now + idlePoll
        }
        let left = until - ContinuousClock.now
        guard left > .zero else { return 0 }
        let (seconds, attoseconds) = left.components
        return Int32(min(seconds * 1000 + (attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000, 60_000))
    }

    /// Reads and hands out the answers the pipe has; with `mayReadOn`, goes on reading after
    /// an answer while answers come quickly (`ReadOnWindow`; the deadlines are milliseconds, so
    /// they wait that long at most).
    private func readAnswers(into answers: inout WorkerFrameBuffer, readOn: inout ReadOnWindow, mayReadOn: Bool) -> Ending? {
        var tryUntil = ContinuousClock.now
        while true {
            let count = answers.fill(from: fromWorker, tryingUntil: tryUntil)
            if count == 0 { return Ending(headError: .workerDied("it exited"), reason: "exited") }
            if count < 0 {
                if errno == EAGAIN || errno == EWOULDBLOCK { return nil }
                return Ending(headError: .workerDied("read failed: errno \(errno)"), reason: "pipe error")
            }
            do {
                while let frame = try answers.nextFrame() {
                    readOn.frameCame()
                    if let ending = answer(frame) { return ending }
                    let now = ContinuousClock.now
                    let readingOnUntil = readOn.startWaiting(at: now)
                    tryUntil = mayReadOn ? readingOnUntil : now
                }
            } catch {
                return Ending(headError: .workerDied("\(error)"), reason: "protocol error")
            }
        }
    }

    /// One frame from the worker: the ready signal first, then the running call's answer.
    private func answer(_ frame: ByteBuffer) -> Ending? {
        enum Next {
            case ready(CheckedContinuation<Void, any Error>)
            case call(CheckedContinuation<ByteBuffer, any Error>)
            case unexpected
        }
        let next = state.withLock { state -> Next in
            if let ready = state.ready {
                state.ready = nil
                return .ready(ready)
            }
            guard let head = state.calls.popFirst() else { return .unexpected }
            if !state.calls.isEmpty { state.calls[state.calls.startIndex].startedAt = ContinuousClock.now }
            return .call(head.continuation)
        }
        switch next {
        case .ready(let ready): ready.resume()
        case .call(let continuation): continuation.resume(returning: frame)
        case .unexpected: return Ending(headError: .workerDied("an answer nobody asked for"), reason: "protocol error")
        }
        return nil
    }

    private func writeUnsent() {
        state.withLock { state in
            var unsent = state.unsent
            state.unsent = ByteBuffer()
            Self.writeAvailable(&unsent, to: toWorker, state: &state)
            // Moving the rest down on every write would cost the square of a large frame.
            if unsent.readerIndex >= 1 << 20 { unsent.discardReadBytes() }
            state.unsent = unsent
        }
    }

    /// The start-up or the running call past its time.
    private func overdue(startupDeadline: ContinuousClock.Instant) -> Ending? {
        let now = ContinuousClock.now
        return state.withLock { state in
            if state.ready != nil {
                guard now >= startupDeadline else { return nil }
                let seconds = Self.startupTimeout.components.seconds
                return Ending(headError: .unavailable("the worker did not start within \(seconds) s"), reason: "did not start in time")
            }
            guard let head = state.calls.first, let startedAt = head.startedAt, now >= startedAt + head.deadline else { return nil }
            let (seconds, attoseconds) = head.deadline.components
            let milliseconds = Int(seconds * 1000 + attoseconds / 1_000_000_000_000_000)
            return Ending(
                headError: .deadlineExceeded(milliseconds: milliseconds), reason: "killed after its call ran past \(milliseconds) ms")
        }
    }

    /// Gives up on the worker: kills it, answers every call and the start-up, closes the
    /// descriptors and tells the pool.
    private func finish(_ ending: Ending) {
        liveness.markDead()
        kill(pid, SIGKILL)
        let (ready, calls, bytesWritten) = state.withLock { state in
            state.isClosed = true
            defer {
                state.ready = nil
                state.calls.removeAll()
            }
            return (state.ready, Array(state.calls), state.bytesWritten)
        }
        for descriptor in [toWorker, fromWorker, wakeRead, wakeWrite] { close(descriptor) }
        if let ready {
            let error = ending.headError
            if case .unavailable = error {
                ready.resume(throwing: error)
            } else {
                ready.resume(throwing: WorkerCallError.unavailable("the worker \(ending.reason) while starting"))
            }
        }
        if let head = calls.first {
            // A head whose frame the worker never got all of never ran: it goes again.
            head.continuation.resume(throwing: head.frameEnd <= bytesWritten ? ending.headError : WorkerCallError.retry)
        }
        for queued in calls.dropFirst() { queued.continuation.resume(throwing: WorkerCallError.retry) }
        onExit(pid, ending.reason)
    }

    /// Writes as much of `buffer` as the pipe takes now, consuming what was written and
    /// counting it in `state`.
    private static func writeAvailable(_ buffer: inout ByteBuffer, to descriptor: Int32, state: inout State) {
        while buffer.readableBytes > 0 {
            let written = buffer.withUnsafeReadableBytes { bytes in
                write(descriptor, bytes.baseAddress, bytes.count)
            }
            if written < 0 {
                if errno == EINTR { continue }
                if errno != EAGAIN && errno != EWOULDBLOCK { state.writeFailed = true }
                return
            }
            buffer.moveReaderIndex(forwardBy: written)
            state.bytesWritten += UInt64(written)
        }
    }

    /// Only under the lock while the connection is open: `finish` closes the pipe under it.
    private func wakeThread() {
        state.withLock { state in
            guard !state.isClosed else { return }
            var byte: UInt8 = 1
            _ = write(wakeWrite, &byte, 1)
        }
    }

    private func drainWakeups() {
        var bytes = [UInt8](repeating: 0, count: 64)
        while read(wakeRead, &bytes, bytes.count) > 0 {}
    }

    /// A pipe whose ends are above the standard descriptors and close on exec. Made under
    /// `spawning`, so no worker starts between `pipe` and `fcntl` and inherits them (a worker
    /// also closes every inherited descriptor itself, where it can read `/proc`).
    private static func makePipe() throws -> (Int32, Int32) {
        var ends: [Int32] = [0, 0]
        guard pipe(&ends) == 0 else { throw WorkerCallError.unavailable("pipe failed: errno \(errno)") }
        for end in ends { _ = fcntl(end, F_SETFD, FD_CLOEXEC) }
        // A descriptor that cannot be moved is closed by the move itself; the other end here.
        let readEnd: Int32
        do {
            readEnd = try aboveStandardDescriptors(ends[0])
        } catch {
            close(ends[1])
            throw error
        }
        do {
            return (readEnd, try aboveStandardDescriptors(ends[1]))
        } catch {
            close(readEnd)
            throw error
        }
    }

    /// When stdin or stdout of the server is closed, a new pipe may take descriptor 0 or 1,
    /// which the worker's own dup2 onto 0 and 1 would then clobber: move it up.
    private static func aboveStandardDescriptors(_ descriptor: Int32) throws -> Int32 {
        guard descriptor <= 2 else { return descriptor }
        let moved = fcntl(descriptor, F_DUPFD_CLOEXEC, 3)
        close(descriptor)
        guard moved >= 0 else { throw WorkerCallError.unavailable("fcntl failed: errno \(errno)") }
        return moved
    }

    private static func spawnProcess(executable: String, arguments: [String], stdin: Int32, stdout: Int32) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, stdin, 0)
        posix_spawn_file_actions_adddup2(&actions, stdout, 1)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGTERM, SIGINT, SIGPIPE, SIGHUP] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var mask = sigset_t()
        sigemptyset(&mask)
        posix_spawnattr_setsigmask(&attributes, &mask)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        let environment: [UnsafeMutablePointer<CChar>?] = [nil]
        var pid: pid_t = 0
        let status = posix_spawn(&pid, executable, &actions, &attributes, argv, environment)
        guard status == 0 else {
            throw WorkerCallError.unavailable("cannot start \(executable): \(String(cString: strerror(status)))")
        }
        return pid
    }
}

/// Whether a worker is still usable; cleared the moment its handler gives up on it.
final class Liveness: Sendable {
    private let alive = Atomic(true)

    var isAlive: Bool { alive.load(ordering: .acquiring) }

    func markDead() {
        alive.store(false, ordering: .releasing)
    }
}
