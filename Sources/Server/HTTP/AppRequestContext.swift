import Foundation
import Hummingbird
import NIOCore
import PlatformCore

/// Who is making a request to the user API: a person in one of their tenants.
public struct Identity: Sendable {
    /// How the caller proved who they are.
    public enum Credential: Sendable, Equatable {
        case session(tokenHash: String)
        case apiToken(id: UUID)
    }

    public var user: User
    public var tenant: Tenant
    public var role: Role
    public var credential: Credential

    /// Throws unless the role may change data.
    func requireWrite() throws(PlatformError) {
        guard role.canWrite else { throw PlatformError.readOnlyRole }
    }

    /// Throws unless the caller signed in with a login session: account-level changes
    /// (password, tokens, invitations, tenant switching) are never made by an API token.
    func requireSession() throws(PlatformError) {
        guard case .session = credential else {
            throw PlatformError(
                .forbidden, code: "session_required", message: "This needs a person logged in, not an API token")
        }
    }
}

/// The request context of every route: the client's address (for rate limits) and, once the
/// authentication middleware has run, the caller's identity.
public struct AppRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public let remoteAddress: String?
    public var identity: Identity?
    /// A dashboard form's fields, once `WebMiddleware` has read the body and checked its CSRF token.
    var form: FormFields?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress?.ipAddress
        identity = nil
    }

    /// Telemetry batches are capped at 256 KiB, the largest body anything accepts.
    public var maxUploadSize: Int { TelemetryRules.maximumBodyBytes }
}

/// A context that can only exist for an authenticated caller, so a handler that takes one
/// cannot forget the check.
public struct AuthenticatedContext: ChildRequestContext {
    public var coreContext: CoreRequestContextStorage
    public let identity: Identity
    public let remoteAddress: String?
    /// A dashboard form's checked fields (see `AppRequestContext.form`); empty for anything else.
    let form: FormFields

    public init(context: AppRequestContext) throws {
        guard let identity = context.identity else { throw PlatformError.unauthenticated }
        coreContext = context.coreContext
        self.identity = identity
        remoteAddress = context.remoteAddress
        form = context.form ?? FormFields(urlencoded: "")
    }

    /// The session token's hash when the caller signed in with a session.
    var sessionHash: String? {
        if case .session(let hash) = identity.credential { return hash }
        return nil
    }
}
