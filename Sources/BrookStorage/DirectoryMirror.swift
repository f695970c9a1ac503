import BrookCore

/// A partition directory's files as its log saw them at one moment (taken under the
/// partition's lock): each file's identity and size, the log's rewrite count, and the active
/// segment's base offset.
public struct DirectoryListing: Sendable {
    public var files: [String: FileState]
    public var rewrites: UInt64
    public var activeBase: Offset

    /// The listing of `log`'s directory now (the caller holds the partition's lock).
    public static func of(_ log: PartitionLog) throws(StorageError) -> DirectoryListing {
        var files: [String: FileState] = [:]
        for name in try FileSystem.list(log.directory) {
            if let state = try FileSystem.state(log.directory + "/" + name) { files[name] = state }
        }
        return DirectoryListing(files: files, rewrites: log.rewrites, activeBase: log.segmentBaseOffsets.last ?? .zero)
    }
}

/// Copies a partition directory into another while its log goes on serving (the "future log"
/// of a move between log dirs), pass after pass, each pass copying what changed since the
/// last: a segment's `.log` grows by appends only, so only its new bytes are copied; a file
/// replaced (compaction renames a new one over it) is copied whole; a truncation or compaction
/// (the log's rewrite count moved) starts the copy again; files gone from the source go from
/// the copy. The active segment's indexes and the small files beside the segments (checkpoints,
/// producer snapshots) change in place, so they are copied only by the final pass, which runs
/// under the partition's lock once its log is closed: after it the copy is the log, byte for
/// byte. Every file copied is fsynced.
public final class DirectoryMirror {
    public let source: String
    public let target: String
    /// What was copied of each file: the source's identity and the bytes copied.
    private var copied: [String: FileState] = [:]
    private var rewrites: UInt64?
    /// Bytes copied over all passes.
    public private(set) var bytesCopied: Int64 = 0

    public init(source: String, target: String) {
        self.source = source
        self.target = target
    }

    static func isTemporary(_ name: String) -> Bool {
        name.hasSuffix(".cleaned") || name.hasSuffix(".swap") || name.hasSuffix(".tmp")
    }

    /// The files of one segment: its base offset as the name's stem.
    static func segmentBase(_ name: String) -> Offset? {
        for suffix in [".log", ".index", ".timeindex", ".txnindex"] {
            if let base = LogSegment.baseOffset(fileName: name, suffix: suffix) { return base }
        }
        return nil
    }

    /// What a pass over `listing` would copy: each file, and the byte it starts from.
    func plan(_ listing: DirectoryListing, final: Bool) -> [(name: String, from: Int64, size: Int64)] {
        let known = rewrites == listing.rewrites ? copied : [:]
        var out: [(name: String, from: Int64, size: Int64)] = []
        for (name, state) in listing.files.sorted(by: { $0.key < $1.key }) where !Self.isTemporary(name) {
            let base = Self.segmentBase(name)
            let isLog = name.hasSuffix(".log") && base != nil
            // Changed in place: the active segment's indexes, and whatever is not a segment's.
            let inPlace = !isLog && (base == nil || base == listing.activeBase)
            if inPlace && !final { continue }
            var from: Int64 = 0
            if let before = known[name], before.inode == state.inode {
                if before.size == state.size && !inPlace { continue }
                if isLog && before.size < state.size { from = before.size }
            }
            out.append((name, from, state.size))
        }
        return out
    }

    /// The bytes a non-final pass over `listing` would copy (the final one copies these and the
    /// small files changed in place): how far the copy is behind.
    public func behind(_ listing: DirectoryListing) -> Int64 {
        plan(listing, final: false).reduce(0) { $0 + $1.size - $1.from }
    }

    /// One pass over `listing`; returns the bytes it copied. `final`: the log is closed, so
    /// everything is copied that is not already the same. A non-final pass stops early (having
    /// copied what it did) when `proceed` says so.
    @discardableResult
    public func pass(_ listing: DirectoryListing, final: Bool, proceed: () -> Bool = { true }) throws(StorageError) -> Int64 {
        try FileSystem.createDirectory(target)
        let work = plan(listing, final: final)
        if rewrites != listing.rewrites {
            copied.removeAll()
            rewrites = listing.rewrites
        }
        for name in try FileSystem.list(target) where listing.files[name] == nil || Self.isTemporary(name) {
            try FileSystem.remove(target + "/" + name)
            copied[name] = nil
        }
        var total: Int64 = 0
        for (name, from, size) in work {
            guard final || proceed() else { break }
            guard let n = try FileSystem.copy(from: source + "/" + name, to: target + "/" + name, range: from..<size) else {
                // Gone since the listing (retention): the next listing leaves it out.
                copied[name] = nil
                continue
            }
            guard !final || n == size - from else {
                throw .invalidArgument("\(source)/\(name) changed while its log was closed")
            }
            copied[name] = FileState(inode: listing.files[name]!.inode, size: from + n)
            total += n
        }
        if final { try FileSystem.syncDirectory(target) }
        bytesCopied += total
        return total
    }
}
