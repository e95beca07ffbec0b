import Crypto
import Foundation
import Hummingbird
import NIOCore
import Synchronization
import Testing

/// A real HTTP receiver of webhooks on a loopback port, for tests. It checks each request's
/// `X-Thermostat-Signature` the way `docs/alerts.md` tells receivers to (its own HMAC, not the
/// platform's code), records what came, and answers with the statuses a test queues (200 once
/// they run out).
final class WebhookReceiver: Sendable {
    struct Received: Sendable {
        var deliveryID: String
        var signatureValid: Bool
        var bodyText: String
        var answered: Int

        var body: [String: Any] { (try? JSONSerialization.jsonObject(with: Data(bodyText.utf8)) as? [String: Any]) ?? [:] }
        var event: String? { body["event"] as? String }
        var state: String? { body["state"] as? String }
    }

    private let secret = Mutex<String?>(nil)
    private let statuses = Mutex<[Int]>([])
    private let log = Mutex<[Received]>([])
    private let boundPort = Mutex<Int?>(nil)

    var url: String { "http://127.0.0.1:\(boundPort.withLock { $0 } ?? 0)/hook" }

    func use(secret: String) { self.secret.withLock { $0 = secret } }
    func answer(_ statuses: [Int]) { self.statuses.withLock { $0 = statuses } }
    var received: [Received] { log.withLock { $0 } }

    /// Runs a receiver for the duration of `body`.
    static func run<Result: Sendable>(_ body: @Sendable (WebhookReceiver) async throws -> Result) async throws -> Result {
        let receiver = WebhookReceiver()
        let router = Router()
        router.post("hook") { request, context -> Response in
            let bytes = try await request.body.collect(upTo: 1 << 20)
            return receiver.receive(
                body: String(buffer: bytes), signature: request.headers[.init("X-Thermostat-Signature")!] ?? "",
                delivery: request.headers[.init("X-Thermostat-Delivery")!] ?? "")
        }
        let app = Application(
            router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in receiver.boundPort.withLock { $0 = channel.localAddress?.port } })
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await app.runService(gracefulShutdownSignals: []) }
            for _ in 0..<200 where receiver.boundPort.withLock({ $0 }) == nil {
                try await Task.sleep(for: .milliseconds(10))
            }
            defer { group.cancelAll() }
            return try await body(receiver)
        }
    }

    private func receive(body: String, signature: String, delivery: String) -> Response {
        let valid = secret.withLock { $0 }.map { Self.verify(signature: signature, body: body, secret: $0) } ?? false
        let status = statuses.withLock { $0.isEmpty ? 200 : $0.removeFirst() }
        log.withLock {
            $0.append(
                Received(deliveryID: delivery, signatureValid: valid, bodyText: body, answered: status))
        }
        return Response(status: .init(code: status))
    }

    /// `t=<seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`, within five minutes.
    static func verify(signature: String, body: String, secret: String) -> Bool {
        let fields = Dictionary(
            signature.split(separator: ",").compactMap { part -> (String, String)? in
                let pair = part.split(separator: "=", maxSplits: 1)
                return pair.count == 2 ? (String(pair[0]), String(pair[1])) : nil
            }, uniquingKeysWith: { first, _ in first })
        guard let t = fields["t"], let time = Int(t), abs(Int(Date().timeIntervalSince1970) - time) < 300, let v1 = fields["v1"] else {
            return false
        }
        let mac = HMAC<SHA256>.authenticationCode(for: Data("\(t).\(body)".utf8), using: SymmetricKey(data: Data(secret.utf8)))
        return mac.map { String(format: "%02x", $0) }.joined() == v1
    }
}

/// Waits for `condition` to hold, checking every 20 ms, for at most `seconds`: for effects of
/// background work (evaluation, delivery) that a test can only observe from outside.
func eventually(
    _ what: String, seconds: Double = 15, sourceLocation: SourceLocation = #_sourceLocation,
    _ condition: () async throws -> Bool
) async throws {
    let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
    while ContinuousClock.now < deadline {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(20))
    }
    Issue.record("timed out waiting for: \(what)", sourceLocation: sourceLocation)
    throw CancellationError()
}
