import Foundation
import Logging
import PlatformCore
import ScriptWorkers
import Scripting
import Testing

/// The worker pool against real `thermostat lua-worker` processes (the debug build beside the
/// test bundle): round trips, hard deadlines enforced by SIGKILL, other tenants' calls surviving
/// a killed worker, and the worker's confinement.
@Suite(.timeLimit(.minutes(2)))
struct LuaWorkerPoolTests {
    static let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    /// Workers run the release binary when `make test` names it (`THERMOSTAT_BIN`): the tests'
    /// budgets are sized for it, and a debug worker starved by the whole suite on a slow machine
    /// ran a 300-sample call past its 100 ms.
    static func pool(size: Int = 1, deadline: Duration = .seconds(1)) -> LuaWorkerPool {
        var logger = Logger(label: "worker-tests")
        logger.logLevel = .critical
        return LuaWorkerPool(
            configuration: LuaWorkerPool.Configuration(
                executable: ProcessInfo.processInfo.environment["THERMOSTAT_BIN"] ?? LuaWorkerPool.Configuration.defaultExecutable(),
                pluginsDirectory: repositoryRoot.appendingPathComponent("Plugins").path,
                policiesDirectory: repositoryRoot.appendingPathComponent("Policies").path, size: size, callDeadline: deadline,
                workerMemoryMegabytes: 1024),
            logger: logger)
    }

    static func tenant(memoryMegabytes: Int = 16) -> WorkerTenant {
        WorkerTenant(id: UUID(), slug: "acme", tier: "free", memoryBytes: memoryMegabytes * 1024 * 1024)
    }

    static func sample(_ serial: String = "TH-1", inside: Double = 20) -> TelemetrySample {
        TelemetrySample(
            deviceSerial: serial, timestamp: Timestamp(seconds: 1_800_000_000), mode: .heat, tempInside: inside, tempOutside: nil,
            setpoint: 21, hysteresis: 0.5, output: .heatOn)
    }

    static func transform(
        _ pool: LuaWorkerPool, tenant: WorkerTenant, source: String, samples: [TelemetrySample], version: Int = 1,
        scriptID: UUID = UUID()
    ) async throws -> TransformResult {
        let script = WorkerScript(id: scriptID, version: version, name: "test", configJSON: "{}", source: nil)
        return try await pool.transform(tenant: tenant, script: script, source: source, now: Timestamp(seconds: 1_800_000_000), samples: samples)
    }

    /// A script that stays inside the sandbox's own limits for longer than the test's deadline:
    /// each instruction copies megabytes, so the instruction budget is far away, and the
    /// sandbox's 250 ms wall clock comes after the pool's 100 ms deadline.
    static let slowScript = """
        return { transform = function(sample)
            local chunk = ("x"):rep(1000000):rep(4)
            while true do local copy = chunk .. chunk end
        end }
        """

    /// Starts `slowScript` for a tenant of its own on the pool's (only) worker, and gives it a
    /// moment to get there, so calls made next queue behind it.
    static func occupyTheWorker(_ pool: LuaWorkerPool) async throws -> Task<TransformResult, any Error> {
        let hostile = Self.tenant(memoryMegabytes: 64)
        let call = Task { try await Self.transform(pool, tenant: hostile, source: Self.slowScript, samples: [Self.sample()]) }
        try await Task.sleep(for: .milliseconds(20))
        return call
    }

