/// `EngineSettings.fromEnvironment`: the environment contract kept from the tool soak replaces.
import XCTest
@testable import Engine
import SoakCore

final class EngineSettingsTests: XCTestCase {
    private func settings(_ env: [String: String], file: StaticString = #filePath, line: UInt = #line) -> EngineSettings? {
        do throws(UsageError) {
            return try EngineSettings.fromEnvironment(env)
        } catch {
            XCTFail("unexpected \(error)", file: file, line: line)
            return nil
        }
    }

    /// Asserts that `env` is refused with a one-line message naming `variable`.
    private func assertRefused(_ env: [String: String], naming variable: String,
                               file: StaticString = #filePath, line: UInt = #line) {
        do throws(UsageError) {
            let s = try EngineSettings.fromEnvironment(env)
            XCTFail("\(env) was accepted: min \(s.minWorkers) max \(s.maxWorkers)", file: file, line: line)
        } catch {
            XCTAssertTrue(error.message.contains(variable), "'\(error.message)' does not name \(variable)", file: file, line: line)
            XCTAssertFalse(error.message.contains("\n"), file: file, line: line)
            XCTAssertEqual(error.description, error.message, file: file, line: line)
        }
    }

    func testDefaults() throws {
        let s = try XCTUnwrap(settings([:]))
        let d = EngineSettings()
        XCTAssertEqual(s.minWorkers, 1)
        XCTAssertEqual(s.maxWorkers, 8)
        XCTAssertEqual(s.initialWorkers, 1)
        XCTAssertEqual(s.slotsPerWorker, 16)
        XCTAssertNil(s.maxBytesPerSecond)
        XCTAssertEqual(s.optimizationInterval, 2)
        XCTAssertEqual(s.retry, RetryPolicy(maxAttempts: 5, baseDelay: 0.5, maxDelay: 20))
        XCTAssertTrue(s.transport.verifyTLS)
        XCTAssertNil(s.transport.caBundle)
        XCTAssertEqual(s.transport, d.transport)
        XCTAssertEqual(s.hangTimeout, 30)
        XCTAssertEqual(s.slotsPerWorker, d.slotsPerWorker)
        XCTAssertEqual(s.logLevel, "info")
    }

    func testUnrelatedAndEmptyVariablesAreIgnored() throws {
        let env = ["PATH": "/usr/bin", "MIN_PROCESSES": "", "MAX_PROCESSES": "", "MAX_SPEED": "",
                   "OPTIMIZATION_INTERVAL": "", "MAX_RETRIES": "", "RETRY_DELAY": "", "S3_VERIFY_SSL": "",
                   "AWS_CA_BUNDLE": ""]
        let s = try XCTUnwrap(settings(env))
        XCTAssertEqual(s.minWorkers, 1)
        XCTAssertEqual(s.maxWorkers, 8)
        XCTAssertNil(s.maxBytesPerSecond)
        XCTAssertEqual(s.optimizationInterval, 2)
        XCTAssertEqual(s.retry, RetryPolicy(maxAttempts: 5, baseDelay: 0.5, maxDelay: 20))
        XCTAssertTrue(s.transport.verifyTLS)
        XCTAssertNil(s.transport.caBundle)
    }

    // MARK: - Worker counts

    func testProcessCounts() throws {
        let s = try XCTUnwrap(settings(["MIN_PROCESSES": "3", "MAX_PROCESSES": "12"]))
        XCTAssertEqual(s.minWorkers, 3)
        XCTAssertEqual(s.maxWorkers, 12)
        // The starting pool lies within the bounds.
        XCTAssertEqual(s.initialWorkers, 3)

        let t = try XCTUnwrap(settings(["MIN_PROCESSES": " 4 ", "MAX_PROCESSES": "4"]))
        XCTAssertEqual(t.minWorkers, 4)
        XCTAssertEqual(t.maxWorkers, 4)
        XCTAssertEqual(t.initialWorkers, 4)
    }

    func testMaxBelowTheRequestedStartClampsTheStart() throws {
        let s = try XCTUnwrap(settings(["MAX_PROCESSES": "2", "SOAK_INITIAL_PROCESSES": "4"]))
        XCTAssertEqual(s.minWorkers, 1)
        XCTAssertEqual(s.maxWorkers, 2)
        XCTAssertEqual(s.initialWorkers, 2)
    }

    func testTuningKnobs() throws {
        let s = try XCTUnwrap(settings(["SOAK_TRANSFERS_PER_WORKER": "4", "SOAK_INITIAL_PROCESSES": "3"]))
        XCTAssertEqual(s.slotsPerWorker, 4)
        XCTAssertEqual(s.initialWorkers, 3)
        XCTAssertThrowsError(try EngineSettings.fromEnvironment(["SOAK_TRANSFERS_PER_WORKER": "0"]))
    }

