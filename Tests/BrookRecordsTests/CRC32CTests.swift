import BrookCore
import BrookRecords
import Testing

@Suite struct CRC32CTests {
    @Test func knownVectors() {
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        #expect(CRC32C.checksum([UInt8](repeating: 0, count: 32)) == 0x8A91_36AA)
        #expect(CRC32C.checksum([UInt8](repeating: 0xFF, count: 32)) == 0x62A8_AB43)
        #expect(CRC32C.checksum(Array(0..<32)) == 0x46DD_794E)
        #expect(CRC32C.checksum([]) == 0)
    }

    /// The hardware path (with its three interleaved stripes above 12 KiB) agrees with the
    /// table-driven one at every length and alignment.
    @Test(arguments: [1, 2, 3])
    func hardwareMatchesPortable(seed: UInt64) {
        var random = SeededRandom(seed: seed)
        let data = (0..<70_000).map { _ in UInt8.random(in: 0...255, using: &random) }
        data.withUnsafeBytes { all in
            for _ in 0..<200 {
                let start = Int.random(in: 0..<64, using: &random)
                let length = Int.random(in: 0...(all.count - start), using: &random)
                let slice = UnsafeRawBufferPointer(rebasing: all[start..<(start + length)])
                #expect(CRC32C.checksum(slice) == CRC32C.portableChecksum(slice))
            }
        }
    }

    @Test func extendingEqualsWhole() {
        let data = Array("The quick brown fox jumps over the lazy dog".utf8)
        let whole = CRC32C.checksum(data)
        let split = data.withUnsafeBytes { b in
            CRC32C.checksum(UnsafeRawBufferPointer(rebasing: b[10...]),
                            extending: CRC32C.checksum(UnsafeRawBufferPointer(rebasing: b[..<10])))
        }
        #expect(whole == split)
    }
}
