import BrookCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An open file, closed when the last reference goes. A reader that holds one (say, for
/// `sendfile`) keeps reading valid bytes even after retention unlinks the segment.
public final class SegmentFile: @unchecked Sendable {
    public let path: String
    public let descriptor: Int32

    /// Opens `path` for reading and writing, creating it when `create` is set.
    public init(path: String, create: Bool, readOnly: Bool = false) throws(StorageError) {
        self.path = path
        var flags = readOnly ? O_RDONLY : O_RDWR
        if create { flags |= O_CREAT }
        let fd = open(path, flags | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw .io(operation: "open", path: path, errno: errno) }
        descriptor = fd
    }

    private init(path: String, descriptor: Int32) {
        self.path = path
        self.descriptor = descriptor
    }

    /// Opens an existing file; nil when there is none (one system call where an existence check
    /// and an open took two).
    public static func openIfExists(_ path: String, readOnly: Bool) throws(StorageError) -> SegmentFile? {
        let fd = open(path, (readOnly ? O_RDONLY : O_RDWR) | O_CLOEXEC)
        guard fd >= 0 else {
            if errno == ENOENT { return nil }
            throw .io(operation: "open", path: path, errno: errno)
        }
        return SegmentFile(path: path, descriptor: fd)
    }

    deinit { close(descriptor) }

    public func size() throws(StorageError) -> Int {
        var info = stat()
        guard fstat(descriptor, &info) == 0 else { throw .io(operation: "fstat", path: path, errno: errno) }
        return Int(info.st_size)
    }

    /// Reads up to `buffer.count` bytes at `position`; returns how many were read (short at end of file).
    public func read(into buffer: UnsafeMutableRawBufferPointer, at position: Int) throws(StorageError) -> Int {
        var done = 0
        while done < buffer.count {
            let n = pread(descriptor, buffer.baseAddress! + done, buffer.count - done, off_t(position + done))
            if n == 0 { break }
            if n < 0 {
                if errno == EINTR { continue }
                throw .io(operation: "pread", path: path, errno: errno)
            }
            done += n
        }
        return done
    }

    /// Reads exactly `count` bytes at `position`, or fewer at the end of the file.
    public func read(count: Int, at position: Int) throws(StorageError) -> [UInt8] {
        precondition(count >= 0 && count <= Limits.batchBytesMax * 2, "read size out of bounds")
        var bytes = [UInt8](repeating: 0, count: count)
        let n = try typed { try bytes.withUnsafeMutableBytes { b in try read(into: b, at: position) } }
        bytes.removeLast(count - n)
        return bytes
    }

    /// Writes all of `bytes` at `position`. On failure the caller truncates back.
    public func write(_ bytes: UnsafeRawBufferPointer, at position: Int) throws(StorageError) {
        var done = 0
        while done < bytes.count {
            let n = pwrite(descriptor, bytes.baseAddress! + done, bytes.count - done, off_t(position + done))
            if n < 0 {
                if errno == EINTR { continue }
                if errno == ENOSPC || errno == EDQUOT { throw .diskFull(path: path) }
                throw .io(operation: "pwrite", path: path, errno: errno)
            }
            done += n
        }
    }

    public func truncate(to size: Int) throws(StorageError) {
        guard ftruncate(descriptor, off_t(size)) == 0 else { throw .io(operation: "ftruncate", path: path, errno: errno) }
    }

    /// fsync: data and metadata reach the disk.
    public func sync() throws(StorageError) {
        guard fsync(descriptor) == 0 else { throw .io(operation: "fsync", path: path, errno: errno) }
    }
}

/// What tells a file's versions apart: its inode (a file renamed over it is another) and size.
public struct FileState: Sendable, Equatable {
    public var inode: UInt64
    public var size: Int64
}

/// Directory and path operations, each mapped to a typed error.
public enum FileSystem {
    public static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    /// The process's working directory ("/" if it cannot be read).
    public static func currentDirectory() -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        guard getcwd(&buffer, buffer.count) != nil else { return "/" }
        return String(cString: buffer)
    }

    /// The process's open-file limit (`ulimit -n`, RLIMIT_NOFILE's soft limit).
    public static func openFileLimit() -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 1024 }
        return Int(clamping: min(limit.rlim_cur, rlim_t(Int32.max)))
    }

    public static func createDirectory(_ path: String) throws(StorageError) {
        if mkdir(path, 0o755) != 0 && errno != EEXIST { throw .io(operation: "mkdir", path: path, errno: errno) }
    }

    /// `createDirectory` with every missing parent made first (`mkdir -p`), as Kafka makes
    /// `log.dirs`.
    public static func createDirectories(_ path: String) throws(StorageError) {
        var made = path.hasPrefix("/") ? "" : "."
        for part in path.split(separator: "/") where !part.isEmpty {
            made += "/" + part
            try createDirectory(made)
        }
    }

    public static func remove(_ path: String) throws(StorageError) {
        if unlink(path) != 0 && errno != ENOENT { throw .io(operation: "unlink", path: path, errno: errno) }
    }

    public static func rename(_ from: String, _ to: String) throws(StorageError) {
        #if canImport(Glibc)
        let result = Glibc.rename(from, to)
        #else
        let result = Darwin.rename(from, to)
        #endif
        guard result == 0 else { throw .io(operation: "rename to \(to)", path: from, errno: errno) }
    }

    public static func list(_ path: String) throws(StorageError) -> [String] {
        guard let dir = opendir(path) else { throw .io(operation: "opendir", path: path, errno: errno) }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: Int(NAME_MAX) + 1) { String(cString: $0) }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    /// Removes a directory and the files in it (partition directories hold no subdirectories).
    public static func removeTree(_ path: String) throws(StorageError) {
        for name in try list(path) { try remove(path + "/" + name) }
        if rmdir(path) != 0 && errno != ENOENT { throw .io(operation: "rmdir", path: path, errno: errno) }
    }

    /// A small file's contents, or nil when it does not exist.
    public static func readFile(_ path: String, bytesMax: Int = 64 * 1024 * 1024) throws(StorageError) -> String? {
        guard let file = try SegmentFile.openIfExists(path, readOnly: false) else { return nil }
        let size = try file.size()
        guard size <= bytesMax else { throw .invalidArgument("\(path) is larger than \(bytesMax) bytes") }
        var bytes = [UInt8](repeating: 0, count: size)
        let n = try typed { try bytes.withUnsafeMutableBytes { b in try file.read(into: b, at: 0) } }
        return String(decoding: bytes[0..<n], as: UTF8.self)
    }

    /// A file's identity and size, or nil when it does not exist.
    public static func state(_ path: String) throws(StorageError) -> FileState? {
        var info = stat()
        guard stat(path, &info) == 0 else {
            if errno == ENOENT { return nil }
            throw .io(operation: "stat", path: path, errno: errno)
        }
        return FileState(inode: UInt64(info.st_ino), size: Int64(info.st_size))
    }

    /// Copies `source`'s bytes in `range` to the same positions of `target` (made when missing;
    /// emptied first when the range starts at 0), and makes them durable. Returns the bytes
    /// copied (fewer where the source is shorter), or nil when the source does not exist.
    public static func copy(from source: String, to target: String, range: Range<Int64>) throws(StorageError) -> Int64? {
        precondition(range.lowerBound >= 0, "file positions are never negative")
        let input = open(source, O_RDONLY | O_CLOEXEC)
        guard input >= 0 else {
            if errno == ENOENT { return nil }
            throw .io(operation: "open", path: source, errno: errno)
        }
        defer { close(input) }
        let output = open(target, O_WRONLY | O_CREAT | O_CLOEXEC | (range.lowerBound == 0 ? O_TRUNC : 0), 0o644)
        guard output >= 0 else { throw .io(operation: "open", path: target, errno: errno) }
        defer { close(output) }
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var position = range.lowerBound
        while position < range.upperBound {
            let want = Int(min(Int64(buffer.count), range.upperBound - position))
            let n = buffer.withUnsafeMutableBytes { pread(input, $0.baseAddress, want, off_t(position)) }
            guard n >= 0 else {
                if errno == EINTR { continue }
                throw .io(operation: "pread", path: source, errno: errno)
            }
            if n == 0 { break }
            var written = 0
            while written < n {
                let m = buffer.withUnsafeBytes { pwrite(output, $0.baseAddress! + written, n - written, off_t(position) + off_t(written)) }
                guard m >= 0 else {
                    if errno == EINTR { continue }
                    if errno == ENOSPC || errno == EDQUOT { throw .diskFull(path: target) }
                    throw .io(operation: "pwrite", path: target, errno: errno)
                }
                written += m
            }
            position += Int64(n)
        }
        // The target ends where the source's bytes do (a shorter source leaves nothing after).
        guard ftruncate(output, off_t(position)) == 0 else { throw .io(operation: "ftruncate", path: target, errno: errno) }
        guard fsync(output) == 0 else { throw .io(operation: "fsync", path: target, errno: errno) }
        return position - range.lowerBound
    }

    /// Makes everything written to the filesystem holding `path` durable (syncfs): one call
    /// instead of an fsync per file when many were written.
    public static func syncFilesystem(_ path: String) throws(StorageError) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .io(operation: "open", path: path, errno: errno) }
        defer { close(fd) }
        // syncfs(2) is Linux's (not in Swift's Glibc module): looked up once; where it is
        // missing, sync(2) makes every filesystem durable instead.
        guard let syncfs = syncfsFunction else { return sync() }
        guard syncfs(fd) == 0 else { throw .io(operation: "syncfs", path: path, errno: errno) }
    }

    private typealias SyncFS = @convention(c) (Int32) -> Int32
    private static let syncfsFunction: SyncFS? = {
        #if canImport(Glibc)
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "syncfs") else { return nil }
        return unsafeBitCast(symbol, to: SyncFS.self)
        #else
        return nil
        #endif
    }()

    /// Makes a file's content durable (fsync).
    public static func syncFile(_ path: String) throws(StorageError) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .io(operation: "open", path: path, errno: errno) }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw .io(operation: "fsync", path: path, errno: errno) }
    }

    /// Makes a directory's entries (creations, renames, deletions) durable.
    /// fsyncs a file by its path; nothing when it is gone (a segment deleted meanwhile).
    public static func syncIfExists(_ path: String) throws(StorageError) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            if errno == ENOENT { return }
            throw .io(operation: "open", path: path, errno: errno)
        }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw .io(operation: "fsync", path: path, errno: errno) }
    }

    public static func syncDirectory(_ path: String) throws(StorageError) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .io(operation: "open directory", path: path, errno: errno) }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw .io(operation: "fsync directory", path: path, errno: errno) }
    }

    /// Writes a small file so that either the old or the new content is seen after a crash.
    public static func writeAtomically(_ path: String, contents: String, durable: Bool) throws(StorageError) {
        try writeAtomically(path, bytes: Array(contents.utf8), durable: durable)
    }

    /// Writes a file so that either the old or the new content is seen after a crash; with
    /// `durable`, the content and the rename are fsynced before it returns.
    public static func writeAtomically(_ path: String, bytes: [UInt8], durable: Bool) throws(StorageError) {
        let temporary = path + ".tmp"
        let file = try SegmentFile(path: temporary, create: true)
        try file.truncate(to: 0)
        try typed { try bytes.withUnsafeBytes { b in try file.write(b, at: 0) } }
        if durable { try file.sync() }
        try rename(temporary, path)
        if durable, let slash = path.lastIndex(of: "/") { try syncDirectory(String(path[..<slash])) }
    }

    /// A file's bytes, or nil when it does not exist.
    public static func readBytes(_ path: String, bytesMax: Int) throws(StorageError) -> [UInt8]? {
        guard let file = try SegmentFile.openIfExists(path, readOnly: true) else { return nil }
        let size = try file.size()
        guard size <= bytesMax else { throw .invalidArgument("\(path) is larger than \(bytesMax) bytes") }
        return try file.read(count: size, at: 0)
    }

    public static func readText(_ path: String) throws(StorageError) -> String? {
        guard let file = try SegmentFile.openIfExists(path, readOnly: true) else { return nil }
        let size = try file.size()
        guard size <= 1 << 20 else { throw .corruptIndex(path: path, reason: "file of \(size) bytes is too large") }
        return String(decoding: try file.read(count: size, at: 0), as: UTF8.self)
    }
}
