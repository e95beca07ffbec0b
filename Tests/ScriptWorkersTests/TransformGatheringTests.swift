import Foundation
import PlatformCore
import Synchronization
import Testing

@testable import ScriptWorkers

/// `TransformGathering` with a `send` the test controls: calls made while others are in flight
/// go together as the next worker call, each caller gets its own part's result, a call whose
/// worker died goes again part by part, and the next call's size follows the script's speed.
@Suite(.timeLimit(.minutes(1)))
struct TransformGatheringTests {
    static let key = TransformGathering.Key(
        tenant: WorkerTenant(id: UUID(), slug: "acme", tier: "free", memoryBytes: 1 << 24),
        script: WorkerScript(id: UUID(), version: 1, name: "t", configJSON: "{}", source: nil))

    static func samples(_ count: Int, setpoint: Double) -> [TelemetrySample] {
        (0..<count).map { index in
            TelemetrySample(
                deviceSerial: "TH-\(index)", timestamp: Timestamp(seconds: 1_800_000_000), mode: .heat, tempInside: 20,
                tempOutside: nil, setpoint: setpoint, hysteresis: 0.5, output: .heatOn)
        }
    }

    static func part(_ count: Int = 1, setpoint: Double = 20) -> TransformPart {
        TransformPart(now: Timestamp(seconds: 1), samples: samples(count, setpoint: setpoint))
    }

    /// A worker stand-in: it records every call's parts, holds the first `holding` calls until
    /// `release`, fails a call as a killed worker would when it carries a sample whose setpoint
    /// is `poison` (and every call from the `failing.from`th on with `failing.error`), and
    /// otherwise answers each part with its samples, their setpoint raised by one.
    final class Worker: Sendable {
        private struct State {
            var calls: [[TransformPart]] = []
            var held: [CheckedContinuation<Void, Never>] = []
            var holding: Int
            var failing: (from: Int, error: WorkerCallError)?
        }

        static let poison = 99.0
        private let state: Mutex<State>

        init(holding: Int = TransformGathering.maximumInFlight) {
            state = Mutex(State(holding: holding))
        }

        var calls: [[TransformPart]] { state.withLock { $0.calls } }
        var heldCalls: Int { state.withLock { $0.held.count } }

        func fail(fromCall index: Int, with error: WorkerCallError) {
            state.withLock { $0.failing = (index, error) }
        }

        func release() {
            let held = state.withLock { state in
                defer { state.held = [] }
                return state.held
            }
            held.forEach { $0.resume() }
        }

        func send(_ parts: [TransformPart]) async throws -> [TransformResult] {
            let index = state.withLock { state in
                state.calls.append(parts)
                return state.calls.count - 1
            }
            await withCheckedContinuation { continuation in
                let holds = state.withLock { state -> Bool in
                    guard state.holding > 0 else { return false }
                    state.holding -= 1
                    state.held.append(continuation)
                    return true
                }
                if !holds { continuation.resume() }
            }
            if let failing = state.withLock({ $0.failing }), index >= failing.from { throw failing.error }
            if parts.contains(where: { $0.samples.contains { $0.setpoint == Self.poison } }) {
                throw WorkerCallError.deadlineExceeded(milliseconds: 250)
            }
            return parts.map { part in
                .transformed(part.samples.map { sample in
                    var sample = sample
                    sample.setpoint += 1
                    return sample
                })
            }
        }
    }

    /// Waits for `condition`, sleeping between looks; after ten seconds the test fails (and the
    /// held calls are let go, so that its task group can end).
    static func until(_ what: String, releasing worker: Worker, _ condition: () -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(10)
        while !condition() {
            guard ContinuousClock.now < deadline else {
                Issue.record("timed out waiting for \(what)")
                worker.release()
                throw CancellationError()
            }
            try await Task.sleep(for: .milliseconds(1))
        }
    }

    /// Runs `first` calls until the worker holds them, then `then` more until they wait, then
    /// lets the worker go; answers every call's outcome by its index.
    static func burst(
        _ gathering: TransformGathering, _ worker: Worker, first: [TransformPart], then: [TransformPart],
        beforeRelease: @Sendable () async throws -> Void = {}
    ) async throws -> [Int: Result<TransformResult, any Error>] {
        try await withThrowingTaskGroup(of: (Int, Result<TransformResult, any Error>).self) { group in
            func start(_ index: Int, _ part: TransformPart) {
                group.addTask {
                    do {
                        return (index, .success(try await gathering.run(part, key: Self.key, send: worker.send)))
                    } catch {
                        return (index, .failure(error))
                    }
                }
            }
            for (index, part) in first.enumerated() { start(index, part) }
            try await until("the first calls held", releasing: worker) { worker.heldCalls == first.count }
            for (index, part) in then.enumerated() { start(first.count + index, part) }
            try await until("the next calls waiting", releasing: worker) { gathering.calls(Self.key)?.waiting == then.count }
            try await beforeRelease()
            worker.release()
            return try await group.reduce(into: [:]) { $0[$1.0] = $1.1 }
        }
    }

