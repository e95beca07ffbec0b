#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import Logging
import NIOCore
import PlatformCore
import ServiceLifecycle
import Synchronization

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
    private let gathering: TransformGathering
    /// Tries per call: a call whose worker died under another tenant's call runs again.
    static let attempts = 3

    public init(configuration: Configuration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
        slots = (0..<max(1, configuration.size)).map { index in
            WorkerSlot(index: index, configuration: configuration, logger: logger)
        }
        gathering = TransformGathering(budgetMilliseconds: Self.budgetMilliseconds(callDeadline: configuration.callDeadline))
    }

    public var callDeadline: Duration { configuration.callDeadline }

    /// Runs `request` on the tenant's worker and returns its answer. Throws `WorkerCallError`.
    public func call(_ request: WorkerRequest, tenant: UUID) async throws -> WorkerResponse {
        let frame = try WorkerFraming.frame({ try WorkerCodec.encode(request, into: &$0) }, allocator: ByteBufferAllocator())
        let slot = slots[Self.slotIndex(tenant, count: slots.count)]
        for _ in 0..<Self.attempts {
            let connection = try await slot.connection()
            do {
                var answer = try await connection.call(frame, deadline: configuration.callDeadline)
                return try WorkerCodec.decodeResponse(&answer)
            } catch WorkerCallError.retry {
                continue
            }
        }
        throw WorkerCallError.unavailable("the worker kept restarting")
    }

    /// Runs one ingest script over one request's samples. Concurrent requests of the same
    /// tenant and script share worker calls (`TransformGathering`), each judged on its own; the
    /// script's source travels only when the worker does not hold it. Throws `WorkerCallError`.
    public func transform(tenant: WorkerTenant, script: WorkerScript, source: String, now: Timestamp, samples: [TelemetrySample])
        async throws -> TransformResult
    {
        var script = script
        script.source = nil
        return try await gathering.run(TransformPart(now: now, samples: samples), key: .init(tenant: tenant, script: script)) {
            [script] parts in
            try await self.transform(tenant: tenant, script: script, source: source, parts: parts)
        }
    }

    /// One worker call of an ingest script over several requests' samples, one result per part.
    private func transform(tenant: WorkerTenant, script: WorkerScript, source: String, parts: [TransformPart]) async throws
        -> [TransformResult]
    {
        var call = TransformCall(tenant: tenant, script: script, budgetMilliseconds: callBudgetMilliseconds, parts: parts)
        for _ in 0..<2 {
            guard case .transform(let results) = try await self.call(.transform(call), tenant: tenant.id), results.count == parts.count
            else {
                throw WorkerCallError.workerDied("it answered another request")
            }
            guard zip(results, parts).allSatisfy({ $0.fits($1) }) else {
                throw WorkerCallError.workerDied("it answered for samples it was not given")
            }
            if results.contains(.needsSource) {
                call.script.source = source
                continue
            }
            return results
        }
        throw WorkerCallError.workerDied("it did not load the script")
    }

    /// One piece of an export in the tenant's worker, the source sent only when the worker asks.
    public func export(_ job: ExportJob, source: String) async throws -> WorkerJobResult {
        var job = job
        job.script.source = nil
        job.budgetMilliseconds = callBudgetMilliseconds
        for _ in 0..<2 {
            guard case .job(let result) = try await call(.job(.export(job)), tenant: job.tenant.id) else {
                throw WorkerCallError.workerDied("it answered another request")
            }
            if result == .needsSource {
                job.script.source = source
                continue
            }
            return result
        }
        throw WorkerCallError.workerDied("it did not load the script")
    }

    /// A tenant's alert rules over devices' samples in the tenant's worker, in one call; the
    /// scripts' sources (`sources`, one per rule) are sent only for the rules the worker asks for.
    public func evaluate(_ job: EvaluateJob, sources: [String]) async throws -> WorkerJobResult {
        var job = job
        for index in job.rules.indices { job.rules[index].script.source = nil }
        job.budgetMilliseconds = callBudgetMilliseconds
        for _ in 0..<2 {
            guard case .job(let result) = try await call(.evaluate(job), tenant: job.tenant.id) else {
                throw WorkerCallError.workerDied("it answered another request")
            }
            if case .needsSources(let missing) = result {
                for index in missing where job.rules.indices.contains(index) && sources.indices.contains(index) {
                    job.rules[index].script.source = sources[index]
                }
                continue
            }
            return result
        }
        throw WorkerCallError.workerDied("it did not load the scripts")
    }

    /// The part of the hard deadline a worker gives a call before failing it itself, so the
    /// kill stays the last resort: half.
    var callBudgetMilliseconds: Int { Self.budgetMilliseconds(callDeadline: configuration.callDeadline) }

    private static func budgetMilliseconds(callDeadline: Duration) -> Int {
        let (seconds, attoseconds) = callDeadline.components
        return max(1, Int(seconds * 1000 + attoseconds / 1_000_000_000_000_000) / 2)
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
        for slot in slots { slot.stop() }
    }

    /// The worker process ids, for operations and tests.
    public func workerProcessIDs() async -> [Int32] {
        var ids: [Int32] = []
        for slot in slots {
            if let pid = slot.currentProcessID() { ids.append(pid) }
        }
        return ids
    }
}

