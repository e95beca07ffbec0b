import AsyncHTTPClient
import Crypto
import Foundation
import NIOCore
import NIOHTTP1
import Synchronization

/// One webhook POST: a JSON body signed with the channel's secret. `deliveryID` is the same on
/// every retry, so a receiver can drop repeats.
public struct WebhookRequest: Sendable, Equatable {
    public var url: String
    public var body: String
    public var deliveryID: String
    public var secret: String

    public init(url: String, body: String, deliveryID: String, secret: String) {
        self.url = url
        self.body = body
        self.deliveryID = deliveryID
        self.secret = secret
    }
}

/// How a webhook attempt went: the receiver's status, or a reason it never answered.
public enum WebhookOutcome: Sendable, Equatable {
    case answered(status: Int)
    case unreachable(String)

    /// Whether the receiver took it (any 2xx).
    public var isSuccess: Bool {
        if case .answered(let status) = self { return (200..<300).contains(status) }
        return false
    }

    /// Whether trying again may help: a network error, a timeout, a 5xx, or 429 / 408.
    public var isRetryable: Bool {
        switch self {
        case .unreachable: true
        case .answered(let status): status >= 500 || status == 429 || status == 408
        }
    }
}

/// `X-Thermostat-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
public enum WebhookSignature {
    public static func header(secret: String, timestamp: Int, body: String) -> String {
        let mac = HMAC<SHA256>.authenticationCode(
            for: Data("\(timestamp).\(body)".utf8), using: SymmetricKey(data: Data(secret.utf8)))
        return "t=\(timestamp),v1=" + mac.map { String(format: "%02x", $0) }.joined()
    }

    /// Checks a header against a body as a receiver does, accepting timestamps within
    /// `tolerance` seconds of `now`.
    public static func verify(header: String, secret: String, body: String, now: Int, tolerance: Int = 300) -> Bool {
        var timestamp: Int?
        var signatures: [String] = []
        for part in header.split(separator: ",") {
            let pair = part.split(separator: "=", maxSplits: 1).map(String.init)
            guard pair.count == 2 else { continue }
            if pair[0] == "t" { timestamp = Int(pair[1]) }
            if pair[0] == "v1" { signatures.append(pair[1]) }
        }
        guard let timestamp, abs(now - timestamp) <= tolerance else { return false }
        let expected = Self.header(secret: secret, timestamp: timestamp, body: body).split(separator: "=").last.map(String.init)
        return signatures.contains { candidate in
            guard let expected, candidate.utf8.count == expected.utf8.count else { return false }
            return zip(candidate.utf8, expected.utf8).reduce(0) { $0 | ($1.0 ^ $1.1) } == 0
        }
    }
}

/// Sends webhooks.
public protocol WebhookSender: Sendable {
    func send(_ request: WebhookRequest, timestamp: Int) async -> WebhookOutcome
}

/// Sends webhooks with async-http-client: a 10 s bound per attempt and no redirects (a
/// receiver that moved must be edited, not followed to wherever it points). Its client starts
/// with the first send and must be shut down by its owner (`shutdown()`).
public final class HTTPWebhookSender: WebhookSender {
    private let client = Mutex<HTTPClient?>(nil)
    public let timeout: TimeAmount
    public static let userAgent = "ThermostatRTOS-Webhooks/1"

    public init(timeout: TimeAmount = .seconds(10)) {
        self.timeout = timeout
    }

    private var httpClient: HTTPClient {
        client.withLock { client in
            if let client { return client }
            var configuration = HTTPClient.Configuration()
            configuration.redirectConfiguration = .disallow
            configuration.timeout = .init(connect: timeout, read: timeout)
            let made = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
            client = made
            return made
        }
    }

    public func send(_ request: WebhookRequest, timestamp: Int) async -> WebhookOutcome {
        var http = HTTPClientRequest(url: request.url)
        http.method = .POST
        http.headers.add(name: "Content-Type", value: "application/json")
        http.headers.add(name: "User-Agent", value: Self.userAgent)
        http.headers.add(name: "X-Thermostat-Delivery", value: request.deliveryID)
        http.headers.add(
            name: "X-Thermostat-Signature", value: WebhookSignature.header(secret: request.secret, timestamp: timestamp, body: request.body))
        http.body = .bytes(ByteBuffer(string: request.body))
        do {
            let response = try await httpClient.execute(http, timeout: timeout)
            // Only the status matters; a bounded read lets the connection be reused.
            _ = try? await response.body.collect(upTo: 64 * 1024)
            return .answered(status: Int(response.status.code))
        } catch {
            return .unreachable(String(describing: error).prefix(300).description)
        }
    }

    /// Closes the client's connections, if it ever made any.
    public func shutdown() async {
        let started = client.withLock { client in
            defer { client = nil }
            return client
        }
        try? await started?.shutdown()
    }
}
