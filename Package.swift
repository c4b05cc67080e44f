// swift-tools-version:6.1
// mcp-gateway: a production gateway for the Model Context Protocol.
// Module boundaries follow ../shared/design/ARCHITECTURE.md: a pure core, thin I/O shells.
import PackageDescription

let strict: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "mcp-gateway",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "mcp-gateway", targets: ["mcp-gateway"]),
        .executable(name: "ExampleServer", targets: ["ExampleServer"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-nio-http2.git", from: "1.46.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-collections.git", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-atomics.git", from: "1.3.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/vapor/jwt-kit.git", from: "5.8.0"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-distributed-tracing.git", from: "1.7.3"),
        // OTLP/HTTP only: the OTLPGRPC trait would add grpc-swift and minutes of build time (swift-notes.md).
        .package(url: "https://github.com/swift-otel/swift-otel.git", from: "1.6.0", traits: ["OTLPHTTP"]),
    ],
    targets: [
        // Pure core: value types and state machines, no networking, no processes.
        .target(
            name: "GatewayCore",
            dependencies: [.product(name: "Collections", package: "swift-collections")],
            swiftSettings: strict
        ),
        .target(
            name: "GatewayConfig",
            dependencies: ["GatewayCore", .product(name: "Yams", package: "Yams")],
            swiftSettings: strict
        ),
        .target(
            name: "GatewayAuth",
            dependencies: [
                "GatewayCore", "GatewayConfig",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "GatewayObservability",
            dependencies: [
                "GatewayCore",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Tracing", package: "swift-distributed-tracing"),
                .product(name: "Instrumentation", package: "swift-distributed-tracing"),
                .product(name: "OTel", package: "swift-otel"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "GatewayPlugins",
            dependencies: ["GatewayCore"],
            swiftSettings: strict
        ),
        // One C function Glibc's overlay lacks (pipe2 with O_CLOEXEC).
        .target(name: "CGatewayShims"),
        .target(
            name: "GatewayBackends",
            dependencies: [
                "CGatewayShims", "GatewayCore", "GatewayConfig", "GatewayPlugins", "GatewayObservability",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Atomics", package: "swift-atomics"),
                // The remote (`type: http`) backend's Streamable HTTP client.
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ],
            swiftSettings: strict
        ),
        // The router's I/O shell, shared by every transport (HTTP now, stdio mode later): backends, catalog
        // snapshot, per-replica session table.
        .target(
            name: "GatewayRuntime",
            dependencies: [
                "GatewayCore", "GatewayConfig", "GatewayBackends", "GatewayPlugins", "GatewayObservability",
                // HMAC-SHA256 over pagination cursors (GatewayPagination.swift).
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "GatewayHTTP",
            dependencies: [
                "GatewayCore", "GatewayConfig", "GatewayAuth", "GatewayBackends", "GatewayPlugins", "GatewayObservability", "GatewayRuntime",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        // `mcp-gateway stdio`: one local client on stdin/stdout, the same router and backends.
        .target(
            name: "GatewayStdio",
            dependencies: [
                "GatewayCore", "GatewayBackends", "GatewayRuntime",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "mcp-gateway",
            dependencies: [
                "GatewayCore", "GatewayConfig", "GatewayAuth", "GatewayBackends", "GatewayPlugins",
                "GatewayObservability", "GatewayHTTP", "GatewayRuntime", "GatewayStdio",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "ExampleServer",
            dependencies: ["GatewayCore"],
            swiftSettings: strict
        ),
        // `make bench`: micro-benchmarks of the core (argument validation cost per call).
        .executableTarget(
            name: "gateway-bench",
            dependencies: ["GatewayCore", "GatewayPlugins"],
            swiftSettings: strict
        ),
        // Fuzz targets (`make fuzz`, docs/fuzzing.md): the checks live in FuzzChecks so the regression tests can
        // replay them; each executable runs one check under libFuzzer (built with -DFUZZING) or replays files.
        .target(name: "FuzzChecks", dependencies: ["GatewayCore"], path: "Sources/Fuzz/FuzzChecks", swiftSettings: strict),
        .target(name: "FuzzSessionChecks", dependencies: ["FuzzChecks", "GatewayAuth"], path: "Sources/Fuzz/FuzzSessionChecks", swiftSettings: strict),
        .target(name: "FuzzSSEChecks", dependencies: ["FuzzChecks", "GatewayHTTP"], path: "Sources/Fuzz/FuzzSSEChecks", swiftSettings: strict),
        .executableTarget(name: "FuzzJSONEnvelope", dependencies: ["FuzzChecks"], path: "Sources/Fuzz/FuzzJSONEnvelope", swiftSettings: strict),
        .executableTarget(name: "FuzzSessionID", dependencies: ["FuzzSessionChecks"], path: "Sources/Fuzz/FuzzSessionID", swiftSettings: strict),
        .executableTarget(name: "FuzzSessionIDMutation", dependencies: ["FuzzSessionChecks"], path: "Sources/Fuzz/FuzzSessionIDMutation", swiftSettings: strict),
        .executableTarget(name: "FuzzJSONSchema", dependencies: ["FuzzChecks"], path: "Sources/Fuzz/FuzzJSONSchema", swiftSettings: strict),
        .executableTarget(name: "FuzzSSE", dependencies: ["FuzzSSEChecks"], path: "Sources/Fuzz/FuzzSSE", swiftSettings: strict),
        .testTarget(
            name: "FuzzRegressionTests",
            dependencies: ["FuzzChecks", "FuzzSessionChecks", "FuzzSSEChecks", "GatewayCore"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "GatewayCoreTests",
            dependencies: ["GatewayCore", "GatewayPlugins"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "GatewayConfigTests",
            dependencies: ["GatewayConfig", "GatewayCore"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "GatewayHTTPTests",
            dependencies: [
                "GatewayHTTP", "GatewayCore", "GatewayConfig",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "GatewayBackendsTests",
            dependencies: [
                "GatewayBackends", "GatewayCore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "GatewayObservabilityTests",
            dependencies: ["GatewayObservability", "GatewayCore"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "GatewayAuthTests",
            dependencies: ["GatewayAuth", "GatewayCore"],
            swiftSettings: strict
        ),
    ]
)
