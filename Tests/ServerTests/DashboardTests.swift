import Foundation
import HTTPTypes
import HummingbirdTesting
import NIOCore
import PlatformCore
import Server
import Storage
import StorageTesting
import Testing

/// The dashboard without a browser: sessions and redirects, CSRF, security headers, tenancy,
/// roles, static files, and the account API the pages rely on (tenants, switching, password).
@Suite("Dashboard pages")
struct DashboardTests {
    static let password = "Corr3ct-Horse-Battery"

    /// A browser's cookie jar and form handling over the in-process client.
    struct Browser {
        let client: any TestClientProtocol
        var cookies: [String: String] = [:]

        var cookieHeader: String { cookies.map { "\($0.key)=\($0.value)" }.joined(separator: "; ") }

        mutating func get(_ path: String) async throws -> TestResponse {
            var headers = HTTPFields()
            if !cookies.isEmpty { headers[.cookie] = cookieHeader }
            let response = try await client.execute(uri: path, method: .get, headers: headers, body: nil)
            remember(response)
            return response
        }

        /// Posts a form; `csrf` nil sends the token from the last page fetched from `tokenPage`.
        mutating func post(_ path: String, _ fields: [String: String], contentType: String = "application/x-www-form-urlencoded")
            async throws -> TestResponse
        {
            var headers = HTTPFields()
            headers[.contentType] = contentType
            if !cookies.isEmpty { headers[.cookie] = cookieHeader }
            let body = fields.map { "\($0.key)=\($0.value.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!)" }
                .joined(separator: "&")
            let response = try await client.execute(uri: path, method: .post, headers: headers, body: ByteBuffer(string: body))
            remember(response)
            return response
        }

        /// The CSRF token of the forms on `path`.
        mutating func csrf(on path: String) async throws -> String {
            let page = try await get(path)
            let html = String(buffer: page.body)
            let marker = #"name="_csrf" value=""#
            let start = try #require(html.range(of: marker), "no form on \(path): \(html.prefix(300))").upperBound
            return String(html[start...].prefix { $0 != "\"" })
        }

        private mutating func remember(_ response: TestResponse) {
            for header in response.headers[values: .setCookie] {
                let pair = header.prefix { $0 != ";" }
                guard let equals = pair.firstIndex(of: "=") else { continue }
                let name = String(pair[..<equals])
                let value = String(pair[pair.index(after: equals)...])
                if value.isEmpty || header.contains("Max-Age=0") { cookies[name] = nil } else { cookies[name] = value }
            }
        }

        mutating func signUp(_ email: String, tenant: String = "Home") async throws {
            let token = try await csrf(on: "/signup")
            let response = try await post(
                "/signup", ["_csrf": token, "email": email, "password": DashboardTests.password, "tenant_name": tenant])
            #expect(response.status == .seeOther, "\(String(buffer: response.body))")
            #expect(response.headers[.location] == "/")
        }
    }

    static let pages = ["/", "/devices/new", "/devices/TH-1", "/scripts", "/export", "/tokens", "/members", "/account"]

    @Test func everyPageNeedsASessionAndReturnsThereAfterLogin() async throws {
        try await TestPlatform.run { client, _ in
            var browser = Browser(client: client)
            for page in Self.pages {
                let response = try await browser.get(page)
                #expect(response.status == .seeOther, "\(page)")
                let location = try #require(response.headers[.location])
                #expect(location.hasPrefix("/login"), "\(page) → \(location)")
            }
            for page in ["/devices/new", "/tokens", "/logout", "/switch-tenant", "/account/password"] {
                let response = try await browser.post(page, ["_csrf": "x"])
                #expect([.seeOther, .forbidden].contains(response.status), "POST \(page): \(response.status)")
                #expect(try await client.json("/api/devices/").status == .unauthorized)
            }
            try await browser.signUp("returner@example.com")
            let logoutToken = try await browser.csrf(on: "/")
            #expect(try await browser.post("/logout", ["_csrf": logoutToken]).headers[.location] == "/login")
            let redirect = try await browser.get("/tokens?x=1")
            let location = try #require(redirect.headers[.location])
            #expect(location == "/login?next=%2Ftokens%3Fx%3D1")
            let token = try await browser.csrf(on: location)
            let login = try await browser.post(
                "/login", ["_csrf": token, "email": "returner@example.com", "password": Self.password, "next": "/tokens?x=1"])
            #expect(login.status == .seeOther)
            #expect(login.headers[.location] == "/tokens?x=1")
            #expect(try await browser.get("/tokens").status == .ok)
        }
    }

