import BrookCluster
import BrookCore
import Foundation

/// What this broker knows of the cluster it belongs to, when it runs with `process.roles`: the
/// metadata image it follows and the active controller. Empty on a single node without a quorum.
public final class ClusterMembership: Sendable {
    public struct View: Sendable {
        public var image: MetadataImage
        public var activeController: NodeID?
        public var fenced: Bool
        public init(image: MetadataImage, activeController: NodeID?, fenced: Bool) {
            self.image = image
            self.activeController = activeController
            self.fenced = fenced
        }
    }

    private let state = NSLock()
    nonisolated(unsafe) private var view: View?

    public init() {}

    public var current: View? { state.withLock { view } }

    public func update(_ new: View) { state.withLock { view = new } }
}
