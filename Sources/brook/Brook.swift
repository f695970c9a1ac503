import ArgumentParser

@main
struct Brook: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "brook",
        abstract: "Brook: a Kafka-compatible event-streaming platform.",
        discussion: "Start a single-node broker with `brook serve`; see README.md.",
        subcommands: [Serve.self, TopicCommand.self, ConfigCommand.self, GroupCommand.self, ProduceCommand.self, ConsumeCommand.self,
                      LogCommand.self, PerfCommand.self, ControllerCommand.self, QuorumCommand.self, ClusterCommand.self,
                      DevCommand.self, ElectCommand.self, ReassignCommand.self, LogDirsCommand.self, UserCommand.self, AclCommand.self, QuotaCommand.self,
                      MirrorCommand.self, MetadataQuorumCommand.self, FeaturesCommand.self])
}

struct LogCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "log", abstract: "Inspect partition log files.", subcommands: [LogDump.self])
}

struct PerfCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "perf", abstract: "Measure Brook on this machine.",
        subcommands: [PerfLog.self, PerfProduce.self, PerfConsume.self, PerfCodecs.self, PerfMQTT.self])
}
