import BrookProtocol
import NIOCore
import Testing

/// The framer alone: sizes checked before any body, a reservation before the body is accepted.
@Suite struct RequestFramerTests {
    @Test func reservationComesBeforeTheFrame() throws {
        var framer = RequestFramer(frameBytesMax: 100)
        var bytes = ByteBuffer(bytes: [0, 0, 0, 12] + Array(repeating: 7, count: 12) + [0, 0, 0])
        framer.append(&bytes)
        guard case .reserve(let size) = try framer.next() else { Issue.record("no reservation asked"); return }
        #expect(size == 12)
        framer.reserved(size)
        guard case .frame(let frame, 12) = try framer.next() else { Issue.record("no frame"); return }
        #expect(Array(frame.readableBytesView) == Array(repeating: 7, count: 12))
        guard case .needBytes = try framer.next() else { Issue.record("a frame from three bytes"); return }
        #expect(framer.bufferedBytes == 3)
        var rest = ByteBuffer(bytes: [200])
        framer.append(&rest)
        #expect(throws: KafkaFrameDecoder.FrameError.self) { try framer.next() }
    }

    @Test func sizesOutOfBoundsAreErrors() throws {
        for size: Int32 in [-1, 0, 9, 101, Int32.max, Int32.min] {
            var framer = RequestFramer(frameBytesMax: 100)
            var bytes = ByteBuffer()
            bytes.writeInteger(size)
            framer.append(&bytes)
            #expect(throws: KafkaFrameDecoder.FrameError.self, "size \(size)") { try framer.next() }
        }
    }
}