/// One place in the pool: the current worker, started on demand and replaced when it dies.
/// Finding the live worker takes a lock, not an actor hop: it happens on every call.
final class WorkerSlot: Sendable {
    private struct State {
        var current: WorkerConnection?
        var starting: Task<WorkerConnection, any Error>?
        var isStopped = false
    }

    private let index: Int
    private let configuration: LuaWorkerPool.Configuration
    private let logger: Logger
    private let state = Mutex(State())

    init(index: Int, configuration: LuaWorkerPool.Configuration, logger: Logger) {
        self.index = index
        self.configuration = configuration
        self.logger = logger
    }

    func currentProcessID() -> Int32? {
        state.withLock { $0.current.flatMap { $0.isAlive ? $0.pid : nil } }
    }

    /// The live worker, starting one when there is none (one start at a time).
    func connection() async throws -> WorkerConnection {
        let (live, starting): (WorkerConnection?, Task<WorkerConnection, any Error>?) = try state.withLock { state in
            if let current = state.current, current.isAlive { return (current, nil) }
            guard !state.isStopped else { throw WorkerCallError.unavailable("the server is stopping") }
            if let starting = state.starting { return (nil, starting) }
            let task = Task { try await self.start() }
            state.starting = task
            return (nil, task)
        }
        if let live { return live }
        return try await starting!.value
    }

    private func start() async throws -> WorkerConnection {
        do {
            let connection = try await WorkerConnection.spawn(
                executable: configuration.executable, arguments: configuration.workerArguments
            ) { pid, reason in
                self.workerStopped(pid: pid, reason: reason)
            }
            let isStopped = state.withLock { state in
                state.starting = nil
                state.current = connection
                return state.isStopped
            }
            if isStopped { connection.terminate() }
            logger.debug("lua worker started", metadata: ["slot": "\(index)", "pid": "\(connection.pid)"])
            return connection
        } catch {
            state.withLock { $0.starting = nil }
            throw error
        }
    }

    /// Collects the worker's exit status and, unless the pool is stopping, starts the next one
    /// at once, so the next call does not wait for it.
    private func workerStopped(pid: pid_t, reason: String) {
        Self.reap(pid)
        let (isStopped, wasServing) = state.withLock { ($0.isStopped, $0.current?.pid == pid) }
        guard !isStopped else { return }
        logger.warning("lua worker stopped", metadata: ["slot": "\(index)", "pid": "\(pid)", "reason": "\(reason)"])
        // One that died while starting is left to the next call: a setup that breaks every
        // worker (say, one that cannot drop root) must not start them in a loop.
        if wasServing { Task { _ = try? await self.connection() } }
    }

    /// Collects a killed worker's exit status on a thread of its own (`waitpid` blocks).
    private static func reap(_ pid: pid_t) {
        Thread.detachNewThread {
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        }
    }

    func stop() {
        let current = state.withLock { state in
            state.isStopped = true
            defer { state.current = nil }
            return state.current
        }
        current?.terminate()
    }
}
