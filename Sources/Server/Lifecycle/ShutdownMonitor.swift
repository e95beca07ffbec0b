import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

/// Bounds graceful shutdown and says what it waits for.
///
/// When shutdown starts (SIGTERM or SIGINT for `thermostat serve`; `PlatformApplication` tells
/// it) it logs what is still in flight, then once a second while anything is. When the drain
/// time is over it answers every telemetry write still waiting with 503 `shutting_down`; if the
/// process is still running a moment later (something it cannot see did not finish), it logs
/// what is left and exits. It is the first service added, so the service group stops it last:
/// its own graceful shutdown means everything else has finished.
final class ShutdownMonitor: Service, Sendable {
    private let drainTime: Duration
    private let requests: InFlightRequests
    private let writer: GroupCommitWriter
    private let logger: Logger
    private let drainStarted = Mutex<ContinuousClock.Instant?>(nil)
    private let shutdownStarts: AsyncStream<Void>
    private let shutdownStartsContinuation: AsyncStream<Void>.Continuation
    /// After the drain time, how long answered requests get to flush their responses before the
    /// process exits regardless.
    static let exitGrace: Duration = .seconds(2)

    init(drainTime: Duration, requests: InFlightRequests, writer: GroupCommitWriter, logger: Logger) {
        self.drainTime = drainTime
        self.requests = requests
        self.writer = writer
        self.logger = logger
        (shutdownStarts, shutdownStartsContinuation) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    /// Shutdown has started: start the drain clock.
    func shutdownStarted() {
        shutdownStartsContinuation.yield()
    }

    /// True from the stop signal on: readiness then answers 503.
    var isDraining: Bool { drainStarted.withLock { $0 != nil } }

    func run() async throws {
        // Cancelled at this service's own graceful shutdown, which comes when everything else
        // has stopped: that ends the wait for the start of shutdown, or the drain in progress.
        await cancelWhenGracefulShutdown {
            for await _ in self.shutdownStarts {
                await self.drain()
                return
            }
        }
        if let started = drainStarted.withLock({ $0 }) {
            logger.info(
                "graceful shutdown finished", metadata: ["seconds": "\(Self.seconds(ContinuousClock.now - started))"])
        }
    }

    private func drain() async {
        let started = ContinuousClock.now
        drainStarted.withLock { $0 = started }
        logger.notice(
            "graceful shutdown: draining",
            metadata: [
                "drain_seconds": "\(Self.seconds(drainTime))",
                "waiting_for": "\(waitingFor)",
            ])
        let deadline = started + drainTime
        do {
            while ContinuousClock.now < deadline {
                try await Task.sleep(until: min(deadline, ContinuousClock.now + .seconds(1)))
                if !isIdle {
                    logger.notice("graceful shutdown: still waiting", metadata: ["waiting_for": "\(waitingFor)"])
                }
            }
            let failed = writer.failWaiting()
            logger.error(
                "graceful shutdown: drain time over",
                metadata: ["answered_with_503": "\(failed) ingest requests", "waiting_for": "\(waitingFor)"])
            try await Task.sleep(for: Self.exitGrace)
        } catch {
            // Cancelled: the service group finished (or gave up) before the drain time was over.
            return
        }
        logger.critical(
            "graceful shutdown: exiting with work outstanding",
            metadata: ["waiting_for": "\(waitingFor)", "seconds": "\(Self.seconds(ContinuousClock.now - started))"])
        fflush(nil)
        exit(EXIT_FAILURE)
    }

    private var isIdle: Bool { requests.current == 0 && writer.status.isIdle }

    private var waitingFor: String {
        "\(requests.current) requests in flight; \(writer.status)"
    }

    private static func seconds(_ duration: Duration) -> String {
        String(format: "%.1f", Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18)
    }
}

/// The application `thermostat serve` runs: Hummingbird's, plus the moment graceful shutdown
/// starts. That moment is only visible here, around the application's own service group (its
/// services, the shutdown monitor among them, are only told in turn, last first).
struct PlatformApplication<Inner: ApplicationProtocol>: ApplicationProtocol {
    typealias Responder = Inner.Responder

    let inner: Inner
    let shutdownMonitor: ShutdownMonitor
    /// Live streams end when shutdown starts, so they do not hold the HTTP server's drain.
    let liveEvents: TelemetryBroadcast

    var responder: Responder {
        get async throws { try await inner.responder }
    }
    var server: HTTPServerBuilder { inner.server }
    var eventLoopGroup: any EventLoopGroup { inner.eventLoopGroup }
    var configuration: ApplicationConfiguration { inner.configuration }
    var logger: Logger { inner.logger }
    var services: [any Service] { inner.services }
    var processesRunBeforeServerStart: [@Sendable () async throws -> Void] { inner.processesRunBeforeServerStart }

    @Sendable func onServerRunning(_ channel: any Channel) async {
        await inner.onServerRunning(channel)
    }

    func run() async throws {
        try await withGracefulShutdownHandler {
            try await inner.run()
        } onGracefulShutdown: {
            shutdownMonitor.shutdownStarted()
            liveEvents.close()
        }
    }
}
