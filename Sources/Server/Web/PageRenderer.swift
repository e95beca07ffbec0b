import Foundation
import Hummingbird
import Mustache
import PlatformCore
import Storage

/// What every page's layout shows: the title, the signed-in person and their tenants (for the
/// switcher), the form token, the active navigation entry and a flash message.
struct LayoutModel {
    struct TenantOption {
        var slug: String
        var name: String
        var selected: Bool
    }

    struct SessionModel {
        var email: String
        var tenantName: String
        var role: String
        var tenants: [TenantOption]
        var hasSeveralTenants: Bool
        var canWrite: Bool
        var canAdminister: Bool
    }

    struct Flash {
        var message: String
        var isError: Bool
    }

    var title: String
    var csrf: String
    var session: SessionModel?
    var flash: Flash?
    var navDevices = false
    var navAlerts = false
    var navScripts = false
    var navExport = false
    var navTokens = false
    var navMembers = false
    var navAccount = false
}

/// Renders dashboard pages: a page template inside the shared layout, HTML-escaped by
/// Mustache, never cached, with the CSP of every response (no inline script anywhere).
struct PageRenderer: Sendable {
    /// The object a template sees: `layout` fields at the top, the page's own under `page`.
    struct Page<Content> {
        var title: String
        var csrf: String
        var session: LayoutModel.SessionModel?
        var flash: LayoutModel.Flash?
        var navDevices: Bool
        var navAlerts: Bool
        var navScripts: Bool
        var navExport: Bool
        var navTokens: Bool
        var navMembers: Bool
        var navAccount: Bool
        var page: Content
    }

    static let requiredTemplates = [
        "layout", "login", "signup", "forgot-password", "reset-password", "overview", "device", "device-new", "device-key", "scripts", "script", "script-editor", "export", "tokens",
        "members", "account", "error", "alerts", "alert", "alert-rules", "alert-rule", "alert-rule-form", "alert-channels",
        "alert-deliveries", "alerts-nav",
    ]

    /// Where a page sits in the navigation.
    enum Section {
        case devices, alerts, scripts, export, tokens, members, account, none
    }

    let assets: WebAssets
    let csrf: CSRFProtection
    let store: any AccountStore

    /// A page for a signed-in person.
    func page(
        _ template: String, title: String, section: Section, context: AuthenticatedContext, content: some Any,
        flash: LayoutModel.Flash? = nil, status: HTTPResponse.Status = .ok
    ) async throws -> Response {
        let identity = context.identity
        let memberships = try await store.memberships(userID: identity.user.id)
        let session = LayoutModel.SessionModel(
            email: identity.user.email, tenantName: identity.tenant.name, role: identity.role.rawValue,
            tenants: memberships.map {
                .init(slug: $0.tenant.slug, name: $0.tenant.name, selected: $0.tenant.id == identity.tenant.id)
            },
            hasSeveralTenants: memberships.count > 1, canWrite: identity.role.canWrite,
            canAdminister: identity.role.canAdminister)
        let layout = LayoutModel(
            title: title, csrf: csrf.token(binding: context.sessionHash ?? ""), session: session, flash: flash,
            navDevices: section == .devices, navAlerts: section == .alerts, navScripts: section == .scripts, navExport: section == .export, navTokens: section == .tokens, navMembers: section == .members,
            navAccount: section == .account)
        return try render(template, layout: layout, content: content, status: status)
    }

    /// A page shown without a session (login, sign-up, errors), its forms bound to `binding`.
    func publicPage(
        _ template: String, title: String, binding: String, content: some Any, flash: LayoutModel.Flash? = nil,
        status: HTTPResponse.Status = .ok
    ) throws -> Response {
        let layout = LayoutModel(title: title, csrf: csrf.token(binding: binding), flash: flash)
        return try render(template, layout: layout, content: content, status: status)
    }

    func render(_ template: String, layout: LayoutModel, content: some Any, status: HTTPResponse.Status) throws
        -> Response
    {
        let object = Page(
            title: layout.title, csrf: layout.csrf, session: layout.session, flash: layout.flash,
            navDevices: layout.navDevices, navAlerts: layout.navAlerts, navScripts: layout.navScripts, navExport: layout.navExport, navTokens: layout.navTokens, navMembers: layout.navMembers,
            navAccount: layout.navAccount, page: content)
        guard let html = assets.templates.render(object, withTemplate: template) else {
            throw PlatformError(.internalFailure, code: "internal_error", message: "Template \(template) is missing")
        }
        var headers = HTTPFields()
        headers[.contentType] = "text/html; charset=utf-8"
        headers[.cacheControl] = "no-store"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: html)))
    }

    /// A 303 to `location` (a path on this site).
    static func redirect(to location: String, cookies: [Cookie] = []) -> Response {
        var response = Response(status: .seeOther, headers: [.location: location])
        for cookie in cookies { response.setCookie(cookie) }
        return response
    }
}
