#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NIOCore
import NIOPosix
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

/// One call on its way to a worker: its framed request, its deadline and who waits for it.
struct WorkerCall: Sendable {
    var frame: ByteBuffer
    var deadline: TimeAmount
    var promise: EventLoopPromise<ByteBuffer>
}

/// One running worker process and the pipe channel to it. Calls are pipelined: the worker
/// answers them in order, one at a time, so the call at the head of the queue is the one
/// running, and its deadline starts when it reaches the head.
final class WorkerConnection: Sendable {
    let pid: pid_t
    private let channel: any Channel
    private let liveness: Liveness

    var isAlive: Bool { liveness.isAlive }

    private init(pid: pid_t, channel: any Channel, liveness: Liveness) {
        self.pid = pid
        self.channel = channel
        self.liveness = liveness
    }

    /// Starts `executable arguments…` with its stdin and stdout on fresh pipes, an empty
    /// environment (no database URL, no secret reaches a worker) and default signal handling.
    /// `onExit` runs once, on the channel's event loop, when the worker is gone.
    static func spawn(
        executable: String, arguments: [String], group: any EventLoopGroup, onExit: @escaping @Sendable (pid_t, String) -> Void
    ) async throws -> WorkerConnection {
        let (toWorkerRead, toWorkerWrite) = try makePipe()
        let (fromWorkerRead, fromWorkerWrite): (Int32, Int32)
        do {
            (fromWorkerRead, fromWorkerWrite) = try makePipe()
        } catch {
            close(toWorkerRead)
            close(toWorkerWrite)
            throw error
        }
        let pid: pid_t
        do {
            pid = try spawnProcess(executable: executable, arguments: arguments, stdin: toWorkerRead, stdout: fromWorkerWrite)
        } catch {
            [toWorkerRead, toWorkerWrite, fromWorkerRead, fromWorkerWrite].forEach { close($0) }
            throw error
        }
        close(toWorkerRead)
        close(fromWorkerWrite)
        let connection: WorkerConnection
        let ready = group.next().makePromise(of: Void.self)
        let liveness = Liveness()
        do {
            let channel = try await NIOPipeBootstrap(group: group)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(WorkerFrameDecoder()))
                        try channel.pipeline.syncOperations.addHandler(
                            WorkerCallHandler(pid: pid, ready: ready, liveness: liveness, onExit: { reason in
                                onExit(pid, reason)
                            }))
                    }
                }
                .takingOwnershipOfDescriptors(input: fromWorkerRead, output: toWorkerWrite)
                .get()
            connection = WorkerConnection(pid: pid, channel: channel, liveness: liveness)
        } catch {
            kill(pid, SIGKILL)
            close(fromWorkerRead)
            close(toWorkerWrite)
            ready.fail(error)
            throw error
        }
        // Deadlines count from a worker that is ready: loading the plugins is not a call's time.
        let startup = group.next().scheduleTask(in: startupTimeout) {
            ready.fail(WorkerCallError.unavailable("the worker did not start within \(startupTimeout.nanoseconds / 1_000_000_000) s"))
        }
        do {
            try await ready.futureResult.get()
            startup.cancel()
        } catch {
            connection.terminate()
            throw error
        }
        connection.channel.closeFuture.whenComplete { _ in liveness.markDead() }
        return connection
    }

    /// How long a new worker may take to load the plugins and confine itself.
    static let startupTimeout = TimeAmount.seconds(10)

    /// Sends `frame` (already length-prefixed) and waits for the answer's payload.
    func call(_ frame: ByteBuffer, deadline: TimeAmount) async throws -> ByteBuffer {
        let promise = channel.eventLoop.makePromise(of: ByteBuffer.self)
        // A call written to a channel that closed before it reached the handler never gets
        // there: the failed write answers it (the handler answers every call it receives).
        let written = channel.eventLoop.makePromise(of: Void.self)
        written.futureResult.whenFailure { _ in promise.fail(WorkerCallError.retry) }
        channel.writeAndFlush(WorkerCall(frame: frame, deadline: deadline, promise: promise), promise: written)
        return try await promise.futureResult.get()
    }

    /// Kills the worker; calls in flight fail with `retry`.
    func terminate() {
        liveness.markDead()
        kill(pid, SIGKILL)
        channel.close(promise: nil)
    }

    /// A pipe whose ends are above the standard descriptors and close on exec (a worker started
    /// meanwhile by another thread closes every inherited descriptor itself).
    private static func makePipe() throws -> (Int32, Int32) {
        var ends: [Int32] = [0, 0]
        guard pipe(&ends) == 0 else { throw WorkerCallError.unavailable("pipe failed: errno \(errno)") }
        for end in ends { _ = fcntl(end, F_SETFD, FD_CLOEXEC) }
        return (try aboveStandardDescriptors(ends[0]), try aboveStandardDescriptors(ends[1]))
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

/// Keeps a worker's queue of calls on its channel's event loop: writes each call's frame,
/// answers calls in order as frames come back, and kills the worker when the running call
/// passes its deadline or the pipe breaks. The running call fails (`deadlineExceeded` or
/// `workerDied`); calls queued behind it fail with `retry`, to run again on a new worker.
final class WorkerCallHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = WorkerCall
    typealias OutboundOut = ByteBuffer

    private struct Queued {
        var call: WorkerCall
        var sequence: UInt64
    }

    private let pid: pid_t
    private let liveness: Liveness
    private let onExit: (String) -> Void
    /// Completed by the worker's first frame, which says it is ready; nil after that.
    private var ready: EventLoopPromise<Void>?
    private var queue = CircularBuffer<Queued>()
    private var nextSequence: UInt64 = 0
    private var deadlineTimer: Scheduled<Void>?
    private var isClosed = false

    init(pid: pid_t, ready: EventLoopPromise<Void>, liveness: Liveness, onExit: @escaping (String) -> Void) {
        self.pid = pid
        self.liveness = liveness
        self.ready = ready
        self.onExit = onExit
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let call = unwrapOutboundIn(data)
        guard !isClosed else {
            call.promise.fail(WorkerCallError.retry)
            promise?.succeed()
            return
        }
        nextSequence &+= 1
        queue.append(Queued(call: call, sequence: nextSequence))
        // A write that fails later closes the channel, which answers the call; the caller's
        // write promise only says the call reached this handler.
        context.write(wrapOutboundOut(call.frame), promise: nil)
        promise?.succeed()
        if queue.count == 1 { armDeadline(context: context) }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        if let ready {
            self.ready = nil
            ready.succeed()
            return
        }
        deadlineTimer?.cancel()
        deadlineTimer = nil
        guard let head = queue.popFirst() else {
            terminate(context: context, headError: .workerDied("an answer nobody asked for"), reason: "protocol error")
            return
        }
        head.call.promise.succeed(frame)
        if !queue.isEmpty { armDeadline(context: context) }
    }

    func channelInactive(context: ChannelHandlerContext) {
        terminate(context: context, headError: .workerDied("it exited"), reason: "exited")
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        terminate(context: context, headError: .workerDied("\(error)"), reason: "pipe error: \(error)")
    }

    private func armDeadline(context: ChannelHandlerContext) {
        guard let head = queue.first else { return }
        let sequence = head.sequence
        let milliseconds = Int(head.call.deadline.nanoseconds / 1_000_000)
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        deadlineTimer = context.eventLoop.scheduleTask(in: head.call.deadline) {
            let (handler, context) = loopBound.value
            guard !handler.isClosed, handler.queue.first?.sequence == sequence else { return }
            handler.terminate(
                context: context, headError: .deadlineExceeded(milliseconds: milliseconds),
                reason: "killed after its call ran past \(milliseconds) ms")
        }
    }

    private func terminate(context: ChannelHandlerContext, headError: WorkerCallError, reason: String) {
        guard !isClosed else { return }
        isClosed = true
        // Dead before anyone hears of it: a call failed with `retry` runs again on a new worker.
        liveness.markDead()
        deadlineTimer?.cancel()
        ready?.fail(WorkerCallError.unavailable("the worker \(reason) while starting"))
        ready = nil
        kill(pid, SIGKILL)
        if let head = queue.popFirst() { head.call.promise.fail(headError) }
        while let queued = queue.popFirst() { queued.call.promise.fail(WorkerCallError.retry) }
        context.close(promise: nil)
        onExit(reason)
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
