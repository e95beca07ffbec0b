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
    try await withTimeBound(limit, what: what, onExpiry: onExpiry) { (_: TimeBoundControl) in try await operation() }
}

/// `withTimeBound` whose operation may also end the wait early, through its `TimeBoundControl`,
/// when it learns that what it waits on will never answer (its connection closed).
public func withTimeBound<Result: Sendable>(
    _ limit: Duration,
    what: String,
    onExpiry: @escaping @Sendable () async -> Void = {},
    _ operation: @escaping @Sendable (TimeBoundControl) async throws -> Result
) async throws -> Result {
    let race = TimeBoundRace<Result>(onExpiry: onExpiry)
    let control = TimeBoundControl(end: { error in Task { await race.end(throwing: error) } })
    return try await withTaskCancellationHandler {
        try await withCheckedThrowingContinuation { continuation in
            guard race.start(continuation) else {
                continuation.resume(throwing: CancellationError())
                return
            }
            let work = Task {
                let outcome: Swift.Result<Result, any Error>
                do {
                    outcome = .success(try await operation(control))
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
                await race.end(
                    throwing: PlatformError(
                        .unavailable, code: "database_timeout", message: "The database did not answer in time (\(what))"))
            }
            race.attach(work: work, timer: timer)
        }
    } onCancel: {
        race.cancel()
    }
}

/// Lets a time-bound operation give up before its deadline.
public struct TimeBoundControl: Sendable {
    let end: @Sendable (any Error) -> Void

    /// Answers the caller now with `error`, as an expiry would (the operation is cancelled and
    /// abandoned, `onExpiry` runs), unless the operation or the deadline came first.
    public func abandon(throwing error: any Error) {
        end(error)
    }
}

/// Who resumes the caller of `withTimeBound`: exactly one of the operation, the timer (or an
/// early abandon) or the caller's cancellation, whichever comes first.
private final class TimeBoundRace<Result: Sendable>: Sendable {
    private struct State {
        var continuation: CheckedContinuation<Result, any Error>?
        var work: Task<Void, Never>?
        var timer: Task<Void, Never>?
        var isDecided = false
        var isCancelled = false
    }

    private let state = Mutex(State())
    private let onExpiry: @Sendable () async -> Void

    init(onExpiry: @escaping @Sendable () async -> Void) {
        self.onExpiry = onExpiry
    }

    /// False when the caller was cancelled before it got here: nothing is started then.
    func start(_ continuation: CheckedContinuation<Result, any Error>) -> Bool {
        state.withLock { state in
            guard !state.isCancelled else { return false }
            state.continuation = continuation
            return true
        }
    }

    func attach(work: Task<Void, Never>, timer: Task<Void, Never>) {
        let stop = state.withLock { state in
            state.work = work
            state.timer = timer
            return state.isCancelled || state.isDecided
        }
        if stop {
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

    /// The deadline passed or the operation gave up: unless the race is decided already,
    /// cancel the operation, run `onExpiry` and resume the caller with `error`.
    func end(throwing error: any Error) async {
        let tasks = state.withLock { state -> (Task<Void, Never>?, Task<Void, Never>?)? in
            guard !state.isDecided else { return nil }
            state.isDecided = true
            return (state.work, state.timer)
        }
        guard let (work, timer) = tasks else { return }
        work?.cancel()
        timer?.cancel()
        await onExpiry()
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
