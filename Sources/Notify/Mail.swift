import CurlSMTP
import Foundation
import Synchronization

/// A plain-text email: one sender, one or more recipients, a subject and a UTF-8 body.
public struct MailMessage: Sendable, Equatable {
    public var from: String
    public var to: [String]
    public var subject: String
    public var text: String

    public init(from: String, to: [String], subject: String, text: String) {
        self.from = from
        self.to = to
        self.subject = subject
        self.text = text
    }

    /// The message as RFC 5322 text with CRLF line ends: headers (a non-ASCII subject
    /// RFC 2047-encoded), then the body as base64 UTF-8, so no body line can be taken for a
    /// header or for the end of the SMTP data. Throws for an address or subject with a line
    /// break (header injection) or an address that is not one.
    public func rendered(date: Date, messageID: String) throws(MailError) -> String {
        for address in [from] + to {
            guard Self.isAddress(address) else { throw .invalidAddress(address) }
        }
        guard !to.isEmpty else { throw .noRecipient }
        guard !subject.unicodeScalars.contains(where: { $0 == "\r" || $0 == "\n" }) else { throw .invalidSubject }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss '+0000'"
        let body = Data(text.replacingOccurrences(of: "\r\n", with: "\n").replacingOccurrences(of: "\n", with: "\r\n").utf8)
            .base64EncodedString(options: [.lineLength76Characters, .endLineWithCarriageReturn, .endLineWithLineFeed])
        let headers = [
            "From: \(from)",
            "To: \(to.joined(separator: ", "))",
            "Subject: \(Self.encodedHeader(subject))",
            "Date: \(formatter.string(from: date))",
            "Message-ID: <\(messageID)>",
            "MIME-Version: 1.0",
            "Content-Type: text/plain; charset=utf-8",
            "Content-Transfer-Encoding: base64",
        ]
        return headers.joined(separator: "\r\n") + "\r\n\r\n" + body + "\r\n"
    }

    /// `local@domain` without spaces, angle brackets or line breaks.
    public static func isAddress(_ text: String) -> Bool {
        let parts = text.split(separator: "@", omittingEmptySubsequences: false)
        return parts.count == 2 && !parts[0].isEmpty && parts[1].contains(".") && text.count <= 254
            && !text.unicodeScalars.contains(where: {
                $0.properties.isWhitespace || $0.value < 0x20 || "<>,\"".unicodeScalars.contains($0)
            })
    }

    /// ASCII as it is; anything else as an RFC 2047 base64 encoded-word.
    static func encodedHeader(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: { !$0.isASCII }) else { return text }
        return "=?UTF-8?B?\(Data(text.utf8).base64EncodedString())?="
    }
}

/// Why a message could not be sent.
public enum MailError: Error, Equatable, Sendable, CustomStringConvertible {
    case invalidAddress(String)
    case invalidSubject
    case noRecipient
    case invalidConfiguration(String)
    /// The SMTP exchange failed: libcurl's code and message.
    case delivery(code: Int32, message: String)

    public var description: String {
        switch self {
        case .invalidAddress(let address): "not an email address: \(address)"
        case .invalidSubject: "a subject cannot contain a line break"
        case .noRecipient: "a message needs a recipient"
        case .invalidConfiguration(let message): message
        case .delivery(let code, let message): "SMTP delivery failed (\(code)): \(message)"
        }
    }
}

/// Something that sends mail.
public protocol Mailer: Sendable {
    func send(_ message: MailMessage) async throws
}

/// Where and how to reach the SMTP server: `smtp://[user:pass@]host:port` with
/// `?starttls=required|opportunistic|never` (default `required` when credentials are given,
/// else `opportunistic`), or `smtps://…` for TLS from the first byte.
public struct SMTPConfiguration: Sendable, Equatable {
    /// How STARTTLS is used on `smtp://`.
    public enum StartTLS: String, Sendable {
        case required, opportunistic, never
    }

    public var url: String
    public var username: String?
    public var password: String?
    public var startTLS: StartTLS
    public var timeoutSeconds: Int

