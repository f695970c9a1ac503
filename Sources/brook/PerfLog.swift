import ArgumentParser
import BrookCore
import BrookRecords
import BrookStorage
import Logging
import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// Storage benchmark: raw sequential write and read bandwidth of the disk (same syscalls, same
/// chunk size) beside the partition log's append, sequential read, and recovery after a kill.
struct PerfLog: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "log",
        abstract: "Benchmark the partition log against the raw disk in the same run.")

    @Option(help: "Directory to write in (removed afterwards).") var dir = "./brook-perf"
    @Option(help: "Bytes to write in each phase.") var bytes = 1 << 30
    @Option(help: "Value bytes per record.") var recordBytes = 100
    @Option(help: "Bytes per batch.") var batchBytes = 16 * 1024
    @Option(help: "segment.bytes for the log.") var segmentBytes = 1 << 30
    @Option(help: "Bytes per read (fetch max bytes).") var readBytes = 1 << 20
    @Option(help: "Interleaved rounds of raw write and log append (medians are reported).") var rounds = 3
    @Flag(help: "Keep the log directory (for `brook log dump`).") var keep = false

    func run() throws {
        let records: Int = max(1, (batchBytes - 61) / (recordBytes + 8))
        var simple: [SimpleRecord] = []
        for i in 0..<records {
            let value: [UInt8] = (0..<recordBytes).map { (j: Int) -> UInt8 in UInt8(truncatingIfNeeded: j &* 31 &+ i) }
            simple.append(SimpleRecord(key: nil, value: value, timestamp: Timestamp(ms: 1_700_000_000_000)))
        }
        let template = RecordBatchBuilder.build(baseOffset: .zero, records: simple)
        let batchSize = template.count
        let batches = max(1, bytes / batchSize)
        let total = Double(batches * batchSize)
        print("machine: \(sysconf(Int32(_SC_NPROCESSORS_ONLN))) cores; CRC32C hardware: \(CRC32C.usesHardware)")
        print("batch: \(records) records of \(recordBytes) B = \(batchSize) B; \(batches) batches = \(Int(total) >> 20) MiB")
        _ = mkdir(dir, 0o755)

        // Raw disk against the log, in alternating rounds on fresh files: buffered write speed
        // on a VM swings with writeback and first-touch page costs, so each side is measured
        // `rounds` times, interleaved, and the medians are compared. The log kept is the last.
        let rawPath = dir + "/raw.bin"
        var logger = Logger(label: "perf")
        logger.logLevel = .warning
        var config = LogConfig()
        config.segmentBytes = segmentBytes
        let partition = dir + "/perf-0"
        var rawWrites: [Double] = []
        var appends: [Double] = []
        var appendCPU: [(user: Double, system: Double)] = []
        var rawCPU: [(user: Double, system: Double)] = []
        var log: PartitionLog?
        for round in 1...max(rounds, 1) {
            let rawBefore = cpuTimes()
            rawWrites.append(try rawWrite(rawPath, template, batches: batches))
            let rawAfter = cpuTimes()
            rawCPU.append(((rawAfter.user - rawBefore.user) / total * 1_048_576, (rawAfter.system - rawBefore.system) / total * 1_048_576))
            unlink(rawPath)
            log = nil
            removeTree(partition)
            log = try PartitionLog.open(directory: partition, config: config, logger: logger)
            var buffer = ByteBuffer(bytes: template)
            sync()  // every write phase starts with no dirty pages pending
            let start = now()
            let cpuBefore = cpuTimes()
            for _ in 0..<batches { try log!.append(&buffer) }
            appends.append(total / (now() - start))
            let cpu = cpuTimes()
            appendCPU.append(((cpu.user - cpuBefore.user) / total * 1_048_576,
                              (cpu.system - cpuBefore.system) / total * 1_048_576))
            print("round \(round): raw pwrite \(fixed(rawWrites.last! / 1_048_576, 0)) MiB/s, log append \(fixed(appends.last! / 1_048_576, 0)) MiB/s")
        }
        _ = try rawWrite(rawPath, template, batches: batches)
        let rawRead = try rawReadBack(rawPath, total: Int(total))
        unlink(rawPath)
        let rawWrite = median(rawWrites)
        let append = median(appends)
        report("raw pwrite (buffered)", rawWrite, "median of \(rawWrites.count)")
        report("raw pread (page cache)", rawRead)
        let ms = { (x: Double) in fixed(x * 1000, 2) }
        print("CPU per MiB written        raw pwrite: user \(ms(median(rawCPU.map(\.user)))) ms, system \(ms(median(rawCPU.map(\.system)))) ms;"
            + " log append: user \(ms(median(appendCPU.map(\.user)))) ms, system \(ms(median(appendCPU.map(\.system)))) ms")
        let recordsPerSecond = Double(batches * records) / (total / append)
        report("log append", append, "median of \(appends.count): \(fixed(100 * append / rawWrite, 0))% of raw write; \(fixed(recordsPerSecond / 1e6, 2)) M records/s")
        var start = now()
        var offset = log!.logStartOffset
        var bytes = ByteBuffer()
        bytes.reserveCapacity(readBytes + batchBytes * 2)
        var read = 0
        while offset < log!.logEndOffset {
            let slice = try log!.read(from: offset, maxBytes: readBytes)
            bytes.clear()
            try slice.readBytes(into: &bytes)
            read += bytes.readableBytes
            // Move past the last whole batch, as a consumer does.
            var next = offset
            while bytes.readableBytes >= 61, let base = bytes.getInteger(at: bytes.readerIndex, as: Int64.self),
                  let length = bytes.getInteger(at: bytes.readerIndex + 8, as: Int32.self),
                  let delta = bytes.getInteger(at: bytes.readerIndex + 23, as: Int32.self) {
                next = Offset(base + Int64(delta) + 1)
                bytes.moveReaderIndex(forwardBy: Int(length) + 12)
            }
            offset = next
        }
        precondition(read == Int(total), "read \(read) of \(Int(total)) bytes")
        let sequentialRead = total / (now() - start)
        report("log sequential read", sequentialRead, "\(fixed(100 * sequentialRead / rawRead, 0))% of raw read")

        let end = log!.logEndOffset
        log = nil  // as after kill -9: no flush, no clean-shutdown marker
        start = now()
        log = try PartitionLog.open(directory: partition, config: config, logger: logger)
        let recovery = now() - start
        precondition(log!.logEndOffset == end, "recovery lost data")
        print("recovery after kill".padding(28) + " \(fixed(recovery * 1000, 1)) ms  (\(log!.segmentsRecoveredAtOpen) segment(s) scanned, \(Int(total) >> 20) MiB of log, RSS \(residentMiB()) MiB)")
        try log!.close()
        start = now()
        log = try PartitionLog.open(directory: partition, config: config, logger: logger)
        print("open after clean shutdown".padding(28) + " \(fixed((now() - start) * 1000, 1)) ms  (RSS \(residentMiB()) MiB)")
        try log!.close()
        log = nil
        if !keep {
            removeTree(partition)
            rmdir(dir)
        }
    }

    /// Bytes per second of writing `batches` copies of `chunk` with pwrite.
    func rawWrite(_ path: String, _ chunk: [UInt8], batches: Int) throws -> Double {
        let fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw ValidationError("cannot create \(path)") }
        defer { close(fd) }
        sync()  // every write phase starts with no dirty pages pending
        let start = now()
        chunk.withUnsafeBytes { b in
            for i in 0..<batches { _ = pwrite(fd, b.baseAddress!, b.count, off_t(i * b.count)) }
        }
        return Double(batches * chunk.count) / (now() - start)
    }

    /// Bytes per second of reading `path` back in `readBytes` chunks.
    func rawReadBack(_ path: String, total: Int) throws -> Double {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw ValidationError("cannot open \(path)") }
        defer { close(fd) }
        var chunk = [UInt8](repeating: 0, count: readBytes)
        let start = now()
        var position = 0
        chunk.withUnsafeMutableBytes { b in
            while true {
                let n = pread(fd, b.baseAddress!, b.count, off_t(position))
                if n <= 0 { break }
                position += n
            }
        }
        return Double(position) / (now() - start)
    }

    func report(_ name: String, _ bytesPerSecond: Double, _ note: String = "") {
        print(name.padding(28) + " \(fixed(bytesPerSecond / 1_048_576, 0)) MiB/s  " + note)
    }
}

