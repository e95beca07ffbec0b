#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle

/// The supervised pool of Lua worker processes (`thermostat lua-worker`) that runs every
/// tenant script. A tenant is pinned to one worker by a stable hash of its id, so its VMs stay
/// warm there. Every call has a hard deadline enforced from outside: a worker that misses it
/// is killed with SIGKILL and replaced, the call fails with `deadlineExceeded`, and the calls
/// other tenants had queued on that worker run again on the new one. As a `Service` it stops
/// its workers when the server stops.
public final class LuaWorkerPool: Service, Sendable {
    /// How the pool starts and bounds its workers.
    public struct Configuration: Sendable {
        /// The `thermostat` executable to run as `thermostat lua-worker`.
        public var executable: String
        /// Folders of the built-in plugins and tier policies the workers load.
        public var pluginsDirectory: String
        public var policiesDirectory: String
        /// Worker processes; tenants are spread over them.
        public var size: Int
        /// Hard wall-clock limit of one call, from the moment the worker starts on it.
        public var callDeadline: Duration
        /// Address-space cap of each worker (`RLIMIT_AS`).
        public var workerMemoryMegabytes: Int

        public init(
            executable: String, pluginsDirectory: String, policiesDirectory: String, size: Int, callDeadline: Duration,
            workerMemoryMegabytes: Int
        ) {
            self.executable = executable
            self.pluginsDirectory = pluginsDirectory
            self.policiesDirectory = policiesDirectory
            self.size = size
            self.callDeadline = callDeadline
            self.workerMemoryMegabytes = workerMemoryMegabytes
        }

        /// The running program when it is `thermostat`, else the `thermostat` beside it (tests
        /// run from a test bundle in the same build folder).
        public static func defaultExecutable() -> String {
            let running = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
            if running.lastPathComponent == "thermostat" { return running.path }
            return running.deletingLastPathComponent().appendingPathComponent("thermostat").path
        }

        /// CPU seconds a worker may burn on one request before the kernel stops it: a backstop
        /// well behind the wall-clock deadline.
        var cpuSecondsPerRequest: Int {
            max(2, Int(callDeadline.components.seconds) * 2 + 1)
        }

        var workerArguments: [String] {
            [
                "lua-worker", "--plugins", pluginsDirectory, "--policies", policiesDirectory, "--memory-mb",
                String(workerMemoryMegabytes), "--cpu-seconds", String(cpuSecondsPerRequest),
            ]
        }
    }

    private let configuration: Configuration
    private let slots: [WorkerSlot]
    private let logger: Logger
    /// Tries per call: a call whose worker died under another tenant's call runs again.
    static let attempts = 3

    public init(configuration: Configuration, logger: Logger, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) {
        self.configuration = configuration
        self.logger = logger
        slots = (0..<max(1, configuration.size)).map { index in
            WorkerSlot(index: index, configuration: configuration, group: group, logger: logger)
        }
    }

    public var callDeadline: Duration { configuration.callDeadline }

    /// Runs `request` on the tenant's worker and returns its answer. Throws `WorkerCallError`.
    public func call(_ request: WorkerRequest, tenant: UUID) async throws -> WorkerResponse {
        let frame = try WorkerFraming.frame({ try WorkerCodec.encode(request, into: &$0) }, allocator: ByteBufferAllocator())
        let slot = slots[Self.slotIndex(tenant, count: slots.count)]
        let (seconds, attoseconds) = configuration.callDeadline.components
        let deadline = TimeAmount.nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
        for _ in 0..<Self.attempts {
            let connection = try await slot.connection()
            do {
                var answer = try await connection.call(frame, deadline: deadline)
                return try WorkerCodec.decodeResponse(&answer)
            } catch WorkerCallError.retry {
                continue
            }
        }
        throw WorkerCallError.unavailable("the worker kept restarting")
    }

    /// A stable slot for a tenant: the same on every start, so its VMs warm up in one place.
    static func slotIndex(_ tenant: UUID, count: Int) -> Int {
        let high = withUnsafeBytes(of: tenant.uuid) { $0.loadUnaligned(as: UInt64.self) }
        return Int(high.littleEndian % UInt64(count))
    }

    /// Starts every worker now, instead of at its first call.
    public func start() async throws {
        for slot in slots { _ = try await slot.connection() }
    }

    public func run() async throws {
        try? await start()
        try? await gracefulShutdown()
        await shutdown()
    }

    /// Stops every worker.
    public func shutdown() async {
        for slot in slots { await slot.stop() }
    }

    /// The worker process ids, for operations and tests.
    public func workerProcessIDs() async -> [Int32] {
        var ids: [Int32] = []
        for slot in slots {
            if let pid = await slot.currentProcessID() { ids.append(pid) }
        }
        return ids
    }
}

/// One place in the pool: the current worker, started on demand and replaced when it dies.
actor WorkerSlot {
    private let index: Int
    private let configuration: LuaWorkerPool.Configuration
    private let group: any EventLoopGroup
    private let logger: Logger
    private var current: WorkerConnection?
    private var starting: Task<WorkerConnection, any Error>?
    private var isStopped = false

    init(index: Int, configuration: LuaWorkerPool.Configuration, group: any EventLoopGroup, logger: Logger) {
        self.index = index
        self.configuration = configuration
        self.group = group
        self.logger = logger
    }

    func currentProcessID() -> Int32? {
        current.flatMap { $0.isAlive ? $0.pid : nil }
    }

    /// The live worker, starting one when there is none.
    func connection() async throws -> WorkerConnection {
        if let current, current.isAlive { return current }
        guard !isStopped else { throw WorkerCallError.unavailable("the server is stopping") }
        if let starting { return try await starting.value }
        let task = Task { try await self.spawn() }
        starting = task
        defer { starting = nil }
        let connection = try await task.value
        current = connection
        return connection
    }

    private func spawn() async throws -> WorkerConnection {
        let slot = index
        let logger = logger
        let connection = try await WorkerConnection.spawn(
            executable: configuration.executable, arguments: configuration.workerArguments, group: group
        ) { pid, reason in
            Self.reap(pid)
            logger.warning("lua worker stopped", metadata: ["slot": "\(slot)", "pid": "\(pid)", "reason": "\(reason)"])
            Task { try? await self.replaceStoppedWorker() }
        }
        logger.debug("lua worker started", metadata: ["slot": "\(slot)", "pid": "\(connection.pid)"])
        return connection
    }

    /// Starts the next worker at once, so the next call does not wait for it.
    private func replaceStoppedWorker() async throws {
        guard !isStopped else { return }
        _ = try await connection()
    }

    /// Collects a killed worker's exit status off the event loop (`waitpid` blocks).
    private nonisolated static func reap(_ pid: pid_t) {
        Thread.detachNewThread {
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        }
    }

    func stop() {
        isStopped = true
        current?.terminate()
        current = nil
    }
}