    @Test func callsMadeWhileOthersRunGoTogetherAndEachGetsItsOwnResult() async throws {
        let gathering = TransformGathering(budgetMilliseconds: 1_000_000)
        let worker = Worker()
        let inFlight = TransformGathering.maximumInFlight
        let parts = (0..<10).map { Self.part(setpoint: Double($0)) }
        let results = try await Self.burst(gathering, worker, first: Array(parts[..<inFlight]), then: Array(parts[inFlight...]))
        #expect(worker.calls.map(\.count) == Array(repeating: 1, count: inFlight) + [10 - inFlight])
        for index in 0..<10 {
            #expect(try results[index]?.get() == .transformed(Self.samples(1, setpoint: Double(index) + 1)), "call \(index)")
        }
        #expect(gathering.calls(Self.key) == nil, "nothing is left in flight or waiting")
    }

    @Test func aCallThatFailsAsAWholeFailsEveryPartInIt() async throws {
        let gathering = TransformGathering(budgetMilliseconds: 1_000_000)
        let worker = Worker()
        let inFlight = TransformGathering.maximumInFlight
        worker.fail(fromCall: inFlight, with: .unavailable("no worker"))
        let outcomes = try await Self.burst(
            gathering, worker, first: (0..<inFlight).map { _ in Self.part() }, then: (0..<4).map { _ in Self.part() })
        #expect(worker.calls.map(\.count) == Array(repeating: 1, count: inFlight) + [4])
        #expect(outcomes.count == inFlight + 4)
        for index in 0..<inFlight {
            #expect(try outcomes[index]?.get() == .transformed(Self.samples(1, setpoint: 21)))
        }
        for outcome in outcomes.filter({ $0.key >= inFlight }).values {
            guard case .failure(let error as WorkerCallError) = outcome else {
                Issue.record("expected the call's error, got \(outcome)")
                continue
            }
            #expect(error == .unavailable("no worker"))
        }
        #expect(gathering.calls(Self.key) == nil)
    }

    @Test func whenAGatheredCallKillsItsWorkerEachPartGoesAgainAloneAndOnlyTheCulpritFails() async throws {
        let gathering = TransformGathering(budgetMilliseconds: 1_000_000)
        let worker = Worker()
        let inFlight = TransformGathering.maximumInFlight
        let riders = [Self.part(setpoint: 1), Self.part(setpoint: Worker.poison), Self.part(setpoint: 3), Self.part(setpoint: 4)]
        let outcomes = try await Self.burst(gathering, worker, first: (0..<inFlight).map { _ in Self.part() }, then: riders)
        let calls = worker.calls.map(\.count)
        #expect(calls.prefix(inFlight + 1) == ArraySlice(Array(repeating: 1, count: inFlight) + [4]))
        #expect(calls.dropFirst(inFlight + 1).sorted() == [1, 1, 1, 1], "each part of the killed call went again alone")
        for (offset, rider) in riders.enumerated() {
            let outcome = try #require(outcomes[inFlight + offset])
            if rider.samples[0].setpoint == Worker.poison {
                guard case .failure(let error as WorkerCallError) = outcome else {
                    Issue.record("the culprit must fail, got \(outcome)")
                    continue
                }
                #expect(error == .deadlineExceeded(milliseconds: 250))
            } else {
                #expect(try outcome.get() == .transformed(Self.samples(1, setpoint: rider.samples[0].setpoint + 1)))
            }
        }
        #expect(gathering.calls(Self.key) == nil)
    }

    @Test func noGatheredCallCarriesMoreSamplesThanOneRequestMay() async throws {
        let gathering = TransformGathering(budgetMilliseconds: 1_000_000)
        let worker = Worker()
        let size = TransformGathering.maximumSamplesPerCall * 3 / 5
        _ = try await Self.burst(
            gathering, worker, first: (0..<TransformGathering.maximumInFlight).map { _ in Self.part() },
            then: (0..<3).map { _ in Self.part(size) })
        let gathered = worker.calls.dropFirst(TransformGathering.maximumInFlight)
        #expect(gathered.map { $0.map(\.samples.count) } == [[size], [size], [size]])
    }

    @Test func aSlowScriptIsNotGatheredPastItsBudget() async throws {
        // A tenth of a 100 ms budget is 10 ms per call; the held calls take at least 30 ms for
        // one sample each, so the call after them carries one request only.
        let gathering = TransformGathering(budgetMilliseconds: 100)
        let worker = Worker()
        _ = try await Self.burst(
            gathering, worker, first: (0..<TransformGathering.maximumInFlight).map { _ in Self.part() },
            then: (0..<4).map { _ in Self.part() }, beforeRelease: { try await Task.sleep(for: .milliseconds(30)) })
        let calls = worker.calls.map(\.count)
        #expect(calls[TransformGathering.maximumInFlight] == 1, "calls: \(calls)")
        #expect(calls.reduce(0, +) == TransformGathering.maximumInFlight + 4)
    }
}
