import Foundation
import Testing

/// A real SMTP server for tests: Debian's aiosmtpd on a free loopback port, writing what it
/// receives to a maildir (`make test` installs `python3-aiosmtpd`). Its state is set once in
/// `init`; reading the maildir is safe from any task.
public final class LoopbackSMTPServer: @unchecked Sendable {
    let process = Process()
    public let port: Int
    let maildir: URL

    public init() throws {
        maildir = FileManager.default.temporaryDirectory.appendingPathComponent("maildir-\(UUID().uuidString)")
        port = try Self.freePort()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = [
            "-m", "aiosmtpd", "-n", "-l", "127.0.0.1:\(port)", "-c", "aiosmtpd.handlers.Mailbox", maildir.path,
        ]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
    }

    /// Waits until the server accepts connections.
    public func waitUntilListening() async throws {
        for _ in 0..<100 {
            if Self.connects(port) { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        Issue.record("aiosmtpd did not start on port \(port)")
    }

    public func messages() throws -> [String] {
        let folder = maildir.appendingPathComponent("new")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
        return try names.map { try String(contentsOf: folder.appendingPathComponent($0), encoding: .utf8) }
    }

    /// A message's subject, its RFC 2047 encoded-word decoded.
    public static func subject(of message: String) -> String {
        let line = message.components(separatedBy: "\n").first { $0.hasPrefix("Subject: ") } ?? ""
        let value = line.dropFirst("Subject: ".count).trimmingCharacters(in: .whitespacesAndNewlines)
        guard value.hasPrefix("=?UTF-8?B?"), value.hasSuffix("?="),
            let data = Data(base64Encoded: String(value.dropFirst(10).dropLast(2)))
        else { return value }
        return String(decoding: data, as: UTF8.self)
    }

    /// A message's plain-text body, its base64 decoded, with `\n` line ends.
    public static func text(of message: String) -> String {
        let body = message.replacingOccurrences(of: "\r\n", with: "\n").components(separatedBy: "\n\n").dropFirst()
            .joined(separator: "\n\n")
        let data = Data(base64Encoded: body.replacingOccurrences(of: "\n", with: "")) ?? Data()
        return String(decoding: data, as: UTF8.self).replacingOccurrences(of: "\r\n", with: "\n")
    }

    /// Stops the server and removes its maildir. `aiosmtpd -n` ignores SIGTERM and SIGINT, so
    /// it is killed: terminated, every one of them had outlived the tests.
    public func stop() {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(at: maildir)
    }

    deinit {
        stop()
    }

    static func connects(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
    }

    public static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0
            }
        }
        guard bound else { throw CancellationError() }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}
