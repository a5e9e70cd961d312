import ArgumentParser
import SoakCore

struct Soak: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "soak",
        abstract: "Make an S3 bucket feel like a local disk: bulk download, cache, mount.",
        version: BuildInfo.versionLine,
        subcommands: [Download.self, Prewarm.self, MountCommand.self, StatusCommand.self, CacheCommand.self,
                      DoctorCommand.self])
}