    @Test func loginNeverRedirectsOffSite() async throws {
        try await TestPlatform.run { client, _ in
            var browser = Browser(client: client)
            try await browser.signUp("stay@example.com")
            let logout = try await browser.csrf(on: "/")
            _ = try await browser.post("/logout", ["_csrf": logout])
            for next in ["//evil.example/", "https://evil.example/", "/\\evil.example", "javascript:alert(1)"] {
                let token = try await browser.csrf(on: "/login")
                let login = try await browser.post(
                    "/login", ["_csrf": token, "email": "stay@example.com", "password": Self.password, "next": next])
                #expect(login.headers[.location] == "/", "next=\(next)")
                let out = try await browser.csrf(on: "/")
                _ = try await browser.post("/logout", ["_csrf": out])
            }
        }
    }

    @Test func anExpiredSessionLandsOnLoginWithAMessage() async throws {
        let clock = ManualClock()
        try await TestPlatform.run(clock: clock) { client, _ in
            var browser = Browser(client: client)
            try await browser.signUp("sleepy@example.com")
            #expect(try await browser.get("/account").status == .ok)
            clock.advance(seconds: 9001)
            let response = try await browser.get("/account")
            #expect(response.status == .seeOther)
            #expect(response.headers[.location] == "/login?expired=1&next=%2Faccount")
            let login = try await browser.get("/login?expired=1&next=%2Faccount")
            #expect(String(buffer: login.body).contains("Your session expired"))
            #expect(String(buffer: login.body).contains(#"name="next" value="/account""#))
        }
    }

    @Test func formsWithoutTheirTokenChangeNothing() async throws {
        try await TestPlatform.run { client, store in
            var browser = Browser(client: client)
            _ = try await browser.get("/signup")
            let noToken = try await browser.post(
                "/signup", ["email": "forged@example.com", "password": Self.password, "tenant_name": "Forged"])
            #expect(noToken.status == .forbidden)
            #expect(String(buffer: noToken.body).contains("did not come from this site"))
            #expect(try await store.user(email: "forged@example.com") == nil)

            try await browser.signUp("victim@example.com")
            for (path, fields) in [
                ("/devices/new", ["serial": "TH-FORGED"]), ("/tokens", ["name": "forged"]),
                ("/account/password", ["current_password": Self.password, "new_password": "An0ther-Password!"]),
            ] {
                let forged = try await browser.post(path, fields.merging(["_csrf": "forged-token"]) { $1 })
                #expect(forged.status == .forbidden, "\(path)")
                let missing = try await browser.post(path, fields)
                #expect(missing.status == .forbidden, "\(path)")
            }
            let user = try #require(try await store.user(email: "victim@example.com"))
            let tenantID = try #require(try await store.memberships(userID: user.id).first?.tenant.id)
            #expect(try await store.devices(tenantID: tenantID).isEmpty)
            #expect(try await store.apiTokens(tenantID: tenantID, userID: user.id).isEmpty)

            let token = try await browser.csrf(on: "/tokens")
            let json = try await browser.post("/tokens", ["_csrf": token, "name": "x"], contentType: "application/json")
            #expect(json.status == .unsupportedMediaType)
            let foreign = try await client.execute(
                uri: "/tokens", method: .post,
                headers: [
                    .contentType: "application/x-www-form-urlencoded", .cookie: browser.cookieHeader,
                    .origin: "https://evil.example",
                ],
                body: ByteBuffer(string: "_csrf=\(token)&name=x"))
            #expect(foreign.status == .forbidden)
            #expect(try await store.apiTokens(tenantID: tenantID, userID: user.id).isEmpty)
        }
    }