    func testMinAboveTheDefaultMaxRaisesMax() throws {
        let s = try XCTUnwrap(settings(["MIN_PROCESSES": "16"]))
        XCTAssertEqual(s.minWorkers, 16)
        XCTAssertEqual(s.maxWorkers, 16)
        XCTAssertEqual(s.initialWorkers, 16)
        // An empty MAX_PROCESSES is unset, like every other empty variable.
        let t = try XCTUnwrap(settings(["MIN_PROCESSES": "16", "MAX_PROCESSES": ""]))
        XCTAssertEqual(t.maxWorkers, 16)
    }

    func testMinAboveMaxIsRefused() {
        assertRefused(["MIN_PROCESSES": "9", "MAX_PROCESSES": "8"], naming: "MIN_PROCESSES")
        assertRefused(["MIN_PROCESSES": "9", "MAX_PROCESSES": "8"], naming: "MAX_PROCESSES")
        assertRefused(["MIN_PROCESSES": "2", "MAX_PROCESSES": "1"], naming: "MAX_PROCESSES")
    }

    func testBadProcessCountsAreRefused() {
        for v in ["0", "-1", "257", "abc", "2.5", "1e3", " "] {
            assertRefused(["MIN_PROCESSES": v], naming: "MIN_PROCESSES")
            assertRefused(["MAX_PROCESSES": v], naming: "MAX_PROCESSES")
        }
        XCTAssertEqual(settings(["MIN_PROCESSES": "256", "MAX_PROCESSES": "256"])?.maxWorkers, 256)
    }

    // MARK: - Speed, interval, retries

    func testMaxSpeedIsMegabytesPerSecond() throws {
        XCTAssertEqual(settings(["MAX_SPEED": "100"])?.maxBytesPerSecond, 100_000_000)
        XCTAssertEqual(settings(["MAX_SPEED": "12.5"])?.maxBytesPerSecond, 12_500_000)
        XCTAssertEqual(settings(["MAX_SPEED": "0.5"])?.maxBytesPerSecond, 500_000)
        // 0 means unlimited.
        let s = try XCTUnwrap(settings(["MAX_SPEED": "0"]))
        XCTAssertNil(s.maxBytesPerSecond)
    }

    func testBadMaxSpeedIsRefused() {
        for v in ["-1", "fast", "nan", "inf", "1e7", "10MB"] {
            assertRefused(["MAX_SPEED": v], naming: "MAX_SPEED")
        }
    }

    func testOptimizationInterval() {
        XCTAssertEqual(settings(["OPTIMIZATION_INTERVAL": "0.5"])?.optimizationInterval, 0.5)
        XCTAssertEqual(settings(["OPTIMIZATION_INTERVAL": "60"])?.optimizationInterval, 60)
        for v in ["0", "0.05", "3601", "-2", "soon", "nan"] {
            assertRefused(["OPTIMIZATION_INTERVAL": v], naming: "OPTIMIZATION_INTERVAL")
        }
    }

    func testMaxRetriesBoundsAttempts() {
        XCTAssertEqual(settings(["MAX_RETRIES": "3"])?.retry.maxAttempts, 3)
        XCTAssertEqual(settings(["MAX_RETRIES": "100"])?.retry.maxAttempts, 100)
        // 0 behaves as 1: try once, never retry.
        XCTAssertEqual(settings(["MAX_RETRIES": "0"])?.retry.maxAttempts, 1)
        for v in ["-1", "101", "three", "2.0"] {
            assertRefused(["MAX_RETRIES": v], naming: "MAX_RETRIES")
        }
        // Only the attempts change.
        XCTAssertEqual(settings(["MAX_RETRIES": "3"])?.retry.baseDelay, 0.5)
    }

    func testRetryDelay() throws {
        let s = try XCTUnwrap(settings(["RETRY_DELAY": "1.5"]))
        XCTAssertEqual(s.retry.baseDelay, 1.5)
        XCTAssertEqual(s.retry.window(afterAttempt: 1), 1.5)
        XCTAssertEqual(s.retry.window(afterAttempt: 2), 3)
        XCTAssertEqual(s.retry.maxAttempts, 5)
        XCTAssertEqual(settings(["RETRY_DELAY": "0"])?.retry.window(afterAttempt: 3), 0)
        for v in ["-1", "601", "later", "inf"] {
            assertRefused(["RETRY_DELAY": v], naming: "RETRY_DELAY")
        }
    }

    func testRetryDelayAboveTheDefaultCapIsHonoured() throws {
        // The policy keeps maxDelay ≥ baseDelay; a 60 s base must not be silently cut to 20 s.
        let s = try XCTUnwrap(settings(["RETRY_DELAY": "60"]))
        XCTAssertEqual(s.retry.baseDelay, 60)
        XCTAssertGreaterThanOrEqual(s.retry.maxDelay, s.retry.baseDelay)
        XCTAssertEqual(s.retry.window(afterAttempt: 1), 60)
        XCTAssertEqual(try RetryPolicy.validated(maxAttempts: s.retry.maxAttempts, baseDelay: s.retry.baseDelay,
                                                 maxDelay: s.retry.maxDelay), s.retry)
    }

