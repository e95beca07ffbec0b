import CQREncode

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// How much of a QR symbol may be damaged and still decode; higher levels make larger symbols.
public enum CorrectionLevel: Sendable {
    /// About 7% of the codewords can be restored.
    case low
    /// About 15% of the codewords can be restored.
    case medium
    /// About 25% of the codewords can be restored.
    case quartile
    /// About 30% of the codewords can be restored.
    case high

    var qrLevel: QRecLevel {
        switch self {
        case .low: QR_ECLEVEL_L
        case .medium: QR_ECLEVEL_M
        case .quartile: QR_ECLEVEL_Q
        case .high: QR_ECLEVEL_H
        }
    }
}

/// Why a text could not be encoded as a QR symbol.
public enum QRCodeError: Error, Equatable {
    /// The text does not fit in the largest symbol (version 40) at the requested correction level.
    case tooLong
    /// libqrencode failed for another reason; the associated value is its `errno`.
    case encodingFailed(Int32)
}

/// A QR symbol: a square matrix of dark and light modules, without the quiet zone.
public struct QRCode: Sendable {
    /// The number of modules on each side of the symbol (21 for version 1, 17 + 4 × version).
    public let size: Int
    /// The symbol version, 1 through 40.
    public let version: Int
    /// Row-major modules, `true` for dark.
    private let modules: [Bool]

    /// Encodes the UTF-8 bytes of `text` in 8-bit mode, in the smallest symbol that holds them.
    ///
    /// - Throws: `QRCodeError.tooLong` when the text does not fit in a version-40 symbol at
    ///   `correction`, `QRCodeError.encodingFailed` for any other libqrencode failure (an empty
    ///   text is one: libqrencode rejects it with `EINVAL`).
    public init(encoding text: String, correction: CorrectionLevel = .medium) throws(QRCodeError) {
        let bytes = Array(text.utf8)
        errno = 0
        let symbol = bytes.withUnsafeBufferPointer { buffer in
            QRcode_encodeData(Int32(buffer.count), buffer.baseAddress, 0, correction.qrLevel)
        }
        guard let symbol else {
            let code = errno
            throw code == ERANGE ? .tooLong : .encodingFailed(code)
        }
        defer { QRcode_free(symbol) }
        let width = Int(symbol.pointee.width)
        let data = UnsafeBufferPointer(start: symbol.pointee.data, count: width * width)
        size = width
        version = Int(symbol.pointee.version)
        modules = data.map { $0 & 1 == 1 }
    }

    /// Whether the module at column `x`, row `y` (origin top left) is dark.
    /// Coordinates outside the symbol are light, as the quiet zone around it is.
    public func isDark(x: Int, y: Int) -> Bool {
        guard (0..<size).contains(x), (0..<size).contains(y) else { return false }
        return modules[y * size + x]
    }

    /// A standalone SVG of the symbol for inlining in HTML: a white background and one black path
    /// built from the horizontal runs of dark modules, with no styles or scripts.
    ///
    /// - Parameters:
    ///   - moduleSize: The side of one module in SVG user units (pixels), at least 1.
    ///   - quietZone: The light margin around the symbol, in modules; scanners expect 4.
    ///   - title: An accessible name, emitted as an XML-escaped `<title>`.
    public func svg(moduleSize: Int = 6, quietZone: Int = 4, title: String? = nil) -> String {
        precondition(moduleSize >= 1, "moduleSize must be at least 1")
        precondition(quietZone >= 0, "quietZone must not be negative")
        let side = (size + 2 * quietZone) * moduleSize
        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 \(side) \(side)\""
        svg += " width=\"\(side)\" height=\"\(side)\" role=\"img\" shape-rendering=\"crispEdges\">"
        if let title {
            svg += "<title>\(Self.xmlEscaped(title))</title>"
        }
        svg += "<rect width=\"\(side)\" height=\"\(side)\" fill=\"#fff\"/>"
        svg += "<path fill=\"#000\" d=\""
        for y in 0..<size {
            var x = 0
            while x < size {
                guard isDark(x: x, y: y) else {
                    x += 1
                    continue
                }
                let start = x
                while x < size, isDark(x: x, y: y) { x += 1 }
                let left = (start + quietZone) * moduleSize
                let top = (y + quietZone) * moduleSize
                let run = (x - start) * moduleSize
                svg += "M\(left) \(top)h\(run)v\(moduleSize)h-\(run)z"
            }
        }
        svg += "\"/></svg>"
        return svg
    }

    /// `text` with XML's special characters escaped and characters XML 1.0 forbids dropped.
    private static func xmlEscaped(_ text: String) -> String {
        var escaped = ""
        escaped.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": escaped += "&amp;"
            case "<": escaped += "&lt;"
            case ">": escaped += "&gt;"
            case "\"": escaped += "&quot;"
            case "'": escaped += "&apos;"
            case "\t", "\n", "\r": escaped.unicodeScalars.append(scalar)
            default:
                let value = scalar.value
                if value < 0x20 || value == 0xFFFE || value == 0xFFFF { continue }
                escaped.unicodeScalars.append(scalar)
            }
        }
        return escaped
    }
}