    @Test func pagesSendTheSecurityHeaders() async throws {
        try await TestPlatform.run { client, _ in
            var browser = Browser(client: client)
            for page in ["/login", "/signup", "/forgot-password", "/reset-password?token=x"] {
                Self.expectSecurityHeaders(try await browser.get(page), page)
            }
            try await browser.signUp("headers@example.com")
            for page in Self.pages {
                let response = try await browser.get(page)
                Self.expectSecurityHeaders(response, page)
                let html = String(buffer: response.body)
                #expect(!html.contains("<script>") && !html.contains(" onclick=") && !html.contains(" style="), "\(page)")
            }
        }
    }

    static func expectSecurityHeaders(_ response: TestResponse, _ page: String) {
        let csp = response.headers[.contentSecurityPolicy] ?? ""
        #expect(csp.contains("script-src 'self'"), "\(page)")
        #expect(!csp.contains("unsafe-inline"), "\(page)")
        #expect(csp.contains("frame-ancestors 'none'"), "\(page)")
        #expect(response.headers[HTTPField.Name("X-Content-Type-Options")!] == "nosniff", "\(page)")
        #expect(response.headers[HTTPField.Name("Referrer-Policy")!] == "same-origin", "\(page)")
        #expect(response.headers[.cacheControl] == "no-store", "\(page)")
        #expect(response.headers[.contentType]?.hasPrefix("text/html") == true, "\(page): \(response.status)")
    }

    @Test func anotherTenantsDeviceIsNotFound() async throws {
        try await TestPlatform.run { client, _ in
            let other = try await client.register("other@example.com", tenant: "Other")
            _ = try await client.registerDevice(other, serial: "TH-THEIRS")
            var browser = Browser(client: client)
            try await browser.signUp("mine@example.com")
            let page = try await browser.get("/devices/TH-THEIRS")
            #expect(page.status == .notFound)
            #expect(page.headers[.contentType]?.hasPrefix("text/html") == true)
            let token = try await browser.csrf(on: "/")
            for action in ["rename", "rotate", "revoke"] {
                let response = try await browser.post("/devices/TH-THEIRS/\(action)", ["_csrf": token, "name": "Mine"])
                #expect(response.status == .notFound, "\(action)")
            }
            let stream = try await client.json("/api/telemetry/stream/?device=TH-THEIRS", cookie: browser.cookies["thermostat_session"])
            #expect(stream.status == .notFound)
            #expect(try await client.json("/api/telemetry/stream/").status == .unauthorized)
        }
    }

