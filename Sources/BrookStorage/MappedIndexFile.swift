import BrookCore
import Synchronization

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
/// file is opened by its path for the rare resize and fsync. The mapping itself is made on
/// first use and `OnDemandPool.maps` unmaps the coldest ones (the next use maps again), so the
/// kernel's mapping limit does not bound the segments a broker holds.
/// The owner (a partition's log, under its lock) reads and changes the entries; the pool may
/// unmap from another thread, so every use of the mapping holds `mapping`'s lock.
final class MappedIndexFile: PoolMember, @unchecked Sendable {
    let path: String
    let entryBytes: Int
    let membership = PoolMembership()
    private let pool: OnDemandPool
    private(set) var entryCount: Int
    private(set) var isWritable: Bool
    /// Bytes a mapping covers: the capacity while writable, the entries once sealed.
    private var extent: Int
    /// Closed for good: a later use throws `.closed` rather than mapping it again.
    private var closed = false

    private struct Mapping: @unchecked Sendable {
        let pointer: UnsafeMutableRawPointer
        let bytes: Int
    }
    private let mapping = Mutex<Mapping?>(nil)

    /// The index file, open for `body` only.
    private func withFile<T>(_ body: (SegmentFile) throws(StorageError) -> T) throws(StorageError) -> T {
        let file = try SegmentFile(path: path, create: false)
        return try body(file)
    }

    var capacity: Int { extent / entryBytes }
    var isFull: Bool { entryCount >= capacity }
    /// Bytes of valid entries (the file's length once trimmed).
    var usedBytes: Int { entryCount * entryBytes }
    /// Whether it is mapped now (tests).
    var isMapped: Bool { mapping.withLock { $0 != nil } }

    /// Opens or creates the index (mapped at its first use). `entryCount` is taken from the
    /// file's length, which is exact for a trimmed index; a caller that cannot trust it calls
    /// `reset()` and rebuilds.
    init(path: String, entryBytes: Int, maxBytes: Int, writable: Bool, pool: OnDemandPool = .maps) throws(StorageError) {
        precondition(entryBytes > 0 && maxBytes >= entryBytes && maxBytes <= Limits.indexBytesMax, "index bounds")
        self.path = path
        self.entryBytes = entryBytes
        self.isWritable = writable
        self.pool = pool
        // Read-write even when mapped read-only: sealing, rebuilding and trimming resize it.
        let file = try SegmentFile(path: path, create: true)
        let size = try file.size()
        entryCount = min(size, maxBytes) / entryBytes
        if writable {
            extent = maxBytes - maxBytes % entryBytes
            try file.truncate(to: extent)
        } else {
            extent = entryCount * entryBytes
        }
    }

    deinit {
        unmap()
        pool.gave(membership)
    }

    /// Runs `body` on the mapping (made now if the index has none), holding its lock.
    private func withMapping<T>(_ body: (UnsafeMutableRawPointer) -> T) throws(StorageError) -> T {
        guard !closed else { throw .closed }
        membership.used.store(true, ordering: .relaxed)
        // Out of mappings (or descriptors): the pool lets some of the coldest go first.
        return try pool.withRoom { () throws(StorageError) in try mapOrUse(body) }
    }

    private func mapOrUse<T>(_ body: (UnsafeMutableRawPointer) -> T) throws(StorageError) -> T {
        let bytes = extent
        let writable = isWritable
        let path = self.path
        let (result, mapped) = try mapping.withLock { (current: inout Mapping?) throws(StorageError) -> (T, Bool) in
            if let current { return (body(current.pointer), false) }
            let file = try SegmentFile(path: path, create: false)
            let protection = writable ? (PROT_READ | PROT_WRITE) : PROT_READ
            let pointer = mmap(nil, bytes, protection, MAP_SHARED, file.descriptor, 0)
            guard let pointer, pointer != MAP_FAILED else { throw .io(operation: "mmap", path: path, errno: errno) }
            current = Mapping(pointer: pointer, bytes: bytes)
            return (body(pointer), true)
        }
        if mapped { pool.took(self) }
        return result
    }

    private func unmap() {
        mapping.withLock { current in
            if let current { munmap(current.pointer, current.bytes) }
            current = nil
        }
    }

    /// The pool's: unmapped until the next use (a writable index's pages stay in the page
    /// cache, dirty until written back or synced by path).
    func release() { unmap() }

    /// Reads entry `index` through `read`.
    @inline(__always)
    func entry<T>(_ index: Int, _ read: (UnsafeRawPointer) -> T) throws(StorageError) -> T {
        precondition(index >= 0 && index < entryCount, "index entry \(index) outside 0..<\(entryCount) in \(path)")
        guard extent > 0 else { preconditionFailure("an index without entries has no mapping") }
        return try withMapping { read(UnsafeRawPointer($0) + index * entryBytes) }
    }

    /// Appends one entry; the caller has checked `isFull`.
    func append(_ write: (UnsafeMutableRawPointer) -> Void) throws(StorageError) {
        precondition(isWritable && !isFull, "append to a full or read-only index \(path)")
        let at = entryCount * entryBytes
        try withMapping { write($0 + at) }
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
            unmap()
            pool.gave(membership)
            isWritable = true
            extent = maxBytes - maxBytes % entryBytes
            let extent = self.extent
            try withFile { file throws(StorageError) in try file.truncate(to: extent) }
        }
    }

    /// Trims the file to its entries, to be mapped read-only from now on (the segment stopped
    /// taking appends); `sync` first, else the caller fsyncs the file later (a roll leaves it
    /// to maintenance).
    func seal(sync: Bool = true) throws(StorageError) {
        guard isWritable else { return }
        if sync { try self.sync() }
        unmap()
        pool.gave(membership)
        let used = usedBytes
        try withFile { file throws(StorageError) in try file.truncate(to: used) }
        isWritable = false
        extent = used
    }

    /// The entries on disk: the mapping's dirty pages (if mapped) and the file by its path (an
    /// fsync also writes the pages of a mapping the pool let go).
    func sync() throws(StorageError) {
        if isWritable, entryCount > 0 {
            let used = usedBytes
            let path = self.path
            try mapping.withLock { (current: inout Mapping?) throws(StorageError) in
                guard let current else { return }
                guard msync(current.pointer, used, MS_SYNC) == 0 else { throw .io(operation: "msync", path: path, errno: errno) }
            }
        }
        try withFile { file throws(StorageError) in try file.sync() }
    }

    /// Trims the file to its entries and unmaps it (clean shutdown, deletion).
    func close() throws(StorageError) {
        let writable = isWritable
        unmap()
        pool.gave(membership)
        closed = true
        let used = usedBytes
        if writable { try withFile { file throws(StorageError) in try file.truncate(to: used) } }
        isWritable = false
        extent = used
    }

    /// Largest entry index for which `isAtMost` holds, given entries sorted so that it holds
    /// for a prefix; nil when it holds for none.
    func lastIndex(where isAtMost: (UnsafeRawPointer) -> Bool) throws(StorageError) -> Int? {
        guard entryCount > 0 else { return nil }
        let count = entryCount
        let entryBytes = self.entryBytes
        return try withMapping { base -> Int? in
            var low = 0
            var high = count - 1
            var found: Int?
            while low <= high {
                let middle = (low + high) / 2
                if isAtMost(UnsafeRawPointer(base) + middle * entryBytes) {
                    found = middle
                    low = middle + 1
                } else {
                    high = middle - 1
                }
            }
            return found
        }
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
