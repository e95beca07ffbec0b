import Foundation
import HTTPTypes
import Hummingbird
import Logging
import PlatformCore

/// The one place where errors become HTTP responses: every error body is
/// `{"error": {"code", "message", "field"?}}`, with `Retry-After` on 429s. Errors that are not
/// a `PlatformError` or an HTTP error become a generic 500 that reveals nothing.
enum ErrorMapping {
    static func platformError(for error: any Error) -> PlatformError {
        switch error {
        case let error as PlatformError:
            return error
        case let error as HTTPError:
            return platformError(status: error.status, message: error.body)
        case let error as any HTTPResponseError:
            return platformError(status: error.status, message: nil)
        default:
            return PlatformError(.internalFailure, code: "internal_error", message: "Internal server error")
        }
    }

    private static func platformError(status: HTTPResponse.Status, message: String?) -> PlatformError {
        switch status {
        case .notFound:
            return PlatformError(.notFound, code: "not_found", message: message ?? "No such resource")
        case .contentTooLarge:
            return PlatformError(.payloadTooLarge, code: "payload_too_large", message: "Request body is too large")
        case .unauthorized:
            return .unauthenticated
        case .badRequest:
            return .malformed(message ?? "Malformed request")
        default:
            return PlatformError(
                status.code >= 500 ? .internalFailure : .badRequest, code: "http_\(status.code)",
                message: message ?? status.reasonPhrase)
        }
    }

    static func status(for kind: PlatformError.Kind) -> HTTPResponse.Status {
        switch kind {
        case .badRequest: .badRequest
        case .validation: .unprocessableContent
        case .unauthenticated: .unauthorized
        case .forbidden: .forbidden
        case .notFound: .notFound
        case .conflict: .conflict
        case .payloadTooLarge: .contentTooLarge
        case .unsupportedMediaType: .unsupportedMediaType
        case .rateLimited: .tooManyRequests
        case .unavailable: .serviceUnavailable
        case .internalFailure: .internalServerError
        }
    }

    static func response(for error: PlatformError) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json; charset=utf-8"
        headers[.cacheControl] = "no-store"
        if case .rateLimited(let seconds) = error.kind {
            headers[.retryAfter] = String(seconds)
        }
        if error.kind == .unauthenticated {
            headers[.wwwAuthenticate] =
                error.code.hasPrefix("device_") || error.code == "invalid_device_credentials"
                ? "Device realm=\"thermostat\"" : "Bearer realm=\"thermostat\""
        }
        if error.kind == .unavailable {
            headers[.retryAfter] = "1"
        }
        let body = ErrorBody(
            error: .init(
                code: error.code, message: error.message, field: error.field, limit: error.quota?.limit,
                used: error.quota?.used))
        do {
            return try jsonResponse(body, status: status(for: error.kind), headers: headers)
        } catch {
            return Response(status: .internalServerError, headers: headers)
        }
    }
}

private struct ErrorBody: Encodable {
    struct Detail: Encodable {
        var code: String
        var message: String
        var field: String?
        var limit: Int?
        var used: Int?
    }
    var error: Detail
}