    @Test func viewersSeeNoButtonsAndAreRefused() async throws {
        try await TestPlatform.run { client, store in
            let owner = try await client.register("owner-v@example.com", tenant: "Shared")
            _ = try await client.registerDevice(owner, serial: "TH-VIEW")
            var browser = Browser(client: client)
            try await browser.signUp("viewer-v@example.com", tenant: "Own")
            try await client.addMember(
                owner, email: "viewer-v@example.com", role: "viewer",
                inviteeCookie: try #require(browser.cookies["thermostat_session"]))
            let sharedID = try #require(UUID(uuidString: owner.tenantID))
            let shared = try #require(try await store.tenant(id: sharedID))
            let token = try await browser.csrf(on: "/")
            let switched = try await browser.post("/switch-tenant", ["_csrf": token, "tenant": shared.slug])
            #expect(switched.status == .seeOther)
            let overview = String(buffer: try await browser.get("/").body)
            #expect(overview.contains("TH-VIEW"))
            #expect(!overview.contains("add-device"))
            let device = String(buffer: try await browser.get("/devices/TH-VIEW").body)
            #expect(!device.contains("rotate-form") && !device.contains("revoke-form") && !device.contains("rename-form"))
            #expect(!String(buffer: try await browser.get("/members").body).contains("member-form"))
            let csrf = try await browser.csrf(on: "/")
            #expect(try await browser.post("/devices/new", ["_csrf": csrf, "serial": "TH-NOPE"]).status == .forbidden)
            #expect(try await browser.post("/devices/TH-VIEW/revoke", ["_csrf": csrf]).status == .forbidden)
            #expect(try await browser.get("/devices/new").status == .forbidden)
            #expect(try await store.device(tenantID: shared.id, serial: "TH-NOPE") == nil)
        }
    }

    @Test func aDeviceKeyIsShownOnceWithItsQRCode() async throws {
        try await TestPlatform.run { client, _ in
            var browser = Browser(client: client)
            try await browser.signUp("qr@example.com")
            let token = try await browser.csrf(on: "/devices/new")
            let created = try await browser.post("/devices/new", ["_csrf": token, "serial": "TH-QR", "name": "Hall <b>"])
            #expect(created.status == .created)
            let html = String(buffer: created.body)
            #expect(html.contains("<svg") && html.contains("<path fill=\"#000\""))
            #expect(html.contains("Hall &lt;b&gt;"), "names are escaped")
            let keyStart = try #require(html.range(of: #"<code id="api-key" class="secret">"#)).upperBound
            let key = String(html[keyStart...].prefix { $0 != "<" })
            #expect(key.hasPrefix("thk_"))
            #expect(html.contains("serial=TH-QR&amp;key=\(key)"))
            for page in ["/", "/devices/TH-QR"] {
                #expect(!String(buffer: try await browser.get(page).body).contains(key), "\(page)")
            }
            let duplicate = try await browser.post(
                "/devices/new", ["_csrf": try await browser.csrf(on: "/devices/new"), "serial": "TH-QR"])
            #expect(duplicate.status == .conflict)
            #expect(String(buffer: duplicate.body).contains("form-error"))
            let sample = SampleJSON.make(serial: "TH-QR", at: Timestamp(Date()))
            let ingest = try await client.ingest(TestDevice(serial: "TH-QR", key: key), sample)
            #expect(ingest.status == .ok)
        }
    }

    @Test func staticFilesAreCachedAndRevalidated() async throws {
        try await TestPlatform.run { client, _ in
            for name in ["app.js", "app.css", "chart.min.js"] {
                let response = try await client.execute(uri: "/static/\(name)", method: .get)
                #expect(response.status == .ok, "\(name)")
                let etag = try #require(response.headers[.eTag])
                #expect(response.headers[.cacheControl]?.contains("max-age") == true)
                let again = try await client.execute(uri: "/static/\(name)", method: .get, headers: [.ifNoneMatch: etag])
                #expect(again.status == .notModified)
            }
            #expect(try await client.execute(uri: "/static/../Package.swift", method: .get).status == .notFound)
            #expect(try await client.execute(uri: "/static/missing.js", method: .get).status == .notFound)
        }
    }

    @Test(arguments: Backend.available)
    func membersSwitchTenantsAndChangePasswords(_ backend: Backend) async throws {
        try await TestPlatform.run(backend) { client, _ in
            let owner = try await client.register("host@example.com", tenant: "Host")
            let guest = try await client.register("guest-s@example.com", tenant: "Guest")
            try await client.addMember(owner, email: "guest-s@example.com", role: "member", inviteeCookie: guest.cookie)
            let me = try await client.json("/api/auth/me/", cookie: guest.cookie).object()
            let tenants = try #require(me["tenants"] as? [[String: Any]])
            #expect(Set(tenants.compactMap { $0["name"] as? String }) == ["Host", "Guest"])
            let hostSlug = try #require(tenants.first { $0["name"] as? String == "Host" }?["slug"] as? String)

            let switched = try await client.json(
                "/api/auth/switch-tenant/", method: .post, body: #"{"tenant":"\#(hostSlug)"}"#, cookie: guest.cookie)
            #expect(switched.status == .ok)
            let newCookie = try #require(switched.sessionCookie)
            #expect(try await client.json("/api/auth/me/", cookie: guest.cookie).status == .unauthorized, "the old session ended")
            let now = try await client.json("/api/auth/me/", cookie: newCookie).object()
            #expect((now["tenant"] as? [String: Any])?["name"] as? String == "Host")
            #expect((now["tenant"] as? [String: Any])?["role"] as? String == "member")
            let stranger = try await client.register("stranger@example.com", tenant: "Elsewhere")
            let strangerMe = try await client.json("/api/auth/me/", cookie: stranger.cookie).object()
            let strangerSlug = try #require((strangerMe["tenant"] as? [String: Any])?["slug"] as? String)
            let refused = try await client.json(
                "/api/auth/switch-tenant/", method: .post, body: #"{"tenant":"\#(strangerSlug)"}"#, cookie: newCookie)
            #expect(refused.status == .notFound)

            let second = try await client.json(
                "/api/auth/login/", method: .post, body: #"{"email":"guest-s@example.com","password":"Corr3ct-Horse-Battery"}"#)
            let secondCookie = try #require(second.sessionCookie)
            let wrong = try await client.json(
                "/api/auth/password/", method: .post,
                body: #"{"current_password":"not-it","new_password":"Brand-New-Passw0rd"}"#, cookie: newCookie)
            #expect(wrong.status == .unprocessableContent)
            #expect(wrong.errorField == "current_password")
            let weak = try await client.json(
                "/api/auth/password/", method: .post,
                body: #"{"current_password":"Corr3ct-Horse-Battery","new_password":"short"}"#, cookie: newCookie)
            #expect(weak.errorField == "new_password")
            let changed = try await client.json(
                "/api/auth/password/", method: .post,
                body: #"{"current_password":"Corr3ct-Horse-Battery","new_password":"Brand-New-Passw0rd"}"#, cookie: newCookie)
            #expect(changed.status == .noContent)
            #expect(try await client.json("/api/auth/me/", cookie: newCookie).status == .ok, "this session stays")
            #expect(try await client.json("/api/auth/me/", cookie: secondCookie).status == .unauthorized, "others end")
            let old = try await client.json(
                "/api/auth/login/", method: .post, body: #"{"email":"guest-s@example.com","password":"Corr3ct-Horse-Battery"}"#)
            #expect(old.status == .unauthorized)
        }
    }

    @Test func scriptsAreEditedWithErrorsAtTheirLineDryRunAndActivated() async throws {
        try await TestPlatform.run { client, store in
            var browser = Browser(client: client)
            try await browser.signUp("lua@example.com")
            let token = try await browser.csrf(on: "/scripts")
            let broken = "return {\n  transform = function(s)\n    s.temp_inside_c = s.temp_inside_c +\n  end\n}"
            let refused = try await browser.post(
                "/scripts", ["_csrf": token, "name": "calibrate", "hook": "ingest", "source": broken, "config": "{}"])
            #expect(refused.status == .unprocessableContent)
            let page = String(buffer: refused.body)
            #expect(page.contains(#"id="script-error" class="form-error" role="alert" data-line="4""#))
            #expect(page.contains(#"<li id="source-line-4" class="error-line""#))
            #expect(page.contains("s.temp_inside_c = s.temp_inside_c +"), "the source is kept for fixing")
            let user = try #require(try await store.user(email: "lua@example.com"))
            let tenantID = try #require(try await store.memberships(userID: user.id).first?.tenant.id)
            #expect(try await store.scripts(tenantID: tenantID).isEmpty)

            let fixed = "return {\n  transform = function(s)\n    print('seen', s.temp_inside_c)\n    s.temp_inside_c = s.temp_inside_c + 1\n    return s\n  end\n}"
            let stored = try await browser.post(
                "/scripts", ["_csrf": token, "name": "calibrate", "hook": "ingest", "source": fixed, "config": "{}"])
            #expect(stored.status == .seeOther)
            let location = try #require(stored.headers[.location])
            let path = String(location.prefix { $0 != "?" })
            let script = try #require(try await store.scripts(tenantID: tenantID).first)
            #expect(script.activeVersion == nil, "uploading never activates")
            #expect(path == "/scripts/\(script.id.uuidString.lowercased())")

            let sample = SampleJSON.make(serial: "TH-DRY", at: Timestamp(Date()))
            let report = try await browser.post("\(path)/dry-run", ["_csrf": token, "sample": sample, "version": "1"])
            #expect(report.status == .ok)
            let reportHTML = String(buffer: report.body)
            #expect(reportHTML.contains("&quot;temp_inside_c&quot; : 21.5"))
            #expect(reportHTML.contains("seen\t20.5"))
            let badSample = try await browser.post("\(path)/dry-run", ["_csrf": token, "sample": "{not json"])
            #expect(String(buffer: badSample.body).contains(#"id="dry-run-errors""#))

            let activated = try await browser.post("\(path)/activate", ["_csrf": token, "version": "1"])
            #expect(activated.status == .seeOther)
            #expect(try await store.script(tenantID: tenantID, id: script.id)?.activeVersion == 1)
            let detail = String(buffer: try await browser.get(path).body)
            #expect(detail.contains(#"id="script-status" class="script-status active""#))
            let deactivated = try await browser.post("\(path)/deactivate", ["_csrf": token])
            #expect(deactivated.status == .seeOther)
            #expect(try await store.script(tenantID: tenantID, id: script.id)?.activeVersion == nil)

            var stranger = Browser(client: client)
            try await stranger.signUp("other-lua@example.com")
            #expect(try await stranger.get(path).status == .notFound)
            let strangerToken = try await stranger.csrf(on: "/")
            #expect(try await stranger.post("\(path)/activate", ["_csrf": strangerToken]).status == .notFound)
            #expect(try await store.script(tenantID: tenantID, id: script.id)?.activeVersion == nil)
        }
    }

    @Test func membersAreInvitedOnOnePageAndAcceptOnTheirAccountPage() async throws {
        try await TestPlatform.run { client, store in
            var host = Browser(client: client)
            try await host.signUp("page-host@example.com", tenant: "Page Host")
            var guest = Browser(client: client)
            try await guest.signUp("page-guest@example.com", tenant: "Page Guest")

            let token = try await host.csrf(on: "/members")
            let sent = try await host.post("/members/invite", ["_csrf": token, "email": "page-guest@example.com", "role": "viewer"])
            #expect(sent.status == .seeOther)
            #expect(sent.headers[.location] == "/members?notice=invitation-sent")
            let members = String(buffer: try await host.get("/members").body)
            #expect(members.contains(#"<table id="invitations">"#) && members.contains("page-guest@example.com"))
            let unknown = try await host.post("/members/invite", ["_csrf": token, "email": "no-account@example.com", "role": "viewer"])
            #expect(unknown.status == .seeOther, "the same answer for an address without an account")

            let account = String(buffer: try await guest.get("/account").body)
            #expect(account.contains("Page Host"))
            let marker = #"<li data-invitation-id=""#
            let start = try #require(account.range(of: marker)).upperBound
            let id = String(account[start...].prefix { $0 != "\"" })
            let guestToken = try await guest.csrf(on: "/account")
            #expect(try await host.post("/invitations/\(id)/accept", ["_csrf": token]).status == .notFound, "not the host's")
            let accepted = try await guest.post("/invitations/\(id)/accept", ["_csrf": guestToken])
            #expect(accepted.headers[.location] == "/account?notice=invitation-accepted")
            let hostTenant = try #require(try await store.tenant(slug: "page-host"))
            let guestUser = try #require(try await store.user(email: "page-guest@example.com"))
            #expect(try await store.membership(userID: guestUser.id, tenantID: hostTenant.id)?.role == .viewer)
            let switched = try await guest.post("/switch-tenant", ["_csrf": guestToken, "tenant": "page-host"])
            #expect(switched.status == .seeOther)
            #expect(String(buffer: try await guest.get("/").body).contains(#"<option value="page-host" selected>"#))

            let roleToken = try await host.csrf(on: "/members")
            let promoted = try await host.post(
                "/members/role", ["_csrf": roleToken, "email": "page-guest@example.com", "role": "member"])
            #expect(promoted.headers[.location] == "/members?notice=member-saved")
            #expect(try await store.membership(userID: guestUser.id, tenantID: hostTenant.id)?.role == .member)
        }
    }
}
