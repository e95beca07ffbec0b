import Foundation
import PlatformCore
import Synchronization

/// Gathers concurrent transform calls of one script into one worker call of several parts, as
/// a group commit gathers writes. Up to `maximumInFlight` calls of a script go at once; calls of
/// the same tenant, script and version made while those run wait, and go together as the next
/// call when one returns (the first of them sends it). So a burst of single-sample requests costs
/// a few round trips (system calls and cross-CPU wake-ups, most of a trivial transform's cost)
/// instead of one each.
///
/// The worker judges each part on its own: a rejection or a script error stays in its request.
/// When a gathered call's worker dies (killed at the deadline, or crashed), nobody knows which
/// part did it, so every part goes again in a call of its own: only the culprit fails, as when
/// the requests went one by one. How many samples go in the next call follows the script's
/// speed over the samples the call before really ran, and a call in which a part failed (perhaps
/// on the worker's budget) is followed by one request alone, so that a slow script, which fits
/// the budget one request at a time, is not gathered past it.
final class TransformGathering: Sendable {
    /// The calls that may share a worker call: the same tenant (as the worker sees it) and the
    /// same script version and config.
    struct Key: Hashable, Sendable {
        var tenant: WorkerTenant
        var script: WorkerScript
    }

    /// A call waiting for the one in flight to return.
    struct Waiting: Sendable {
        var part: TransformPart
        var turn: CheckedContinuation<Turn, Never>
    }

    /// What a waiting call is told when the call in flight returns: its own result, that it
    /// sends the next call (with the calls that go with it), or that the call it went in died
    /// and it goes again alone.
    enum Turn: Sendable {
        case answered(Result<TransformResult, any Error>)
        case sends([Waiting])
        case alone
    }

    /// A key's calls in flight and the calls waiting for one of them to return; a key is
    /// present while one of its calls is in flight.
    private struct Group {
        var inFlight = 1
        var waiting: [Waiting] = []
    }

    private let groups = Mutex<[Key: Group]>([:])
    /// Calls of one key in flight at once: while the worker runs one, the answer of the other
    /// travels back and the next gathered call is on its way, so the worker does not wait for it.
    static let maximumInFlight = 2
    /// The time a gathered call is expected to take at most: a tenth of the worker's budget.
    private let expectedSecondsPerCall: Double

    /// A call never carries more samples than one request may (the worker's per-call work stays
    /// that of the largest request).
    static let maximumSamplesPerCall = TelemetryRules.maximumSamplesPerRequest

    init(budgetMilliseconds: Int) {
        expectedSecondsPerCall = Double(budgetMilliseconds) / 1000 / 10
    }

    /// Runs `part` through `send`, alone or with the parts of concurrent calls of the same key.
    /// `send` gets the parts in order and answers one result per part.
    func run(
        _ part: TransformPart, key: Key, send: @Sendable ([TransformPart]) async throws -> [TransformResult]
    ) async throws -> TransformResult {
        let turn = await withCheckedContinuation { (turn: CheckedContinuation<Turn, Never>) in
            // Changed in place: a copy of the group would copy its waiting calls on every append.
            let sendsNow = groups.withLock { groups -> Bool in
                guard let inFlight = groups[key]?.inFlight else {
                    groups[key] = Group()
                    return true
                }
                if inFlight < Self.maximumInFlight {
                    groups[key]!.inFlight += 1
                    return true
                }
                groups[key]!.waiting.append(Waiting(part: part, turn: turn))
                return false
            }
            if sendsNow { turn.resume(returning: .sends([])) }
        }
        let riders: [Waiting]
        switch turn {
        case .answered(let result): return try result.get()
        case .alone: return try await Self.alone(part, send: send)
        case .sends(let others): riders = others
        }
        let parts = [part] + riders.map(\.part)
        let started = ContinuousClock.now
        let outcome: Result<[TransformResult], any Error>
        do {
            outcome = .success(try await Self.checked(parts, send: send))
        } catch {
            outcome = .failure(error)
        }
        passTurn(key, limit: sampleLimit(after: outcome, took: ContinuousClock.now - started))
        if !riders.isEmpty, case .failure(let error as WorkerCallError) = outcome, error.endedTheWorker {
            for rider in riders { rider.turn.resume(returning: .alone) }
            return try await Self.alone(part, send: send)
        }
        for (index, rider) in riders.enumerated() {
            rider.turn.resume(returning: .answered(outcome.map { $0[index + 1] }))
        }
        return try outcome.get()[0]
    }

    /// One part in a call of its own, outside the gathering.
    private static func alone(_ part: TransformPart, send: ([TransformPart]) async throws -> [TransformResult]) async throws
        -> TransformResult
    {
        try await checked([part], send: send)[0]
    }

    /// `send(parts)`, with one result per part or a failure.
    private static func checked(_ parts: [TransformPart], send: ([TransformPart]) async throws -> [TransformResult]) async throws
        -> [TransformResult]
    {
        let results = try await send(parts)
        guard results.count == parts.count else { throw WorkerCallError.workerDied("it answered another request") }
        return results
    }

    /// How many samples the next call may carry: as many as the script's speed over the samples
    /// this call really ran (a part ends at its first rejection) lets finish in the expected time;
    /// none beyond one request after a call that failed, or in which a part failed.
    private func sampleLimit(after outcome: Result<[TransformResult], any Error>, took duration: Duration) -> Int {
        guard case .success(let results) = outcome else { return 0 }
        var samplesRun = 0
        for result in results {
            switch result {
            case .transformed(let samples): samplesRun += samples.count
            case .rejected(let index, _): samplesRun += index + 1
            case .failed, .needsSource: return 0
            }
        }
        guard samplesRun > 0 else { return 0 }
        let secondsPerSample = duration / .seconds(1) / Double(samplesRun)
        return Int(min(Double(Self.maximumSamplesPerCall), expectedSecondsPerCall / secondsPerSample))
    }

    /// Hands the next call to the first waiting one, with as many others as `limit` samples allow
    /// (at least one whole request); or forgets the key when nobody waits.
    private func passTurn(_ key: Key, limit: Int) {
        let next = groups.withLock { groups -> [Waiting]? in
            guard var waiting = groups[key]?.waiting else { return nil }
            guard !waiting.isEmpty else {
                if groups[key]!.inFlight > 1 {
                    groups[key]!.inFlight -= 1
                } else {
                    groups[key] = nil
                }
                return nil
            }
            // Taken out, so the calls left behind are not copied when the first ones go.
            groups[key]!.waiting = []
            var count = 0
            var samples = 0
            for call in waiting {
                if count > 0 && samples + call.part.samples.count > limit { break }
                count += 1
                samples += call.part.samples.count
            }
            let taken = Array(waiting.prefix(count))
            waiting.removeFirst(count)
            groups[key]!.waiting = waiting
            return taken
        }
        if let next { next[0].turn.resume(returning: .sends(Array(next.dropFirst()))) }
    }

    /// The calls of `key` in flight and waiting now, nil when it has none (for tests).
    func calls(_ key: Key) -> (inFlight: Int, waiting: Int)? {
        groups.withLock { groups in groups[key].map { ($0.inFlight, $0.waiting.count) } }
    }
}