    @Test func transformsABatchInOneRoundTripAndAsksForTheSourceOnlyOnce() async throws {
        let pool = Self.pool()
        defer { Task { await pool.shutdown() } }
        let tenant = Self.tenant()
        let source = "return { transform = function(s) s.temp_inside_c = s.temp_inside_c + 1; return s end }"
        let samples = (0..<100).map { Self.sample("TH-\($0)", inside: Double($0)) }
        let scriptID = UUID()
        let first = try await Self.transform(pool, tenant: tenant, source: source, samples: samples, scriptID: scriptID)
        guard case .transformed(let output) = first else {
            Issue.record("expected a transformed batch, got \(first)")
            return
        }
        #expect(output.map(\.tempInside) == (0..<100).map { Double($0) + 1 })
        #expect(output.map(\.deviceSerial) == samples.map(\.deviceSerial))
        let call = TransformCall(
            tenant: tenant, script: WorkerScript(id: scriptID, version: 1, name: "test", configJSON: "{}", source: nil),
            now: Timestamp(seconds: 1_800_000_000), budgetMilliseconds: 1000, samples: [Self.sample()])
        #expect(try await pool.call(.transform(call), tenant: tenant.id) == .transform([.transformed([Self.sample(inside: 21)])]))
        await pool.shutdown()
    }

    @Test func concurrentRequestsShareCallsAndKeepTheirOwnResults() async throws {
        let pool = Self.pool()
        let tenant = Self.tenant()
        let scriptID = UUID()
        let source = "return { transform = function(s) if s.temp_inside_c > 50 then return nil, 'too hot' end s.setpoint_c = 20 return s end }"
        let results = try await withThrowingTaskGroup(of: (Int, TransformResult).self) { group in
            for index in 0..<40 {
                group.addTask {
                    let samples = [Self.sample("TH-\(index)", inside: 20), Self.sample("TH-\(index)", inside: index % 2 == 0 ? 21 : 99)]
                    return (index, try await Self.transform(pool, tenant: tenant, source: source, samples: samples, scriptID: scriptID))
                }
            }
            return try await group.reduce(into: [Int: TransformResult]()) { $0[$1.0] = $1.1 }
        }
        for index in 0..<40 {
            if index % 2 == 0 {
                guard case .transformed(let output) = results[index] else {
                    Issue.record("request \(index): \(String(describing: results[index]))")
                    continue
                }
                #expect(output.map(\.deviceSerial) == ["TH-\(index)", "TH-\(index)"])
                #expect(output.map(\.setpoint) == [20, 20])
            } else {
                #expect(results[index] == .rejected(index: 1, reason: "too hot"), "request \(index)")
            }
        }
        await pool.shutdown()
    }

    @Test func rejectionsAndScriptErrorsComeBackWithTheirSample() async throws {
        let pool = Self.pool()
        let tenant = Self.tenant()
        let samples = [Self.sample(inside: 20), Self.sample(inside: 99)]
        let rejecting = "return { transform = function(s) if s.temp_inside_c > 50 then return nil, 'too hot' end return s end }"
        #expect(try await Self.transform(pool, tenant: tenant, source: rejecting, samples: samples) == .rejected(index: 1, reason: "too hot"))
        // Each device's stretch of a batch is one run: the index is still the batch's.
        let stretches = [
            Self.sample("TH-1"), Self.sample("TH-1"), Self.sample("TH-2"), Self.sample("TH-2", inside: 99), Self.sample("TH-2"),
        ]
        #expect(try await Self.transform(pool, tenant: tenant, source: rejecting, samples: stretches) == .rejected(index: 3, reason: "too hot"))
        let failing = "return { transform = function(s) if s.temp_inside_c > 50 then error('boom') end return s end }"
        guard case .failed(let index, let error) = try await Self.transform(pool, tenant: tenant, source: failing, samples: samples) else {
            Issue.record("expected a failure")
            return
        }
        #expect(index == 1)
        #expect(error.contains("boom"))
        guard case .failed(3, _) = try await Self.transform(pool, tenant: tenant, source: failing, samples: stretches) else {
            Issue.record("a failure in the second device's stretch names its sample")
            return
        }
        let broken = "return { transform = "
        guard case .failed(nil, _) = try await Self.transform(pool, tenant: tenant, source: broken, samples: samples) else {
            Issue.record("a script that does not compile fails as a whole")
            return
        }
        await pool.shutdown()
    }