/// `value` with `decimals` digits after the point (no Foundation here).
func fixed(_ value: Double, _ decimals: Int) -> String {
    guard value.isFinite else { return "\(value)" }
    var scale = 1.0
    for _ in 0..<decimals { scale *= 10 }
    let scaled = Int((abs(value) * scale).rounded())
    let whole = scaled / Int(scale)
    let fraction = String(scaled % Int(scale))
    let sign = value < 0 ? "-" : ""
    guard decimals > 0 else { return sign + String(whole) }
    return sign + String(whole) + "." + String(repeating: "0", count: decimals - fraction.count) + fraction
}

func now() -> Double {
    var spec = timespec()
    clock_gettime(CLOCK_MONOTONIC, &spec)
    return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
}

func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }

/// User and system CPU seconds used by this process so far.
func cpuTimes() -> (user: Double, system: Double) {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    let seconds = { (t: timeval) in Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
    return (seconds(usage.ru_utime), seconds(usage.ru_stime))
}

/// Resident memory of this process, from /proc/self/statm (pages).
func residentMiB() -> Int {
    let fd = open("/proc/self/statm", O_RDONLY)
    guard fd >= 0 else { return -1 }
    defer { close(fd) }
    var buffer = [UInt8](repeating: 0, count: 256)
    let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
    guard n > 0 else { return -1 }
    let fields = String(decoding: buffer[0..<n], as: UTF8.self).split(separator: " ")
    guard fields.count > 1, let pages = Int(fields[1]) else { return -1 }
    return (pages * Int(sysconf(Int32(_SC_PAGESIZE)))) >> 20
}

func removeTree(_ path: String) {
    try? FileSystem.removeTree(path)
}

extension String {
    func padding(_ width: Int) -> String { count >= width ? self : self + String(repeating: " ", count: width - count) }
}
