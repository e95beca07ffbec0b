import Foundation
import Hummingbird
import Logging
import PlatformCore

/// The dashboard's request handling around every page: the session cookie becomes the identity,
/// a form post must be `application/x-www-form-urlencoded` with a valid CSRF token, and errors
/// become HTML — a request without a (live) session is sent to `/login` (with the page to
/// return to, and a message when the session expired), anything else gets an error page.
struct WebMiddleware: RouterMiddleware {
    typealias Context = AppRequestContext

    let accounts: AccountService
    let pages: PageRenderer
    /// The largest form body accepted (a script source is the largest field).
    static let maximumFormBytes = 256 * 1024

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response)
        async throws -> Response
    {
        var context = context
        var request = request
        let sessionToken = accounts.cookies.sessionToken(in: request) ?? ""
        do {
            if !sessionToken.isEmpty {
                do {
                    context.identity = try await accounts.identity(sessionToken: sessionToken)
                } catch let error as PlatformError where error == PlatformError.tenantDisabled {
                    // The session's tenant was disabled: end it, so the person can log in again
                    // (into another of their tenants) instead of meeting an error on every page.
                    try await accounts.endSession(token: sessionToken)
                }
            }
            if request.method == .post {
                context.form = try await checkedForm(&request, context: context)
            }
            return try await next(request, context)
        } catch {
            return try errorResponse(error, request: request, context: context, hadSession: !sessionToken.isEmpty)
        }
    }

    private func checkedForm(_ request: inout Request, context: Context) async throws -> FormFields {
        guard ContentType.names(request.headers[.contentType], "application/x-www-form-urlencoded") else {
            throw PlatformError(
                .unsupportedMediaType, code: "unsupported_media_type", message: "Pages accept only HTML form posts")
        }
        let body = try await request.collectBody(upTo: Self.maximumFormBytes)
        let form = FormFields(urlencoded: String(buffer: body))
        let binding: String? =
            if case .session(let hash) = context.identity?.credential { hash } else {
                accounts.cookies.presession(in: request)
            }
        guard let binding, !binding.isEmpty, pages.csrf.isValid(form[CSRFProtection.fieldName], binding: binding) else {
            throw PlatformError(
                .forbidden, code: "csrf_failed",
                message: "This form has expired or did not come from this site. Reload the page and try again.")
        }
        return form
    }

    private func errorResponse(_ error: any Error, request: Request, context: Context, hadSession: Bool) throws
        -> Response
    {
        let failure = ErrorMapping.platformError(for: error)
        if failure.kind == .unauthenticated {
            var location = "/login"
            var query: [String] = []
            if hadSession { query.append("expired=1") }
            if request.method == .get, let path = Self.returnPath(request.uri.description), path != "/" {
                query.append("next=" + (path.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "/"))
            }
            if !query.isEmpty { location += "?" + query.joined(separator: "&") }
            return PageRenderer.redirect(
                to: location, cookies: hadSession ? [accounts.cookies.expiredSession()] : [])
        }
        if failure.kind == .internalFailure {
            context.logger.error("page failed", metadata: ["error": "\(String(reflecting: error))"])
        }
        var response = try pages.publicPage(
            "error", title: "Error", binding: "",
            content: ErrorPageModel(
                status: Int(ErrorMapping.status(for: failure.kind).code), message: failure.message,
                signedIn: context.identity != nil),
            status: ErrorMapping.status(for: failure.kind))
        if case .rateLimited(let seconds) = failure.kind {
            response.headers[.retryAfter] = String(seconds)
        }
        return response
    }

    /// `path` when it is a path on this site (so `next=` cannot send anyone elsewhere).
    static func returnPath(_ path: String) -> String? {
        guard path.hasPrefix("/"), !path.hasPrefix("//"), !path.contains("\\"),
            !path.unicodeScalars.contains(where: { $0.value < 0x21 || $0.value == 0x7F })
        else { return nil }
        return path
    }
}

/// The error page's content.
struct ErrorPageModel {
    var status: Int
    var message: String
    var signedIn: Bool
}
