import BrookCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A file of fixed-size entries, memory-mapped so that lookups touch a few pages of the page
/// cache and nothing is copied into Swift arrays: a partition's resident memory does not grow
/// with its data. The active segment's index is mapped writable at its full capacity
/// (`segment.index.bytes`, a sparse file); a rolled one is trimmed to its entries and mapped
/// read-only, as Kafka does. No descriptor stays open (a mapping outlives its descriptor): the
/// file is opened by its path for the rare resize and fsync, so that a segment holds one open
/// file (its log), not three, and a broker's open-file limit takes three times the partitions.
final class MappedIndexFile {
    let path: String
    let entryBytes: Int
    private(set) var entryCount: Int
    private(set) var isWritable: Bool
    private var mapping: UnsafeMutableRawPointer?
    private var mappedBytes: Int

    /// The index file, open for `body` only.
    private func withFile<T>(_ body: (SegmentFile) throws(StorageError) -> T) throws(StorageError) -> T {
        let file = try SegmentFile(path: path, create: false)
        return try body(file)
    }

    var capacity: Int { mappedBytes / entryBytes }
    var isFull: Bool { entryCount >= capacity }
    /// Bytes of valid entries (the file's length once trimmed).
    var usedBytes: Int { entryCount * entryBytes }

    /// Opens or creates the index. `entryCount` is taken from the file's length, which is exact
    /// for a trimmed index; a caller that cannot trust it calls `reset()` and rebuilds.
    init(path: String, entryBytes: Int, maxBytes: Int, writable: Bool) throws(StorageError) {
        precondition(entryBytes > 0 && maxBytes >= entryBytes && maxBytes <= Limits.indexBytesMax, "index bounds")
        self.path = path
        self.entryBytes = entryBytes
        self.isWritable = writable
        // Read-write even when mapped read-only: sealing, rebuilding and trimming resize it.
        let size = try SegmentFile(path: path, create: true).size()
        entryCount = min(size, maxBytes) / entryBytes
        mappedBytes = 0
        if writable {
            try map(bytes: maxBytes - maxBytes % entryBytes, writable: true)
        } else {
            try map(bytes: entryCount * entryBytes, writable: false)
        }
    }

    deinit { unmap() }

    private func map(bytes: Int, writable: Bool) throws(StorageError) {
        unmap()
        let pointer = try withFile { file throws(StorageError) -> UnsafeMutableRawPointer? in
            if writable { try file.truncate(to: bytes) }
            guard bytes > 0 else { return nil }
            let protection = writable ? (PROT_READ | PROT_WRITE) : PROT_READ
            let pointer = mmap(nil, bytes, protection, MAP_SHARED, file.descriptor, 0)
            guard let pointer, pointer != MAP_FAILED else { throw .io(operation: "mmap", path: path, errno: errno) }
            return pointer
        }
        guard let pointer else { return }
        mapping = pointer
        mappedBytes = bytes
    }

    private func unmap() {
        if let mapping { munmap(mapping, mappedBytes) }
        mapping = nil
        mappedBytes = 0
    }

    @inline(__always)
    func entry(_ index: Int) -> UnsafeRawPointer {
        precondition(index >= 0 && index < entryCount, "index entry \(index) outside 0..<\(entryCount) in \(path)")
        return UnsafeRawPointer(mapping!) + index * entryBytes
    }

    /// Appends one entry; the caller has checked `isFull`.
    func append(_ write: (UnsafeMutableRawPointer) -> Void) {
        precondition(isWritable && !isFull, "append to a full or read-only index \(path)")
        write(mapping! + entryCount * entryBytes)
        entryCount += 1
    }

    /// Keeps the first `count` entries.
    func truncate(toEntries count: Int) {
        precondition(count >= 0 && count <= entryCount, "truncate beyond the index")
        entryCount = count
    }

    /// Forgets every entry (before a rebuild). A read-only index is made writable again.
    func reset(maxBytes: Int) throws(StorageError) {
        entryCount = 0
        if !isWritable {
            isWritable = true
            try map(bytes: maxBytes - maxBytes % entryBytes, writable: true)
        }
    }

    /// Trims the file to its entries and maps it read-only (the segment stopped taking appends);
    /// `sync` first, else the caller fsyncs the file later (a roll leaves it to maintenance).
    func seal(sync: Bool = true) throws(StorageError) {
        guard isWritable else { return }
        if sync { try self.sync() }
        unmap()
        let used = usedBytes
        try withFile { file throws(StorageError) in try file.truncate(to: used) }
        isWritable = false
        try map(bytes: usedBytes, writable: false)
    }

    func sync() throws(StorageError) {
        if isWritable, let mapping, entryCount > 0 {
            guard msync(mapping, usedBytes, MS_SYNC) == 0 else { throw .io(operation: "msync", path: path, errno: errno) }
        }
        try withFile { file throws(StorageError) in try file.sync() }
    }

    /// Trims the file to its entries and unmaps it (clean shutdown).
    func close() throws(StorageError) {
        let writable = isWritable
        unmap()
        let used = usedBytes
        if writable { try withFile { file throws(StorageError) in try file.truncate(to: used) } }
        isWritable = false
    }

    /// Largest entry index for which `isAtMost` holds, given entries sorted so that it holds
    /// for a prefix; nil when it holds for none.
    func lastIndex(where isAtMost: (UnsafeRawPointer) -> Bool) -> Int? {
        var low = 0
        var high = entryCount - 1
        var found: Int?
        while low <= high {
            let middle = (low + high) / 2
            if isAtMost(entry(middle)) {
                found = middle
                low = middle + 1
            } else {
                high = middle - 1
            }
        }
        return found
    }
}

extension UnsafeRawPointer {
    @inline(__always) func bigEndianInt32(at offset: Int) -> Int32 {
        Int32(bigEndian: loadUnaligned(fromByteOffset: offset, as: Int32.self))
    }
    @inline(__always) func bigEndianInt64(at offset: Int) -> Int64 {
        Int64(bigEndian: loadUnaligned(fromByteOffset: offset, as: Int64.self))
    }
}

extension UnsafeMutableRawPointer {
    @inline(__always) func storeBigEndian(_ value: Int32, at offset: Int) {
        storeBytes(of: value.bigEndian, toByteOffset: offset, as: Int32.self)
    }
    @inline(__always) func storeBigEndian(_ value: Int64, at offset: Int) {
        storeBytes(of: value.bigEndian, toByteOffset: offset, as: Int64.self)
    }
}
