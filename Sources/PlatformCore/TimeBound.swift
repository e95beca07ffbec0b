import Synchronization

/// Runs `operation` and returns its result, or throws `database_timeout` (503) once `limit` has
/// passed, whichever comes first.
///
/// Unlike a task group racing a sleep, this does not wait for the operation to notice the
/// deadline: a task group always awaits its children, so an operation suspended on something
/// that is never resumed (a database promise dropped when its connection died) would hold the
/// caller forever. Here the operation runs in its own task; on expiry it is cancelled,
/// `onExpiry` runs (close the connection it waits on, so it fails and lets go of what it holds)
/// and the caller gets its error at once, whether or not the operation ever finishes.
/// Cancelling the caller cancels the operation and is passed on the same way.
public func withTimeBound<Result: Sendable>(
    _ limit: Duration,
    what: String,
    onExpiry: @escaping @Sendable () async -> Void = {},
    _ operation: @escaping @Sendable () async throws -> Result
) async throws -> Result {
    let race = TimeBoundRace<Result>()
    return try await withTaskCancellationHandler {
        try await withCheckedThrowingContinuation { continuation in
            guard race.start(continuation) else {
                continuation.resume(throwing: CancellationError())
                return
            }
            let work = Task {
                let outcome: Swift.Result<Result, any Error>
                do {
                    outcome = .success(try await operation())
                } catch {
                    outcome = .failure(error)
                }
                race.finish(with: outcome)
            }
            let timer = Task {
                do {
                    try await Task.sleep(for: limit)
                } catch {
                    return
                }
                guard race.expire() else { return }
                work.cancel()
                await onExpiry()
                race.resumeExpired(
                    throwing: PlatformError(
                        .unavailable, code: "database_timeout",
                        message: "The database did not answer in time (\(what))"))
            }
            race.attach(work: work, timer: timer)
        }
    } onCancel: {
        race.cancel()
    }
}

/// Who resumes the caller of `withTimeBound`: exactly one of the operation, the timer or the
/// caller's cancellation, whichever comes first.
private final class TimeBoundRace<Result: Sendable>: Sendable {
    private struct State {
        var continuation: CheckedContinuation<Result, any Error>?
        var work: Task<Void, Never>?
        var timer: Task<Void, Never>?
        var isDecided = false
        var isCancelled = false
    }

    private let state = Mutex(State())

    /// False when the caller was cancelled before it got here: nothing is started then.
    func start(_ continuation: CheckedContinuation<Result, any Error>) -> Bool {
        state.withLock { state in
            guard !state.isCancelled else { return false }
            state.continuation = continuation
            return true
        }
    }

    func attach(work: Task<Void, Never>, timer: Task<Void, Never>) {
        let cancelled = state.withLock { state in
            state.work = work
            state.timer = timer
            return state.isCancelled
        }
        if cancelled {
            work.cancel()
            timer.cancel()
        }
    }

    /// The operation ended first: resume the caller with its outcome and stop the timer.
    func finish(with outcome: Swift.Result<Result, any Error>) {
        let (continuation, timer) = state.withLock { state -> (CheckedContinuation<Result, any Error>?, Task<Void, Never>?) in
            guard !state.isDecided else { return (nil, nil) }
            state.isDecided = true
            defer { state.continuation = nil }
            return (state.continuation, state.timer)
        }
        timer?.cancel()
        continuation?.resume(with: outcome)
    }

    /// The deadline passed: true when the operation had not ended yet (the timer then owns
    /// the caller's continuation).
    func expire() -> Bool {
        state.withLock { state in
            guard !state.isDecided else { return false }
            state.isDecided = true
            return true
        }
    }

    func resumeExpired(throwing error: any Error) {
        let continuation = state.withLock { state in
            defer { state.continuation = nil }
            return state.continuation
        }
        continuation?.resume(throwing: error)
    }

    /// The caller was cancelled: cancel the operation and the timer and resume the caller with
    /// `CancellationError` at once, as for an expiry (the operation may never notice).
    func cancel() {
        let (work, timer, continuation) = state.withLock {
            state -> (Task<Void, Never>?, Task<Void, Never>?, CheckedContinuation<Result, any Error>?) in
            state.isCancelled = true
            guard !state.isDecided else { return (state.work, state.timer, nil) }
            state.isDecided = true
            defer { state.continuation = nil }
            return (state.work, state.timer, state.continuation)
        }
        work?.cancel()
        timer?.cancel()
        continuation?.resume(throwing: CancellationError())
    }
}
