import Foundation
import Glibc
import HTTPTypes
import Hummingbird

/// Decides which address a request's rate limits count against.
///
/// Without proxies (`trustedProxies == 0`) it is the socket's peer. Behind `n` trusted reverse
/// proxies it is the address the outermost trusted proxy saw: each proxy appends the address
/// it received the request from to `X-Forwarded-For`, so that entry is the `n`-th from the
/// right. Everything to its left came from the client and is never used; a request with fewer
/// entries than hops did not pass through all the proxies and counts against its peer.
///
/// IPv4 addresses are keys as they are. IPv6 addresses are grouped by their /64 prefix, the
/// block one subscriber usually gets, so rotating through one's own block does not reset a limit.
struct ClientAddressResolver: Sendable {
    let trustedProxies: Int

    func key(_ request: Request, peer: String?) -> String {
        key(forwardedFor: trustedProxies > 0 ? request.headers[values: .xForwardedFor] : [], peer: peer)
    }

    /// The key for a peer and the `X-Forwarded-For` header lines, in the order received.
    func key(forwardedFor: [String], peer: String?) -> String {
        if trustedProxies > 0 {
            let entries = forwardedFor
                .flatMap { $0.split(separator: ",") }
                .map { $0.trimmingCharacters(in: .whitespaces) }
            if entries.count >= trustedProxies, let key = Self.normalized(entries[entries.count - trustedProxies]) {
                return key
            }
        }
        return peer.flatMap(Self.normalized) ?? "unknown"
    }

    /// The rate-limit key of an address (`1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1`,
    /// `[2001:db8::1]:443`), or nil when it is not an IP address.
    static func normalized(_ text: String) -> String? {
        var host = Substring(text)
        if host.hasPrefix("["), let close = host.firstIndex(of: "]") {
            host = host[host.index(after: host.startIndex)..<close]
        } else if host.filter({ $0 == ":" }).count == 1, let colon = host.firstIndex(of: ":") {
            host = host[..<colon]
        }
        if let zone = host.firstIndex(of: "%") { host = host[..<zone] }
        guard host.utf8.count <= 64 else { return nil }
        let address = String(host)
        var v4 = in_addr()
        if inet_pton(AF_INET, address, &v4) == 1 {
            return format(ipv4: withUnsafeBytes(of: v4) { Array($0) })
        }
        var v6 = in6_addr()
        guard inet_pton(AF_INET6, address, &v6) == 1 else { return nil }
        let bytes = withUnsafeBytes(of: v6) { Array($0) }
        if bytes[0..<10].allSatisfy({ $0 == 0 }), bytes[10] == 0xFF, bytes[11] == 0xFF {
            return format(ipv4: Array(bytes[12..<16]))
        }
        let groups = stride(from: 0, to: 8, by: 2).map { String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16) }
        return groups.joined(separator: ":") + "::/64"
    }

    private static func format(ipv4 bytes: [UInt8]) -> String {
        bytes.map(String.init).joined(separator: ".")
    }
}
