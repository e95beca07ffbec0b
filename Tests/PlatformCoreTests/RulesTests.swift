import PlatformCore
import Testing

@Suite struct PasswordPolicyTests {
    let policy = PasswordPolicy(commonPasswords: ["Password123!", "welcome123"])

    @Test(arguments: [
        ("Tr1cky-Thermo", true),
        ("correct horse Battery", true),
        ("short1A!", false),
        ("alllowercaseletters", false),
        ("lowercase123456", false),
        ("password123!", false),
        ("WELCOME123", false),
        ("Alice-Secret-99", false),
    ])
    func enforcesLengthClassesCommonListAndEmail(_ password: String, _ accepted: Bool) {
        let result = Result { () throws(PlatformError) in try policy.validate(password, email: "alice@example.com") }
        #expect(((try? result.get()) != nil) == accepted)
        if case .failure(let error) = result {
            #expect(error.field == "password")
        }
    }
}

@Suite struct IdentifierRulesTests {
    @Test func serials() {
        #expect((try? IdentifierRules.validateSerial("TH-0001_a.b")) != nil)
        for bad in ["", "has space", "ünï", String(repeating: "a", count: 65), "a/b"] {
            #expect((try? IdentifierRules.validateSerial(bad)) == nil, "\(bad)")
        }
    }

    @Test func emails() throws {
        #expect(try IdentifierRules.normalizedEmail("  Alice@Example.COM ") == "alice@example.com")
        for bad in ["", "alice", "alice@", "@example.com", "a@b", "a b@example.com", "a@@example.com"] {
            #expect((try? IdentifierRules.normalizedEmail(bad)) == nil, "\(bad)")
        }
    }

    @Test func slugs() {
        #expect(IdentifierRules.slug(from: "Acme Heating & Cooling, Ltd.") == "acme-heating-cooling-ltd")
        #expect(IdentifierRules.slug(from: "Ünïcode!!") == "n-code")
        #expect(IdentifierRules.slug(from: "!!!") == "tenant")
    }

    @Test func roles() {
        #expect(!Role.viewer.canWrite)
        #expect(Role.member.canWrite && !Role.member.canAdminister)
        #expect(Role.admin.canAdminister && Role.owner.canAdminister)
        #expect(Role.viewer < Role.owner)
    }
}

@Suite struct QuarantinePolicyTests {
    @Test func windowsGrowAndAreCapped() {
        #expect(QuarantinePolicy.window(afterFailures: 1) == nil)
        #expect(QuarantinePolicy.window(afterFailures: 2) == nil)
        #expect(QuarantinePolicy.window(afterFailures: 3) == 60)
        #expect(QuarantinePolicy.window(afterFailures: 4) == 120)
        #expect(QuarantinePolicy.window(afterFailures: 6) == 480)
        #expect(QuarantinePolicy.window(afterFailures: 40) == 86_400)
    }
}