    // MARK: - TLS

    func testVerifySSL() {
        for v in ["false", "FALSE", "False", "0", "no", "off"] {
            XCTAssertEqual(settings(["S3_VERIFY_SSL": v])?.transport.verifyTLS, false, v)
        }
        for v in ["true", "TRUE", "1", "yes", "on"] {
            XCTAssertEqual(settings(["S3_VERIFY_SSL": v])?.transport.verifyTLS, true, v)
        }
        for v in ["maybe", "2", "disable", "f"] {
            assertRefused(["S3_VERIFY_SSL": v], naming: "S3_VERIFY_SSL")
        }
    }

    func testDirectIOPolicy() {
        XCTAssertEqual(settings([:])?.directIO, .largeParts)
        XCTAssertEqual(settings(["SOAK_DIRECT_IO": "auto"])?.directIO, .largeParts)
        XCTAssertEqual(settings(["SOAK_DIRECT_IO": "1"])?.directIO, .always)
        XCTAssertEqual(settings(["SOAK_DIRECT_IO": "off"])?.directIO, .never)
        assertRefused(["SOAK_DIRECT_IO": "sometimes"], naming: "SOAK_DIRECT_IO")
        // Which orders each policy writes with O_DIRECT: by default only a split object's parts.
        let part = FetchOrder(id: 1, bucket: "b", key: "k", etag: nil, start: 0, end: 8 << 20, path: "/p", fileOffset: 0)
        var whole = part
        whole.publish = PublishSpec(finalPath: "/d/k", etag: "e", mtime: nil)
        var block = part
        block.blockSize = 1 << 20
        XCTAssertEqual([part, whole, block].map { DirectIO.largeParts.applies(to: $0) }, [true, false, false])
        XCTAssertEqual([part, whole, block].map { DirectIO.always.applies(to: $0) }, [true, true, true])
        XCTAssertEqual([part, whole, block].map { DirectIO.never.applies(to: $0) }, [false, false, false])
    }

    func testCABundle() {
        let s = settings(["AWS_CA_BUNDLE": "/etc/ssl/certs/corp-ca.pem"])
        XCTAssertEqual(s?.transport.caBundle, "/etc/ssl/certs/corp-ca.pem")
        XCTAssertEqual(s?.transport.verifyTLS, true, "a CA bundle does not turn verification off")
    }

    func testHangTimeout() {
        XCTAssertEqual(settings(["SOAK_WORKER_HANG_TIMEOUT": "5"])?.hangTimeout, 5)
        XCTAssertEqual(settings(["SOAK_WORKER_HANG_TIMEOUT": "0"])?.hangTimeout, 30)
        XCTAssertEqual(settings(["SOAK_WORKER_HANG_TIMEOUT": "x"])?.hangTimeout, 30)
    }

    func testEverythingTogether() throws {
        let s = try XCTUnwrap(settings([
            "MIN_PROCESSES": "2", "MAX_PROCESSES": "6", "MAX_SPEED": "50", "OPTIMIZATION_INTERVAL": "1",
            "MAX_RETRIES": "7", "RETRY_DELAY": "0.25", "S3_VERIFY_SSL": "false", "AWS_CA_BUNDLE": "/ca.pem",
        ]))
        XCTAssertEqual(s.minWorkers, 2)
        XCTAssertEqual(s.maxWorkers, 6)
        XCTAssertEqual(s.initialWorkers, 2)
        XCTAssertEqual(s.maxBytesPerSecond, 50_000_000)
        XCTAssertEqual(s.optimizationInterval, 1)
        XCTAssertEqual(s.retry.maxAttempts, 7)
        XCTAssertEqual(s.retry.baseDelay, 0.25)
        XCTAssertEqual(s.retry.maxDelay, 20)
        XCTAssertFalse(s.transport.verifyTLS)
        XCTAssertEqual(s.transport.caBundle, "/ca.pem")
    }

    func testFirstBadVariableWins() {
        // Several bad values: the refusal names one of them, and it is a real culprit.
        do throws(UsageError) {
            _ = try EngineSettings.fromEnvironment(["MIN_PROCESSES": "x", "S3_VERIFY_SSL": "y"])
            XCTFail("accepted")
        } catch {
            XCTAssertTrue(error.message.contains("MIN_PROCESSES") || error.message.contains("S3_VERIFY_SSL"))
            XCTAssertTrue(error.message.contains("'x'") || error.message.contains("'y'"), error.message)
        }
    }
}