    @Test func aBatchPastTheWorkersBudgetFailsAtTheSampleThatWouldStartLate() async throws {
        // The worker gives a call half of the pool's deadline (1 s here) and fails it itself
        // before the sample that would start after that; the kill at 2 s stays the last resort.
        // Each sample takes 10 ms of CPU, so even a worker starved by the whole suite running
        // at once stays far inside one call's own 250 ms.
        let pool = Self.pool(deadline: .seconds(2))
        let slow = """
            return { transform = function(s)
              local started = os.clock()
              while os.clock() - started < 0.01 do local _ = ('x'):rep(100000) end
              return s
            end }
            """
        let samples = (0..<300).map { Self.sample($0 < 150 ? "TH-1" : "TH-2") }
        let result = try await Self.transform(pool, tenant: Self.tenant(), source: slow, samples: samples)
        guard case .failed(let index?, let error) = result else {
            Issue.record("expected the batch to fail on its budget, got \(result)")
            return
        }
        #expect((1..<300).contains(index))
        #expect(error.contains("the batch took longer than 1000 ms"), "\(error)")
        await pool.shutdown()
    }

    @Test func aCallPastTheDeadlineKillsItsWorkerAndOthersRunOnTheNextOne() async throws {
        // Long enough that a busy machine (the whole suite runs at once on two cores) still
        // starts a replacement worker and answers the queued call inside it; short enough that
        // the kill comes before the script's own VM notices (its hook sees the 8 MB copies rarely).
        let pool = Self.pool(size: 1, deadline: .milliseconds(250))
        let other = Self.tenant()
        let plain = "return { transform = function(s) return s end }"
        _ = try await Self.transform(pool, tenant: other, source: plain, samples: [Self.sample()])
        let firstWorker = try #require(await pool.workerProcessIDs().first)

        let hostileCall = try await Self.occupyTheWorker(pool)
        // Queued behind the hostile call on the same (only) worker: it must still get its answer.
        let otherResult = try await Self.transform(pool, tenant: other, source: plain, samples: [Self.sample("TH-2")])
        #expect(otherResult == .transformed([Self.sample("TH-2")]))
        switch await hostileCall.result {
        case .failure(let error as WorkerCallError):
            #expect(error == .deadlineExceeded(milliseconds: 250))
        case let other:
            Issue.record("expected the deadline, got \(other)")
        }
        // A call makes sure the replacement is up (it is started eagerly, but asynchronously).
        _ = try await Self.transform(pool, tenant: other, source: plain, samples: [Self.sample("TH-3")])
        let secondWorker = try #require(await pool.workerProcessIDs().first)
        #expect(secondWorker != firstWorker)
        #expect(kill(firstWorker, 0) != 0, "the killed worker is gone")
        await pool.shutdown()
    }

    @Test func aCallLargerThanThePipeWaitsBehindABusyWorkerAndComesThrough() async throws {
        // A second's deadline leaves the large call half of it however loaded the machine; the
        // slow script holds the worker until the sandbox or the deadline stops it.
        let pool = Self.pool(size: 1, deadline: .seconds(1))
        let other = Self.tenant()
        let plain = "return { transform = function(s) s.setpoint_c = 19 return s end }"
        _ = try await Self.transform(pool, tenant: other, source: plain, samples: [Self.sample()])
        let slowCall = try await Self.occupyTheWorker(pool)
        // About 80 KB: more than a pipe holds while its worker does not read, so the rest of the
        // frame waits in the connection and is written as a worker reads again.
        let samples = (0..<1500).map { Self.sample("TH-\($0)", inside: Double($0 % 40)) }
        let result = try await Self.transform(pool, tenant: other, source: plain, samples: samples)
        guard case .transformed(let output) = result else {
            Issue.record("expected the large batch transformed, got \(String(describing: result).prefix(300))")
            return
        }
        #expect(output.map(\.deviceSerial) == samples.map(\.deviceSerial))
        #expect(output.allSatisfy { $0.setpoint == 19 })
        let slow = await slowCall.result
        if case .success(.transformed) = slow { Issue.record("the slow script cannot succeed") }
        await pool.shutdown()
    }

