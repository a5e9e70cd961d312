/// The environment contract kept from the tool soak replaces:
/// `MIN_PROCESSES MAX_PROCESSES MAX_SPEED OPTIMIZATION_INTERVAL MAX_RETRIES RETRY_DELAY S3_VERIFY_SSL`
/// (plus `AWS_CA_BUNDLE`). Every value is validated; a bad one is a one-line `UsageError`.
import SoakCore

extension EngineSettings {
    public static func fromEnvironment(_ env: [String: String]) throws(UsageError) -> EngineSettings {
        var s = EngineSettings()
        func int(_ name: String, _ range: ClosedRange<Int>) throws(UsageError) -> Int? {
            guard let raw = env[name], !raw.isEmpty else { return nil }
            guard let v = Int(raw.trimmingCharacters(in: .whitespaces)), range.contains(v) else {
                throw UsageError("invalid \(name)='\(raw)': expected a whole number in \(range.lowerBound)...\(range.upperBound)")
            }
            return v
        }
        func double(_ name: String, _ range: ClosedRange<Double>) throws(UsageError) -> Double? {
            guard let raw = env[name], !raw.isEmpty else { return nil }
            guard let v = Double(raw.trimmingCharacters(in: .whitespaces)), v.isFinite, range.contains(v) else {
                throw UsageError("invalid \(name)='\(raw)': expected a number in \(range.lowerBound)...\(range.upperBound)")
            }
            return v
        }
        if let v = try int("MIN_PROCESSES", 1...256) { s.minWorkers = v }
        if let v = try int("MAX_PROCESSES", 1...256) { s.maxWorkers = v }
        // MAX_PROCESSES unset (or empty, which counts as unset): the default follows MIN_PROCESSES up.
        if env["MAX_PROCESSES"]?.isEmpty ?? true, s.minWorkers > s.maxWorkers { s.maxWorkers = s.minWorkers }
        guard s.minWorkers <= s.maxWorkers else {
            throw UsageError("MIN_PROCESSES (\(s.minWorkers)) is larger than MAX_PROCESSES (\(s.maxWorkers))")
        }
        s.initialWorkers = min(max(s.initialWorkers, s.minWorkers), s.maxWorkers)
        // MAX_SPEED is in MB/s (10^6 bytes); 0 means unlimited.
        if let v = try double("MAX_SPEED", 0...1e6), v > 0 { s.maxBytesPerSecond = v * 1e6 }
        if let v = try double("OPTIMIZATION_INTERVAL", 0.1...3600) { s.optimizationInterval = v }
        // MAX_RETRIES bounds the attempts per request (0 behaves as 1: try once).
        if let v = try int("MAX_RETRIES", 0...100) { s.retry.maxAttempts = max(v, 1) }
        // Raise the cap with the base, keeping maxDelay ≥ baseDelay (else a base above the
        // default 20 s cap would silently be cut to 20 s).
        if let v = try double("RETRY_DELAY", 0...600) {
            s.retry = RetryPolicy(maxAttempts: s.retry.maxAttempts, baseDelay: v, maxDelay: max(s.retry.maxDelay, v))
        }
        if let raw = env["S3_VERIFY_SSL"], !raw.isEmpty {
            switch raw.lowercased() {
            case "1", "true", "yes", "on": s.transport.verifyTLS = true
            case "0", "false", "no", "off": s.transport.verifyTLS = false
            default: throw UsageError("invalid S3_VERIFY_SSL='\(raw)': expected true or false")
            }
        }
        if let ca = env["AWS_CA_BUNDLE"], !ca.isEmpty { s.transport.caBundle = ca }
        // Tuning knobs beyond the inherited contract (for benchmarks and unusual links).
        if let v = try int("SOAK_TRANSFERS_PER_WORKER", 1...64) { s.slotsPerWorker = v }
        if let v = try int("SOAK_INITIAL_PROCESSES", 1...256) { s.initialWorkers = v }
        s.initialWorkers = min(max(s.initialWorkers, s.minWorkers), s.maxWorkers)
        if let raw = env["SOAK_DIRECT_IO"], !raw.isEmpty {
            switch raw.lowercased() {
            case "1", "true", "yes", "on": s.directIO = .always
            case "0", "false", "no", "off": s.directIO = .never
            case "auto": s.directIO = .largeParts
            default: throw UsageError("invalid SOAK_DIRECT_IO='\(raw)': expected true, false or auto")
            }
        }
        if let raw = env["SOAK_WORKER_HANG_TIMEOUT"], let v = Double(raw), v > 0 { s.hangTimeout = v }
        return s
    }
}
