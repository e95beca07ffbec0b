/// The one error type the platform's rules and stores throw.
///
/// Each error carries a stable machine-readable `code`, a message safe to show to a client and,
/// for validation failures, the offending `field`. The server maps `kind` to an HTTP status in a
/// single place, so a store or a rule never needs to know about HTTP.
public struct PlatformError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The category of failure; decides the HTTP status.
    public enum Kind: Sendable, Equatable {
        case badRequest
        case validation
        case unauthenticated
        case forbidden
        case notFound
        case conflict
        case payloadTooLarge
        case unsupportedMediaType
        case rateLimited(retryAfterSeconds: Int)
        case unavailable
        case internalFailure
    }

    public var kind: Kind
    public var code: String
    public var message: String
    public var field: String?
    /// For a quota error: the limit and what is used.
    public var quota: Quota?

    /// A limit and its use, carried by `quota_exceeded` errors.
    public struct Quota: Sendable, Equatable {
        public var limit: Int
        public var used: Int

        public init(limit: Int, used: Int) {
            self.limit = limit
            self.used = used
        }
    }

    public init(_ kind: Kind, code: String, message: String, field: String? = nil) {
        self.kind = kind
        self.code = code
        self.message = message
        self.field = field
    }

    public var description: String {
        field.map { "\(code): \(message) (\($0))" } ?? "\(code): \(message)"
    }
}

extension PlatformError {
    public static func invalid(_ field: String, _ message: String, code: String = "invalid_field") -> PlatformError {
        PlatformError(.validation, code: code, message: message, field: field)
    }

    public static func malformed(_ message: String, field: String? = nil) -> PlatformError {
        PlatformError(.badRequest, code: "malformed_request", message: message, field: field)
    }

    public static func notFound(_ what: String) -> PlatformError {
        PlatformError(.notFound, code: "not_found", message: "\(what) not found")
    }

    public static let unauthenticated = PlatformError(
        .unauthenticated, code: "unauthenticated", message: "Authentication required")

    public static let invalidCredentials = PlatformError(
        .unauthenticated, code: "invalid_credentials", message: "Invalid email or password")

    public static let readOnlyRole = PlatformError(
        .forbidden, code: "forbidden", message: "Your role in this tenant cannot make changes")

    public static func conflict(_ message: String, field: String? = nil) -> PlatformError {
        PlatformError(.conflict, code: "conflict", message: message, field: field)
    }

    /// 403 `quota_exceeded`: the tenant's tier allows `limit` of `what` and `used` are used.
    public static func quotaExceeded(_ what: String, limit: Int, used: Int) -> PlatformError {
        var error = PlatformError(
            .forbidden, code: "quota_exceeded",
            message: "Your storage tier allows \(limit) \(what) and \(used) are in use; ask for a larger tier or remove some")
        error.quota = Quota(limit: limit, used: used)
        return error
    }

    public static let tenantDisabled = PlatformError(
        .forbidden, code: "tenant_disabled", message: "This tenant is disabled by the platform's operators")

    public static func rateLimited(retryAfter seconds: Int) -> PlatformError {
        PlatformError(
            .rateLimited(retryAfterSeconds: seconds), code: "rate_limited",
            message: "Too many requests; retry in \(seconds) s")
    }
}