    @Test func aWorkerKilledFromOutsideIsReplaced() async throws {
        let pool = Self.pool()
        let tenant = Self.tenant()
        let plain = "return { transform = function(s) return s end }"
        _ = try await Self.transform(pool, tenant: tenant, source: plain, samples: [Self.sample()])
        let worker = try #require(await pool.workerProcessIDs().first)
        kill(worker, SIGKILL)
        var result = try? await Self.transform(pool, tenant: tenant, source: plain, samples: [Self.sample()])
        if result == nil {
            // The call raced the kill (it was sent before the pipe closed); the next one runs on
            // the new worker.
            result = try await Self.transform(pool, tenant: tenant, source: plain, samples: [Self.sample()])
        }
        #expect(result == .transformed([Self.sample()]))
        #expect(try #require(await pool.workerProcessIDs().first) != worker)
        await pool.shutdown()
    }

    @Test func aSampleThatHangsTheWorkerFailsOnlyItsOwnRequestAmongTheTenantsGatheredOnes() async throws {
        // Two large requests of one tenant keep its calls in flight, so the single-sample
        // requests made meanwhile go together in the next call; one of them hangs the worker.
        // The kill must fail only that request: the others go again and come back transformed.
        // The deadline comes before the sandbox's own 250 ms wall clock, so the worker is killed.
        let pool = Self.pool(size: 1, deadline: .milliseconds(200))
        let tenant = Self.tenant(memoryMegabytes: 64)
        let scriptID = UUID()
        let source = """
            return { transform = function(s)
                if s.setpoint_c == 99 then
                    local chunk = ("x"):rep(1000000):rep(4)
                    while true do local copy = chunk .. chunk end
                end
                s.setpoint_c = s.setpoint_c + 1
                return s
            end }
            """
        func request(_ index: Int, samples: [TelemetrySample]) async -> (Int, Result<TransformResult, any Error>) {
            do {
                return (index, .success(try await Self.transform(pool, tenant: tenant, source: source, samples: samples, scriptID: scriptID)))
            } catch {
                return (index, .failure(error))
            }
        }
        func single(_ index: Int, setpoint: Double) -> [TelemetrySample] {
            var sample = Self.sample("TH-\(index)")
            sample.setpoint = setpoint
            return [sample]
        }
        _ = await request(0, samples: single(0, setpoint: 20))
        let large = (0..<300).map { Self.sample("TH-L\($0)") }
        let poisoned = 4
        let outcomes = await withTaskGroup(of: (Int, Result<TransformResult, any Error>).self) { group in
            group.addTask { await request(-1, samples: large) }
            group.addTask { await request(-2, samples: large) }
            try? await Task.sleep(for: .milliseconds(2))
            for index in 1...6 {
                group.addTask { await request(index, samples: single(index, setpoint: index == poisoned ? 99 : 20)) }
            }
            return await group.reduce(into: [Int: Result<TransformResult, any Error>]()) { $0[$1.0] = $1.1 }
        }
        for index in 1...6 {
            let outcome = try #require(outcomes[index])
            if index == poisoned {
                guard case .failure(let error as WorkerCallError) = outcome else {
                    Issue.record("the request that hangs the worker must fail, got \(outcome)")
                    continue
                }
                #expect(error == .deadlineExceeded(milliseconds: 200))
            } else {
                #expect(try outcome.get() == .transformed(single(index, setpoint: 21)), "request \(index)")
            }
        }
        for index in [-1, -2] {
            guard case .success(.transformed(let output)) = outcomes[index] else {
                Issue.record("large request \(index): \(String(describing: outcomes[index]).prefix(200))")
                continue
            }
            #expect(output.allSatisfy { $0.setpoint == 22 })
        }
        await pool.shutdown()
    }

