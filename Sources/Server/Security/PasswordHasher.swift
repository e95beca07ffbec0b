import HummingbirdBcrypt
import NIOPosix

/// bcrypt hashing off the async executors (it is deliberately slow), with a dummy hash so that
/// a login for an unknown email costs the same as one for a known email.
struct PasswordHasher: Sendable {
    let cost: UInt8
    private let dummyHash: String

    init(cost: Int) {
        self.cost = UInt8(cost)
        dummyHash = Bcrypt.hash("not-a-real-password-\(cost)", cost: UInt8(cost))
    }

    func hash(_ password: String) async throws -> String {
        let cost = cost
        return try await NIOThreadPool.singleton.runIfActive { Bcrypt.hash(password, cost: cost) }
    }

    /// Verifies against `hash`, or against the dummy hash when there is no user.
    func verify(_ password: String, hash: String?) async throws -> Bool {
        let target = hash ?? dummyHash
        let matches = try await NIOThreadPool.singleton.runIfActive { Bcrypt.verify(password, hash: target) }
        return hash != nil && matches
    }
}
