import Crypto
import Foundation

/// Form tokens against cross-site request forgery: a token is an HMAC of the request's binding
/// (the session token's hash once signed in, before that a random pre-session cookie, see
/// `SessionCookies`) under the
/// server's secret key, so nothing is stored and a token is useless for another session.
/// Without `THERMOSTAT_SECRET_KEY` (development) the key is random per process: open forms
/// then stop working across a restart, nothing else.
struct CSRFProtection: Sendable {
    private let keyBytes: Data
    static let fieldName = "_csrf"

    init(secretKey: String?) {
        if let secretKey {
            keyBytes = Data(SHA256.hash(data: Data(("csrf:" + secretKey).utf8)))
        } else {
            keyBytes = SymmetricKey(size: .bits256).withUnsafeBytes { Data($0) }
        }
    }

    func token(binding: String) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: Data(binding.utf8), using: SymmetricKey(data: keyBytes))
        return Data(mac).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    func isValid(_ token: String?, binding: String) -> Bool {
        guard let token else { return false }
        return Secrets.constantTimeEquals(token, self.token(binding: binding))
    }
}
