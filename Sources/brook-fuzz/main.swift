// brook-fuzz: the fuzz targets (BrookFuzzTargets) from the command line.
//
//   brook-fuzz list                       the targets and what their inputs are
//   brook-fuzz seed CORPUS_DIR            writes seeds built with Brook's encoders (CORPUS_DIR/TARGET/seed-*)
//   brook-fuzz replay [-v] TARGET PATH... runs every file (directories: every file in them) through
//                                         TARGET; -v names each file first (to tell which one traps)
//
// Built with BROOK_FUZZ=1 (scripts/fuzz.sh), it also runs libFuzzer: with BROOK_FUZZ_TARGET set
// in the environment, every argument goes to libFuzzer (flags and corpus directories), e.g.
//
//   BROOK_FUZZ_TARGET=batch SWIFT_BACKTRACE=enable=no brook-fuzz -max_total_time=60 corpus/
//
// (An environment variable rather than an argument, so that the processes libFuzzer starts
// itself, for -merge=1 or -fork=N, run the same target.)
import BrookFuzzTargets
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

#if BROOK_FUZZ
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

nonisolated(unsafe) var selected: FuzzTarget?

/// libFuzzer's entry point, also for other drivers (AFL++'s libAFLDriver, honggfuzz).
@_cdecl("LLVMFuzzerTestOneInput")
func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    selected!.run(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}

@_cdecl("LLVMFuzzerInitialize")
func fuzzInitialize(_ argc: UnsafeMutablePointer<CInt>?, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>?) -> CInt {
    if selected == nil { selected = targetFromEnvironment() }
    return 0
}
#endif

func printError(_ message: String) {
    var line = message + "\n"
    line.withUTF8 { _ = write(2, $0.baseAddress, $0.count) }
}

func fail(_ message: String) -> Never {
    printError(message)
    exit(2)
}

func targetFromEnvironment() -> FuzzTarget {
    guard let name = getenv("BROOK_FUZZ_TARGET").map({ String(cString: $0) }) else { fail("BROOK_FUZZ_TARGET is not set") }
    guard let target = FuzzTargets.named(name) else { fail("no fuzz target \(name); brook-fuzz list names them") }
    return target
}

/// The files at `path`: itself, or every regular file under it, sorted by name.
func files(at path: String) -> [String] {
    var info = stat()
    guard stat(path, &info) == 0 else { fail("\(path): \(String(cString: strerror(errno)))") }
    guard info.st_mode & S_IFMT == S_IFDIR else { return [path] }
    guard let directory = opendir(path) else { fail("\(path): \(String(cString: strerror(errno)))") }
    defer { closedir(directory) }
    var names: [String] = []
    while let entry = readdir(directory) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        if name != "." && name != ".." && !name.hasPrefix(".") { names.append(name) }
    }
    return names.sorted().flatMap { files(at: "\(path)/\($0)") }
}

func read(_ path: String) -> [UInt8] {
    guard let file = fopen(path, "rb") else { fail("\(path): \(String(cString: strerror(errno)))") }
    defer { fclose(file) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 64 * 1024)
    while true {
        let count = fread(&chunk, 1, chunk.count, file)
        bytes += chunk[0..<count]
        if count < chunk.count { break }
    }
    return bytes
}

let arguments = Array(CommandLine.arguments.dropFirst())
#if BROOK_FUZZ
if getenv("BROOK_FUZZ_TARGET") != nil {
    selected = targetFromEnvironment()
    var argc = CommandLine.argc
    var argv = CommandLine.unsafeArgv
    exit(LLVMFuzzerRunDriver(&argc, &argv, fuzzOne))
}
#endif
switch arguments.first {
case "seed":
    guard arguments.count == 2 else { fail("usage: brook-fuzz seed CORPUS_DIR") }
    mkdir(arguments[1], 0o755)
    for seed in FuzzSeeds.all {
        let directory = "\(arguments[1])/\(seed.target)"
        mkdir(directory, 0o755)
        guard let file = fopen("\(directory)/\(seed.name)", "wb") else { fail("\(directory)/\(seed.name): \(String(cString: strerror(errno)))") }
        _ = seed.bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, file) }
        fclose(file)
    }
    print("\(FuzzSeeds.all.count) seeds written under \(arguments[1])")
case "list":
    for target in FuzzTargets.all { print("\(target.name)\t\(target.inputBytesMax)\t\(target.input)") }
case "replay":
    let verbose = arguments.dropFirst().first == "-v"
    let operands = arguments.dropFirst(verbose ? 2 : 1)
    guard operands.count >= 2, let target = FuzzTargets.named(operands.first!) else {
        fail("usage: brook-fuzz replay [-v] TARGET PATH...  (brook-fuzz list names the targets)")
    }
    var count = 0
    for path in operands.dropFirst().flatMap(files(at:)) {
        if verbose { printError("\(target.name): \(path)") }
        target.replay(read(path))
        count += 1
    }
    print("\(target.name): \(count) inputs replayed, no crash")
default:
    fail("""
        usage: brook-fuzz list
               brook-fuzz seed CORPUS_DIR
               brook-fuzz replay [-v] TARGET PATH...
               BROOK_FUZZ_TARGET=TARGET brook-fuzz [libFuzzer flags] [CORPUS...]   (a BROOK_FUZZ=1 build: scripts/fuzz.sh)
        """)
}
