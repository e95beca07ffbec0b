import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import PlatformCore
import Storage
import StorageTesting
import Testing

@testable import Server

/// The review's attacks on rate-limit keys, tried as an attacker would.
@Suite("Rate-limit keys and limiter memory")
struct RateLimitKeyTests {
    @Test func theKeyIsTheAddressTheTrustedProxiesAdded() {
        let direct = ClientAddressResolver(trustedProxies: 0)
        #expect(direct.key(forwardedFor: ["6.6.6.6"], peer: "192.0.2.10") == "192.0.2.10", "no proxies: the header is ignored")
        #expect(direct.key(forwardedFor: [], peer: nil) == "unknown")

        let oneProxy = ClientAddressResolver(trustedProxies: 1)
        #expect(oneProxy.key(forwardedFor: ["6.6.6.6, 203.0.113.7"], peer: "10.0.0.2") == "203.0.113.7",
            "the entry the proxy appended, never the client's own")
        #expect(oneProxy.key(forwardedFor: ["6.6.6.6", "203.0.113.7"], peer: "10.0.0.2") == "203.0.113.7",
            "several header lines are one list")
        #expect(oneProxy.key(forwardedFor: ["203.0.113.7:51234"], peer: "10.0.0.2") == "203.0.113.7")
        #expect(oneProxy.key(forwardedFor: [], peer: "10.0.0.2") == "10.0.0.2", "no entry: the peer")
        #expect(oneProxy.key(forwardedFor: ["not-an-address"], peer: "10.0.0.2") == "10.0.0.2")

        let twoProxies = ClientAddressResolver(trustedProxies: 2)
        #expect(twoProxies.key(forwardedFor: ["1.1.1.1, 2.2.2.2, 198.51.100.4, 10.0.0.9"], peer: "10.0.0.3") == "198.51.100.4")
        #expect(twoProxies.key(forwardedFor: ["198.51.100.4"], peer: "10.0.0.3") == "10.0.0.3",
            "fewer entries than hops: the request skipped a proxy, so nothing in the header is trusted")
    }

    @Test func ipv6AddressesAreGroupedBySlash64() {
        let a = ClientAddressResolver.normalized("2001:db8:1:2:aaaa::1")
        #expect(a == "2001:db8:1:2::/64")
        #expect(ClientAddressResolver.normalized("2001:0db8:0001:0002:ffff:1:2:3") == a)
        #expect(ClientAddressResolver.normalized("[2001:db8:1:2::99]:443") == a)
        #expect(ClientAddressResolver.normalized("2001:db8:1:3::1") != a)
        #expect(ClientAddressResolver.normalized("::ffff:192.0.2.1") == "192.0.2.1", "IPv4-mapped is the IPv4 address")
        #expect(ClientAddressResolver.normalized("192.0.2.1") == "192.0.2.1")
        #expect(ClientAddressResolver.normalized("999.1.1.1") == nil)
    }

    @Test func aSpoofedLeftmostForwardedForDoesNotEscapeTheLoginLimit() async throws {
        try await TestPlatform.run(configure: { $0.trustedProxies = 1; $0.loginRatePerMinute = 3 }) { client, _ in
            let login = #"{"email":"someone@example.com","password":"Wrong-Passw0rd!"}"#
            var statuses: [HTTPResponse.Status] = []
            for index in 0..<5 {
                let response = try await client.json(
                    "/api/auth/login/", method: .post, body: login,
                    headers: [.xForwardedFor: "10.9.\(index).1, 198.51.100.9"])
                statuses.append(response.status)
            }
            #expect(statuses == [.unauthorized, .unauthorized, .unauthorized, .tooManyRequests, .tooManyRequests])
            let other = try await client.json(
                "/api/auth/login/", method: .post, body: login, headers: [.xForwardedFor: "198.51.100.10"])
            #expect(other.status == .unauthorized, "another client address has its own limit")
        }
    }

    @Test func rotatingAddressesInsideOneIPv6Slash64DoesNotResetTheLimit() async throws {
        try await TestPlatform.run(configure: { $0.trustedProxies = 1; $0.registerRatePerHour = 2 }) { client, _ in
            var statuses: [HTTPResponse.Status] = []
            for index in 0..<3 {
                let response = try await client.json(
                    "/api/auth/register/", method: .post,
                    body: #"{"email":"v6-\#(index)@example.com","password":"Corr3ct-Horse-Battery"}"#,
                    headers: [.xForwardedFor: "2001:db8:7:7::\(index + 1)"])
                statuses.append(response.status)
            }
            #expect(statuses == [.created, .created, .tooManyRequests])
        }
    }

    @Test func passwordGuessesSpreadOverManyAddressesHitTheAccountLimit() async throws {
        try await TestPlatform.run(configure: {
            $0.trustedProxies = 1
            $0.loginRatePerMinute = 1000
            $0.loginRatePerAccountPerHour = 4
        }) { client, _ in
            let victim = try await client.register("victim@example.com")
            _ = victim
            var statuses: [HTTPResponse.Status] = []
            for (index, spelling) in ["victim@example.com", "VICTIM@example.com", " victim@EXAMPLE.com ", "victim@example.com", "Victim@Example.com"]
                .enumerated()
            {
                let response = try await client.json(
                    "/api/auth/login/", method: .post, body: #"{"email":"\#(spelling)","password":"Wrong-Passw0rd!"}"#,
                    headers: [.xForwardedFor: "203.0.113.\(index + 1)"])
                statuses.append(response.status)
            }
            #expect(statuses == [.unauthorized, .unauthorized, .unauthorized, .unauthorized, .tooManyRequests],
                "each address is fresh, but the account (any spelling of its email) is not")
            let limited = try await client.json(
                "/api/auth/login/", method: .post, body: #"{"email":"victim@example.com","password":"Corr3ct-Horse-Battery"}"#,
                headers: [.xForwardedFor: "203.0.113.50"])
            #expect(limited.status == .tooManyRequests)
            #expect(Int(limited.headers[.retryAfter] ?? "") ?? 0 > 0)
            let bystander = try await client.json(
                "/api/auth/login/", method: .post, body: #"{"email":"bystander@example.com","password":"Wrong-Passw0rd!"}"#,
                headers: [.xForwardedFor: "203.0.113.50"])
            #expect(bystander.status == .unauthorized, "other accounts are not limited")
        }
    }

    @Test func limiterMemoryIsBoundedWhateverKeysArrive() throws {
        let clock = ManualClock()
        let limiter = RateLimiter(limit: 1, periodSeconds: 3600, clock: clock, capacity: 100)
        for index in 0..<10_000 {
            try limiter.acquire("203.0.\(index / 256).\(index % 256)")
        }
        #expect(limiter.trackedKeys == 100)
        #expect(throws: PlatformError.self, "the most recent keys are remembered") { try limiter.acquire("203.0.39.15") }
        try limiter.acquire("203.0.0.0")  // long forgotten: a fresh burst

        let prefix = String(repeating: "a", count: RateLimiter.maximumKeyBytes)
        try limiter.acquire(prefix + "first-tail-" + String(repeating: "x", count: 100_000))
        #expect(throws: PlatformError.self, "keys are cut to their first \(RateLimiter.maximumKeyBytes) bytes") {
            try limiter.acquire(prefix + "second-tail")
        }
    }

    @Test func lruTableMatchesAReferenceModel() {
        var table = LRUTable<Int>(capacity: 8)
        var model: [(key: String, value: Int)] = []  // most recent last
        var generator = SystemRandomNumberGenerator()
        for step in 0..<20_000 {
            let key = "k\(Int.random(in: 0..<20, using: &generator))"
            switch Int.random(in: 0..<3, using: &generator) {
            case 0:
                table.set(step, for: key)
                model.removeAll { $0.key == key }
                model.append((key, step))
                if model.count > 8 { model.removeFirst() }
            case 1:
                let found = table.value(for: key)
                if let index = model.firstIndex(where: { $0.key == key }) {
                    #expect(found == model[index].value)
                    model.append(model.remove(at: index))
                } else {
                    #expect(found == nil)
                }
            default:
                table.remove(key)
                model.removeAll { $0.key == key }
            }
            #expect(table.count == model.count)
        }
    }
}
