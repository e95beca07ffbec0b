import Foundation
import PlatformCore
import Synchronization
import Testing

@testable import ScriptWorkers

/// `TransformGathering` with a `send` the test controls: calls made while others are in flight
/// go together as the next worker call, each caller gets its own part's result (or the whole
/// call's error), and no call carries more samples than one request may.
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

    /// A worker stand-in: it records every call's parts, holds the first `held` calls until
    /// `release` is called, and answers each part with its samples, their setpoint raised by one.
    final class Worker: Sendable {
        private struct State {
            var calls: [[TransformPart]] = []
            var held: [CheckedContinuation<Void, Never>] = []
            var holding: Int
            var failing = false
        }

        private let state: Mutex<State>

        init(holding: Int) {
            state = Mutex(State(holding: holding))
        }

        var calls: [[TransformPart]] { state.withLock { $0.calls } }
        var heldCalls: Int { state.withLock { $0.held.count } }

        func failFromNowOn() {
            state.withLock { $0.failing = true }
        }

        func release() {
            let held = state.withLock { state in
                defer { state.held = [] }
                return state.held
            }
            held.forEach { $0.resume() }
        }

        func send(_ parts: [TransformPart]) async throws -> [TransformResult] {
            await withCheckedContinuation { continuation in
                let holds = state.withLock { state -> Bool in
                    state.calls.append(parts)
                    guard state.holding > 0 else { return false }
                    state.holding -= 1
                    state.held.append(continuation)
                    return true
                }
                if !holds { continuation.resume() }
            }
            if state.withLock({ $0.failing }) { throw WorkerCallError.deadlineExceeded(milliseconds: 250) }
            return parts.map { part in
                .transformed(part.samples.map { sample in
                    var sample = sample
                    sample.setpoint += 1
                    return sample
                })
            }
        }
    }

    /// Waits, without sleeping, until `condition` holds.
    static func until(_ condition: () -> Bool) async {
        while !condition() { await Task.yield() }
    }

    @Test func callsMadeWhileOthersRunGoTogetherAndEachGetsItsOwnResult() async throws {
        let gathering = TransformGathering(budgetMilliseconds: 1_000_000)
        let worker = Worker(holding: TransformGathering.maximumInFlight)
        let results = try await withThrowingTaskGroup(of: (Int, TransformResult).self) { group in
            for index in 0..<TransformGathering.maximumInFlight {
                group.addTask {
                    let part = TransformPart(now: Timestamp(seconds: 1), samples: Self.samples(1, setpoint: Double(index)))
                    return (index, try await gathering.run(part, key: Self.key, send: worker.send))
                }
            }
            await Self.until { worker.heldCalls == TransformGathering.maximumInFlight }
            for index in TransformGathering.maximumInFlight..<10 {
                group.addTask {
                    let part = TransformPart(now: Timestamp(seconds: 1), samples: Self.samples(1, setpoint: Double(index)))
                    return (index, try await gathering.run(part, key: Self.key, send: worker.send))
                }
            }
            await Self.until { gathering.waitingCalls(Self.key) == 10 - TransformGathering.maximumInFlight }
            worker.release()
            return try await group.reduce(into: [Int: TransformResult]()) { $0[$1.0] = $1.1 }
        }
        #expect(worker.calls.map(\.count) == Array(repeating: 1, count: TransformGathering.maximumInFlight) + [10 - TransformGathering.maximumInFlight])
        for index in 0..<10 {
            #expect(results[index] == .transformed(Self.samples(1, setpoint: Double(index) + 1)), "call \(index)")
        }
        #expect(gathering.waitingCalls(Self.key) == 0)
    }

    @Test func aCallThatFailsAsAWholeFailsEveryPartInIt() async throws {
        let gathering = TransformGathering(budgetMilliseconds: 1_000_000)
        let worker = Worker(holding: TransformGathering.maximumInFlight)
        let outcomes = await withTaskGroup(of: Result<TransformResult, any Error>.self) { group in
            for _ in 0..<TransformGathering.maximumInFlight {
                group.addTask {
                    let part = TransformPart(now: Timestamp(seconds: 1), samples: Self.samples(1, setpoint: 20))
                    do {
                        return .success(try await gathering.run(part, key: Self.key, send: worker.send))
                    } catch {
                        return .failure(error)
                    }
                }
            }
            await Self.until { worker.heldCalls == TransformGathering.maximumInFlight }
            for _ in 0..<4 {
                group.addTask {
                    let part = TransformPart(now: Timestamp(seconds: 1), samples: Self.samples(1, setpoint: 20))
                    do {
                        return .success(try await gathering.run(part, key: Self.key, send: worker.send))
                    } catch {
                        return .failure(error)
                    }
                }
            }
            await Self.until { gathering.waitingCalls(Self.key) == 4 }
            worker.failFromNowOn()
            worker.release()
            return await group.reduce(into: []) { $0.append($1) }
        }
        #expect(worker.calls.map(\.count) == Array(repeating: 1, count: TransformGathering.maximumInFlight) + [4])
        #expect(outcomes.count == TransformGathering.maximumInFlight + 4)
        for outcome in outcomes {
            guard case .failure(let error as WorkerCallError) = outcome else {
                Issue.record("expected the call's error, got \(outcome)")
                continue
            }
            #expect(error == .deadlineExceeded(milliseconds: 250))
        }
    }

    @Test func noGatheredCallCarriesMoreSamplesThanOneRequestMay() async throws {
        let gathering = TransformGathering(budgetMilliseconds: 1_000_000)
        let worker = Worker(holding: TransformGathering.maximumInFlight)
        let size = TransformGathering.maximumSamplesPerCall * 3 / 5
        try await withThrowingDiscardingTaskGroup { group in
            for _ in 0..<TransformGathering.maximumInFlight {
                group.addTask { _ = try await gathering.run(TransformPart(now: Timestamp(seconds: 1), samples: Self.samples(1, setpoint: 20)), key: Self.key, send: worker.send) }
            }
            await Self.until { worker.heldCalls == TransformGathering.maximumInFlight }
            for _ in 0..<3 {
                group.addTask { _ = try await gathering.run(TransformPart(now: Timestamp(seconds: 1), samples: Self.samples(size, setpoint: 20)), key: Self.key, send: worker.send) }
            }
            await Self.until { gathering.waitingCalls(Self.key) == 3 }
            worker.release()
        }
        let gathered = worker.calls.dropFirst(TransformGathering.maximumInFlight)
        #expect(gathered.map { $0.map(\.samples.count) } == [[size], [size], [size]])
    }
}