    public init(url text: String, timeoutSeconds: Int = 30) throws(MailError) {
        guard var components = URLComponents(string: text), let scheme = components.scheme?.lowercased(),
            scheme == "smtp" || scheme == "smtps", let host = components.host, !host.isEmpty
        else {
            throw .invalidConfiguration("THERMOSTAT_SMTP_URL must look like smtp://[user:pass@]host:port or smtps://…")
        }
        username = components.user?.removingPercentEncoding
        password = components.password?.removingPercentEncoding
        let requested = components.queryItems?.first { $0.name == "starttls" }?.value
        if let requested {
            guard let mode = StartTLS(rawValue: requested) else {
                throw .invalidConfiguration("starttls must be required, opportunistic or never")
            }
            startTLS = mode
        } else {
            startTLS = username == nil ? .opportunistic : .required
        }
        if scheme == "smtps" { startTLS = .required }
        components.user = nil
        components.password = nil
        components.queryItems = nil
        components.path = ""
        guard let bare = components.string else { throw .invalidConfiguration("THERMOSTAT_SMTP_URL is not a URL") }
        url = bare
        self.timeoutSeconds = timeoutSeconds
    }
}

/// Sends mail with libcurl's SMTP client, each message on its own thread (libcurl blocks), so
/// no Swift concurrency thread waits on the network. A cancelled send returns at once with
/// `CancellationError` (so shutdown never waits for a mail server); its thread finishes the
/// exchange, or gives up at the timeout, on its own.
public struct SMTPMailer: Mailer {
    public let configuration: SMTPConfiguration
    /// The domain of generated Message-IDs.
    public let messageIDDomain: String

    public init(configuration: SMTPConfiguration, messageIDDomain: String = "thermostat.invalid") {
        self.configuration = configuration
        self.messageIDDomain = messageIDDomain
    }

    public func send(_ message: MailMessage) async throws {
        let payload = try message.rendered(date: Date(), messageID: "\(UUID().uuidString.lowercased())@\(messageIDDomain)")
        let configuration = configuration
        let outcome = MailOutcome()
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                guard outcome.wait(continuation) else { return }
                let thread = Thread {
                    outcome.resolve(with: Result { try Self.deliver(payload, message: message, configuration: configuration) })
                }
                thread.start()
            }
        } onCancel: {
            outcome.resolve(with: .failure(CancellationError()))
        }
    }

    private static func deliver(_ payload: String, message: MailMessage, configuration: SMTPConfiguration) throws {
        let tls: tsm_tls_mode =
            switch configuration.startTLS {
            case .required: TSM_TLS_REQUIRED
            case .opportunistic: TSM_TLS_OPPORTUNISTIC
            case .never: TSM_TLS_NEVER
            }
        let recipients = message.to.map { strdup("<\($0)>") }
        defer { recipients.forEach { free($0) } }
        var error = [CChar](repeating: 0, count: 512)
        let code: Int32 = recipients.map { UnsafePointer($0) }.withUnsafeBufferPointer { pointers in
            let utf8 = Array(payload.utf8)
            return utf8.withUnsafeBufferPointer { bytes in
                bytes.withMemoryRebound(to: CChar.self) { characters in
                    tsm_send_mail(
                        configuration.url, configuration.username, configuration.password, tls, "<\(message.from)>",
                        pointers.baseAddress, Int32(pointers.count), characters.baseAddress, characters.count,
                        configuration.timeoutSeconds, &error, error.count)
                }
            }
        }
        if code != 0 {
            let text = error.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
            throw MailError.delivery(code: code, message: String(decoding: text, as: UTF8.self))
        }
    }
}

/// Who answers a send: the mail thread or the caller's cancellation, whichever comes first.
private final class MailOutcome: Sendable {
    private enum State {
        case idle
        case waiting(CheckedContinuation<Void, any Error>)
        case resolved(Result<Void, any Error>)
        case answered
    }

    private let state = Mutex(State.idle)

    /// Registers the waiting caller; false when the send was already cancelled (then the
    /// caller is answered here, and no thread starts).
    func wait(_ continuation: CheckedContinuation<Void, any Error>) -> Bool {
        let early = state.withLock { state -> Result<Void, any Error>? in
            if case .resolved(let result) = state {
                state = .answered
                return result
            }
            state = .waiting(continuation)
            return nil
        }
        guard let early else { return true }
        continuation.resume(with: early)
        return false
    }

    func resolve(with result: Result<Void, any Error>) {
        let continuation = state.withLock { state -> CheckedContinuation<Void, any Error>? in
            switch state {
            case .idle:
                state = .resolved(result)
                return nil
            case .waiting(let continuation):
                state = .answered
                return continuation
            case .resolved, .answered:
                return nil
            }
        }
        continuation?.resume(with: result)
    }
}
