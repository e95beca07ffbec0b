import Crypto
import Foundation

/// Random secrets (API keys, session and API tokens) and their stored form.
///
/// Secrets are 32 random bytes, base64url-encoded behind a recognisable prefix (`thk_` device
/// keys, `ths_` sessions, `tht_` user tokens, `whsec_` webhook signing secrets) so a leaked one is easy to spot and scan for. The
/// database only ever holds the SHA-256 hex digest — except of webhook secrets, which the
/// platform needs in full to sign with.
enum Secrets {
    static func generate(prefix: String) -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        return prefix + base64URL(bytes)
    }

    /// The SHA-256 of a secret in lowercase hex (every device-authenticated request hashes its key).
    static func hash(_ secret: String) -> String {
        SHA256.hash(data: Data(secret.utf8)).lowercaseHex
    }

    /// Compares two digests without an early exit, so timing reveals nothing about how much
    /// of a guess matched.
    static func constantTimeEquals(_ lhs: String, _ rhs: String) -> Bool {
        let a = Array(lhs.utf8)
        let b = Array(rhs.utf8)
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for index in a.indices {
            difference |= a[index] ^ b[index]
        }
        return difference == 0
    }

    private static func base64URL(_ bytes: [UInt8]) -> String {
        Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    static let deviceKeyPrefix = "thk_"
    static let sessionPrefix = "ths_"
    static let apiTokenPrefix = "tht_"
    static let passwordResetPrefix = "thr_"
}