    @Test func workersHoldOnlyTheirPipesAndRunConfined() async throws {
        let pool = Self.pool()
        try await pool.start()
        let worker = try #require(await pool.workerProcessIDs().first)
        // Beyond stdin, stdout and stderr only the Swift runtime's own (an epoll or event fd):
        // no file, socket or other pipe of the server.
        for descriptor in try FileManager.default.contentsOfDirectory(atPath: "/proc/\(worker)/fd").compactMap(Int.init) where descriptor > 2 {
            let target = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(worker)/fd/\(descriptor)")
            #expect(target.hasPrefix("anon_inode:"), "descriptor \(descriptor) is \(target)")
        }
        for descriptor in 0...1 {
            let target = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(worker)/fd/\(descriptor)")
            #expect(target.hasPrefix("pipe:"), "descriptor \(descriptor) is \(target)")
        }
        let limits = try String(contentsOfFile: "/proc/\(worker)/limits", encoding: .utf8)
        let addressSpace = try #require(limits.split(separator: "\n").first { $0.hasPrefix("Max address space") })
        #expect(addressSpace.contains("\(1024 * 1024 * 1024)"))
        let fileSize = try #require(limits.split(separator: "\n").first { $0.hasPrefix("Max file size") })
        #expect(fileSize.split(separator: " ", omittingEmptySubsequences: true).dropFirst(3).first == "0")
        let environment = try Data(contentsOf: URL(fileURLWithPath: "/proc/\(worker)/environ"))
        #expect(environment.isEmpty, "no setting (database URL, secret key) reaches a worker")
        if geteuid() == 0 {
            // Every live thread (the main thread ends in `dispatch_main` and stays a zombie).
            for thread in try FileManager.default.contentsOfDirectory(atPath: "/proc/\(worker)/task") {
                let status = try String(contentsOfFile: "/proc/\(worker)/task/\(thread)/status", encoding: .utf8).split(separator: "\n")
                if status.contains(where: { $0.hasPrefix("State:") && $0.contains("Z") }) { continue }
                let uid = try #require(status.first { $0.hasPrefix("Uid:") })
                #expect(uid.split(whereSeparator: \.isWhitespace).dropFirst().allSatisfy { $0 == "65534" }, "root is dropped: \(uid)")
            }
        }
        await pool.shutdown()
    }

    @Test func jobsValidateDryRunAndReadTierLimits() async throws {
        let pool = Self.pool()
        let tenant = Self.tenant()
        let valid = try await pool.call(
            .job(.validate(source: "return { transform = function(s) return s end }", name: "ok", hook: .ingest, memoryBytes: tenant.memoryBytes)),
            tenant: tenant.id)
        #expect(valid == .job(.valid))
        guard case .job(.invalid(let error)) = try await pool.call(
            .job(.validate(source: "return {\n transform = ", name: "bad", hook: .ingest, memoryBytes: tenant.memoryBytes)),
            tenant: tenant.id)
        else {
            Issue.record("a syntax error is invalid")
            return
        }
        #expect(error.line == 2)
        let dryRun = DryRunJob(
            source: "return { transform = function(s) print('seen', s.device_id) return s end }", name: "t", hook: .ingest,
            configJSON: "{}", tenant: tenant, now: Timestamp(seconds: 1_800_000_000), samples: [Self.sample()])
        guard case .job(.report(let report)) = try await pool.call(.job(.dryRun(dryRun)), tenant: tenant.id) else {
            Issue.record("a dry-run reports")
            return
        }
        #expect(report.errors.isEmpty)
        #expect(report.logs == ["seen\tTH-1"])
        guard case .job(.limits(let limits)) = try await pool.call(.job(.tierLimits(tier: "free", tenant: tenant, source: nil)), tenant: tenant.id) else {
            Issue.record("the free tier has limits")
            return
        }
        #expect(limits.scriptMemoryMegabytes == 8)
        await pool.shutdown()
    }
}
