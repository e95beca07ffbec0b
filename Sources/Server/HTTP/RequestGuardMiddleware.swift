import HTTPTypes
import Hummingbird
import PlatformCore

/// Cross-cutting HTTP policy applied to every response and every write: errors not handled
/// closer to their route mapped to their JSON body (unexpected ones logged with the request
/// id, and every 500 reported to the operator's digest), security headers (CSP, nosniff, frame denial, HSTS in production), the request id, and
/// refusal of writes from a foreign `Origin` (a CSRF defence for the API and the dashboard
/// alike, alongside SameSite cookies).
struct RequestGuardMiddleware<Context: RequestContext>: RouterMiddleware {
    let allowedOrigin: String
    let isProduction: Bool
    let digest: OperatorDigest

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response)
        async throws -> Response
    {
        var response: Response
        do {
            try check(request)
            response = try await next(request, context)
        } catch {
            let platformError = ErrorMapping.platformError(for: error)
            if platformError.kind == .internalFailure {
                context.logger.error("request failed", metadata: ["error": "\(String(reflecting: error))"])
            }
            response = ErrorMapping.response(for: platformError)
        }
        if response.status == .internalServerError {
            digest.serverError(requestID: context.id, method: request.method.rawValue, path: request.uri.path, status: 500)
        }
        addSecurityHeaders(to: &response.headers)
        response.headers[.requestID] = context.id
        return response
    }

    private func check(_ request: Request) throws(PlatformError) {
        let method = request.method
        guard method == .post || method == .put || method == .patch || method == .delete else { return }
        if let origin = request.headers[.origin], origin != allowedOrigin {
            throw PlatformError(.forbidden, code: "foreign_origin", message: "Cross-origin writes are not accepted")
        }
    }

    static var contentSecurityPolicy: String {
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        + "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    }

    private func addSecurityHeaders(to headers: inout HTTPFields) {
        headers[.contentSecurityPolicy] = Self.contentSecurityPolicy
        headers[.xContentTypeOptions] = "nosniff"
        headers[.xFrameOptions] = "DENY"
        headers[.referrerPolicy] = "same-origin"
        if headers[.cacheControl] == nil {
            headers[.cacheControl] = "no-store"
        }
        if isProduction {
            headers[.strictTransportSecurity] = "max-age=31536000; includeSubDomains"
        }
    }
}

/// The JSON API's rule for writes: a body must be `application/json`. Together with the
/// `Origin` check and SameSite cookies this is the API's CSRF defence (a cross-site form cannot
/// send JSON), so the API needs no form tokens.
struct JSONWritesMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response)
        async throws -> Response
    {
        try check(request)
        return try await next(request, context)
    }

    private func check(_ request: Request) throws(PlatformError) {
        let method = request.method
        guard method == .post || method == .put || method == .patch || method == .delete else { return }
        let hasBody =
            request.headers[.transferEncoding] != nil || (request.headers[.contentLength].flatMap { Int($0) } ?? 0) > 0
        if hasBody, !ContentType.names(request.headers[.contentType], "application/json") {
            throw PlatformError(
                .unsupportedMediaType, code: "unsupported_media_type",
                message: "Request bodies must be JSON with Content-Type: application/json")
        }
    }

}

extension HTTPField.Name {
    static let requestID = Self("X-Request-Id")!
    static let xContentTypeOptions = Self("X-Content-Type-Options")!
    static let xFrameOptions = Self("X-Frame-Options")!
    static let referrerPolicy = Self("Referrer-Policy")!
    static let xForwardedFor = Self("X-Forwarded-For")!
    /// Tells nginx-style proxies not to buffer a streamed response.
    static let xAccelBuffering = Self("X-Accel-Buffering")!
}
