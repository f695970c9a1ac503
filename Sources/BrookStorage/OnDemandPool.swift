import BrookCore
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Something a segment holds only while it is used (a log's descriptor, an index's mapping),
/// taken again on its next use after the pool let it go.
protocol PoolMember: AnyObject, Sendable {
    var membership: PoolMembership { get }
    /// Lets the resource go (called by the pool, never under its lock). A user holding it (a
    /// reader's `SegmentFile`) keeps it until done.
    func release()
}

/// A member's state as its pool sees it.
final class PoolMembership: Sendable {
    /// Set at each use; the pool's clock hand clears it and passes over a member that had it.
    let used = Atomic<Bool>(true)
    /// Counted in the pool; read and written under the pool's lock only.
    let counted = Atomic<Bool>(false)
}

/// Bounds how many segment files a process keeps open (`files`) and how many index files it
/// keeps mapped (`maps`), so that neither the open-file limit (`ulimit -n`) nor the kernel's
/// mapping limit (`vm.max_map_count`) bounds how many partitions and segments a broker holds.
/// Past its capacity a pool releases the coldest members (a clock: each use marks a member,
/// the hand clears marks and takes the first unmarked one); a member is taken again on its
/// next use, so a broker with 100,000 idle partitions keeps open only what is read or written.
/// Kafka keeps every segment's files open and mapped (and asks for raised limits).
public final class OnDemandPool: Sendable {
    public let capacity: Int
    private let state: Mutex<State>

    private struct Slot {
        weak var member: (any PoolMember)?
    }

    private struct State {
        var slots: [Slot] = []
        var hand = 0
        var held = 0
        var released: UInt64 = 0
    }

    public init(capacity: Int) {
        precondition(capacity >= 1, "a pool holds at least one member")
        self.capacity = capacity
        state = Mutex(State())
    }

    /// Open segment files: the open-file limit less what connections and the rest need (a
    /// quarter, 256 to 4,096 files).
    public static let files = OnDemandPool(capacity: filesCapacity(openFileLimit: FileSystem.openFileLimit()))
    /// Mapped index files: `vm.max_map_count` less a quarter (1,024 to 16,384) for the
    /// allocator, the runtime and the libraries.
    public static let maps = OnDemandPool(capacity: mapsCapacity(mapCountLimit: FileSystem.mapCountLimit()))

    public static func filesCapacity(openFileLimit: Int) -> Int {
        max(64, openFileLimit - min(max(openFileLimit / 4, 256), 4096))
    }

    public static func mapsCapacity(mapCountLimit: Int) -> Int {
        max(64, mapCountLimit - min(max(mapCountLimit / 4, 1024), 16_384))
    }

    /// Members holding their resource now.
    public var held: Int { state.withLock { $0.held } }
    /// Releases made to stay within capacity, since the start.
    public var released: UInt64 { state.withLock { $0.released } }

    /// `member` has just taken its resource: counted, and the coldest members released while
    /// the pool is over capacity (the caller holds none of its members' locks).
    func took(_ member: any PoolMember) {
        let victims: [any PoolMember] = state.withLock { s in
            let membership = member.membership
            membership.used.store(true, ordering: .relaxed)
            if !membership.counted.load(ordering: .relaxed) {
                membership.counted.store(true, ordering: .relaxed)
                s.held += 1
                s.slots.append(Slot(member: member))
            }
            var victims: [any PoolMember] = []
            // Two turns of the hand clear every mark: past them the next member goes, marked or not.
            var passes = 2 * s.slots.count
            while s.held > capacity && !s.slots.isEmpty {
                if s.hand >= s.slots.count { s.hand = 0 }
                guard let candidate = s.slots[s.hand].member, candidate.membership.counted.load(ordering: .relaxed) else {
                    s.slots.swapAt(s.hand, s.slots.count - 1)
                    s.slots.removeLast()
                    continue
                }
                if passes > 0, candidate.membership.used.exchange(false, ordering: .relaxed) {
                    passes -= 1
                    s.hand += 1
                    continue
                }
                candidate.membership.counted.store(false, ordering: .relaxed)
                s.held -= 1
                s.released += 1
                s.slots.swapAt(s.hand, s.slots.count - 1)
                s.slots.removeLast()
                victims.append(candidate)
            }
            // Members gone or let go on their own leave slots behind: swept when they outnumber
            // the held ones, so the slots stay within twice the members (plus a little).
            if s.slots.count > 2 * s.held + 64 {
                s.slots.removeAll { slot in !(slot.member?.membership.counted.load(ordering: .relaxed) ?? false) }
                s.hand = 0
            }
            return victims
        }
        for victim in victims { victim.release() }
    }

    /// A member let its resource go on its own (closed, deleted, gone): no longer counted.
    func gave(_ membership: PoolMembership) {
        state.withLock { s in
            if membership.counted.load(ordering: .relaxed) {
                membership.counted.store(false, ordering: .relaxed)
                s.held -= 1
            }
        }
    }
}

/// A segment's `.log`, open while it is used: `OnDemandPool.files` closes the coldest ones, and
/// the next use opens it again by its path (which stays put while the segment is in its log;
/// a deleted segment is renamed only once out of it). A `SegmentFile` taken from it (a
/// reader's slice, a roll's pending fsync) stays open until its holder lets go.
final class SegmentLog: PoolMember {
    let path: String
    let membership = PoolMembership()
    private let pool: OnDemandPool
    private let open = Mutex<SegmentFile?>(nil)

    init(path: String, create: Bool, pool: OnDemandPool) throws(StorageError) {
        self.path = path
        self.pool = pool
        let file = try SegmentFile(path: path, create: create)
        open.withLock { $0 = file }
        pool.took(self)
    }

    deinit { pool.gave(membership) }

    /// The open file, opened again when the pool had closed it.
    func file() throws(StorageError) -> SegmentFile {
        membership.used.store(true, ordering: .relaxed)
        if let file = open.withLock({ $0 }) { return file }
        let fresh = try SegmentFile(path: path, create: false)
        let (file, kept) = open.withLock { current -> (SegmentFile, Bool) in
            if let current { return (current, false) }  // another user opened it meanwhile
            current = fresh
            return (fresh, true)
        }
        if kept { pool.took(self) }
        return file
    }

    /// Whether the descriptor is open now (tests).
    var isOpen: Bool { open.withLock { $0 != nil } }

    func release() {
        let closing = open.withLock { current -> SegmentFile? in
            defer { current = nil }
            return current
        }
        _ = closing  // closed here (outside the lock) unless a user still holds it
    }

    /// Closed for good (the segment was closed or deleted).
    func close() {
        release()
        pool.gave(membership)
    }
}

extension FileSystem {
    /// The kernel's limit on a process's mappings (`vm.max_map_count`; 65,530 by default).
    public static func mapCountLimit() -> Int {
        let fd = open("/proc/sys/vm/max_map_count", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return 65_530 }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 32)
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard n > 0 else { return 65_530 }
        let digits = buffer[0..<n].prefix { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
        guard let value = Int(String(decoding: digits, as: UTF8.self)), value > 0 else { return 65_530 }
        return value
    }
}

/// The pools a log's segments take their open files and index mappings from (the process's
/// own, or small ones in tests).
public struct SegmentPools: Sendable {
    public let files: OnDemandPool
    public let maps: OnDemandPool

    public init(files: OnDemandPool, maps: OnDemandPool) {
        self.files = files
        self.maps = maps
    }

    public static let shared = SegmentPools(files: .files, maps: .maps)
}
