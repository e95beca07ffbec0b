import Foundation

/// Rules for names and identifiers people choose.
public enum IdentifierRules {
    /// Words that are path segments of the device API and so cannot be serials.
    static let reservedSerials: Set<String> = ["register"]

    /// Device serials: 1–64 characters of letters, digits, `.`, `_`, `-`; not a reserved word.
    public static func validateSerial(_ serial: String, field: String = "serial") throws(PlatformError) {
        if reservedSerials.contains(serial.lowercased()) {
            throw .invalid(field, "'\(serial)' is reserved")
        }
        guard (1...64).contains(serial.utf8.count),
            serial.utf8.allSatisfy({ isAlphanumeric($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-") })
        else {
            throw .invalid(field, "must be 1–64 characters of letters, digits, '.', '_' or '-'")
        }
    }

    /// A display name: 1–100 characters without control characters; returns it trimmed.
    public static func validName(_ name: String, field: String) throws(PlatformError) -> String {
        let trimmed = name.trimmingCharacters(in: .whitespacesAndNewlines)
        guard (1...100).contains(trimmed.count), !trimmed.unicodeScalars.contains(where: { $0.properties.generalCategory == .control })
        else {
            throw .invalid(field, "must be 1–100 characters without control characters")
        }
        return trimmed
    }

    /// A plausible email address (one `@`, a dotted domain, ≤ 254 characters), lower-cased.
    public static func normalizedEmail(_ email: String) throws(PlatformError) -> String {
        let trimmed = email.trimmingCharacters(in: .whitespacesAndNewlines).lowercased()
        let parts = trimmed.split(separator: "@", omittingEmptySubsequences: false)
        guard trimmed.count <= 254, parts.count == 2, !parts[0].isEmpty, parts[1].contains("."),
            !parts[1].hasPrefix("."), !parts[1].hasSuffix("."),
            !trimmed.contains(where: { $0.isWhitespace || $0.asciiValue.map { $0 < 32 } == true })
        else {
            throw .invalid("email", "must be a valid email address")
        }
        return trimmed
    }

    /// A URL-safe slug derived from a tenant name: lower-case letters, digits and single dashes.
    public static func slug(from name: String) -> String {
        var out = ""
        for scalar in name.lowercased().unicodeScalars {
            if scalar.isASCII, isAlphanumeric(UInt8(scalar.value)) {
                out.unicodeScalars.append(scalar)
            } else if !out.isEmpty, !out.hasSuffix("-") {
                out += "-"
            }
        }
        while out.hasSuffix("-") { out.removeLast() }
        let trimmed = String(out.prefix(40))
        return trimmed.hasSuffix("-") ? String(trimmed.dropLast()) : (trimmed.isEmpty ? "tenant" : trimmed)
    }

    private static func isAlphanumeric(_ byte: UInt8) -> Bool {
        (48...57).contains(byte) || (65...90).contains(byte) || (97...122).contains(byte)
    }
}

/// The password policy of the seed: at least 10 characters, three of four character classes,
/// not a common password, not containing the email's local part.
public struct PasswordPolicy: Sendable {
    public static let minimumLength = 10
    public static let maximumLength = 128

    private let commonPasswords: Set<String>

    /// `commonPasswords` is the list of known-weak passwords (compared case-insensitively).
    public init(commonPasswords: Set<String>) {
        self.commonPasswords = Set(commonPasswords.map { $0.lowercased() })
    }

    public func validate(_ password: String, email: String) throws(PlatformError) {
        func reject(_ message: String) -> PlatformError {
            PlatformError(.validation, code: "weak_password", message: message, field: "password")
        }
        guard password.count >= Self.minimumLength else {
            throw reject("Password must be at least \(Self.minimumLength) characters")
        }
        guard password.utf8.count <= Self.maximumLength else {
            throw reject("Password must be at most \(Self.maximumLength) bytes")
        }
        var classes = 0
        if password.contains(where: { $0.isLowercase }) { classes += 1 }
        if password.contains(where: { $0.isUppercase }) { classes += 1 }
        if password.contains(where: { $0.isNumber }) { classes += 1 }
        if password.contains(where: { !$0.isLetter && !$0.isNumber }) { classes += 1 }
        guard classes >= 3 else {
            throw reject("Password must mix at least three of: lower-case, upper-case, digits, symbols")
        }
        let lowered = password.lowercased()
        guard !commonPasswords.contains(lowered) else {
            throw reject("Password is too common")
        }
        let localPart = email.lowercased().split(separator: "@").first.map(String.init) ?? ""
        if localPart.count >= 3, lowered.contains(localPart) {
            throw reject("Password must not contain your email address")
        }
    }
}
