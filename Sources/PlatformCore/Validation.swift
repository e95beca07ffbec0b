import Foundation

/// Rules for names and identifiers people choose.
public enum IdentifierRules {
    /// Words that are path segments of the device API and so cannot be serials.
    static let reservedSerials: Set<String> = ["register"]

    /// Device serials: 1–64 characters of letters, digits, `.`, `_`, `-`; not a reserved word.
    public static func validateSerial(_ serial: String, field: String = "serial") throws(PlatformError) {
        guard (1...64).contains(serial.utf8.count),
            serial.utf8.allSatisfy({ isAlphanumeric($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-") })
        else {
            throw .invalid(field, "must be 1–64 characters of letters, digits, '.', '_' or '-'")
        }
        // Lower-casing allocates, and this runs on every unauthenticated ingest: only a serial as
        // long as a reserved word can be one.
        if reservedSerials.contains(where: { $0.utf8.count == serial.utf8.count }), reservedSerials.contains(serial.lowercased()) {
            throw .invalid(field, "'\(serial)' is reserved")
        }
    }

    /// Whether `serial` has a serial's syntax (see `validateSerial`); cheap enough to run before
    /// any lookup of an unauthenticated request.
    public static func isValidSerial(_ serial: String) -> Bool {
        (try? validateSerial(serial)) != nil
    }

    /// A display name: 1–100 characters without control characters; returns it trimmed.
    /// Bidirectional overrides and isolates and invisible (zero-width) characters are refused:
    /// they make a name display as something else (`evil\u{202E}moc.knab` reads "bank.com…").
    public static func validName(_ name: String, field: String) throws(PlatformError) -> String {
        let trimmed = name.trimmingCharacters(in: .whitespacesAndNewlines)
        guard (1...100).contains(trimmed.count), !trimmed.unicodeScalars.contains(where: { $0.properties.generalCategory == .control })
        else {
            throw .invalid(field, "must be 1–100 characters without control characters")
        }
        if trimmed.unicodeScalars.contains(where: isDeceptiveFormatCharacter) {
            throw .invalid(
                field, "must not contain bidirectional-override or invisible (zero-width) characters",
                code: "invisible_characters")
        }
        return trimmed
    }

    /// Format characters that reorder or hide text: the bidi embeddings, overrides, isolates
    /// and marks, and the zero-width and invisible characters (joiners, word joiner, BOM,
    /// invisible operators, Mongolian vowel separator, Hangul fillers).
    static func isDeceptiveFormatCharacter(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x061C, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x180E, 0x200B...0x200F, 0x202A...0x202E, 0x2060...0x206F,
            0x3164, 0xFEFF, 0xFFA0:
            return true
        default:
            return false
        }
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
    /// bcrypt reads only the first 72 bytes of a password (and stops at a NUL byte), so a
    /// longer one would be accepted with its tail ignored: it is refused instead.
    public static let maximumLength = 72

    private let commonPasswords: Set<String>

    /// `commonPasswords` is the list of known-weak passwords (compared case-insensitively).
    public init(commonPasswords: Set<String>) {
        self.commonPasswords = Set(commonPasswords.map { $0.lowercased() })
    }

    /// Throws a validation error naming `field` when `password` is too weak for `email`.
    public func validate(_ password: String, email: String, field: String = "password") throws(PlatformError) {
        func reject(_ message: String) -> PlatformError {
            PlatformError(.validation, code: "weak_password", message: message, field: field)
        }
        guard password.count >= Self.minimumLength else {
            throw reject("Password must be at least \(Self.minimumLength) characters")
        }
        guard password.utf8.count <= Self.maximumLength else {
            throw PlatformError(
                .validation, code: "password_too_long",
                message: "Password must be at most \(Self.maximumLength) bytes in UTF-8 (bcrypt ignores anything longer); this one is \(password.utf8.count)",
                field: field)
        }
        guard !password.utf8.contains(0) else {
            throw reject("Password must not contain NUL characters")
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
