import Testing
@testable import QRCode

/// Whether `code` has a finder pattern with its top-left module at (`left`, `top`): a dark 7×7
/// border, a light ring inside it, a dark 3×3 centre and a light separator outside it.
private func hasFinderPattern(_ code: QRCode, left: Int, top: Int) -> Bool {
    for dy in -1...7 {
        for dx in -1...7 {
            let x = left + dx
            let y = top + dy
            guard (0..<code.size).contains(x), (0..<code.size).contains(y) else { continue }
            let ring = max(abs(dx - 3), abs(dy - 3))
            let dark = ring == 3 || ring <= 1
            if code.isDark(x: x, y: y) != dark { return false }
        }
    }
    return true
}

private let provisioningURI =
    "thermostat://provision?v=1&url=http%3A%2F%2F127.0.0.1%3A8080&serial=TH-0001"
    + "&key=tdk_3f9a1c7e5b2d4f6a8c0e1b3d5f7a9c2e4b6d8f0a1c3e5b7d9f2a4c6e"

@Test func shortTextIsVersionOneWithFinderAndTimingPatterns() throws {
    let code = try QRCode(encoding: "HELLO")
    #expect(code.version == 1)
    #expect(code.size == 21)
    #expect(hasFinderPattern(code, left: 0, top: 0))
    #expect(hasFinderPattern(code, left: code.size - 7, top: 0))
    #expect(hasFinderPattern(code, left: 0, top: code.size - 7))
    #expect(!hasFinderPattern(code, left: code.size - 7, top: code.size - 7))
    for i in 8..<(code.size - 8) {
        #expect(code.isDark(x: i, y: 6) == i.isMultiple(of: 2), "horizontal timing at x=\(i)")
        #expect(code.isDark(x: 6, y: i) == i.isMultiple(of: 2), "vertical timing at y=\(i)")
    }
    #expect(code.isDark(x: 8, y: code.size - 8), "the dark module")
    #expect(!code.isDark(x: -1, y: 0))
    #expect(!code.isDark(x: 0, y: code.size))
}

@Test func provisioningURIEncodesInALargerSymbol() throws {
    #expect(provisioningURI.utf8.count >= 120)
    let code = try QRCode(encoding: provisioningURI)
    #expect(code.size > 21)
    #expect(code.size == 17 + 4 * code.version)
    #expect(hasFinderPattern(code, left: 0, top: 0))
    #expect(hasFinderPattern(code, left: code.size - 7, top: 0))
    #expect(hasFinderPattern(code, left: 0, top: code.size - 7))
}

@Test func higherCorrectionNeedsALargerSymbol() throws {
    let low = try QRCode(encoding: provisioningURI, correction: .low)
    let high = try QRCode(encoding: provisioningURI, correction: .high)
    #expect(high.version > low.version)
}

@Test func svgHasOnePathAndAMatchingViewBox() throws {
    let code = try QRCode(encoding: provisioningURI)
    let svg = code.svg(moduleSize: 5, quietZone: 3)
    let side = (code.size + 2 * 3) * 5
    #expect(svg.hasPrefix("<svg xmlns=\"http://www.w3.org/2000/svg\""))
    #expect(svg.hasSuffix("</svg>"))
    #expect(svg.contains("viewBox=\"0 0 \(side) \(side)\""))
    #expect(svg.contains("width=\"\(side)\" height=\"\(side)\""))
    #expect(svg.ranges(of: "<path").count == 1)
    #expect(svg.contains("M15 15h35v5h-35z"), "the top-left finder's first row, 7 modules at (3, 3)")
    #expect(!svg.contains("<title>"))
    #expect(!svg.contains("style"))
    #expect(!svg.contains("script"))
}

@Test func svgDefaultsUseSixPixelModulesAndAFourModuleQuietZone() throws {
    let code = try QRCode(encoding: "HELLO")
    let side = (21 + 8) * 6
    #expect(code.svg().contains("viewBox=\"0 0 \(side) \(side)\""))
}

@Test func svgTitleIsEscaped() throws {
    let code = try QRCode(encoding: "HELLO")
    let svg = code.svg(title: "Scan <me> & \"provision\"\u{1}")
    #expect(svg.contains("<title>Scan &lt;me&gt; &amp; &quot;provision&quot;</title>"))
    #expect(!svg.contains("<me>"))
}

@Test func overLongTextThrowsTooLong() {
    let text = String(repeating: "x", count: 8000)
    #expect(throws: QRCodeError.tooLong) {
        try QRCode(encoding: text)
    }
}

@Test func emptyTextThrowsEncodingFailed() {
    #expect {
        try QRCode(encoding: "")
    } throws: { error in
        guard case QRCodeError.encodingFailed = error else { return false }
        return true
    }
}
