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
    /// Counted in the pool's `held`. Changed by compare-and-exchange only, so that a member
    /// leaving (`gave`, from a deinit that may run while the pool's lock is held) needs no lock.
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
    private let heldCount = Atomic<Int>(0)
    private let releasedCount = Atomic<UInt64>(0)

    private struct Slot {
        weak var member: (any PoolMember)?
    }

    private struct State {
        var slots: [Slot] = []
        var hand = 0
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
    public var held: Int { heldCount.load(ordering: .relaxed) }
    /// Releases made to stay within capacity (or to make room, `shed`), since the start.
    public var released: UInt64 { releasedCount.load(ordering: .relaxed) }

    /// `member` has just taken its resource: counted, and the coldest members released while
    /// the pool is over capacity (the caller holds none of its members' locks).
    func took(_ member: any PoolMember) {
        let membership = member.membership
        membership.used.store(true, ordering: .relaxed)
        let victims: [any PoolMember] = state.withLock { s in
            if membership.counted.compareExchange(expected: false, desired: true, ordering: .relaxed).exchanged {
                heldCount.add(1, ordering: .relaxed)
                s.slots.append(Slot(member: member))
            }
            let victims = evict(&s) { heldCount.load(ordering: .relaxed) > capacity }
            // Members gone or let go on their own leave slots behind: swept when they outnumber
            // the held ones, so the slots stay within twice the members (plus a little).
            if s.slots.count > 2 * heldCount.load(ordering: .relaxed) + 64 {
                s.slots.removeAll { slot in !(slot.member?.membership.counted.load(ordering: .relaxed) ?? false) }
                s.hand = 0
            }
            return victims
        }
        for victim in victims { victim.release() }
    }

    /// Releases up to `count` of the coldest members whatever the capacity: a member that could
    /// not take its resource (the process out of descriptors or mappings) makes room and tries
    /// once more.
    func shed(_ count: Int) {
        var left = count
        let victims: [any PoolMember] = state.withLock { s in
            evict(&s) {
                left -= 1
                return left >= 0
            }
        }
        for victim in victims { victim.release() }
    }

    /// Turns the clock's hand while `more()` holds, taking the members to release (released
    /// by the caller, once the lock is let go). A member whose last reference ends here runs
    /// its deinit under the lock: `gave` takes none.
    private func evict(_ s: inout State, while more: () -> Bool) -> [any PoolMember] {
        var victims: [any PoolMember] = []
        // Two turns of the hand clear every mark: past them the next member goes, marked or not.
        var passes = 2 * s.slots.count
        var wanted = more()
        while wanted && !s.slots.isEmpty {
            if s.hand >= s.slots.count { s.hand = 0 }
            let candidate = s.slots[s.hand].member
            let counted = candidate?.membership.counted.load(ordering: .relaxed) ?? false
            if counted, passes > 0, candidate!.membership.used.exchange(false, ordering: .relaxed) {
                passes -= 1
                s.hand += 1
                continue
            }
            // Gone, let go on its own, or the coldest: its slot goes.
            s.slots.swapAt(s.hand, s.slots.count - 1)
            s.slots.removeLast()
            if let candidate, candidate.membership.counted.compareExchange(expected: true, desired: false, ordering: .relaxed).exchanged {
                heldCount.subtract(1, ordering: .relaxed)
                releasedCount.add(1, ordering: .relaxed)
                victims.append(candidate)
                wanted = more()
            }
        }
        return victims
    }

    /// Runs `take` (an open, a mapping); when the process is out of descriptors or mappings,
    /// lets some of the coldest members go and runs it once more.
    func withRoom<T>(_ take: () throws(StorageError) -> T) throws(StorageError) -> T {
        do {
            return try take()
        } catch where error.isResourceShortage {
            shed(64)
            return try take()
        }
    }

    /// A member let its resource go on its own (closed, deleted, gone): no longer counted.
    /// Takes no lock (a deinit may run under the pool's).
    func gave(_ membership: PoolMembership) {
        if membership.counted.compareExchange(expected: true, desired: false, ordering: .relaxed).exchanged {
            heldCount.subtract(1, ordering: .relaxed)
        }
    }
}

extension StorageError {
    /// The process is out of descriptors or mappings (a pool shed can make room).
    var isResourceShortage: Bool {
        if case .io(_, _, let code) = self { return code == EMFILE || code == ENFILE || code == ENOMEM }
        return false
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
    /// The open file, if any; `closed` once the segment was closed for good (no reopening).
    private let open = Mutex<(file: SegmentFile?, closed: Bool)>((nil, false))

    init(path: String, create: Bool, pool: OnDemandPool) throws(StorageError) {
        self.path = path
        self.pool = pool
        let file = try Self.open(path, create: create, pool: pool)
        open.withLock { $0.file = file }
        pool.took(self)
    }

    deinit { pool.gave(membership) }

    /// Opens `path`; short of descriptors, the pool closes some of its coldest files first.
    private static func open(_ path: String, create: Bool, pool: OnDemandPool) throws(StorageError) -> SegmentFile {
        try pool.withRoom { () throws(StorageError) in try SegmentFile(path: path, create: create) }
    }

    /// The open file, opened again when the pool had closed it.
    func file() throws(StorageError) -> SegmentFile {
        membership.used.store(true, ordering: .relaxed)
        let (current, closed) = open.withLock { ($0.file, $0.closed) }
        if let current { return current }
        guard !closed else { throw .closed }
        let fresh = try Self.open(path, create: false, pool: pool)
        let (file, kept) = try open.withLock { (state: inout (file: SegmentFile?, closed: Bool)) throws(StorageError) -> (SegmentFile, Bool) in
            if let current = state.file { return (current, false) }  // another user opened it meanwhile
            guard !state.closed else { throw .closed }
            state.file = fresh
            return (fresh, true)
        }
        if kept { pool.took(self) }
        return file
    }

    /// Whether the descriptor is open now (tests).
    var isOpen: Bool { open.withLock { $0.file != nil } }

    func release() { drop(forGood: false) }

    /// Closed for good (the segment was closed or deleted): a later use throws `.closed`.
    func close() {
        drop(forGood: true)
        pool.gave(membership)
    }

    private func drop(forGood: Bool) {
        let closing = open.withLock { state -> SegmentFile? in
            defer { state = (nil, state.closed || forGood) }
            return state.file
        }
        _ = closing  // closed here (outside the lock) unless a user still holds it
    }
}

extension FileSystem {
    /// The kernel's limit on a process's mappings (`vm.max_map_count`; 65,530 by default).
    public static func mapCountLimit() -> Int {
        let bytes = (try? SegmentFile(path: "/proc/sys/vm/max_map_count", create: false, readOnly: true).read(count: 32, at: 0)) ?? []
        let digits = bytes.prefix { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
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
