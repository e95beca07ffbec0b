import Foundation
import Hummingbird
import PlatformCore
import Storage

/// `/api/tokens/`: user API tokens for scripts and the CLI (Bearer), listed and revocable; each
/// `read` or `write`, optionally expiring. Only a session creates them.
struct TokenController {
    let accounts: AccountService
    let store: any PlatformStore
    let clock: any WallClock

    struct CreateBody: StrictRequestBody {
        static let fields: Set<String> = ["name", "scope", "expires_in_days"]
        var name: String
        var scope: String?
        var expiresInDays: Int?

        enum CodingKeys: String, CodingKey {
            case name, scope
            case expiresInDays = "expires_in_days"
        }
    }

    struct TokenJSON: Encodable {
        var id: String
        var name: String
        var createdAt: Timestamp
        var lastUsedAt: Timestamp?
        var revoked: Bool
        var scope: String
        var expiresAt: Timestamp?
        var expired: Bool

        init(_ token: APIToken, now: Timestamp) {
            id = token.id.uuidString.lowercased()
            name = token.name
            createdAt = token.createdAt
            lastUsedAt = token.lastUsedAt
            revoked = token.revokedAt != nil
            scope = token.scope.rawValue
            expiresAt = token.expiresAt
            expired = token.expiresAt.map { $0 <= now } ?? false
        }

        enum CodingKeys: String, CodingKey {
            case id, name, revoked, scope, expired
            case createdAt = "created_at"
            case lastUsedAt = "last_used_at"
            case expiresAt = "expires_at"
        }
    }

    struct CreatedJSON: Encodable {
        var token: TokenJSON
        var secret: String
    }

    struct ListJSON: Encodable {
        var tokens: [TokenJSON]
    }

    func addRoutes(to group: RouterGroup<AuthenticatedContext>) {
        group.get("", use: list)
        group.post("", use: create)
        group.delete(":id/", use: revoke)
    }

    @Sendable func list(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        let tokens = try await store.apiTokens(tenantID: context.identity.tenant.id, userID: context.identity.user.id)
        return try jsonResponse(ListJSON(tokens: tokens.map { TokenJSON($0, now: clock.now()) }))
    }

    @Sendable func create(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        try context.identity.requireSession()
        let body = try await request.decodeStrict(CreateBody.self, context: context)
        let (token, secret) = try await accounts.createAPIToken(
            for: context.identity, name: body.name, scope: try Self.scope(body.scope), expiresInDays: body.expiresInDays)
        return try jsonResponse(CreatedJSON(token: TokenJSON(token, now: clock.now()), secret: secret), status: .created)
    }

    /// A scope name (default `write`); anything else is a 422.
    static func scope(_ name: String?) throws -> TokenScope {
        guard let name else { return .write }
        guard let scope = TokenScope(rawValue: name) else {
            throw PlatformError.invalid("scope", "must be read or write", code: "invalid_enum")
        }
        return scope
    }

    @Sendable func revoke(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        try context.identity.requireSession()
        guard let id = context.parameters.get("id").flatMap(UUID.init(uuidString:)),
            try await store.revokeAPIToken(
                tenantID: context.identity.tenant.id, userID: context.identity.user.id, id: id, at: clock.now())
        else {
            throw PlatformError.notFound("Token")
        }
        return Response(status: .noContent)
    }
}
