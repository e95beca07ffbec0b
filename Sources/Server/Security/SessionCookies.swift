import Hummingbird

/// The session cookie and the dashboard's pre-session cookie: HttpOnly, SameSite=Lax, Path=/.
/// In production they are Secure and named with the `__Host-` prefix, which browsers accept
/// only from a secure origin, without a Domain, for the whole site — so neither a sibling
/// subdomain nor a plain-HTTP response can plant or overwrite them.
struct SessionCookies: Sendable {
    let secure: Bool

    var sessionName: String { secure ? "__Host-thermostat_session" : "thermostat_session" }
    var presessionName: String { secure ? "__Host-thermostat_presession" : "thermostat_presession" }

    /// The session token the request carries, if any.
    func sessionToken(in request: Request) -> String? {
        guard let value = request.cookies[sessionName]?.value, !value.isEmpty else { return nil }
        return value
    }

    /// The pre-session value binding a login or sign-up form, if any.
    func presession(in request: Request) -> String? {
        guard let value = request.cookies[presessionName]?.value, !value.isEmpty else { return nil }
        return value
    }

    func session(_ token: String) -> Cookie {
        Cookie(name: sessionName, value: token, path: "/", secure: secure, httpOnly: true, sameSite: .lax)
    }

    /// A cookie that removes the session cookie.
    func expiredSession() -> Cookie {
        Cookie(name: sessionName, value: "", maxAge: 0, path: "/", secure: secure, httpOnly: true, sameSite: .lax)
    }

    func presession(_ value: String) -> Cookie {
        Cookie(name: presessionName, value: value, path: "/", secure: secure, httpOnly: true, sameSite: .lax)
    }
}
