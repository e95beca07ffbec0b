// swift-tools-version:6.2
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "thermostat-platform",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "thermostat", targets: ["thermostat"]),
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-auth.git", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.81.0"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache.git", from: "2.1.1"),
    ],
    targets: [
        // Debian's liblua5.4 headers and library.
        .systemLibrary(
            name: "CLua",
            pkgConfig: "lua5.4",
            providers: [.apt(["liblua5.4-dev"])]
        ),
        // The sandbox's C half: everything that may raise a Lua error (hook, allocator, safe library).
        .target(name: "CLuaShim", dependencies: ["CLua"]),
        // One safe Lua VM: limits, safe library set, value bridging.
        .target(name: "LuaSandbox", dependencies: ["CLua", "CLuaShim"], swiftSettings: swiftSettings),
        // The four script hooks, built-in plugins and tier policies, on top of the sandbox.
        .target(name: "Scripting", dependencies: ["LuaSandbox", "PlatformCore"], swiftSettings: swiftSettings),
        // Lua in supervised worker processes: the framed pipe protocol, the worker's request
        // loop (`thermostat lua-worker`) and the pool that starts, deadlines and kills workers.
        .target(
            name: "ScriptWorkers",
            dependencies: [
                "Scripting",
                "LuaSandbox",
                "PlatformCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // Debian's libqrencode headers and library.
        .systemLibrary(
            name: "CQREncode",
            pkgConfig: "libqrencode",
            providers: [.apt(["libqrencode-dev"])]
        ),
        // Debian's libcurl headers and library, for SMTP.
        .systemLibrary(
            name: "CCurl",
            pkgConfig: "libcurl",
            providers: [.apt(["libcurl4-openssl-dev"])]
        ),
        // libcurl's SMTP client behind one C function (curl_easy_setopt is variadic).
        .target(name: "CurlSMTP", dependencies: ["CCurl"]),
        // Outbound notifications: mail over SMTP (libcurl) and signed webhooks (async-http-client).
        .target(
            name: "Notify",
            dependencies: [
                "CurlSMTP",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings),
        // QR codes for provisioning URIs: libqrencode's module matrix, rendered as inline SVG.
        .target(name: "QRCode", dependencies: ["CQREncode"], swiftSettings: swiftSettings),
        // Domain types and rules: pure Swift, no I/O.
        .target(
            name: "PlatformCore",
            swiftSettings: swiftSettings
        ),
        // Store protocols with SQLite (GRDB) and PostgreSQL (PostgresNIO) implementations.
        .target(
            name: "Storage",
            dependencies: [
                "PlatformCore",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // The Hummingbird application: routes, middleware, background services.
        .target(
            name: "Server",
            dependencies: [
                "PlatformCore",
                "Storage",
                "Scripting",
                "ScriptWorkers",
                "QRCode",
                "Notify",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "Mustache", package: "swift-mustache"),
                .product(name: "HummingbirdBcrypt", package: "hummingbird-auth"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
            ],
            resources: [.copy("Resources/common-passwords.txt")],
            swiftSettings: swiftSettings
        ),
        // The command-line entry point: serve, migrate, create-admin, check.
        .executableTarget(
            name: "thermostat",
            dependencies: [
                "Server",
                "ScriptWorkers",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings
        ),
        // Fresh SQLite and PostgreSQL databases for tests (a real server, never a mock).
        .target(
            name: "StorageTesting",
            dependencies: [
                "Storage",
                .product(name: "PostgresNIO", package: "postgres-nio"),
            ],
            path: "Tests/StorageTesting",
            swiftSettings: swiftSettings
        ),
        // `make bench`: the cost of one ingest transform call across the Swift/Lua boundary, in
        // process and through a Lua worker process.
        .executableTarget(
            name: "LuaBenchmark",
            dependencies: [
                "CLua", "Scripting", "LuaSandbox", "PlatformCore", "ScriptWorkers", .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings),
        .testTarget(name: "LuaSandboxTests", dependencies: ["LuaSandbox"], swiftSettings: swiftSettings),
        .testTarget(name: "ScriptingTests", dependencies: ["Scripting"], swiftSettings: swiftSettings),
        .testTarget(name: "ScriptWorkersTests", dependencies: ["ScriptWorkers", "Scripting"], swiftSettings: swiftSettings),
        .testTarget(name: "QRCodeTests", dependencies: ["QRCode"], swiftSettings: swiftSettings),
        // A real SMTP server on loopback for tests (Debian's aiosmtpd).
        .target(name: "MailTesting", path: "Tests/MailTesting", swiftSettings: swiftSettings),
        .testTarget(name: "NotifyTests", dependencies: ["Notify", "MailTesting"], swiftSettings: swiftSettings),
        .testTarget(name: "PlatformCoreTests", dependencies: ["PlatformCore"], swiftSettings: swiftSettings),
        .testTarget(name: "StorageTests", dependencies: ["Storage", "StorageTesting"], swiftSettings: swiftSettings),
        .testTarget(
            name: "ServerTests",
            dependencies: [
                "Server",
                "StorageTesting",
                "MailTesting",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // Black-box tests of the release binary, run the way a user runs it.
        .testTarget(
            name: "IntegrationTests",
            dependencies: [
                "StorageTesting",
                "MailTesting",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ],
            swiftSettings: swiftSettings
        ),
    ]
)
